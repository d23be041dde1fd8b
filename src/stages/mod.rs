//! The four stages. Each is a plain async function over plain types,
//! testable without a broker; [`crate::runtime`] wraps them in the AMQP loop.

pub mod extract;
pub mod filter;
pub mod ingest;
pub mod parse;

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::config::Settings;
use crate::envelope::{ArtifactRef, Artifacts, Envelope, Stage, TaskFile};
use crate::events::ErrorInfo;
use crate::extract::ExtractError;
use crate::filter::FilterError;
use crate::llm::LlmError;
use crate::parse::ParseError;
use crate::store::{Store, StoreError};

/// Why a stage could not finish an attempt, and so what happens next.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// Worth another try later (the store or a model server was unavailable).
    #[error("{0}")]
    Transient(String),
    /// Will fail the same way every time (corrupt or unsupported input): the
    /// message goes to the dead-letter queue at once.
    #[error("{kind}: {message}")]
    Permanent {
        /// Stable machine-readable kind, such as `unsupported_type`.
        kind: &'static str,
        /// What is wrong, for people.
        message: String,
    },
}

impl StageError {
    /// A permanent error of `kind`.
    pub fn permanent(kind: &'static str, message: impl Into<String>) -> Self {
        StageError::Permanent {
            kind,
            message: message.into(),
        }
    }

    /// A transient error.
    pub fn transient(message: impl Into<String>) -> Self {
        StageError::Transient(message.into())
    }

    /// Whether retrying could help.
    pub fn is_transient(&self) -> bool {
        matches!(self, StageError::Transient(_))
    }

    /// The error as the view and the dead-letter headers record it.
    pub fn info(&self) -> ErrorInfo {
        match self {
            StageError::Transient(message) => ErrorInfo {
                kind: "transient".into(),
                message: message.clone(),
            },
            StageError::Permanent { kind, message } => ErrorInfo {
                kind: (*kind).into(),
                message: message.clone(),
            },
        }
    }
}

/// A stage's work: one attempt at one message. The runtime
/// ([`crate::runtime`]) calls it; the stages implement it, so the contract
/// lives here and the runtime depends on the stages, not both ways.
pub trait Handler: Send + Sync + 'static {
    /// Handles one message. Runs in its own task, so a panic is contained.
    fn handle(&self, envelope: Envelope) -> BoxFuture<'static, Result<StageOutput, StageError>>;
}

/// What a stage produced: the task's artifacts after this stage, the one
/// artifact it added, and (ingest) the task's files with their roles; the
/// last two are reported in its `succeeded` event. At ingest,
/// `duplicate_of` says the task repeats an earlier one under the same
/// idempotency key: it goes no further, and its `duplicate` event names
/// that task.
#[derive(Debug, Clone)]
pub struct StageOutput {
    pub artifacts: Artifacts,
    pub produced: Option<ArtifactRef>,
    pub files: Vec<TaskFile>,
    pub duplicate_of: Option<uuid::Uuid>,
}

impl From<StoreError> for StageError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(key) => StageError::permanent(
                "missing_artifact",
                format!(
                    "the document store has nothing at {key} (lost, e.g. written just before \
                     a power cut, or removed); {}",
                    remake_advice(&key)
                ),
            ),
            StoreError::Unavailable(message) => StageError::transient(message),
            // Every later attempt would be refused the same way: dead-letter
            // now, with what to fix, rather than spend the retry tiers.
            StoreError::Denied(message) => StageError::permanent(
                "store_denied",
                format!(
                    "{message}; check the store's credentials and policy (store.access_key_id, \
                     store.secret_access_key or AWS_*), then replay the dead letter"
                ),
            ),
        }
    }
}

