//! Dead letters over HTTP: list them (from the projector's index, without
//! touching the broker), replay them (reading only the entries replayed).

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::error::{ApiError, ApiJson};
use super::{AppState, blocking};
use crate::dlq::{self, DeadLetter};
use crate::envelope::Stage;
use crate::projector::db::{DeadLetterFilter, DeadLetterPage};

/// Dead letters on a page when the client does not say.
const DEFAULT_LIMIT: usize = 100;
/// Most dead letters on a page, and most replayed by one request.
const MAX_LIMIT: usize = 1000;

/// Query of `GET /v1/dead-letters`; everything text, so that each bad value
/// gets its own clear message.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    stage: Option<String>,
    task_id: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
    settled: Option<String>,
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
    /// Replay from this stage (the dead letters' own, or an earlier one).
    #[serde(default)]
    from: Option<String>,
    /// Replay cancelled tasks too, lifting their cancel.
    #[serde(default)]
    force: bool,
}

fn stage(raw: &str) -> Result<Stage, ApiError> {
    raw.parse().map_err(ApiError::bad_request)
}

fn broker_error(error: anyhow::Error) -> ApiError {
    tracing::warn!(error = format!("{error:#}"), "dead-letter operation failed");
    ApiError::unavailable("the broker failed during the operation; try again")
}

/// `GET /v1/dead-letters?stage=&task_id=&cursor=&limit=&settled=`: the dead
/// letters waiting (with `settled=true`, the replayed ones too), oldest
/// first, a page at a time, each with its failure details and a bounded
/// preview of its body. Read from the projector's index: listing changes
/// nothing in the broker.
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let Query(query) = query?;
    let filter = DeadLetterFilter {
        stage: query
            .stage
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(stage)
            .transpose()?,
        task_ids: query
            .task_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(task_id)
            .transpose()?
            .into_iter()
            .collect(),
        after: query
            .cursor
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|raw| {
                raw.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("{raw:?} is not a cursor")))
            })
            .transpose()?,
        settled: match query.settled.as_deref() {
            None | Some("" | "false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "settled must be true or false, not {other:?}"
                )));
            }
        },
        limit: super::page_limit(query.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?,
    };
    let page = blocking(&state.db, move |db| db.dead_letters(&filter)).await?;
    Ok(Json(page))
}

fn task_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("{raw:?} is not a task id")))
}

/// `POST /v1/dead-letters/replay` with `{"stage", "task_ids"}` or
/// `{"stage", "limit"}`, and optionally `"from"`: puts exactly those back
/// on the queue of `from` (by default their own stage), attempts reset.
/// A cancelled task's are skipped (reported in `skipped`) unless
/// `"force": true`, which lifts the cancel.
pub async fn replay(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ReplayRequest>,
) -> Result<Json<Value>, ApiError> {
    let stage = stage(&request.stage)?;
    let from = match request.from.as_deref().filter(|s| !s.is_empty()) {
        None => stage,
        Some(raw) => self::stage(raw)?,
    };
    if from > stage {
        return Err(ApiError::bad_request(format!(
            "cannot replay {stage} dead letters from {from}: it comes after {stage}"
        )));
    }
    let task_ids = request
        .task_ids
        .unwrap_or_default()
        .iter()
        .map(|raw| task_id(raw))
        .collect::<Result<Vec<_>, _>>()?;
    if task_ids.is_empty() && request.limit.is_none() {
        return Err(ApiError::bad_request(
            "say what to replay: \"task_ids\": [...] or \"limit\": N",
        ));
    }
    let limit = match request.limit {
        Some(0) => return Err(ApiError::bad_request("limit must be at least 1")),
        Some(n) if n > MAX_LIMIT => {
            return Err(ApiError::bad_request(format!(
                "limit must be at most {MAX_LIMIT}"
            )));
        }
        Some(n) => n,
        None => MAX_LIMIT,
    };
    let _one_at_a_time = state.dlq_lock.lock().await;
    let (letters, not_found) = select(&state, stage, task_ids, limit).await?;
    let (letters, refused) = unless_cancelled(&state, letters, request.force).await?;
    let connection = state
        .progress
        .connection()
        .ok_or_else(|| ApiError::unavailable("not connected to the broker; try again"))?;
    let report = dlq::replay(&connection, &state.topology, stage, &letters, from)
        .await
        .map_err(broker_error)?;
    let settled = report.settled.clone();
    blocking(&state.db, move |db| {
        db.settle_dead_letters(stage, &settled, "replayed")
    })
    .await?;
    let skipped: Vec<Value> = refused
        .iter()
        .chain(&report.skipped)
        .map(|(task_id, reason)| json!({"task_id": task_id, "reason": reason}))
        .collect();
    Ok(Json(json!({
        "stage": stage,
        "from": from,
        "replayed": report.replayed,
        "settled": report.settled,
        "skipped": skipped,
        "not_found": not_found,
    })))
}

