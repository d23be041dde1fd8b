//! The ingest stage.
