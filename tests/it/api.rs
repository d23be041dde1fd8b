//! The HTTP API against a server on port 0 and the real broker. Also the
//! projector tests' helpers (`TestApp`, `publish_events`, ...).

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tenderflow::broker::{self, Outgoing};
use tenderflow::client::{ApiClient, progress_line, render_status, render_tasks};
use tenderflow::config::{Secret, Settings};

use crate::helpers::TestPipeline;
use tenderflow::envelope::{Envelope, Stage, TaskOptions};
use tenderflow::events::Event;
use tenderflow::projector::view::TaskState;
use tenderflow::projector::{self, db::ViewDb};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A pipeline of one test (its own prefix and store, cleaned up even when
/// the test fails) with a view database and the API on port 0; `tweak` as
/// for [`TestPipeline::new`].
pub fn test_pipeline(tweak: impl FnOnce(&mut Settings)) -> TestPipeline {
    TestPipeline::new(|settings, dir| {
        settings.projector.db_path = dir.join("view.sqlite3");
        settings.http.addr = "127.0.0.1:0".into();
        // The tests' events carry fixed times, months ago: retention is
        // the retention tests' to turn on.
        settings.projector.retain_finished_days = 0;
        tweak(settings);
    })
}

/// A client that sends `Authorization: Bearer <token>` on every request.
fn client_with(token: Option<String>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A projector and API started for one test.
pub struct TestApp {
    pub base: String,
    pub db: ViewDb,
    pub token: CancellationToken,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// A client that sends the configured token, if any, on every request.
    pub http: reqwest::Client,
    /// A client that sends no token.
    pub bare: reqwest::Client,
}

impl TestApp {
    /// Starts the projector and API with `settings`.
    pub async fn start(settings: &Settings) -> TestApp {
        let token = CancellationToken::new();
        let running = projector::start(settings.clone(), token.clone())
            .await
            .expect("projector starts");
        TestApp {
            base: format!("http://{}", running.addr),
            db: running.db,
            token,
            handle: running.handle,
            http: client_with(settings.http.token.as_ref().map(|t| t.expose().to_string())),
            bare: reqwest::Client::new(),
        }
    }

    /// Stops it and waits until it has stopped cleanly.
    pub async fn stop(self) {
        self.token.cancel();
        let result = tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("the projector stops within 10 s")
            .expect("the projector task does not panic");
        result.expect("the projector stops without error");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET, answering the status and the JSON body.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Polls `GET path` until `done` holds for the body, or panics after `secs`.
    pub async fn wait_for(&self, path: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let (status, body) = self.get(path).await;
            if status == StatusCode::OK && done(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} did not get there in {secs} s; last: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Publishes events to the events exchange with confirms (again on a
/// fresh connection if the broker fails it: events are idempotent by id).
pub async fn publish_events(settings: &Settings, events: &[Event]) {
    let topology = tenderflow::topology::Topology::from_settings(settings).unwrap();
    let messages: Vec<Outgoing> = events
        .iter()
        .map(|e| Outgoing::event(&topology, e, None))
        .collect();
    crate::helpers::publish_retrying(settings, &messages).await;
}

/// Checks the error shape and code of a response.
async fn assert_error(response: reqwest::Response, status: StatusCode, code: &str) {
    assert_eq!(response.status(), status, "{}", response.url());
    let url = response.url().clone();
    let body: Value = response.json().await.expect("errors are JSON");
    assert_eq!(body["error"]["code"], code, "{url}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{url}: {body}"
    );
}

const NOTICE: &str = "# 某市政道路改造工程招标公告\n\n项目编号：ZB-2026-001\n\n采购人：某市住房和城乡建设局\n\n最高限价：壹佰万元整\n\n投标截止时间：2026年12月1日 09:30\n";

#[tokio::test]
async fn a_document_submitted_over_http_is_watched_to_done() {
    let mut pipeline = test_pipeline(|_| {});
    let app = TestApp::start(&pipeline.settings).await;
    pipeline.start_all();

    // With no token set, a post from another site is refused.
    for (name, value) in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://elsewhere.example"),
    ] {
        let response = app
            .http
            .post(app.url("/v1/documents"))
            .header("x-filename", "notice.md")
            .header(name, value)
            .body(NOTICE)
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::FORBIDDEN, "cross_site").await;
    }

    // A Chinese file name, sent as UTF-8.
    let response = app
        .http
        .post(app.url("/v1/documents?filter_model=rules"))
        .header(
            "x-filename",
            reqwest::header::HeaderValue::from_bytes("招标公告.md".as_bytes()).unwrap(),
        )
        .header("sec-fetch-site", "same-origin")
        .body(NOTICE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    let task_id = body["task_id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/v1/tasks/{task_id}"));

    // The task is readable as soon as the 202 arrives.
    let (status, view) = app.get(&location).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["documents"][0]["filename"], "招标公告.md");

    let watch = app
        .http
        .get(app.url(&format!("{location}/watch")))
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status(), StatusCode::OK);
    let states = tokio::time::timeout(Duration::from_secs(60), read_sse_states(watch))
        .await
        .expect("the watch ends within 60 s");
    assert_eq!(
        states.last().map(String::as_str),
        Some("done"),
        "{states:?}"
    );

    let (status, view) = app.get(&location).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["state"], "done");
    assert!(
        view["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "succeeded")
    );
    let (status, summary) = app.get(&format!("{location}/summary")).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert!(summary.is_object(), "{summary}");
    let (_, events) = app.get(&format!("{location}/events")).await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"received"));
    assert!(kinds.contains(&"completed"), "{kinds:?}");
    let (_, page) = app.get("/v1/tasks?state=done").await;
    assert_eq!(page["tasks"][0]["task_id"], task_id.as_str());

    // The command line's client sees the same.
    let client = ApiClient::new(app.base.clone(), None);
    let id: Uuid = task_id.parse().unwrap();
    let mut lines = Vec::new();
    let last = client
        .follow(id, |v| lines.push(progress_line(v)))
        .await
        .unwrap();
    assert_eq!(last.state, TaskState::Done);
    assert_eq!(
        lines,
        vec!["ingest ✓    parse ✓     filter ✓    extract ✓   done"]
    );
    assert!(render_status(&client.status(id).await.unwrap()).contains("招标公告.md"));
    let page = client
        .tasks(Some(TaskState::Done), None, Some(10), None)
        .await
        .unwrap();
    assert!(render_tasks(&page).contains(&task_id));
    let missing = client.status(Uuid::now_v7()).await.unwrap_err();
    assert!(missing.is_not_found(), "{missing}");

    pipeline.stop().await;
    app.stop().await;
}

