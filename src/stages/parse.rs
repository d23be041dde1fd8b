//! The parse stage: each stored original (the main document and its
//! amendments, not the attachments) into a parsed-document artifact.

use bytes::Bytes;

use super::{StageContext, StageError, StageOutput};
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
    let mut parsed = Vec::with_capacity(names.len());
    for (name, original) in names.iter().zip(&artifacts.originals) {
        let bytes = context.store.get_artifact(original).await?;
        let doc = parse_blocking(bytes, name.to_string(), limits.clone()).await?;
        parsed.push(context.store.put_json_owned("parsed", doc).await?);
    }
    let produced = parsed.first().cloned();
    artifacts.parsed = parsed;
    Ok(StageOutput {
        artifacts,
        produced,
        files: Vec::new(),
    })
}

/// Parsing is CPU-bound: it runs on the blocking pool, off the async workers.
async fn parse_blocking(
    bytes: Bytes,
    filename: String,
    mut limits: ParseLimits,
) -> Result<ParsedDocument, StageError> {
    // The handler abandoned at its timeout drops this future: the guard
    // then stops the parse on the blocking pool, killing its OCR process.
    limits.cancel = CancelFlag::default();
    let _stop = CancelOnDrop(limits.cancel.clone());
    let parsed = tokio::task::spawn_blocking(move || {
        let media_type = sniff::sniff(&bytes, &filename)?;
        parse::parse(&bytes, media_type, &limits)
    })
    .await;
    match parsed {
        Ok(Ok(doc)) => Ok(doc),
        Ok(Err(err)) => Err(err.into()),
        Err(join) if join.is_panic() => Err(StageError::permanent("panic", "the parser panicked")),
        Err(join) => Err(StageError::transient(join.to_string())),
    }
}

/// Cancels its flag when dropped.
struct CancelOnDrop(CancelFlag);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}
