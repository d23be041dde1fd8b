//! Parsing: the bytes of a tender document into a [`ParsedDocument`].
//!
//! Every entry point is a plain function over bytes; nothing here touches the
//! broker or the store. Bad input is a [`ParseError`], never a panic: calls
//! into third-party parsers run under [`guard`], which turns a panic into a
//! `corrupt` error.

pub mod doc;
pub mod docx;
pub mod html;
pub mod ocr;
pub mod ole;
pub mod page_image;
pub mod pdf;
pub mod render;
pub mod ruling;
pub mod sniff;
pub mod text;
pub mod textutil;
pub mod xlsx;
pub mod xmltree;
pub mod zipread;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Duration;

use crate::document::ParsedDocument;
pub use render::render_text;

/// Limits that keep hostile input from taking unbounded time or memory.
#[derive(Debug, Clone)]
pub struct ParseLimits {
    /// Largest input accepted, in bytes.
    pub max_input_bytes: u64,
    /// Most pages a PDF may have; past it the parse fails as `too_large`.
    pub max_pages: u32,
    /// Most entries a DOCX or XLSX zip container may hold.
    pub max_zip_entries: usize,
    /// Most bytes all read zip entries may decompress to, together.
    pub max_uncompressed_bytes: u64,
    /// Deepest XML element nesting accepted in DOCX parts.
    pub max_xml_depth: usize,
    /// Longest chain of PDF object references (page-tree parents, indirect
    /// objects) followed before the file is called corrupt.
    pub max_object_depth: usize,
    /// Most blocks a document may produce.
    pub max_blocks: usize,
    /// Most scanned pages of one PDF read by OCR; past it the parse fails
    /// as `too_large`.
    pub max_ocr_pages: u32,
    /// Most pixels of one page image handed to OCR; a larger page is
    /// rendered at a lower resolution (150 dpi at least) or fails.
    pub max_ocr_pixels: u64,
    /// Longest one page's rendering and OCR may take; its process is
    /// killed then and the parse fails as `too_large`.
    pub ocr_page_timeout: Duration,
    /// Address space an OCR or rendering process may take (`prlimit --as`).
    pub max_ocr_memory: u64,
    /// The Tesseract program (a name on `PATH` or a path). When it cannot
    /// be run, a scanned PDF fails as `needs_ocr` and says so.
    pub tesseract: PathBuf,
    /// The pdftoppm program (poppler-utils), for scanned pages whose image
    /// OCR cannot take from the PDF as it is.
    pub pdftoppm: PathBuf,
    /// Set, the parse stops at its next check and kills its OCR process:
    /// the parse stage sets it when the handler is abandoned.
    pub cancel: ocr::CancelFlag,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_input_bytes: 64 * 1024 * 1024,
            max_pages: 3000,
            max_zip_entries: 5000,
            max_uncompressed_bytes: 256 * 1024 * 1024,
            max_xml_depth: 256,
            max_object_depth: 64,
            max_blocks: 500_000,
            max_ocr_pages: 500,
            max_ocr_pixels: 40_000_000,
            ocr_page_timeout: Duration::from_secs(120),
            max_ocr_memory: 2 << 30,
            tesseract: PathBuf::from("tesseract"),
            pdftoppm: PathBuf::from("pdftoppm"),
            cancel: ocr::CancelFlag::default(),
        }
    }
}

/// Why a document could not be parsed. Every parse error is permanent: the
/// same bytes fail the same way on every try.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ParseError {
    /// Stable kind: `unsupported_type`, `corrupt`, `encrypted`, `needs_ocr`,
    /// `too_large`, `empty`, `unsupported_encoding`, `cancelled`.
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

    /// A `corrupt` error: the bytes are not a well-formed file of their type.
    pub fn corrupt(message: impl Into<String>) -> Self {
        ParseError::new("corrupt", message)
    }

    /// A `too_large` error: the file passes one of the [`ParseLimits`].
    pub fn too_large(message: impl Into<String>) -> Self {
        ParseError::new("too_large", message)
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
        return Err(ParseError::too_large(format!(
            "the document is {} bytes, over the limit of {}",
            bytes.len(),
            limits.max_input_bytes
        )));
    }
    let doc = match media_type {
        sniff::PDF => pdf::parse_pdf(bytes, limits),
        sniff::DOCX => docx::parse_docx(bytes, limits),
        sniff::XLSX => xlsx::parse_xlsx(bytes, limits),
        sniff::HTML => html::parse_html(bytes),
        sniff::MARKDOWN => text::parse_markdown(bytes),
        sniff::TEXT => text::parse_text(bytes),
        sniff::DOC => doc::parse_doc(bytes, limits),
        sniff::XLS => xlsx::parse_xls(bytes, limits),
        other => Err(ParseError::new(
            "unsupported_type",
            format!("no parser for media type {other}"),
        )),
    }?;
    if doc.blocks.len() > limits.max_blocks {
        return Err(ParseError::too_large(format!(
            "the document has {} blocks, over the limit of {}",
            doc.blocks.len(),
            limits.max_blocks
        )));
    }
    Ok(doc)
}

/// Runs `f`, turning a panic (from a third-party parser meeting input it did
/// not expect) into a `corrupt` [`ParseError`] that names `what` was parsed.
pub fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, ParseError>) -> Result<T, ParseError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(ParseError::corrupt(format!(
                "the {what} parser failed on this file ({detail})"
            )))
        }
    }
}

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod scan_tests;
