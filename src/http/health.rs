//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;

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
