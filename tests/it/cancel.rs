//! Cancelling a task: `DELETE /v1/tasks/{id}` and `tenderflow cancel`. The
//! stages drop a cancelled task's messages at their next delivery (also a
//! retry coming back from its tier), the view shows `cancelled`, a done
//! task cannot be cancelled, and a replay of a cancelled task needs force.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tenderflow::config::Secret;
use tenderflow::envelope::{Envelope, Stage};
use tenderflow::runtime::Handler;
use tenderflow::stages::{StageError, StageOutput};
use tenderflow::submit::Outcome;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::api::{TestApp, test_pipeline};
use crate::helpers::Flaky;

/// A handler that holds each message until the test lets one through,
/// then behaves like `inner`; counts the messages it was given.
struct Gate<H> {
    inner: Arc<H>,
    open: Arc<Semaphore>,
    calls: Arc<AtomicU32>,
}

impl<H: Handler> Handler for Gate<H> {
    fn handle(&self, envelope: Envelope) -> BoxFuture<'static, Result<StageOutput, StageError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let open = Arc::clone(&self.open);
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            open.acquire().await.expect("never closed").forget();
            inner.handle(envelope).await
        })
    }
}

/// Counts the messages it is given, then behaves like `inner`.
struct Counted<H> {
    inner: H,
    calls: Arc<AtomicU32>,
}

impl<H: Handler> Handler for Counted<H> {
    fn handle(&self, envelope: Envelope) -> BoxFuture<'static, Result<StageOutput, StageError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.handle(envelope)
    }
}

