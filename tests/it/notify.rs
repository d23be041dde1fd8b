//! Completion callbacks end to end: the real broker, the real stages, the
//! notify consumer, and a local HTTP receiver that answers as scripted.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde_json::Value;
use tenderflow::config::{Secret, Settings};
use tenderflow::envelope::{Stage, TaskOptions};
use tenderflow::notify::sign;
use tenderflow::submit::{Refs, SubmitError, Submitter, Upload};
use uuid::Uuid;

use crate::api::{TestApp, test_pipeline};
use crate::helpers::{Flaky, TestPipeline, corpus};

const SECRET: &str = "test-callback-secret";
/// The submitter's reference every test task carries, echoed back.
const EXTERNAL_ID: &str = "bid-2029-044";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    answered: StatusCode,
}

/// A callback receiver on 127.0.0.1: answers each request with the next
/// scripted status, then 200 once the script is used up.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct ReceiverState {
    script: Arc<Mutex<VecDeque<StatusCode>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

async fn hook(State(state): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let answered = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(StatusCode::OK);
    state.received.lock().unwrap().push(Received {
        headers,
        body,
        answered,
    });
    answered
}

impl Receiver {
    async fn start(script: &[StatusCode]) -> Receiver {
        let state = ReceiverState {
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            received: Arc::new(Mutex::new(Vec::new())),
        };
        let received = Arc::clone(&state.received);
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            received,
            server,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (up to `secs`) until `n` requests have come in.
    async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.received();
            if got.len() >= n || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Callbacks to loopback allowed (as the receiver is local), over http.
fn allow_loopback(settings: &mut Settings) {
    settings.notify.allowed_hosts = vec!["127.0.0.1".into()];
    settings.notify.allow_http = true;
    settings.notify.secret = Some(Secret::new(SECRET));
    settings.notify.public_url = Some("https://tenders.example.com".into());
    settings.notify.timeout_ms = 5_000;
}

async fn submit_with_callback(pipeline: &TestPipeline, name: &str, url: &str) -> Uuid {
    let submitter = Submitter::new(Arc::clone(&pipeline.settings)).unwrap();
    let upload = Upload {
        filename: name.to_string(),
        bytes: Bytes::from(std::fs::read(corpus(name)).unwrap()),
    };
    let refs = Refs {
        callback_url: Some(url.into()),
        external_id: Some(EXTERNAL_ID.into()),
        ..Refs::default()
    };
    submitter
        .submit_with(vec![upload], TaskOptions::default(), refs)
        .await
        .unwrap()
        .task_id()
}

/// The error kind and message of the first entry of `notify.dlq`.
async fn first_dead_letter(pipeline: &TestPipeline) -> (String, String) {
    use futures_util::StreamExt;
    let (conn, channel, topology) = tenderflow::broker::open(&pipeline.settings, "test-notify-dlq")
        .await
        .unwrap();
    let queue = topology.notify_dead_letter_queue();
    let first = lapin::types::AMQPValue::LongString("first".into());
    let mut reader = tenderflow::dlq::stream_consumer(&channel, &queue, first)
        .await
        .unwrap();
    let entry = tokio::time::timeout(Duration::from_secs(10), reader.next())
        .await
        .expect("an entry within 10 s")
        .unwrap()
        .unwrap();
    let headers = entry.properties.headers();
    let kind = tenderflow::broker::header_str(headers, "x-tf-error-kind").unwrap();
    let message = tenderflow::broker::header_str(headers, "x-tf-error-message").unwrap();
    let _ = conn.close(200, "done".into()).await;
    (kind, message)
}

/// Checks a request's signature as a receiver must, and answers its body.
fn verified_body(request: &Received) -> Value {
    let header = request.headers[sign::SIGNATURE_HEADER].to_str().unwrap();
    let now = chrono::Utc::now().timestamp();
    sign::verify(SECRET.as_bytes(), header, &request.body, now, 300)
        .expect("the callback is signed with notify.secret over t.body");
    assert!(
        sign::verify(b"another secret", header, &request.body, now, 300).is_err(),
        "a signature under another key does not pass"
    );
    assert_eq!(request.headers["content-type"], "application/json");
    serde_json::from_slice(&request.body).unwrap()
}

#[tokio::test]
async fn a_completed_task_is_called_back_once_the_receiver_recovers() {
    let receiver = Receiver::start(&[
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::SERVICE_UNAVAILABLE,
    ])
    .await;
    let pipeline = test_pipeline(allow_loopback);
    let app = TestApp::start(&pipeline.settings).await;
    pipeline.start_all();
    pipeline.start_notify();
    let task = submit_with_callback(&pipeline, "en_itt.md", &receiver.url).await;

    // Two 503s, through the 200 ms and 400 ms tiers, then accepted.
    let got = receiver.wait_for(3, 60).await;
    assert_eq!(got.len(), 3, "three attempts: {got:?}");
    let answered: Vec<u16> = got.iter().map(|r| r.answered.as_u16()).collect();
    assert_eq!(answered, [503, 503, 200]);
    let delivery = got[2].headers["x-tenderflow-delivery"].to_str().unwrap();
    for attempt in &got {
        assert_eq!(
            attempt.headers["x-tenderflow-delivery"], delivery,
            "every attempt carries the same delivery id"
        );
        assert_eq!(attempt.headers["x-tenderflow-event"], "completed");
    }
    let body = verified_body(&got[2]);
    assert_eq!(body["task_id"], task.to_string());
    assert_eq!(body["external_id"], EXTERNAL_ID);
    assert_eq!(body["state"], "done");
    assert_eq!(body["delivery_id"], delivery);
    assert_eq!(
        body["summary_url"],
        format!("https://tenders.example.com/v1/tasks/{task}/summary")
    );
    assert!(
        body["summary"]["fields"]
            .as_object()
            .is_some_and(|f| !f.is_empty()),
        "a compact summary with the extracted fields: {body}"
    );
    // Accepted, it is not sent again, and nothing is dead-lettered.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.received().len(), 3);
    let dlq = pipeline.topology().notify_dead_letter_queue();
    assert_eq!(pipeline.depth(&dlq).await, 0);
    let prefix = &pipeline.settings.topology.prefix;
    let page = tenderflow::metrics::global().page();
    for (outcome, count) in [("delivered", 1), ("retried", 2)] {
        let series = format!(
            "tenderflow_callbacks_total{{prefix=\"{prefix}\",outcome=\"{outcome}\",kind=\"\"}} {count}"
        );
        assert!(page.contains(&series), "{series} in\n{page}");
    }

    // The task's terminal event carries its callback, as documented.
    let doc: Value = serde_json::from_str(tenderflow::http::dashboard::OPENAPI).unwrap();
    let (_, events) = app.get(&format!("/v1/tasks/{task}/events")).await;
    let events = events["events"].as_array().unwrap();
    for event in events {
        crate::ops::conforms(&doc, "Event", event);
    }
    let completed = events.iter().find(|e| e["kind"] == "completed").unwrap();
    assert_eq!(completed["callback"]["url"], receiver.url);
    assert_eq!(completed["callback"]["external_id"], EXTERNAL_ID);
    assert_eq!(completed["event_id"], delivery);
    app.stop().await;
    pipeline.teardown().await;
}

#[tokio::test]
async fn a_listed_name_that_resolves_to_loopback_is_not_called() {
    // `localhost` is listed, its address is not: the callback is accepted
    // at submission (only the name can be checked there) and refused when
    // the consumer resolves it, before any connection.
    let receiver = Receiver::start(&[]).await;
    let pipeline = TestPipeline::new(|settings, _| {
        allow_loopback(settings);
        settings.notify.allowed_hosts = vec!["localhost".into()];
    });
    pipeline.start_all();
    pipeline.start_notify();
    let url = receiver.url.replace("127.0.0.1", "localhost");
    submit_with_callback(&pipeline, "en_itt.md", &url).await;
    let dlq = pipeline.topology().notify_dead_letter_queue();
    assert_eq!(pipeline.wait_depth(&dlq, 1).await, 1);
    let (kind, message) = first_dead_letter(&pipeline).await;
    assert_eq!(kind, "callback_refused");
    assert!(
        message.contains("resolves to 127.0.0.1") || message.contains("resolves to ::1"),
        "{message}"
    );
    assert!(
        receiver.received().is_empty(),
        "no request reached loopback"
    );
    pipeline.teardown().await;
}

#[tokio::test]
async fn a_receiver_that_answers_400_gets_one_attempt_and_a_dead_letter() {
    let receiver = Receiver::start(&[StatusCode::BAD_REQUEST]).await;
    let pipeline = TestPipeline::new(|settings, _| allow_loopback(settings));
    pipeline.start_all();
    pipeline.start_notify();
    submit_with_callback(&pipeline, "en_itt.md", &receiver.url).await;

    let got = receiver.wait_for(1, 60).await;
    assert_eq!(got.len(), 1);
    verified_body(&got[0]);
    let dlq = pipeline.topology().notify_dead_letter_queue();
    assert_eq!(
        pipeline.wait_depth(&dlq, 1).await,
        1,
        "the refused callback is in notify.dlq"
    );
    let (kind, message) = first_dead_letter(&pipeline).await;
    assert_eq!(kind, "callback_rejected");
    let series = format!(
        "tenderflow_callbacks_total{{prefix=\"{}\",outcome=\"dead_lettered\",kind=\"callback_rejected\"}} 1",
        pipeline.settings.topology.prefix
    );
    assert!(
        tenderflow::metrics::global().page().contains(&series),
        "{series}"
    );
    assert!(message.contains("400"), "{message}");
    // A 4xx is not retried: the tiers would have sent it again by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.received().len(), 1);
    pipeline.teardown().await;
}

#[tokio::test]
async fn a_task_that_fails_for_good_is_called_back_failed() {
    let receiver = Receiver::start(&[]).await;
    let pipeline = TestPipeline::new(|settings, _| allow_loopback(settings));
    let broken = Flaky {
        inner: pipeline.real_handler(Stage::Parse),
        failures: Arc::new(std::sync::atomic::AtomicU32::new(1_000)),
        transient: false,
    };
    pipeline.start_all_but(Stage::Parse, broken);
    pipeline.start_notify();
    let task = submit_with_callback(&pipeline, "en_itt.md", &receiver.url).await;

    let got = receiver.wait_for(1, 60).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].headers["x-tenderflow-event"], "dead_lettered");
    let body = verified_body(&got[0]);
    assert_eq!(body["task_id"], task.to_string());
    assert_eq!(body["state"], "failed");
    assert_eq!(body["stage"], "parse");
    assert_eq!(body["error"]["kind"], "injected");
    assert!(body.get("summary_url").is_none());
    pipeline.teardown().await;
}

