//! Reading the task view: one task, a page of tasks, a task's events, its
//! summary, and live updates.

use std::convert::Infallible;

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::error::ApiError;
use super::{AppState, blocking};
use crate::broker::{self, Outgoing, traceparent_for};
use crate::events::Event;
use crate::projector::db::{ListFilter, Page};
use crate::projector::view::{TaskState, TaskView};
use crate::store::{CancelMarker, StoreError};

/// Tasks on a page when the client does not say.
const DEFAULT_LIMIT: usize = 50;
/// Most tasks on a page.
const MAX_LIMIT: usize = 500;

/// The task id of the path: 400 (in the API's shape) when the segment is
/// not a UUID, or not even text.
pub struct TaskId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for TaskId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError::bad_request(r.body_text()))?;
        raw.parse()
            .map(TaskId)
            .map_err(|_| ApiError::bad_request(format!("{raw:?} is not a task id (a UUID)")))
    }
}

async fn find(state: &AppState, id: Uuid) -> Result<TaskView, ApiError> {
    match blocking(&state.db, move |db| db.task(id)).await? {
        Some(view) => Ok(view),
        None => Err(missing(state, id).await),
    }
}

/// The 404 of a task not in the view: saying so when retention pruned it.
async fn missing(state: &AppState, id: Uuid) -> ApiError {
    let pruned = blocking(&state.db, move |db| db.pruned(id)).await;
    match pruned {
        Ok(Some((at, _))) => {
            let at = chrono::DateTime::from_timestamp(at, 0).unwrap_or_default();
            ApiError::not_found(format!(
                "no task {id}: it had finished, and retention pruned it at {}",
                at.to_rfc3339()
            ))
        }
        _ => ApiError::not_found(format!("no task {id}")),
    }
}

/// `GET /v1/tasks/{id}`: the task's view.
pub async fn show(
    State(state): State<AppState>,
    TaskId(id): TaskId,
) -> Result<Json<TaskView>, ApiError> {
    Ok(Json(find(&state, id).await?))
}

/// Longest cancel reason, in characters: it travels in an event.
const MAX_REASON: usize = 1000;

/// Body of `DELETE /v1/tasks/{id}`, which may be empty.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelRequest {
    #[serde(default)]
    reason: Option<String>,
}

/// `DELETE /v1/tasks/{id}` with an optional `{"reason": "..."}`: cancels
/// the task. The marker goes into the store first, then the `cancelled`
/// event: a stage that sees the marker drops the task's message at its next
/// delivery, whether or not the event is out yet. 202 the first time, 200
/// when already cancelled (one marker: the first stays); 404 for a task the
/// view does not know, 409 for a done one.
pub async fn cancel(
    State(state): State<AppState>,
    TaskId(id): TaskId,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: CancelRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CancelRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body must be empty or {{\"reason\": \"...\"}}: {e}"
            ))
        })?
    };
    let reason = request
        .reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON)
    {
        return Err(ApiError::bad_request(format!(
            "the reason must be at most {MAX_REASON} characters"
        )));
    }
    let view = find(&state, id).await?;
    let unavailable = |e: StoreError| {
        tracing::warn!(task_id = %id, error = %e, "cancel: the document store failed");
        ApiError::unavailable("the document store is unavailable; try again")
    };
    // A cancel and a forced replay (which lifts it) one at a time, so that
    // two cancels leave one marker and a replay sees the marker as it is.
    let _one_at_a_time = state.dlq_lock.lock().await;
    let (marker, already) = match state.store.cancel_marker(id).await.map_err(unavailable)? {
        Some(marker) => (marker, true),
        None => {
            if view.state == TaskState::Done {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "done",
                    format!("task {id} is done: there is nothing left to cancel"),
                ));
            }
            let by = match headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
            {
                Some(agent) => format!("api ({})", agent.chars().take(100).collect::<String>()),
                None => "api".to_string(),
            };
            let marker = CancelMarker {
                task_id: id,
                at: chrono::Utc::now(),
                by,
                reason,
            };
            state
                .store
                .put_cancel_marker(&marker)
                .await
                .map_err(unavailable)?;
            (marker, false)
        }
    };
    // Published every time: its id comes from the marker, so a second
    // publish (a cancel asked again after the first one's event was lost)
    // is the same event to the fold.
    let event = Event::cancelled(&marker, view.stage);
    let connection = state
        .progress
        .connection()
        .ok_or_else(|| ApiError::unavailable("not connected to the broker; try again"))?;
    let published = async {
        let channel = broker::confirm_channel(&connection).await?;
        let traceparent = traceparent_for(id);
        let message = Outgoing::event(&state.topology, &event, Some(&traceparent));
        broker::publish_all(&channel, &[message]).await?;
        let _ = channel.close(200, "cancelled".into()).await;
        anyhow::Ok(())
    };
    if let Err(e) = published.await {
        tracing::warn!(task_id = %id, error = format!("{e:#}"), "cancel: the event was not published");
        return Err(ApiError::unavailable(
            "the task is marked cancelled (its stages drop it), but its event could not be \
             published; ask again to publish it",
        ));
    }
    let status = if already {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        status,
        Json(json!({
            "task_id": id,
            "state": "cancelled",
            "cancelled_at": marker.at,
            "by": marker.by,
            "reason": marker.reason,
            "already": already,
        })),
    )
        .into_response())
}

/// The query of `GET /v1/tasks`; everything text, so that each bad value
/// gets its own clear message.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    state: Option<String>,
    stage: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    external_id: Option<String>,
    q: Option<String>,
    deadline_after: Option<String>,
    deadline_before: Option<String>,
}

