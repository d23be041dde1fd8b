//! Parsing: the bytes of a tender document into a [`ParsedDocument`].
//!
//! Every entry point is a plain function over bytes; nothing here touches the
//! broker or the store. Bad input is a [`ParseError`], never a panic.

pub mod sniff;
pub mod text;

use crate::document::ParsedDocument;

/// Limits that keep hostile input from taking unbounded time or memory.
#[derive(Debug, Clone)]
pub struct ParseLimits {
    /// Largest input accepted, in bytes.
    pub max_input_bytes: u64,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_input_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Why a document could not be parsed. Every parse error is permanent: the
/// same bytes fail the same way on every try.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ParseError {
    /// Stable kind: `unsupported_type`, `corrupt`, `encrypted`, `needs_ocr`,
    /// `too_large`, `empty`, ...
    pub kind: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

impl ParseError {
    /// An error of `kind`.
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        ParseError {
            kind,
            message: message.into(),
        }
    }
}

/// Parses `bytes` of the sniffed `media_type`.
pub fn parse(
    bytes: &[u8],
    media_type: &str,
    limits: &ParseLimits,
) -> Result<ParsedDocument, ParseError> {
    if bytes.is_empty() {
        return Err(ParseError::new("empty", "the document is empty (0 bytes)"));
    }
    if bytes.len() as u64 > limits.max_input_bytes {
        return Err(ParseError::new(
            "too_large",
            format!(
                "the document is {} bytes, over the limit of {}",
                bytes.len(),
                limits.max_input_bytes
            ),
        ));
    }
    match media_type {
        "text/markdown" => text::parse_markdown(bytes),
        "text/plain" => text::parse_text(bytes),
        other => Err(ParseError::new(
            "unsupported_type",
            format!("no parser for media type {other}"),
        )),
    }
}