#[tokio::test]
async fn a_callback_outside_the_allowed_hosts_is_refused_at_submission() {
    // Through the submitter: the policy's reason.
    let pipeline = TestPipeline::new(|settings, _| allow_loopback(settings));
    let submitter = Submitter::new(Arc::clone(&pipeline.settings)).unwrap();
    let upload = Upload {
        filename: "en_itt.md".into(),
        bytes: Bytes::from(std::fs::read(corpus("en_itt.md")).unwrap()),
    };
    for (url, reason) in [
        (
            "http://169.254.169.254/latest",
            "not in notify.allowed_hosts",
        ),
        ("http://localhost:9/hook", "not in notify.allowed_hosts"),
        ("ftp://127.0.0.1/hook", "scheme"),
    ] {
        let refs = Refs {
            callback_url: Some(url.into()),
            ..Refs::default()
        };
        let refused = submitter
            .submit_with(vec![upload.clone()], TaskOptions::default(), refs)
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, SubmitError::Callback(m) if m.contains(reason)),
            "{url}: {refused}"
        );
    }
    drop(pipeline);

    // Through the API, with callbacks left disabled (the default): 422.
    let pipeline = test_pipeline(|_| {});
    let app = TestApp::start(&pipeline.settings).await;
    let answer = app
        .http
        .post(format!(
            "{}/v1/documents?filename=en_itt.md&callback_url=https://hooks.example.com/t",
            app.base
        ))
        .body(std::fs::read(corpus("en_itt.md")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let error: Value = answer.json().await.unwrap();
    assert_eq!(error["error"]["code"], "callback_refused");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("notify.allowed_hosts is empty"),
        "{message}"
    );

    // A form field the same.
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(corpus("en_itt.md")).unwrap())
                .file_name("en_itt.md"),
        )
        .text("callback_url", "https://10.0.0.1/t");
    let answer = app
        .http
        .post(format!("{}/v1/documents", app.base))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    app.stop().await;
    pipeline.teardown().await;
}