/// An RFC 3339 time of the query, or a 400 that names the parameter.
fn query_time(
    name: &str,
    raw: Option<String>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    match raw.filter(|r| !r.is_empty()) {
        None => Ok(None),
        Some(raw) => chrono::DateTime::parse_from_rfc3339(&raw)
            .map(|t| Some(t.to_utc()))
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "{name} must be an RFC 3339 time such as 2027-03-01T00:00:00+08:00, \
                     not {raw:?}: {e}"
                ))
            }),
    }
}

impl ListQuery {
    fn filter(self) -> Result<ListFilter, ApiError> {
        let external_id = self.external_id.filter(|id| !id.is_empty());
        if let Some(id) = &external_id {
            crate::envelope::check_external_id(id).map_err(ApiError::bad_request)?;
        }
        let state = self.state.filter(|s| !s.is_empty());
        let stage = self.stage.filter(|s| !s.is_empty());
        let limit = super::page_limit(self.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
        let before = match self.cursor.filter(|c| !c.is_empty()) {
            None => None,
            Some(raw) => Some(raw.parse().map_err(|_| {
                ApiError::bad_request(format!("{raw:?} is not a cursor from a previous page"))
            })?),
        };
        let q = self
            .q
            .map(|q| q.trim().to_string())
            .filter(|q| !q.is_empty());
        let deadline_after = query_time("deadline_after", self.deadline_after)?;
        let deadline_before = query_time("deadline_before", self.deadline_before)?;
        Ok(ListFilter {
            q,
            deadline_after,
            deadline_before,
            state: state
                .map(|s| s.parse::<TaskState>())
                .transpose()
                .map_err(ApiError::bad_request)?,
            stage: stage
                .map(|s| s.parse())
                .transpose()
                .map_err(ApiError::bad_request)?,
            before,
            limit,
            external_id,
        })
    }
}

/// `GET /v1/tasks?state=&stage=&external_id=&q=&deadline_after=&deadline_before=&limit=&cursor=`:
/// a page of tasks, newest first.
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let Query(query) = query?;
    let filter = query.filter()?;
    Ok(Json(
        blocking(&state.db, move |db| db.tasks(&filter)).await?,
    ))
}

/// `GET /v1/tasks/{id}/events`: the task's events, in the order they
/// happened.
pub async fn events(
    State(state): State<AppState>,
    TaskId(id): TaskId,
) -> Result<Json<serde_json::Value>, ApiError> {
    let events = blocking(&state.db, move |db| db.events(id)).await?;
    if events.is_empty() {
        return Err(missing(&state, id).await);
    }
    Ok(Json(json!({"task_id": id, "events": events})))
}

/// `GET /v1/tasks/{id}/summary`: the summary JSON, once the task is done.
pub async fn summary(
    State(state): State<AppState>,
    TaskId(id): TaskId,
) -> Result<Response, ApiError> {
    let view = find(&state, id).await?;
    let Some(summary) = view.summary else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_ready",
            format!(
                "task {} is {}; its summary exists once it is done",
                view.task_id,
                view.state.as_str()
            ),
        ));
    };
    let bytes = state.store.get(&summary.key).await.map_err(|e| match e {
        StoreError::Unavailable(_) => ApiError::unavailable("the document store is unavailable"),
        StoreError::Denied(_) => {
            ApiError::unavailable("the document store refused the API's credentials")
        }
        // Lost (not yet on disk at a power cut) or removed: the task is
        // done, so no dead letter of it waits to be replayed.
        StoreError::NotFound(key) => ApiError::new(
            StatusCode::NOT_FOUND,
            "gone",
            format!(
                "the summary of task {} is no longer in the document store (at {key}); \
                 the task is done, so nothing of it waits to be replayed: submit its \
                 documents again to make it anew",
                view.task_id
            ),
        ),
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

/// `GET /v1/tasks/{id}/watch`: server-sent events, one `task` event with the
/// whole view per change, ending after the task is done or failed.
pub async fn watch(
    State(state): State<AppState>,
    TaskId(id): TaskId,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    // Subscribe before reading, so no change falls between the two.
    let changes = state.changes.subscribe();
    let current = find(&state, id).await?;
    let watch = Watch {
        state,
        changes,
        id,
        last: None,
        pending: Some(current),
    };
    let stream = futures_util::stream::unfold(watch, |mut watch| async move {
        let view = watch.next_view().await?;
        let event = SseEvent::default()
            .event("task")
            .id(view.events.to_string())
            .json_data(&view)
            .unwrap_or_else(|_| SseEvent::default().comment("unserialisable view"));
        watch.last = Some(view);
        Some((Ok(event), watch))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// One watcher's position.
struct Watch {
    state: AppState,
    changes: tokio::sync::broadcast::Receiver<TaskView>,
    id: Uuid,
    last: Option<TaskView>,
    pending: Option<TaskView>,
}

impl Watch {
    /// The next view to send, or `None` when the stream should end.
    async fn next_view(&mut self) -> Option<TaskView> {
        if self.last.as_ref().is_some_and(|v| v.state.is_final()) {
            return None;
        }
        if let Some(view) = self.pending.take() {
            return Some(view);
        }
        loop {
            let received = tokio::select! {
                () = self.state.shutdown.cancelled() => return None,
                received = self.changes.recv() => received,
            };
            let view = match received {
                Ok(view) if view.task_id == self.id => view,
                Ok(_) => continue,
                // Missed some changes: the stored view is the truth.
                Err(RecvError::Lagged(_)) => {
                    let id = self.id;
                    blocking(&self.state.db, move |db| db.task(id))
                        .await
                        .ok()??
                }
                Err(RecvError::Closed) => return None,
            };
            // The event set only grows, so a view with no more events than
            // the last one sent is old news (possibly from before the read).
            if self
                .last
                .as_ref()
                .is_none_or(|last| view.events > last.events)
            {
                return Some(view);
            }
        }
    }
}
