//! Liveness, readiness and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::AppState;
use super::error::ApiError;
use crate::projector::view::TaskState;

/// Prometheus (OpenMetrics) text: this process's worker and queue metrics
/// (see [`crate::metrics`]), then the projector's: its position in the
/// stream and its lag behind it, its connection, skipped entries, and tasks
/// per state.
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let counts = super::blocking(&state.db, |db| db.count_by_state()).await?;
    let waiting = super::blocking(&state.db, |db| db.pending_dead_letters()).await?;
    let mut projector = projector_registry(&state, &counts);
    let dead: Family<Vec<(String, String)>, Gauge> = Family::default();
    for stage in crate::envelope::Stage::ALL {
        let n = waiting
            .iter()
            .find(|(s, _)| *s == stage)
            .map_or(0, |(_, n)| *n);
        dead.get_or_create(&vec![("stage".into(), stage.as_str().into())])
            .set(n as i64);
    }
    projector.register(
        "dead_letters_waiting",
        "Dead letters not yet replayed, by stage (the projector's index)",
        dead,
    );
    let mut out = String::new();
    let encoded = crate::metrics::global()
        .encode_into(&mut out)
        .and_then(|()| encode_registry(&mut out, &projector))
        .and_then(|()| encode_eof(&mut out));
    encoded.map_err(|e| ApiError::internal(format!("encoding metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], out))
}

/// The projector's gauges, read now. They carry no prefix label: one
/// projector serves one pipeline, and its page is its own.
fn projector_registry(state: &AppState, counts: &[(String, u64)]) -> Registry {
    let progress = &state.progress;
    let mut registry = Registry::with_prefix("tenderflow");
    let gauge = |value: i64| {
        let gauge: Gauge = Gauge::default();
        gauge.set(value);
        gauge
    };
    let offset = progress.offset().map_or(-1, |o| o as i64);
    registry.register(
        "projector_stream_offset",
        "Offset of the last events-stream entry folded in (-1: none)",
        gauge(offset),
    );
    if let Some(last) = crate::metrics::global().stream_last_offset(state.topology.prefix()) {
        registry.register(
            "projector_lag_events",
            "Events-stream entries not yet folded in (from the polled last offset)",
            gauge((last - offset).max(0)),
        );
    }
    registry.register(
        "projector_connected",
        "1 while the projector is connected to the broker",
        gauge(i64::from(progress.connected())),
    );
    registry.register(
        "projector_caught_up",
        "1 when the last read found nothing more in the stream",
        gauge(i64::from(progress.caught_up())),
    );
    let skipped: Counter = Counter::default();
    skipped.inc_by(progress.skipped());
    registry.register(
        "projector_skipped_events",
        "Stream entries that were not readable events",
        skipped,
    );
    let tasks: Family<Vec<(String, String)>, Gauge> = Family::default();
    for task_state in TaskState::ALL {
        let n = counts
            .iter()
            .find(|(s, _)| s == task_state.as_str())
            .map_or(0, |(_, n)| *n);
        tasks
            .get_or_create(&vec![("state".into(), task_state.as_str().into())])
            .set(n as i64);
    }
    registry.register("tasks", "Tasks in the view, by state", tasks);
    registry
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
