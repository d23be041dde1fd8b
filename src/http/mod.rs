//! The HTTP API (axum): JSON under `/v1`, health and readiness, errors always
//! in one shape.

mod auth;
pub mod dashboard;
mod dead_letters;
mod documents;
pub mod error;
mod health;
mod tasks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::projector::db::ViewDb;
use crate::projector::stream::Progress;
use crate::projector::view::TaskView;
use crate::store::Store;
use crate::submit::Submitter;
use crate::topology::Topology;
use error::ApiError;

/// Longest a request may take before its response starts; a slow upload
/// gets 408. A watch stream is not cut: its response starts at once.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Settings.
    pub settings: Arc<Settings>,
    /// The task view.
    pub db: ViewDb,
    /// Every changed task view, as the projector writes it.
    pub changes: broadcast::Sender<TaskView>,
    /// The projector's consumer, for readiness and the broker connection.
    pub progress: Arc<Progress>,
    /// Cancelled at shutdown: ends watch streams so the server can stop.
    pub shutdown: CancellationToken,
    /// Publishes submitted documents.
    pub submitter: Arc<Submitter>,
    /// The document store, for summaries.
    pub store: Store,
    /// Names of queues and exchanges.
    pub topology: Topology,
    /// One dead-letter operation at a time: each holds the whole queue
    /// unacked while it works, so two at once would each see half.
    pub dlq_lock: Arc<tokio::sync::Mutex<()>>,
}

/// The API's router.
pub fn router(state: AppState) -> Router {
    let limit = usize::try_from(state.settings.http.body_limit_bytes).unwrap_or(usize::MAX);
    let mutating = Router::new()
        .route("/v1/documents", post(documents::submit))
        .route("/v1/dead-letters/replay", post(dead_letters::replay))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/{name}", get(dashboard::asset))
        .route("/v1/openapi.json", get(dashboard::openapi))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/v1/tasks", get(tasks::list))
        .route("/v1/tasks/{id}", get(tasks::show))
        .route("/v1/tasks/{id}/events", get(tasks::events))
        .route("/v1/tasks/{id}/summary", get(tasks::summary))
        .route("/v1/tasks/{id}/watch", get(tasks::watch))
        .route("/v1/dead-letters", get(dead_letters::list))
        .merge(mutating)
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(time_limit))
        .with_state(state)
}

async fn unknown_route(request: Request) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", request.uri().path()))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn time_limit(request: Request, next: Next) -> Result<Response, ApiError> {
    tokio::time::timeout(REQUEST_TIMEOUT, next.run(request))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                format!(
                    "the request took longer than {} s",
                    REQUEST_TIMEOUT.as_secs()
                ),
            )
        })
}

/// Runs a view-database read off the async threads.
async fn blocking<T: Send + 'static>(
    db: &ViewDb,
    read: impl FnOnce(&ViewDb) -> Result<T, crate::projector::db::DbError> + Send + 'static,
) -> Result<T, ApiError> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || read(&db))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}
