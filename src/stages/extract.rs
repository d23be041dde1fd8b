//! The extract stage.
