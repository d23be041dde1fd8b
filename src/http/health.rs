//! Liveness, readiness and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::projector::view::TaskState;

/// Prometheus text: the projector's position in the stream, its
/// connection, skipped entries, and tasks per state.
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let counts = super::blocking(&state.db, |db| db.count_by_state()).await?;
    let progress = &state.progress;
    let mut out = String::new();
    let gauge = |out: &mut String, name: &str, help: &str, value: String| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        ));
    };
    let offset = progress.offset().map_or(-1, |o| o as i64);
    gauge(
        &mut out,
        "tenderflow_projector_stream_offset",
        "Offset of the last events-stream entry folded in (-1: none).",
        offset.to_string(),
    );
    gauge(
        &mut out,
        "tenderflow_projector_connected",
        "1 while the projector is connected to the broker.",
        u8::from(progress.connected()).to_string(),
    );
    gauge(
        &mut out,
        "tenderflow_projector_caught_up",
        "1 when the last read found nothing more in the stream.",
        u8::from(progress.caught_up()).to_string(),
    );
    out.push_str("# HELP tenderflow_projector_skipped_events_total Stream entries that were not readable events.\n# TYPE tenderflow_projector_skipped_events_total counter\n");
    out.push_str(&format!(
        "tenderflow_projector_skipped_events_total {}\n",
        progress.skipped()
    ));
    out.push_str(
        "# HELP tenderflow_tasks Tasks in the view, by state.\n# TYPE tenderflow_tasks gauge\n",
    );
    for task_state in TaskState::ALL {
        let n = counts
            .iter()
            .find(|(s, _)| s == task_state.as_str())
            .map_or(0, |(_, n)| *n);
        out.push_str(&format!(
            "tenderflow_tasks{{state=\"{}\"}} {n}\n",
            task_state.as_str()
        ));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}

/// 200 while the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// 200 when the projector is connected to the broker and has read everything
/// the events stream had for it; 503 otherwise, saying which.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let progress = &state.progress;
    if !progress.connected() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the projector is not connected to the broker",
        ));
    }
    if !progress.caught_up() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the projector is still reading the events stream",
        ));
    }
    Ok(Json(json!({
        "status": "ready",
        "stream_offset": progress.offset(),
        "skipped_events": progress.skipped(),
    })))
}
