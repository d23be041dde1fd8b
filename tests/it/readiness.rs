//! Readiness bounded by the projector's lag: a projector started behind a
//! long events stream answers 503 with how far behind it is, and 200 only
//! once within `projector.ready_max_lag` of the stream's last entry.

use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::Value;
use tenderflow::envelope::{Stage, TaskOptions};
use tenderflow::events::{DocumentInfo, EVENT_SCHEMA, Event, EventKind};
use uuid::Uuid;

use crate::api::{TestApp, publish_events, test_pipeline};

/// Events waiting in the stream before the projector starts, and the lag
/// it may have and still be ready: the backlog is far over the bound.
const BACKLOG: u64 = 20_000;
const MAX_LAG: u64 = 100;

/// One task received: a small event that makes a row of the view.
fn received(i: u64) -> Event {
    Event {
        callback: None,
        schema: EVENT_SCHEMA,
        event_id: Uuid::now_v7(),
        task_id: Uuid::now_v7(),
        stage: Stage::Ingest,
        attempt: 1,
        at: Utc::now(),
        kind: EventKind::Received {
            documents: vec![DocumentInfo {
                filename: format!("notice-{i}.md"),
                sha256: format!("{i:064x}"),
                size: 100,
            }],
            options: TaskOptions::default(),
            external_id: None,
        },
    }
}

#[tokio::test]
async fn readiness_is_refused_while_the_projector_is_far_behind_the_stream() {
    let pipeline = test_pipeline(|settings| {
        settings.projector.ready_max_lag = MAX_LAG;
        settings.metrics.poll_interval_ms = 200;
    });
    let events: Vec<Event> = (0..BACKLOG).map(received).collect();
    publish_events(&pipeline.settings, &events).await;
    // A fresh stream: its entries are at offsets 0 to BACKLOG - 1.
    let last = BACKLOG - 1;

    let app = TestApp::start(&pipeline.settings).await;
    let mut behind = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let ready = loop {
        let (status, body) = app.get("/readyz").await;
        let folded = body["stream_offset"].as_u64();
        match status {
            StatusCode::OK => {
                // Ready means within the bound of the stream's true end,
                // which this test knows: nothing else publishes.
                let true_lag = folded.map_or(BACKLOG, |f| last - f);
                assert!(
                    true_lag <= MAX_LAG,
                    "ready while {true_lag} events behind (bound {MAX_LAG}): {body}"
                );
                break body;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["error"]["code"], "not_ready", "{body}");
                let message = body["error"]["message"].as_str().unwrap_or_default();
                let lag = body["lag_events"].as_u64();
                if message.contains("events behind") && lag.is_some_and(|l| l > MAX_LAG) {
                    behind.get_or_insert_with(|| body.clone());
                }
            }
            other => panic!("/readyz answered {other}: {body}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready in 180 s; last: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let behind: Value = behind.expect("a 503 that said how far behind the projector was");
    assert_eq!(behind["ready_max_lag"], MAX_LAG, "{behind}");
    // Ready reports its lag against the polled last offset.
    assert!(
        ready["lag_events"]
            .as_u64()
            .is_some_and(|lag| lag <= MAX_LAG),
        "{ready}"
    );
    assert!(ready["stream_last_offset"].as_u64().is_some(), "{ready}");
    app.stop().await;
}

#[tokio::test]
async fn a_fresh_pipeline_with_an_empty_stream_becomes_ready() {
    let pipeline = test_pipeline(|settings| settings.metrics.poll_interval_ms = 200);
    let app = TestApp::start(&pipeline.settings).await;
    let ready = app.wait_for("/readyz", 20, |_| true).await;
    assert_eq!(ready["lag_events"], 0, "{ready}");
    assert_eq!(ready["stream_last_offset"], Value::Null, "{ready}");
    app.stop().await;
}
