//! The filter stage: each parsed document into classified chunks.

use super::{StageContext, StageError, StageOutput};
use crate::document::ParsedDocument;
use crate::envelope::Envelope;

/// Classifies every parsed document of the task.
pub async fn handle(
    context: &StageContext,
    envelope: &Envelope,
) -> Result<StageOutput, StageError> {
    let mut artifacts = envelope.artifacts.clone();
    if artifacts.parsed.len() != artifacts.originals.len() {
        return Err(StageError::permanent(
            "invalid_message",
            "the message reaches filter without a parsed form of every document",
        ));
    }
    let mut classified = Vec::with_capacity(artifacts.parsed.len());
    for parsed in &artifacts.parsed {
        let doc: ParsedDocument = context.store.get_json(parsed).await?;
        let model = envelope.options.filter_model.as_str();
        let chunks = match model {
            // The rules are CPU work: but for a small document, off the
            // runtime's threads, which also serve the API and the projector
            // in `run`, onto the fixed threads that bound what their
            // regexes keep.
            "" | "rules" => crate::cpu::Pool::shared(context.settings.stages.cpu_threads.into())
                .run_sized(parsed.size, move || crate::filter::classify(&doc))
                .await
                .map_err(|e| StageError::transient(format!("the filter task failed: {e}")))?,
            _ => crate::filter::run(model, &doc, &context.settings.llm).await?,
        };
        classified.push(
            context
                .store
                .put_json_owned("classified", chunks, parsed.size)
                .await?,
        );
    }
    let produced = classified.first().cloned();
    artifacts.classified = classified;
    Ok(StageOutput {
        artifacts,
        produced,
        files: Vec::new(),
        duplicate_of: None,
    })
}
