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
use crate::submit::{Refs, SubmitError, Submitted, Upload};

/// Header naming the file of a raw-body upload.
pub const FILENAME_HEADER: &str = "x-filename";
/// Header making a submission idempotent.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// How long a submission waits for the projector to see the new task, so
/// that a client reading right after the 202 finds it.
const SEEN_WAIT: Duration = Duration::from_secs(2);

/// Query of `POST /v1/documents`.
#[derive(Debug, Default, Deserialize)]
pub struct SubmitQuery {
    filename: Option<String>,
    filter_model: Option<String>,
    extract_model: Option<String>,
    external_id: Option<String>,
    callback_url: Option<String>,
}

/// Takes a multipart form (file fields, plus optional `filter_model`,
/// `extract_model`, `external_id` and `callback_url` fields) or a raw body
/// whose name is in the `X-Filename` header or the `filename` query
/// parameter. Answers 202 with the task id; under an `Idempotency-Key`
/// already used for the same request, 200 with the first task's id, and 409
/// for another request; 422 when the callback URL is not one tenderflow
/// calls.
pub async fn submit(
    State(state): State<AppState>,
    query: Result<Query<SubmitQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    // Checked before the body is read: a bad key costs no upload.
    let idempotency_key = idempotency_key(request.headers())?;
    let (uploads, options, asked) = if is_multipart(request.headers()) {
        let multipart = Multipart::from_request(request, &state).await?;
        read_form(multipart, query).await?
    } else {
        read_raw(request, &state, query).await?
    };
    let refs = Refs {
        external_id: asked.external_id.filter(|id| !id.is_empty()),
        idempotency_key,
        callback_url: asked.callback_url,
    };
    let changes = state.changes.subscribe();
    let submitted = state
        .submitter
        .submit_with(uploads, options, refs)
        .await
        .map_err(submit_error)?;
    let task_id = submitted.task_id();
    wait_until_seen(&state, changes, task_id).await;
    let status = match submitted {
        Submitted::New(_) => StatusCode::ACCEPTED,
        Submitted::Existing(_) => StatusCode::OK,
    };
    let location = format!("/v1/tasks/{task_id}");
    Ok((
        status,
        [(header::LOCATION, location)],
        Json(json!({"task_id": task_id})),
    )
        .into_response())
}

/// The `Idempotency-Key` header, checked: 400 when it is sent twice, or
/// is not 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::bad_request(
            "Idempotency-Key is sent more than once; send one key",
        ));
    }
    let key = value
        .to_str()
        .map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII characters"))?;
    crate::envelope::check_idempotency_key(key)
        .map_err(|e| ApiError::bad_request(format!("Idempotency-Key: {e}")))?;
    Ok(Some(key.to_string()))
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

/// The file name in `X-Filename`: UTF-8 as sent (Chinese names), or an
/// RFC 8187 extended value (`UTF-8''%E6%8B%9B…`, also as `filename*=…`).
fn header_filename(raw: &[u8]) -> Result<String, ApiError> {
    let text = std::str::from_utf8(raw)
        .map_err(|_| ApiError::bad_request("X-Filename is not UTF-8"))?
        .trim();
    let (ext, declared) = match text.strip_prefix("filename*=") {
        Some(ext) => (ext.trim_matches('"'), true),
        None => (text, false),
    };
    let extended = ext
        .get(..6)
        .is_some_and(|head| head.eq_ignore_ascii_case("utf-8'"));
    if !extended {
        if declared {
            return Err(ApiError::bad_request(
                "X-Filename: filename*= must be UTF-8''<percent-encoded name>",
            ));
        }
        return Ok(text.to_string());
    }
    let Some((_language, encoded)) = ext[6..].split_once('\'') else {
        return Ok(text.to_string());
    };
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .map(|name| name.into_owned())
        .map_err(|_| ApiError::bad_request("X-Filename decodes to bytes that are not UTF-8"))
}

/// Documents, options and references (external id, callback URL) of a
/// submission.
type Submission = (Vec<Upload>, TaskOptions, Asked);

