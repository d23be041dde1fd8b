//! PDF with a text layer.

use super::{ParseError, ParseLimits};
use crate::document::ParsedDocument;

/// Parses PDF bytes.
pub fn parse_pdf(_bytes: &[u8], _limits: &ParseLimits) -> Result<ParsedDocument, ParseError> {
    Err(ParseError::new(
        "unsupported_type",
        "PDF parsing is not built yet",
    ))
}
