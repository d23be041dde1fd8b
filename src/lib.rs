//! tenderflow: tender documents into sourced summaries, over RabbitMQ.
#![forbid(unsafe_code)]
//!
//! Two layers. The document logic (`parse`, `package`, `filter`, `extract`,
//! `llm`, `document`, `summary`, `eval`) turns bytes into a summary and depends on
//! nothing of the pipeline: each has its own error type that says whether
//! a retry can help. The pipeline (`stages`, `runtime`, `broker`,
//! `topology`, `store`, `projector`, `http`...) moves documents through
//! RabbitMQ and maps those errors onto retries and dead letters.

pub mod broker;
#[macro_use]
pub mod cli;
pub mod client;
pub mod config;
pub mod contract;
pub mod cpu;
pub mod dlq;
pub mod document;
pub mod envelope;
pub mod eval;
pub mod events;
pub mod export;
pub mod extract;
pub mod filter;
pub mod http;
pub mod idempotency;
pub mod llm;
pub mod metrics;
pub mod notify;
pub mod ocr_evidence;
pub mod package;
pub mod parse;
pub mod progress;
pub mod projector;
pub mod runtime;
pub mod secret;
pub mod stages;
pub mod startup;
pub mod store;
pub mod submit;
pub mod summary;
pub mod telemetry;
pub mod topology;
