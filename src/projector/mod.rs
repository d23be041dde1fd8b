//! The status projector: folds the events stream into a durable task view
//! and serves it over HTTP.

pub mod db;
pub mod view;