#[tokio::test]
async fn a_message_the_broker_dead_letters_itself_is_called_back_failed() {
    use futures_util::StreamExt;
    use lapin::options::{BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
    let receiver = Receiver::start(&[]).await;
    let pipeline = test_pipeline(allow_loopback);
    let app = TestApp::start(&pipeline.settings).await;
    pipeline.start(Stage::Ingest, pipeline.real_handler(Stage::Ingest));
    pipeline.start_notify();
    let task = submit_with_callback(&pipeline, "en_itt.md", &receiver.url).await;
    app.wait_for(&format!("/v1/tasks/{task}"), 30, |v| {
        v["stages"][0]["state"] == "succeeded"
    })
    .await;
    // A consumer that hands the parse message back until the queue's
    // delivery limit: the broker dead-letters it with no event of ours, and
    // the projector announces it.
    let (conn, channel, topology) = tenderflow::broker::open(&pipeline.settings, "test-returner")
        .await
        .unwrap();
    channel
        .basic_qos(1, BasicQosOptions::default())
        .await
        .unwrap();
    let mut returns = channel
        .basic_consume(
            topology.stage_queue(Stage::Parse).as_str().into(),
            "returner".into(),
            BasicConsumeOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let dlq = topology.dead_letter_queue(Stage::Parse);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tenderflow::dlq::entries(&conn, &dlq).await.unwrap() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dead-lettered"
        );
        if let Ok(Some(delivery)) =
            tokio::time::timeout(Duration::from_millis(200), returns.next()).await
        {
            let requeue = BasicNackOptions {
                requeue: true,
                multiple: false,
            };
            delivery.unwrap().acker.nack(requeue).await.unwrap();
        }
    }
    let _ = channel.close(200, "done".into()).await;
    let _ = conn.close(200, "done".into()).await;

    let got = receiver.wait_for(1, 60).await;
    assert_eq!(got.len(), 1);
    let body = verified_body(&got[0]);
    assert_eq!(body["task_id"], task.to_string());
    assert_eq!(body["state"], "failed");
    assert_eq!(body["stage"], "parse");
    assert_eq!(body["error"]["kind"], "delivery_limit");
    app.stop().await;
    pipeline.teardown().await;
}

#[test]
fn the_command_line_refuses_a_callback_outside_the_list_before_submitting() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tenderflow"))
        .args(["submit", "--callback-url", "https://169.254.169.254/latest"])
        .arg(corpus("en_itt.md"))
        .env_remove("TENDERFLOW_CONFIG")
        .env(
            "TENDERFLOW__TOPOLOGY__PREFIX",
            format!("t-{}", Uuid::now_v7().simple()),
        )
        .env("TENDERFLOW__STORE__ROOT", dir.path().join("store"))
        .env("TENDERFLOW__NOTIFY__ALLOWED_HOSTS", "hooks.example.com")
        .env("TENDERFLOW__NOTIFY__SECRET", "k")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr
            .contains("callback_url refused: host 169.254.169.254 is not in notify.allowed_hosts"),
        "{stderr}"
    );
    // Refused before anything was stored.
    assert!(!dir.path().join("store").join("originals").exists());
}
