//! Dead letters over HTTP: list them, replay them.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiJson};
use crate::broker;
use crate::dlq::{self, ReplayFilter};
use crate::envelope::Stage;

/// Query of `GET /v1/dead-letters`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    stage: Option<String>,
}

/// Body of `POST /v1/dead-letters/replay`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    stage: String,
    #[serde(default)]
    task_ids: Option<Vec<String>>,
    #[serde(default)]
    limit: Option<usize>,
}

fn stage(raw: &str) -> Result<Stage, ApiError> {
    raw.parse().map_err(ApiError::bad_request)
}

async fn channel(state: &AppState) -> Result<lapin::Channel, ApiError> {
    let connection = state
        .progress
        .connection()
        .ok_or_else(|| ApiError::unavailable("not connected to the broker; try again"))?;
    broker::confirm_channel(&connection).await.map_err(|e| {
        tracing::warn!(error = format!("{e:#}"), "opening a dead-letter channel");
        ApiError::unavailable("could not open a broker channel; try again")
    })
}

fn broker_error(error: anyhow::Error) -> ApiError {
    tracing::warn!(error = format!("{error:#}"), "dead-letter operation failed");
    ApiError::unavailable("the broker failed during the operation; try again")
}

/// `GET /v1/dead-letters?stage=`: the dead letters of one stage, or of every
/// stage, oldest first, with their failure details.
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    let stages = match query.stage.as_deref().filter(|s| !s.is_empty()) {
        Some(raw) => vec![stage(raw)?],
        None => Stage::ALL.to_vec(),
    };
    let _one_at_a_time = state.dlq_lock.lock().await;
    let channel = channel(&state).await?;
    let mut letters = Vec::new();
    for stage in stages {
        let found = dlq::list(&channel, &state.topology, stage)
            .await
            .map_err(broker_error)?;
        letters.extend(found);
    }
    let _ = channel.close(200, "done".into()).await;
    Ok(Json(json!({"dead_letters": letters})))
}

/// `POST /v1/dead-letters/replay` with `{"stage", "task_ids"}` or
/// `{"stage", "limit"}`: puts exactly those back on the stage's queue.
pub async fn replay(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ReplayRequest>,
) -> Result<Json<Value>, ApiError> {
    let stage = stage(&request.stage)?;
    let filter = replay_filter(request.task_ids, request.limit)?;
    let _one_at_a_time = state.dlq_lock.lock().await;
    let channel = channel(&state).await?;
    let (report, not_found) = replay_named(&state, &channel, stage, &filter)
        .await
        .map_err(broker_error)?;
    let _ = channel.close(200, "done".into()).await;
    let skipped: Vec<Value> = report
        .skipped
        .iter()
        .map(|(task_id, reason)| json!({"task_id": task_id, "reason": reason}))
        .collect();
    Ok(Json(json!({
        "stage": stage,
        "replayed": report.replayed,
        "skipped": skipped,
        "not_found": not_found,
    })))
}

/// Replays, and looks again for named tasks that were not found: a dead
/// letter just put back by a listing (a quorum queue requeues through its
/// log) can be missing from the queue's count for a moment. Answers the
/// report and the named tasks still not found.
async fn replay_named(
    state: &AppState,
    channel: &lapin::Channel,
    stage: Stage,
    filter: &ReplayFilter,
) -> anyhow::Result<(dlq::ReplayReport, Vec<Uuid>)> {
    let mut report = dlq::replay(channel, &state.topology, stage, filter).await?;
    let mut missing = missing(filter, &report);
    for _ in 0..LOOK_AGAIN {
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(LOOK_AGAIN_PAUSE).await;
        let again = ReplayFilter {
            task_ids: missing,
            limit: None,
        };
        let more = dlq::replay(channel, &state.topology, stage, &again).await?;
        report.replayed.extend(more.replayed);
        report.skipped.extend(more.skipped);
        missing = self::missing(filter, &report);
    }
    Ok((report, missing))
}

/// Times a replay looks again for named tasks it did not find.
const LOOK_AGAIN: usize = 5;
/// Pause before looking again.
const LOOK_AGAIN_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

fn missing(filter: &ReplayFilter, report: &dlq::ReplayReport) -> Vec<Uuid> {
    filter
        .task_ids
        .iter()
        .filter(|t| !report.replayed.contains(t))
        .filter(|t| !report.skipped.iter().any(|(s, _)| s.as_ref() == Some(*t)))
        .copied()
        .collect()
}

fn replay_filter(
    task_ids: Option<Vec<String>>,
    limit: Option<usize>,
) -> Result<ReplayFilter, ApiError> {
    let task_ids = task_ids
        .unwrap_or_default()
        .iter()
        .map(|raw| {
            raw.parse::<Uuid>()
                .map_err(|_| ApiError::bad_request(format!("{raw:?} is not a task id")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if task_ids.is_empty() && limit.is_none() {
        return Err(ApiError::bad_request(
            "say what to replay: \"task_ids\": [...] or \"limit\": N",
        ));
    }
    if limit == Some(0) {
        return Err(ApiError::bad_request("limit must be at least 1"));
    }
    Ok(ReplayFilter { task_ids, limit })
}
