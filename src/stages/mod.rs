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
use crate::envelope::{ArtifactRef, Artifacts, Envelope, Stage};
use crate::events::ErrorInfo;
use crate::runtime::Handler;
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

/// What a stage produced: the task's artifacts after this stage, and the one
/// artifact it added (reported in its `succeeded` event).
#[derive(Debug, Clone)]
pub struct StageOutput {
    pub artifacts: Artifacts,
    pub produced: Option<ArtifactRef>,
}

impl From<StoreError> for StageError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(key) => StageError::permanent(
                "missing_artifact",
                format!("the document store has nothing at {key}"),
            ),
            StoreError::Unavailable(message) => StageError::transient(message),
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
