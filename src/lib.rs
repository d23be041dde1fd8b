//! tenderflow: tender documents into sourced summaries, over RabbitMQ.
#![forbid(unsafe_code)]

pub mod broker;
pub mod cli;
pub mod client;
pub mod config;
pub mod dlq;
pub mod document;
pub mod envelope;
pub mod eval;
pub mod events;
pub mod extract;
pub mod filter;
pub mod http;
pub mod llm;
pub mod metrics;
pub mod parse;
pub mod projector;
pub mod runtime;
pub mod stages;
pub mod store;
pub mod submit;
pub mod summary;
pub mod telemetry;
pub mod topology;
