//! Integration tests against the real RabbitMQ on 127.0.0.1:5672, built as
//! one binary. Each test gets its own topology prefix, so tests share the
//! broker without seeing each other.

mod api;
mod books;
mod bulk;
mod cancel;
mod confirms;
mod dead_letters;
mod exports;
mod faults;
mod helpers;
mod isolation;
mod ledger;
mod legacy;
mod memory;
mod notify;
mod ops;
mod package;
mod pipeline;
mod procs;
mod projector;
mod proxy;
mod readiness;
mod refs;
mod retention;
mod s3;
#[path = "../support/view.rs"]
mod view;