/// What makes a lost object again: replaying the dead letter from the
/// stage that wrote it.
pub fn remake_advice(key: &str) -> String {
    let writer = [
        ("artifacts/parsed/", Stage::Parse),
        ("artifacts/classified/", Stage::Filter),
        ("artifacts/summary/", Stage::Extract),
    ]
    .into_iter()
    .find(|(prefix, _)| key.starts_with(prefix));
    match writer {
        Some((_, from)) => format!(
            "make it again by replaying from {from}: `tenderflow dlq replay STAGE --task ID --from {from}`"
        ),
        None if key.starts_with("originals/") => {
            "replay from ingest (`tenderflow dlq replay STAGE \
             --task ID --from ingest`) if the document is still where it was submitted from, \
             or submit it again"
                .into()
        }
        None => "submit the task's documents again".into(),
    }
}

// The document logic has errors of its own, which say whether a retry can
// help; these map them onto what the runtime does next.

impl From<ParseError> for StageError {
    fn from(err: ParseError) -> Self {
        StageError::permanent(err.kind, err.message)
    }
}

impl From<LlmError> for StageError {
    fn from(err: LlmError) -> Self {
        match err {
            LlmError::Transient(message) => StageError::Transient(message),
            LlmError::Permanent { kind, message } => StageError::Permanent { kind, message },
        }
    }
}

impl From<FilterError> for StageError {
    fn from(err: FilterError) -> Self {
        match err {
            FilterError::Model(e) => e.into(),
            other => StageError::permanent(other.kind(), other.to_string()),
        }
    }
}

impl From<ExtractError> for StageError {
    fn from(err: ExtractError) -> Self {
        match err {
            ExtractError::Model(e) => e.into(),
            other => StageError::permanent(other.kind(), other.to_string()),
        }
    }
}

/// What every stage needs: the settings and the document store.
#[derive(Debug, Clone)]
pub struct StageContext {
    pub settings: Arc<Settings>,
    pub store: Store,
}

/// The real handler of a stage.
#[derive(Debug, Clone)]
pub struct StageHandler {
    pub stage: Stage,
    pub context: StageContext,
}

impl Handler for StageHandler {
    fn handle(&self, envelope: Envelope) -> BoxFuture<'static, Result<StageOutput, StageError>> {
        let context = self.context.clone();
        match self.stage {
            Stage::Ingest => async move { ingest::handle(&context, &envelope).await }.boxed(),
            Stage::Parse => async move { parse::handle(&context, &envelope).await }.boxed(),
            Stage::Filter => async move { filter::handle(&context, &envelope).await }.boxed(),
            Stage::Extract => async move { extract::handle(&context, &envelope).await }.boxed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_artifact_names_the_stage_to_replay_from() {
        let err = StageError::from(StoreError::NotFound("artifacts/parsed/ab.json".into()));
        let StageError::Permanent { kind, message } = err else {
            panic!("a lost artifact cannot come back by retrying");
        };
        assert_eq!(kind, "missing_artifact");
        assert!(message.contains("--from parse"), "{message}");
        assert!(remake_advice("artifacts/classified/cd.json").contains("--from filter"));
        assert!(remake_advice("originals/ef").contains("--from ingest"));
    }

    #[test]
    fn document_errors_keep_whether_a_retry_helps() {
        let down: StageError = FilterError::from(LlmError::transient("503")).into();
        assert!(down.is_transient());
        let unknown: StageError = FilterError::UnknownModel("gpt".into()).into();
        assert_eq!(unknown.info().kind, "unknown_model");
        assert!(!unknown.is_transient());
        let garbage: StageError =
            ExtractError::from(LlmError::permanent("llm_garbage", "not JSON")).into();
        assert_eq!(garbage.info().kind, "llm_garbage");
        assert_eq!(garbage.info().message, "not JSON");
        let none: StageError = ExtractError::NoDocument.into();
        assert_eq!(none.info().kind, "no_document");
        let corrupt: StageError = ParseError::corrupt("bad xref").into();
        assert_eq!(corrupt.info().kind, "corrupt");
        assert!(!corrupt.is_transient());
    }
}
