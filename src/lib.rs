//! tenderflow: tender documents into sourced summaries, over RabbitMQ.
#![forbid(unsafe_code)]

pub mod config;
pub mod document;
pub mod envelope;
pub mod eval;
pub mod events;
pub mod extract;
pub mod filter;
pub mod llm;
pub mod parse;
pub mod stages;
pub mod summary;
