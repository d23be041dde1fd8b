//! Liveness, readiness and metrics.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

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
    let lost: Counter = Counter::default();
    lost.inc_by(progress.lost_events());
    registry.register(
        "projector_lost_events",
        "Stream entries that aged out of the events stream before the projector read them",
        lost,
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

/// 200 when the projector is connected to the broker, has read everything
/// the events stream had for it, and is at most `projector.ready_max_lag`
/// events behind the stream's last entry (as the metrics poller last read
/// it); 503 otherwise, saying which. Both bodies carry the figures: the
/// offset folded in, the stream's last offset and the lag (`null` while
/// unknown).
pub async fn readyz(State(state): State<AppState>) -> Response {
    let progress = &state.progress;
    let settings = &state.settings;
    let folded = progress.offset();
    let tail = crate::metrics::global().stream_tail(state.topology.prefix());
    let fresh_for = tail_fresh_for(settings.metrics.poll_interval_ms);
    let current = tail.filter(|t| t.read_at.elapsed() <= fresh_for);
    let lag = current.map(|t| lag_events(t.last_offset, folded));
    let max_lag = settings.projector.ready_max_lag;
    let figures = json!({
        "stream_offset": folded,
        "stream_last_offset": current.and_then(|t| t.last_offset),
        "lag_events": lag,
        "ready_max_lag": max_lag,
        "skipped_events": progress.skipped(),
        "lost_events": progress.lost_events(),
    });
    let not_ready = if !progress.connected() {
        Some("the projector is not connected to the broker".to_string())
    } else if let Some(why) = lag_problem(tail.map(|t| t.read_at.elapsed()), lag, max_lag) {
        Some(why)
    } else if !progress.caught_up() {
        Some("the projector is still reading the events stream".to_string())
    } else {
        None
    };
    let mut body = figures;
    match not_ready {
        None => {
            body["status"] = json!("ready");
            (StatusCode::OK, Json(body)).into_response()
        }
        Some(message) => {
            body["error"] = json!({"code": "not_ready", "message": message});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// How long a read of the stream's tail stands for the stream: a few of the
/// poller's intervals (a poll can fail once, or take its full tail read).
fn tail_fresh_for(poll_interval_ms: u64) -> Duration {
    Duration::from_millis(poll_interval_ms.saturating_mul(3)) + Duration::from_secs(5)
}

/// Entries of the stream not folded in: from the one after `folded` (the
/// first, when nothing was) to `last` (none, when the stream is empty). The
/// last offset is polled, so it can trail the projector: never below 0.
fn lag_events(last: Option<u64>, folded: Option<u64>) -> u64 {
    let Some(last) = last else { return 0 };
    match folded {
        Some(folded) => last.saturating_sub(folded),
        None => last + 1,
    }
}

/// Why the lag keeps the projector unready, if it does: unknown (the tail
/// never read, or last read `read_ago`), or over `max_lag`.
fn lag_problem(read_ago: Option<Duration>, lag: Option<u64>, max_lag: u64) -> Option<String> {
    match (lag, read_ago) {
        (Some(lag), _) if lag > max_lag => Some(format!(
            "the projector is {lag} events behind the events stream (ready at {max_lag} or fewer)"
        )),
        (Some(_), _) => None,
        (None, None) => Some("the events stream's last offset has not been read yet".to_string()),
        (None, Some(ago)) => Some(format!(
            "the events stream's last offset was last read {} s ago: the lag is unknown",
            ago.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_counts_the_entries_not_folded_in() {
        assert_eq!(lag_events(None, None), 0, "an empty stream");
        assert_eq!(lag_events(Some(0), None), 1, "one entry, none folded");
        assert_eq!(lag_events(Some(9), Some(9)), 0);
        assert_eq!(lag_events(Some(1009), Some(9)), 1000);
        assert_eq!(
            lag_events(Some(5), Some(9)),
            0,
            "a poll behind the projector"
        );
    }

    #[test]
    fn readiness_needs_a_known_lag_within_the_bound() {
        let ago = Some(Duration::from_secs(2));
        assert_eq!(lag_problem(ago, Some(1000), 1000), None);
        let over = lag_problem(ago, Some(1001), 1000).unwrap();
        assert!(over.contains("1001 events behind"), "{over}");
        assert!(
            lag_problem(None, None, 1000)
                .unwrap()
                .contains("not been read yet")
        );
        let stale = lag_problem(Some(Duration::from_secs(40)), None, 1000).unwrap();
        assert!(stale.contains("40 s ago"), "{stale}");
    }
}
