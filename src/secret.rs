//! A value that must not appear in logs or debug output (API keys, URLs
//! with passwords, tokens). The document logic's model client and the
//! pipeline's settings both hold them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A value that must not appear in logs or debug output.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}
