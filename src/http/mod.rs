//! The HTTP API (axum): JSON under `/v1`, health and readiness, errors always
//! in one shape.

mod auth;
pub mod dashboard;
mod dead_letters;
mod documents;
pub mod error;
mod exports;
mod health;
mod schemas;
mod tasks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
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
    /// One dead-letter operation or cancel at a time: a replay reads the
    /// dead letters it settles and the cancel markers it may lift, a cancel
    /// writes a marker, and two at once would each see half.
    pub dlq_lock: Arc<tokio::sync::Mutex<()>>,
}

/// The API's router.
pub fn router(state: AppState) -> Router {
    let limit = usize::try_from(state.settings.http.body_limit_bytes).unwrap_or(usize::MAX);
    // Writes (posts, the cancel's delete): the token when one is set, and
    // never from another site.
    let mutating = Router::new()
        .route("/v1/documents", post(documents::submit))
        .route("/v1/dead-letters/replay", post(dead_letters::replay))
        .route("/v1/tasks/{id}", delete(tasks::cancel))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::refuse_cross_site,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    // Reads that show tasks, their errors and file names: the token too.
    let reads = Router::new()
        .route("/v1/tasks", get(tasks::list))
        .route("/v1/tasks/{id}", get(tasks::show))
        .route("/v1/tasks/{id}/events", get(tasks::events))
        .route("/v1/tasks/{id}/summary", get(tasks::summary))
        .route("/v1/tasks/{id}/watch", get(tasks::watch))
        .route("/v1/dead-letters", get(dead_letters::list))
        .route("/v1/summaries.xlsx", get(exports::xlsx))
        .route("/v1/summaries.csv", get(exports::csv))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    // The calendar feed: the token as a header or, for calendar
    // applications that cannot send one, as `?token=`.
    let feed = Router::new()
        .route("/v1/calendar.ics", get(exports::calendar))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token_or_query,
        ));
    Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/{name}", get(dashboard::asset))
        .route("/v1/openapi.json", get(dashboard::openapi))
        .route("/v1/schemas", get(schemas::list))
        .route("/v1/schemas/{name}", get(schemas::show))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(reads)
        .merge(feed)
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

/// The `limit` of a page query: `default` when absent or empty, else a
/// number from 1 to `max`.
fn page_limit(raw: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    match raw {
        None | Some("") => Ok(default),
        Some(raw) => raw
            .parse()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("limit must be 1 to {max}, not {raw:?}"))),
    }
}

/// Bounds on the server's connections.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Most connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Longest wait for a request's head before the connection is cut.
    pub header_timeout: Duration,
}

impl ServeLimits {
    /// The limits of `settings.http`.
    pub fn from_settings(settings: &Settings) -> ServeLimits {
        ServeLimits {
            max_connections: settings.http.max_connections.max(1),
            header_timeout: Duration::from_millis(settings.http.header_timeout_ms.max(1)),
        }
    }
}

/// Serves `app` on `listener` until `shutdown`, then lets open requests
/// finish. Unlike `axum::serve` it bounds what a client can hold: at most
/// `max_connections` at once (the rest wait to be accepted), and a request
/// head that takes longer than `header_timeout` to arrive ends its
/// connection, so slow clients (slowloris) cannot use up the server.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ServeLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let slot = tokio::select! {
            () = shutdown.cancelled() => break,
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}
