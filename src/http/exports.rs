//! The exports: `GET /v1/summaries.xlsx`, `GET /v1/summaries.csv` and the
//! calendar feed `GET /v1/calendar.ics`.
//!
//! The task rows come from the projector's summary index; a done task the
//! index has no row for yet gets one here, from the store. The clause
//! sheets of the workbook read the summaries themselves, one at a time.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::error::ApiError;
use super::{AppState, blocking};
use crate::export::{self, Spreadsheet, TaskRow, TaskSummary};
use crate::projector::index::{self, FillError};
use crate::projector::view::TaskState;
use crate::store::StoreError;
use crate::summary::Summary;

/// Most tasks one export or calendar holds; past it the request is refused
/// with a message to narrow it with `since`, rather than cut silently.
pub const MAX_TASKS: usize = 5_000;

/// Most rows of each clause sheet (rejections, scoring) of one workbook.
pub const MAX_CLAUSE_ROWS: u32 = 100_000;

/// Tasks read from the view at a time.
const PAGE: usize = 200;

/// The query of the exports; text, so each bad value gets its own message.
#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    state: Option<String>,
    since: Option<String>,
}

impl ExportQuery {
    fn parse(&self) -> Result<(TaskState, Option<DateTime<Utc>>), ApiError> {
        let state = match self.state.as_deref() {
            None | Some("") => TaskState::Done,
            Some(raw) => raw.parse().map_err(ApiError::bad_request)?,
        };
        let since = match self.since.as_deref() {
            None | Some("") => None,
            Some(raw) => Some(
                DateTime::parse_from_rfc3339(raw)
                    .map_err(|e| {
                        ApiError::bad_request(format!(
                            "since must be an RFC 3339 time such as 2027-03-01T00:00:00+08:00, \
                             not {raw:?}: {e}"
                        ))
                    })?
                    .to_utc(),
            ),
        };
        Ok((state, since))
    }
}

/// The tasks in `state` completed at or after `since`, newest first, each
/// with its index row when done (filled from the store when missing).
async fn gather(
    state: &AppState,
    task_state: TaskState,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<TaskRow>, ApiError> {
    let mut out = Vec::new();
    let mut before: Option<Uuid> = None;
    loop {
        let page = blocking(&state.db, move |db| {
            db.indexed_tasks(task_state, before, PAGE)
        })
        .await?;
        let last = page.last().map(|t| t.view.task_id);
        for indexed in page {
            let view = indexed.view;
            if since.is_some_and(|since| view.finished_at.is_none_or(|at| at < since)) {
                continue;
            }
            let mut state_text = view.state.as_str().to_string();
            let row = match (indexed.row, &view.summary) {
                (Some(row), _) => Some(row),
                (None, Some(summary)) => {
                    match index::fill(&state.db, &state.store, view.task_id, summary).await {
                        Ok(row) => Some(row),
                        Err(FillError::Store(StoreError::NotFound(key))) => {
                            // Said in the row, so the empty cells are not
                            // taken for fields the document lacks.
                            state_text =
                                format!("done; its summary is gone from the store ({key})");
                            None
                        }
                        Err(FillError::Store(error)) => {
                            return Err(ApiError::unavailable(format!(
                                "the summary of task {} could not be read ({error}); try again",
                                view.task_id
                            )));
                        }
                        Err(FillError::Db(error)) => return Err(error.into()),
                    }
                }
                (None, None) => None,
            };
            if out.len() == MAX_TASKS {
                return Err(ApiError::too_large(format!(
                    "more than {MAX_TASKS} tasks match: narrow the export with since"
                )));
            }
            out.push(TaskRow {
                task_id: view.task_id,
                state: state_text,
                completed_at: view.finished_at,
                files: view
                    .documents
                    .iter()
                    .map(|d| d.filename.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                row,
            });
        }
        match last {
            Some(last) => before = Some(last),
            None => return Ok(out),
        }
    }
}

/// A download: its media type, and `disposition` naming the file a
/// browser saves it as.
fn attachment(content_type: &'static str, disposition: &'static str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// `GET /v1/summaries.csv?state=&since=`: the tasks sheet as CSV.
pub async fn csv(
    State(state): State<AppState>,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let (task_state, since) = query.parse()?;
    let tasks = gather(&state, task_state, since).await?;
    let body = export::csv(&tasks).map_err(ApiError::internal)?;
    Ok(attachment(
        "text/csv; charset=utf-8",
        "attachment; filename=\"summaries.csv\"",
        body,
    ))
}

/// `GET /v1/summaries.xlsx?state=&since=`: the workbook (tasks, rejection
/// clauses, scoring items).
pub async fn xlsx(
    State(state): State<AppState>,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let (task_state, since) = query.parse()?;
    let tasks = gather(&state, task_state, since).await?;
    let mut book = Spreadsheet::new().map_err(ApiError::internal)?;
    book.tasks(&tasks).map_err(ApiError::internal)?;
    for task in &tasks {
        let Some(row) = &task.row else { continue };
        let summary: Summary = state.store.get_json(&row.summary).await.map_err(|e| {
            ApiError::unavailable(format!(
                "the summary of task {} could not be read ({e}); try again",
                task.task_id
            ))
        })?;
        book.clauses(&TaskSummary {
            task_id: task.task_id,
            project: row.fields.get("project").map(|f| f.value.as_str()),
            summary: &summary,
        })
        .map_err(ApiError::internal)?;
        let (rejections, scoring) = book.clause_rows();
        if rejections.max(scoring) > MAX_CLAUSE_ROWS {
            return Err(ApiError::too_large(format!(
                "more than {MAX_CLAUSE_ROWS} clause rows: narrow the export with since"
            )));
        }
    }
    let body = tokio::task::spawn_blocking(move || book.finish())
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(attachment(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "attachment; filename=\"summaries.xlsx\"",
        body,
    ))
}

/// `GET /v1/calendar.ics[?token=]`: the done tasks' bid deadlines and
/// openings (the token is [`super::auth::require_token_or_query`]'s).
pub async fn calendar(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tasks = gather(&state, TaskState::Done, None).await?;
    // The link to each task's page on the dashboard, at the address the
    // calendar application asked.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let ics = export::calendar(&tasks, |id| format!("http://{host}/#/tasks/{id}"));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
        ics,
    )
        .into_response())
}
