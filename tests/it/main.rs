//! Integration tests, one binary (the lead's file; the projector branch
//! only adds its two modules).

mod api;
mod projector;