/// The references a submission's form or query names.
struct Asked {
    external_id: Option<String>,
    callback_url: Option<String>,
}

async fn read_raw(
    request: Request,
    state: &AppState,
    query: SubmitQuery,
) -> Result<Submission, ApiError> {
    let from_header = match request.headers().get(FILENAME_HEADER) {
        Some(value) => Some(header_filename(value.as_bytes())?),
        None => None,
    };
    let filename = from_header.or(query.filename).filter(|f| !f.is_empty());
    let bytes = Bytes::from_request(request, state).await?;
    let filename = filename.ok_or_else(|| {
        ApiError::bad_request(
            "name the file: a multipart form, the X-Filename header or ?filename=",
        )
    })?;
    let upload = Upload { filename, bytes };
    let options = options(query.filter_model, query.extract_model);
    let asked = Asked {
        external_id: query.external_id,
        callback_url: query.callback_url,
    };
    Ok((vec![upload], options, asked))
}

async fn read_form(mut form: Multipart, query: SubmitQuery) -> Result<Submission, ApiError> {
    let mut uploads = Vec::new();
    let (mut filter_model, mut extract_model) = (query.filter_model, query.extract_model);
    let mut external_id = query.external_id;
    let mut callback_url = query.callback_url;
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
            "external_id" => external_id = Some(text),
            "callback_url" => callback_url = Some(text),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unexpected form field {other:?}: send files (with a filename), \
                     filter_model, extract_model, external_id, callback_url"
                )));
            }
        }
    }
    if uploads.is_empty() {
        return Err(ApiError::bad_request(
            "the form has no file (a field with a filename)",
        ));
    }
    let asked = Asked {
        external_id,
        callback_url,
    };
    Ok((uploads, options(filter_model, extract_model), asked))
}

fn submit_error(error: SubmitError) -> ApiError {
    match error {
        SubmitError::TooLarge { .. } => ApiError::too_large(error.to_string()),
        SubmitError::Unsupported { .. } => ApiError::unsupported(error.to_string()),
        SubmitError::Invalid(message) => ApiError::bad_request(message),
        SubmitError::Callback(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "callback_refused",
            error.to_string(),
        ),
        SubmitError::Conflict { .. } => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_conflict",
            error.to_string(),
        ),
        SubmitError::Unavailable(detail) => {
            tracing::warn!(error = format!("{detail:#}"), "submission failed");
            ApiError::unavailable("the broker or the document store is unavailable; try again")
        }
    }
}

/// Waits (briefly) until the projector has folded the task in, so the
/// `Location` answers at once; a slow projector only delays the answer. A
/// task known already (the first task of an idempotency key) answers at
/// once: no change of it may ever come.
async fn wait_until_seen(
    state: &AppState,
    mut changes: tokio::sync::broadcast::Receiver<crate::projector::view::TaskView>,
    task_id: Uuid,
) {
    let seen = async {
        let known = super::blocking(&state.db, move |db| db.task(task_id)).await;
        if matches!(known, Ok(Some(_))) {
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::header_filename;

    #[test]
    fn file_names_in_utf8_and_rfc_8187() {
        assert_eq!(
            header_filename("招标文件.pdf".as_bytes()).unwrap(),
            "招标文件.pdf"
        );
        assert_eq!(header_filename(b"plain.docx").unwrap(), "plain.docx");
        assert_eq!(
            header_filename(b"UTF-8''%E6%8B%9B%E6%A0%87.pdf").unwrap(),
            "招标.pdf"
        );
        assert_eq!(
            header_filename(b"filename*=utf-8'zh'%E6%8B%9B%E6%A0%87.pdf").unwrap(),
            "招标.pdf"
        );
        assert!(header_filename(b"\xff\xfe").is_err());
        assert!(header_filename(b"filename*=GBK''%D5%D0").is_err());
        assert_eq!(
            header_filename(b"O'Brien's bid.pdf").unwrap(),
            "O'Brien's bid.pdf"
        );
    }
}