/// Reads a watch stream to its end; answers the `state` of each view sent.
async fn read_sse_states(mut response: reqwest::Response) -> Vec<String> {
    let mut states = Vec::new();
    let mut buffer = String::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            for line in frame.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    let view: Value = serde_json::from_str(data.trim()).unwrap();
                    states.push(view["state"].as_str().unwrap().to_string());
                }
            }
        }
    }
    states
}

#[tokio::test]
async fn bad_requests_get_a_4xx_and_the_error_shape() {
    let pipeline = test_pipeline(|settings| {
        settings.http.token = Some(Secret::new("s3cret"));
        settings.http.body_limit_bytes = 4096;
    });
    let app = TestApp::start(&pipeline.settings).await;
    let http = &app.http;
    let unknown = Uuid::now_v7();

    for (path, status, code) in [
        (
            "/v1/tasks/not-a-uuid".to_string(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            format!("/v1/tasks/{unknown}"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            format!("/v1/tasks/{unknown}/events"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            format!("/v1/tasks/{unknown}/summary"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            format!("/v1/tasks/{unknown}/watch"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/v1/tasks?limit=lots".to_string(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/v1/tasks?limit=0".to_string(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/v1/tasks?state=sleeping".to_string(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/v1/tasks?stage=print".to_string(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/v1/tasks?cursor=zzz".to_string(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/v1/dead-letters?stage=print".to_string(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/v1/nothing-here".to_string(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        ("/v2".to_string(), StatusCode::NOT_FOUND, "not_found"),
    ] {
        let response = http.get(app.url(&path)).send().await.unwrap();
        assert_error(response, status, code).await;
    }
    let response = http.delete(app.url("/v1/tasks")).send().await.unwrap();
    assert_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;

    // With a token set, reads that show tasks need it too; the 401 names
    // the scheme. Health, readiness, metrics and the dashboard stay open.
    for path in [
        "/v1/tasks".to_string(),
        format!("/v1/tasks/{unknown}"),
        format!("/v1/tasks/{unknown}/events"),
        "/v1/dead-letters".to_string(),
    ] {
        let response = app.bare.get(app.url(&path)).send().await.unwrap();
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"tenderflow\"",
            "{path}"
        );
        assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    for path in ["/healthz", "/metrics", "/", "/v1/openapi.json"] {
        let response = app.bare.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let response = app
        .bare
        .get(app.url("/v1/tasks"))
        .header("authorization", "bearer s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the scheme in any case");

    // Mutating endpoints need the token.
    let post = |path: &str| app.bare.post(app.url(path));
    let response = post("/v1/documents?filename=a.md")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let response = post("/v1/documents?filename=a.md")
        .bearer_auth("wrong")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let response = post("/v1/dead-letters/replay")
        .header("authorization", "s3cret")
        .json(&json!({"stage": "parse", "limit": 1}))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // With the token: bad bodies.
    let authed = |path: &str| post(path).bearer_auth("s3cret");
    let response = authed("/v1/documents?filename=big.md")
        .body(vec![b'a'; 10_000])
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    let response = authed("/v1/documents")
        .body("no name")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    let response = authed("/v1/documents?filename=tool.exe")
        .body(vec![
            0x4d, 0x5a, 0x90, 0x00, 0x03, 0x00, 0xff, 0xfe, 0x00, 0x01,
        ])
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let response = authed("/v1/documents?filename=a.md&filter_model=magic")
        .body(NOTICE)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    let form = reqwest::multipart::Form::new().text("comment", "no file");
    let response = authed("/v1/documents")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;

    let replay = "/v1/dead-letters/replay";
    let response = authed(replay)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    let response = authed(replay)
        .body(r#"{"stage":"parse","limit":1}"#)
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    for body in [
        json!({"stage": "print", "limit": 1}),
        json!({"stage": "parse"}),
        json!({"stage": "parse", "limit": 0}),
        json!({"stage": "parse", "task_ids": ["nope"]}),
        json!({"stage": "parse", "limit": -1}),
        json!({"stage": "parse", "limit": 1, "extra": true}),
        json!(["parse"]),
    ] {
        let response = authed(replay).json(&body).send().await.unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    }

    let (status, body) = app.get("/healthz").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_multipart_upload_is_accepted_and_a_dead_letter_is_listed_and_replayed() {
    let pipeline = test_pipeline(|settings| settings.http.token = Some(Secret::new("s3cret")));
    let settings = &pipeline.settings;
    let app = TestApp::start(settings).await;
    app.wait_for("/readyz", 10, |_| true).await;

    let part = reqwest::multipart::Part::bytes(NOTICE.as_bytes().to_vec()).file_name("notice.md");
    let form = reqwest::multipart::Form::new()
        .part("file", part)
        .text("extract_model", "rules");
    let response = app
        .http
        .post(app.url("/v1/documents"))
        .bearer_auth("s3cret")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    let task_id: Uuid = body["task_id"].as_str().unwrap().parse().unwrap();
    let view = app
        .wait_for(&format!("/v1/tasks/{task_id}"), 10, |_| true)
        .await;
    assert_eq!(view["state"], "queued");

    // Put a parse message of that task in parse's dead-letter queue, as the
    // runtime would.
    let (conn, channel, topology) = broker::open(settings, "test-dlq").await.unwrap();
    let mut envelope = Envelope::new_task(Vec::new(), TaskOptions::default());
    envelope.task_id = task_id;
    envelope.documents = vec![tenderflow::envelope::DocumentRef {
        uri: "store:originals/x".into(),
        sha256: "ab".repeat(32),
        size: 3,
        media_type: None,
        filename: "notice.md".into(),
    }];
    let envelope = envelope.advance(Stage::Parse, Default::default());
    let dead = Outgoing::new(
        "",
        topology.dead_letter_queue(Stage::Parse),
        envelope.encode(),
    )
    .for_task(task_id, None)
    .header("x-tf-task-id", task_id.to_string())
    .header("x-tf-stage", "parse")
    .header("x-tf-error-kind", "corrupt")
    .header("x-tf-error-message", "not a document")
    .int_header("x-tf-attempts", 1);
    broker::publish_all(&channel, &[dead]).await.unwrap();

    // The projector's index shows it as soon as it has read it.
    let mut listed = Value::Null;
    for _ in 0..50 {
        let (status, body) = app.get("/v1/dead-letters?stage=parse").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        listed = body;
        if !listed["dead_letters"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let letters = listed["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{listed}");
    assert_eq!(letters[0]["task_id"], task_id.to_string());
    assert_eq!(letters[0]["error_kind"], "corrupt");
    assert_eq!(letters[0]["by_broker"], false);
    assert!(
        letters[0]["preview"]
            .as_str()
            .unwrap()
            .starts_with("{\"schema\"")
    );

    let response = app
        .http
        .post(app.url("/v1/dead-letters/replay"))
        .bearer_auth("s3cret")
        .json(&json!({"stage": "parse", "task_ids": [task_id]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["replayed"], json!([task_id]), "{report}");
    assert_eq!(report["not_found"], json!([]), "{report}");

    let (_, listed) = app.get("/v1/dead-letters?stage=parse").await;
    assert_eq!(listed["dead_letters"], json!([]), "nothing left behind");
    let parse_queue = channel
        .queue_declare(
            topology.stage_queue(Stage::Parse).as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        parse_queue.message_count(),
        1,
        "exactly one copy back on parse"
    );
    let view = app
        .wait_for(&format!("/v1/tasks/{task_id}/events"), 10, |body| {
            body["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "replayed")
        })
        .await;
    assert!(view["events"].as_array().unwrap().len() >= 2);
    let _ = conn.close(200, "done".into()).await;
    app.stop().await;
}

#[tokio::test]
async fn a_request_head_sent_too_slowly_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pipeline = test_pipeline(|settings| settings.http.header_timeout_ms = 500);
    let app = TestApp::start(&pipeline.settings).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // A head that never ends, a header every now and then.
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let cut = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 512];
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(cut.is_ok(), "the server closed the slow connection");
    // Others are served all along.
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn connections_past_the_limit_wait_until_one_is_free() {
    let pipeline = test_pipeline(|settings| settings.http.max_connections = 2);
    let app = TestApp::start(&pipeline.settings).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let first = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _second = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = app
        .bare
        .get(app.url("/healthz"))
        .timeout(Duration::from_secs(1))
        .send()
        .await;
    assert!(waiting.is_err(), "a third connection is not served");
    drop(first);
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        app.bare.get(app.url("/healthz")).send(),
    )
    .await
    .expect("served once a slot is free")
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    app.stop().await;
}
