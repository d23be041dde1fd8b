//! The filter stage.