async fn cancel(app: &TestApp, task: Uuid, body: Value) -> (StatusCode, Value) {
    let response = app
        .http
        .delete(app.url(&format!("/v1/tasks/{task}")))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn marker(settings: &tenderflow::config::Settings, task: Uuid) -> std::path::PathBuf {
    settings.store.root.join(format!("cancelled/{task}"))
}

fn kinds(events: &Value, stage: &str) -> Vec<String> {
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["stage"] == stage)
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_task_cancelled_while_a_stage_works_on_it_is_dropped_by_the_next_stage() {
    let pipeline = test_pipeline(|_| {});
    let settings = pipeline.settings.clone();
    let app = TestApp::start(&settings).await;
    let open = Arc::new(Semaphore::new(0));
    let later = Arc::new(AtomicU32::new(0));
    pipeline.start(Stage::Ingest, pipeline.real_handler(Stage::Ingest));
    pipeline.start(
        Stage::Parse,
        Gate {
            inner: Arc::new(pipeline.real_handler(Stage::Parse)),
            open: Arc::clone(&open),
            calls: Arc::new(AtomicU32::new(0)),
        },
    );
    for stage in [Stage::Filter, Stage::Extract] {
        pipeline.start(
            stage,
            Counted {
                inner: pipeline.real_handler(stage),
                calls: Arc::clone(&later),
            },
        );
    }
    let task = pipeline.submit_files(&["en_itt.md"]).await[0];
    // Parse holds it: the view shows parse running.
    app.wait_for(&format!("/v1/tasks/{task}"), 60, |v| {
        v["stages"][1]["state"] == "running"
    })
    .await;

    let (status, answer) =
        cancel(&app, task, json!({"reason": "withdrawn by the purchaser"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["state"], "cancelled");
    assert_eq!(answer["already"], false);
    assert_eq!(answer["reason"], "withdrawn by the purchaser");
    assert!(
        marker(&settings, task).is_file(),
        "the marker is in the store"
    );
    let view = app
        .wait_for(&format!("/v1/tasks/{task}"), 30, |v| {
            v["state"] == "cancelled"
        })
        .await;
    assert_eq!(view["cancelled"]["reason"], "withdrawn by the purchaser");

    // Parse was already running: it finishes and hands on; filter drops
    // the message at its delivery, and nothing reaches extract.
    open.add_permits(1);
    let view = app
        .wait_for(&format!("/v1/tasks/{task}"), 60, |v| {
            v["stages"][2]["state"] == "dropped"
        })
        .await;
    assert_eq!(view["state"], "cancelled", "{view}");
    assert_eq!(view["stages"][1]["state"], "succeeded");
    assert_eq!(view["stages"][3]["state"], "pending");
    assert_eq!(view["summary"], Value::Null);
    // Give a wrongly forwarded message time to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(later.load(Ordering::SeqCst), 0, "no later stage ran");
    let (_, events) = app.get(&format!("/v1/tasks/{task}/events")).await;
    assert_eq!(kinds(&events, "filter"), ["dropped"], "{events}");
    assert!(kinds(&events, "extract").is_empty(), "{events}");
    pipeline.assert_nothing_dead_lettered().await;
    let topology = pipeline.topology();
    for stage in Stage::ALL {
        assert_eq!(pipeline.depth(&topology.stage_queue(stage)).await, 0);
    }
    let (status, _) = app.get(&format!("/v1/tasks/{task}/summary")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, page) = app.get("/v1/tasks?state=cancelled").await;
    assert_eq!(page["tasks"][0]["task_id"], json!(task), "{page}");
    // The drop is counted, and the task is in the state gauge.
    let dropped = format!(
        "tenderflow_messages_dropped_total{{prefix=\"{}\",stage=\"filter\"}} 1\n",
        settings.topology.prefix
    );
    let mut text = String::new();
    for _ in 0..40 {
        text = app
            .http
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains(&dropped) && text.contains("tenderflow_tasks{state=\"cancelled\"} 1\n") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(text.contains(&dropped), "{dropped} in\n{text}");
    assert!(
        text.contains("tenderflow_tasks{state=\"cancelled\"} 1\n"),
        "{text}"
    );
    app.stop().await;
    pipeline.teardown().await;
}

#[tokio::test]
async fn a_cancelled_task_waiting_in_a_retry_tier_is_dropped_when_it_comes_back() {
    // A long first tier, so the cancel lands while the retry waits.
    let pipeline = test_pipeline(|settings| settings.retry.delays_ms = vec![3000]);
    let settings = pipeline.settings.clone();
    let app = TestApp::start(&settings).await;
    let calls = Arc::new(AtomicU32::new(0));
    pipeline.start_all_but(
        Stage::Parse,
        Counted {
            inner: Flaky {
                inner: pipeline.real_handler(Stage::Parse),
                failures: Arc::new(AtomicU32::new(1)),
                transient: true,
            },
            calls: Arc::clone(&calls),
        },
    );
    let follower = pipeline.follower().await;
    let task = pipeline.submit_files(&["en_itt.md"]).await[0];
    let retrying = app
        .wait_for(&format!("/v1/tasks/{task}"), 60, |v| {
            v["state"] == "retrying"
        })
        .await;
    assert!(retrying["next_retry_at"].is_string(), "{retrying}");
    let (status, answer) = cancel(&app, task, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["reason"], Value::Null);
    // What `submit --wait` follows ends at the cancel.
    let outcomes = crate::helpers::outcomes(follower, &[task], 30).await;
    assert_eq!(outcomes[&task], Outcome::Cancelled { reason: None });
    let view = app
        .wait_for(&format!("/v1/tasks/{task}"), 30, |v| {
            v["stages"][1]["state"] == "dropped"
        })
        .await;
    assert_eq!(view["state"], "cancelled");
    assert_eq!(view["next_retry_at"], Value::Null);
    assert_eq!(view["summary"], Value::Null);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the retry was not handled");
    let (_, events) = app.get(&format!("/v1/tasks/{task}/events")).await;
    assert_eq!(
        kinds(&events, "parse").last().map(String::as_str),
        Some("dropped"),
        "{events}"
    );
    pipeline.assert_nothing_dead_lettered().await;
    let topology = pipeline.topology();
    assert_eq!(
        pipeline.depth(&topology.stage_queue(Stage::Filter)).await,
        0
    );
    app.stop().await;
    pipeline.teardown().await;
}

#[tokio::test]
async fn cancel_answers_404_409_and_twice_the_same_and_needs_the_token() {
    let pipeline = test_pipeline(|settings| {
        settings.http.token = Some(Secret::new("s3cret"));
    });
    let settings = pipeline.settings.clone();
    let app = TestApp::start(&settings).await;
    pipeline.start(Stage::Ingest, pipeline.real_handler(Stage::Ingest));
    let waiting = pipeline.submit_files(&["en_itt.md"]).await[0];
    let url = app.url(&format!("/v1/tasks/{waiting}"));
    app.wait_for(&format!("/v1/tasks/{waiting}"), 60, |v| {
        v["stages"][0]["state"] == "succeeded"
    })
    .await;

    // No token, a wrong one: 401, and nothing is marked.
    let response = app.bare.delete(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app
        .bare
        .delete(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(!marker(&settings, waiting).exists());

    // Unknown task: 404; not a task id: 400; a bad body: 400.
    let (status, body) = cancel(&app, Uuid::now_v7(), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let response = app
        .http
        .delete(app.url("/v1/tasks/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (status, body) = cancel(&app, waiting, json!({"why": "typo"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = cancel(&app, waiting, json!({"reason": "x".repeat(1001)})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!marker(&settings, waiting).exists());

    // A cancel with no body at all, then again through the CLI: the first
    // cancel stands, one marker, one event.
    let response = app.http.delete(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let first: Value = response.json().await.unwrap();
    assert_eq!(first["already"], false);
    // Not std's Command: the API answers on this test's runtime thread.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenderflow"))
        .args(["cancel", &waiting.to_string(), "--reason", "again"])
        .env(
            "TENDERFLOW__HTTP__ADDR",
            app.base.trim_start_matches("http://"),
        )
        .env("TENDERFLOW__HTTP__TOKEN", "s3cret")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("already cancelled"), "{stdout}");
    let (status, again) = cancel(&app, waiting, json!({"reason": "and again"})).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["already"], true);
    assert_eq!(again["cancelled_at"], first["cancelled_at"]);
    assert_eq!(again["reason"], Value::Null, "the first cancel's reason");
    let markers = std::fs::read_dir(settings.store.root.join("cancelled"))
        .unwrap()
        .count();
    assert_eq!(markers, 1);
    let view = app
        .wait_for(&format!("/v1/tasks/{waiting}"), 30, |v| {
            v["state"] == "cancelled"
        })
        .await;
    let (_, events) = app.get(&format!("/v1/tasks/{waiting}/events")).await;
    let cancels = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "cancelled")
        .count();
    assert_eq!(cancels, 1, "{events}");
    let doc: Value = serde_json::from_str(tenderflow::http::dashboard::OPENAPI).unwrap();
    for key in first.as_object().unwrap().keys() {
        assert!(
            doc["components"]["schemas"]["Cancelled"]["properties"]
                .get(key)
                .is_some(),
            "{key} is documented"
        );
    }
    // The first cancel was this test's client, which names no agent.
    assert_eq!(view["cancelled"]["by"], "api");

    // A done task: 409, and it stays done.
    for stage in [Stage::Parse, Stage::Filter, Stage::Extract] {
        pipeline.start(stage, pipeline.real_handler(stage));
    }
    let done = pipeline.submit_files(&["en_itt.md"]).await[0];
    app.wait_for(&format!("/v1/tasks/{done}"), 60, |v| v["state"] == "done")
        .await;
    let (status, body) = cancel(&app, done, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "done");
    assert!(!marker(&settings, done).exists());
    let (_, view) = app.get(&format!("/v1/tasks/{done}")).await;
    assert_eq!(view["state"], "done");
    app.stop().await;
    pipeline.teardown().await;
}

#[tokio::test]
async fn with_no_token_a_cancel_from_another_site_is_refused() {
    let pipeline = test_pipeline(|_| {});
    let settings = pipeline.settings.clone();
    let app = TestApp::start(&settings).await;
    let task = pipeline.submit_files(&["en_itt.md"]).await[0];
    app.wait_for(&format!("/v1/tasks/{task}"), 30, |v| v["state"] == "queued")
        .await;
    let response = app
        .http
        .delete(app.url(&format!("/v1/tasks/{task}")))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!marker(&settings, task).exists());
    app.stop().await;
    pipeline.teardown().await;
}

#[tokio::test]
async fn a_cancelled_tasks_dead_letter_is_replayed_only_when_forced() {
    let pipeline = test_pipeline(|_| {});
    let settings = pipeline.settings.clone();
    let app = TestApp::start(&settings).await;
    // Parse fails its first message for good, then works.
    pipeline.start_all_but(
        Stage::Parse,
        Flaky {
            inner: pipeline.real_handler(Stage::Parse),
            failures: Arc::new(AtomicU32::new(1)),
            transient: false,
        },
    );
    let task = pipeline.submit_files(&["en_itt.md"]).await[0];
    app.wait_for(&format!("/v1/tasks/{task}"), 60, |v| v["state"] == "failed")
        .await;
    let (status, answer) = cancel(&app, task, json!({"reason": "not worth it"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    app.wait_for(&format!("/v1/tasks/{task}"), 30, |v| {
        v["state"] == "cancelled"
    })
    .await;

    let replay = |force: bool| {
        let app = &app;
        async move {
            let response = app
                .http
                .post(app.url("/v1/dead-letters/replay"))
                .json(&json!({"stage": "parse", "task_ids": [task], "force": force}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        }
    };
    let refused = replay(false).await;
    assert_eq!(refused["replayed"], json!([]), "{refused}");
    assert_eq!(refused["skipped"][0]["task_id"], json!(task), "{refused}");
    assert!(
        refused["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("cancelled"),
        "{refused}"
    );
    assert!(marker(&settings, task).exists());
    let (_, waiting) = app.get("/v1/dead-letters?stage=parse").await;
    assert_eq!(
        waiting["dead_letters"].as_array().unwrap().len(),
        1,
        "still waiting"
    );
    let (_, view) = app.get(&format!("/v1/tasks/{task}")).await;
    assert_eq!(view["state"], "cancelled");

    // Forced: the cancel is lifted and the task runs to done.
    let forced = replay(true).await;
    assert_eq!(forced["replayed"], json!([task]), "{forced}");
    assert_eq!(forced["skipped"], json!([]));
    assert!(!marker(&settings, task).exists(), "the marker is removed");
    let done = app
        .wait_for(&format!("/v1/tasks/{task}"), 60, |v| v["state"] == "done")
        .await;
    assert_eq!(done["cancelled"], Value::Null, "{done}");
    assert!(done["summary"].is_object());
    app.stop().await;
    pipeline.teardown().await;
}
