//! The parse stage: each stored original (the main document and its
//! amendments, not the attachments) into a parsed-document artifact.
//!
//! Each original is parsed in a child process ([`child`]) unless
//! `parse.isolation` says `in_process`, or it is a plain text or Markdown
//! file of at most `parse.in_process_text_max_bytes`.

pub mod child;

use std::path::PathBuf;

use bytes::Bytes;
use tokio::time::Instant;

use super::{StageContext, StageError, StageOutput};
use crate::config::{ParseIsolation, Settings};
use crate::document::ParsedDocument;
use crate::envelope::Envelope;
use crate::parse::ocr::CancelFlag;
use crate::parse::{self, ParseLimits, sniff};

/// Parses every original of the task.
pub async fn handle(
    context: &StageContext,
    envelope: &Envelope,
) -> Result<StageOutput, StageError> {
    let mut artifacts = envelope.artifacts.clone();
    // The main document and its amendments; attachments are stored and
    // listed by ingest, never parsed.
    let names = envelope.document_names();
    if artifacts.originals.len() != names.len() || names.is_empty() {
        return Err(StageError::permanent(
            "invalid_message",
            "the message reaches parse without a stored original for every document",
        ));
    }
    // The other limits keep their defaults, whatever fields they grow.
    #[allow(clippy::needless_update)]
    let limits = ParseLimits {
        max_input_bytes: context.settings.store.max_document_bytes,
        ..ParseLimits::default()
    };
    let settings = &context.settings;
    let confinement = confinement(settings);
    // One budget for all the message's documents: the runtime's handler
    // limit covers them together.
    let timeout = settings.parse_timeout();
    let deadline = Instant::now() + timeout;
    let mut parsed = Vec::with_capacity(names.len());
    for (name, original) in names.iter().zip(&artifacts.originals) {
        let bytes = context.store.get_artifact(original).await?;
        let size = bytes.len() as u64;
        let doc = match settings.parse.isolation {
            ParseIsolation::Process if !small_text(settings, &bytes, name) => {
                child::parse_in_child(bytes, name, &limits, &confinement, deadline, timeout).await?
            }
            _ if size <= crate::cpu::SMALL_INPUT && sniff::plain_text(&bytes, name).is_some() => {
                parse_here(&bytes, name, &limits)?
            }
            ParseIsolation::Process | ParseIsolation::InProcess => {
                parse_blocking(bytes, name.to_string(), limits.clone()).await?
            }
        };
        parsed.push(context.store.put_json_owned("parsed", doc, size).await?);
    }
    let produced = parsed.first().cloned();
    artifacts.parsed = parsed;
    Ok(StageOutput {
        artifacts,
        produced,
        files: Vec::new(),
        duplicate_of: None,
    })
}

/// Whether `bytes` are a plain text or Markdown original small enough
/// (`parse.in_process_text_max_bytes`) to parse in this process even when
/// documents are parsed in children.
fn small_text(settings: &Settings, bytes: &[u8], name: &str) -> bool {
    bytes.len() as u64 <= settings.parse.in_process_text_max_bytes
        && sniff::plain_text(bytes, name).is_some()
}

/// What bounds a parse process, from the settings.
fn confinement(settings: &Settings) -> child::Confinement {
    child::Confinement {
        program: settings
            .parse
            .program
            .clone()
            .unwrap_or_else(default_program),
        max_memory: settings.parse.max_memory_mb << 20,
        max_cpu_seconds: settings.parse.max_cpu_seconds,
    }
}

/// This binary; from a test, a bench or an example (which cargo builds in
/// `deps/` or `examples/` below the binaries), the tenderflow binary there.
fn default_program() -> PathBuf {
    let Ok(exe) = std::env::current_exe() else {
        return PathBuf::from("tenderflow");
    };
    if exe.file_stem().is_some_and(|s| s == "tenderflow") {
        return exe;
    }
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("tenderflow"))
        .find(|candidate| candidate.is_file())
        .unwrap_or(exe)
}

/// Parsing in process (`parse.isolation = "in_process"`): on the blocking
/// pool, off the async workers. Nothing stops it at the handler timeout
/// but its OCR process: the rest of the parse runs on.
async fn parse_blocking(
    bytes: Bytes,
    filename: String,
    mut limits: ParseLimits,
) -> Result<ParsedDocument, StageError> {
    // The handler abandoned at its timeout drops this future: the guard
    // then stops the parse on the blocking pool, killing its OCR process.
    limits.cancel = CancelFlag::default();
    let _stop = CancelOnDrop(limits.cancel.clone());
    let parsed =
        tokio::task::spawn_blocking(move || sniff_and_parse(&bytes, &filename, &limits)).await;
    match parsed {
        Ok(Ok(doc)) => Ok(doc),
        Ok(Err(err)) => Err(err.into()),
        Err(join) if join.is_panic() => Err(panicked()),
        Err(join) => Err(StageError::transient(join.to_string())),
    }
}

/// Parsing a small plain text or Markdown original on the calling task:
/// microseconds, less than the hand-over to the blocking pool and back.
fn parse_here(
    bytes: &[u8],
    filename: &str,
    limits: &ParseLimits,
) -> Result<ParsedDocument, StageError> {
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sniff_and_parse(bytes, filename, limits)
    }));
    match parsed {
        Ok(Ok(doc)) => Ok(doc),
        Ok(Err(err)) => Err(err.into()),
        Err(_) => Err(panicked()),
    }
}

/// The original's type, from its bytes and name, and the original parsed
/// as that.
fn sniff_and_parse(
    bytes: &[u8],
    filename: &str,
    limits: &ParseLimits,
) -> Result<ParsedDocument, parse::ParseError> {
    let media_type = sniff::sniff(bytes, filename)?;
    parse::parse(bytes, media_type, limits)
}

/// The error of a parse that panicked.
fn panicked() -> StageError {
    StageError::permanent("panic", "the parser panicked")
}

/// Cancels its flag when dropped.
struct CancelOnDrop(CancelFlag);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_plain_text_skips_the_child_process() {
        let mut settings = Settings::load(None).unwrap();
        settings.parse.in_process_text_max_bytes = 64;
        assert!(small_text(&settings, b"# Tender\n", "a.md"));
        assert!(small_text(&settings, "招标公告".as_bytes(), "a.txt"));
        assert!(!small_text(&settings, &[b'x'; 65], "a.txt"), "too big");
        assert!(!small_text(&settings, b"%PDF-1.7\n", "a.pdf"));
        assert!(!small_text(&settings, b"<html>x</html>", "a.html"));
        settings.parse.in_process_text_max_bytes = 0;
        assert!(!small_text(&settings, b"# Tender\n", "a.md"), "0: none");
    }
}
