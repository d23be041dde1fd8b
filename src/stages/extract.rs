//! The extract stage: the classified documents into the task's summary.

use super::{StageContext, StageError, StageOutput};
use crate::document::OcrReport;
use crate::envelope::Envelope;
use crate::filter::ClassifiedDocument;

/// Summarises the task's documents (the main one and its amendments).
pub async fn handle(
    context: &StageContext,
    envelope: &Envelope,
) -> Result<StageOutput, StageError> {
    let mut artifacts = envelope.artifacts.clone();
    if artifacts.classified.len() != artifacts.originals.len() {
        return Err(StageError::permanent(
            "invalid_message",
            "the message reaches extract without classified chunks of every document",
        ));
    }
    let mut docs: Vec<ClassifiedDocument> = Vec::with_capacity(artifacts.classified.len());
    let input_bytes: u64 = artifacts.classified.iter().map(|c| c.size).sum();
    for classified in &artifacts.classified {
        docs.push(context.store.get_json(classified).await?);
    }
    // The OCR side tables came along with the classified documents.
    let ocr: Vec<Option<OcrReport>> = docs.iter_mut().map(|d| d.ocr.take()).collect();
    let model = envelope.options.extract_model.as_str();
    let mut summary = match model {
        // The rules are CPU work: but for small documents, off the
        // runtime's threads, which also serve the API and the projector in
        // `run`, onto the fixed threads that bound what their regexes keep.
        "" | "rules" if !docs.is_empty() => {
            crate::cpu::Pool::shared(context.settings.stages.cpu_threads.into())
                .run_sized(input_bytes, move || crate::extract::summarize(&docs))
                .await
                .map_err(|e| StageError::transient(format!("the extract task failed: {e}")))?
        }
        _ => crate::extract::run(model, &docs, &context.settings.llm).await?,
    };
    summary.documents = crate::envelope::TaskFile::summary_documents(&artifacts.files);
    crate::ocr_evidence::mark(
        &mut summary,
        &ocr.iter().map(Option::as_ref).collect::<Vec<_>>(),
    );
    let stored = context
        .store
        .put_json_owned("summary", summary, input_bytes)
        .await?;
    artifacts.summary = Some(stored.clone());
    Ok(StageOutput {
        artifacts,
        produced: Some(stored),
        files: Vec::new(),
        duplicate_of: None,
    })
}
