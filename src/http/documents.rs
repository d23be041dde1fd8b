//! `POST /v1/documents`: submit one task's documents.

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use crate::envelope::TaskOptions;
use crate::submit::{SubmitError, Upload};

/// Header naming the file of a raw-body upload.
pub const FILENAME_HEADER: &str = "x-filename";
/// How long a submission waits for the projector to see the new task, so
/// that a client reading right after the 202 finds it.
const SEEN_WAIT: Duration = Duration::from_secs(2);

/// Query of `POST /v1/documents`.
#[derive(Debug, Default, Deserialize)]
pub struct SubmitQuery {
    filename: Option<String>,
    filter_model: Option<String>,
    extract_model: Option<String>,
}

/// Takes a multipart form (file fields, plus optional `filter_model` and
/// `extract_model` fields) or a raw body whose name is in the `X-Filename`
/// header or the `filename` query parameter. Answers 202 with the task id.
pub async fn submit(
    State(state): State<AppState>,
    query: Result<Query<SubmitQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let (uploads, options) = if is_multipart(request.headers()) {
        let multipart = Multipart::from_request(request, &state).await?;
        read_form(multipart, query).await?
    } else {
        read_raw(request, &state, query).await?
    };
    let changes = state.changes.subscribe();
    let envelope = state
        .submitter
        .submit(uploads, options)
        .await
        .map_err(submit_error)?;
    let task_id = envelope.task_id;
    wait_until_seen(&state, changes, task_id).await;
    let location = format!("/v1/tasks/{task_id}");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(json!({"task_id": task_id})),
    )
        .into_response())
}

fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"))
}

fn options(filter_model: Option<String>, extract_model: Option<String>) -> TaskOptions {
    let defaults = TaskOptions::default();
    TaskOptions {
        filter_model: filter_model.unwrap_or(defaults.filter_model),
        extract_model: extract_model.unwrap_or(defaults.extract_model),
    }
}

async fn read_raw(
    request: Request,
    state: &AppState,
    query: SubmitQuery,
) -> Result<(Vec<Upload>, TaskOptions), ApiError> {
    let from_header = request
        .headers()
        .get(FILENAME_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let filename = from_header.or(query.filename).filter(|f| !f.is_empty());
    let bytes = Bytes::from_request(request, state).await?;
    let filename = filename.ok_or_else(|| {
        ApiError::bad_request(
            "name the file: a multipart form, the X-Filename header or ?filename=",
        )
    })?;
    let upload = Upload { filename, bytes };
    let options = options(query.filter_model, query.extract_model);
    Ok((vec![upload], options))
}

async fn read_form(
    mut form: Multipart,
    query: SubmitQuery,
) -> Result<(Vec<Upload>, TaskOptions), ApiError> {
    let mut uploads = Vec::new();
    let (mut filter_model, mut extract_model) = (query.filter_model, query.extract_model);
    while let Some(field) = form.next_field().await? {
        let name = field.name().unwrap_or("").to_string();
        if let Some(filename) = field.file_name().map(str::to_string) {
            let bytes = field.bytes().await?;
            uploads.push(Upload { filename, bytes });
            continue;
        }
        let text = field.text().await?;
        match name.as_str() {
            "filter_model" => filter_model = Some(text),
            "extract_model" => extract_model = Some(text),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unexpected form field {other:?}: send files (with a filename), filter_model, extract_model"
                )));
            }
        }
    }
    if uploads.is_empty() {
        return Err(ApiError::bad_request(
            "the form has no file (a field with a filename)",
        ));
    }
    Ok((uploads, options(filter_model, extract_model)))
}

fn submit_error(error: SubmitError) -> ApiError {
    match error {
        SubmitError::TooLarge { .. } => ApiError::too_large(error.to_string()),
        SubmitError::Unsupported { .. } => ApiError::unsupported(error.to_string()),
        SubmitError::Invalid(message) => ApiError::bad_request(message),
        SubmitError::Unavailable(detail) => {
            tracing::warn!(error = format!("{detail:#}"), "submission failed");
            ApiError::unavailable("the broker or the document store is unavailable; try again")
        }
    }
}

/// Waits (briefly) until the projector has folded the new task in, so the
/// `Location` answers at once; a slow projector only delays the answer.
async fn wait_until_seen(
    state: &AppState,
    mut changes: tokio::sync::broadcast::Receiver<crate::projector::view::TaskView>,
    task_id: Uuid,
) {
    let seen = async {
        loop {
            match changes.recv().await {
                Ok(view) if view.task_id == task_id => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let known = super::blocking(&state.db, move |db| db.task(task_id)).await;
                    if matches!(known, Ok(Some(_))) {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    };
    let _ = tokio::time::timeout(SEEN_WAIT, seen).await;
}