/// The letters of tasks that are not cancelled, and the reason for each
/// cancelled task left out. With `force`, a cancelled task's letters stay
/// and its cancel marker is removed first, so that its stages do not drop
/// the replayed message; the replay's `replayed` event then ends the
/// cancel in the view.
async fn unless_cancelled(
    state: &AppState,
    letters: Vec<DeadLetter>,
    force: bool,
) -> Result<(Vec<DeadLetter>, Vec<(Option<Uuid>, String)>), ApiError> {
    let tasks: std::collections::BTreeSet<Uuid> =
        letters.iter().filter_map(|l| l.task_id).collect();
    let mut cancelled = std::collections::BTreeSet::new();
    for task in tasks {
        let marked = state.store.is_cancelled(task).await.map_err(|e| {
            tracing::warn!(task_id = %task, error = %e, "replay: the document store failed");
            ApiError::unavailable("the document store is unavailable; try again")
        })?;
        if !marked {
            continue;
        }
        if force {
            state.store.remove_cancel_marker(task).await.map_err(|e| {
                tracing::warn!(task_id = %task, error = %e, "replay: could not lift the cancel");
                ApiError::unavailable("the document store is unavailable; try again")
            })?;
            tracing::info!(task_id = %task, "forced replay: the cancel is lifted");
        } else {
            cancelled.insert(task);
        }
    }
    let (refused, kept): (Vec<_>, Vec<_>) = letters
        .into_iter()
        .partition(|l| l.task_id.is_some_and(|t| cancelled.contains(&t)));
    let mut reasons = Vec::new();
    for task in &cancelled {
        if refused.iter().any(|l| l.task_id == Some(*task)) {
            reasons.push((
                Some(*task),
                "the task is cancelled; replay with force (--force) to run it again".to_string(),
            ));
        }
    }
    Ok((kept, reasons))
}

/// The pending dead letters a replay is about: every one of the named
/// tasks', or the oldest `limit`. A task dead-lettered a moment ago may not
/// be in the index yet: named tasks not found are looked for again for a
/// moment. Answers the letters and the named tasks still not found.
async fn select(
    state: &AppState,
    stage: Stage,
    task_ids: Vec<Uuid>,
    limit: usize,
) -> Result<(Vec<DeadLetter>, Vec<Uuid>), ApiError> {
    let query = |task_ids: Vec<Uuid>| {
        let filter = DeadLetterFilter {
            stage: Some(stage),
            task_ids,
            after: None,
            settled: false,
            limit,
        };
        blocking(&state.db, move |db| db.dead_letters(&filter))
    };
    let named = !task_ids.is_empty();
    let mut letters: Vec<DeadLetter> = query(task_ids.clone())
        .await?
        .dead_letters
        .into_iter()
        .map(|l| l.letter)
        .collect();
    let mut missing = missing(&task_ids, &letters);
    for _ in 0..LOOK_AGAIN {
        if !named || missing.is_empty() {
            break;
        }
        tokio::time::sleep(LOOK_AGAIN_PAUSE).await;
        let more = query(missing.clone()).await?.dead_letters;
        letters.extend(more.into_iter().map(|l| l.letter));
        missing = self::missing(&task_ids, &letters);
    }
    Ok((letters, missing))
}

/// Times a replay looks again for named tasks it did not find.
const LOOK_AGAIN: usize = 10;
/// Pause before looking again.
const LOOK_AGAIN_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

fn missing(task_ids: &[Uuid], letters: &[DeadLetter]) -> Vec<Uuid> {
    task_ids
        .iter()
        .filter(|t| !letters.iter().any(|l| l.task_id == Some(**t)))
        .copied()
        .collect()
}
