//! tenderflow: tender documents into sourced summaries, over RabbitMQ.
#![forbid(unsafe_code)]

pub mod config;
pub mod document;
pub mod envelope;
pub mod events;
pub mod extract;
pub mod filter;
pub mod parse;
pub mod projector;
pub mod stages;
pub mod summary;
