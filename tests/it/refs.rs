//! Client references and idempotent submission, over HTTP, over AMQP and
//! from the command line, against the real broker.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use serde_json::Value;
use tenderflow::broker::Outgoing;
use tenderflow::envelope::{DocumentRef, Envelope, Stage, TaskOptions};
use tenderflow::store::Store;
use uuid::Uuid;

use crate::api::{TestApp, test_pipeline};

const NOTICE: &str = "# 某市政道路改造工程招标公告\n\n项目编号：ZB-2026-017\n\n采购人：某市住房和城乡建设局\n\n最高限价：壹佰万元整\n";
const OTHER: &str =
    "# 某学校食堂设备采购招标公告\n\n项目编号：ZB-2026-018\n\n最高限价：伍拾万元整\n";

/// POSTs a raw Markdown body to `path` with an optional key; answers the
/// status and the JSON body.
async fn post(app: &TestApp, path: &str, key: Option<&str>, body: &str) -> (StatusCode, Value) {
    let mut request = app
        .http
        .post(app.url(path))
        .header("x-filename", "notice.md")
        .body(body.to_string());
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn task_of(body: &Value) -> Uuid {
    body["task_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no task id in {body}"))
}

/// The ids of `GET /v1/tasks?<query>`.
async fn listed(app: &TestApp, query: &str) -> Vec<Uuid> {
    let (status, page) = app.get(&format!("/v1/tasks?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn an_idempotency_key_over_http_gives_one_task_per_request() {
    let pipeline = test_pipeline(|_| {});
    let app = TestApp::start(&pipeline.settings).await;
    pipeline.start_all();

    let (status, first) = post(
        &app,
        "/v1/documents?external_id=proj-17",
        Some("k-1"),
        NOTICE,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let first = task_of(&first);

    // The same request again: the first task, 200, its Location.
    let response = app
        .http
        .post(app.url("/v1/documents?external_id=proj-17"))
        .header("x-filename", "notice.md")
        .header("idempotency-key", "k-1")
        .body(NOTICE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        format!("/v1/tasks/{first}")
    );
    assert_eq!(task_of(&response.json().await.unwrap()), first);

    // Another document under the key: 409, naming the first task.
    let (status, conflict) = post(
        &app,
        "/v1/documents?external_id=proj-17",
        Some("k-1"),
        OTHER,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    assert_eq!(conflict["error"]["code"], "idempotency_conflict");
    let message = conflict["error"]["message"].as_str().unwrap();
    assert!(message.contains(&first.to_string()), "{message}");
    // So is the same document under another reference.
    let (status, _) = post(
        &app,
        "/v1/documents?external_id=proj-99",
        Some("k-1"),
        NOTICE,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Eight at once under a new key, to two API replicas (each its own
    // projector, one store): one task, every answer names it.
    let mut replica = (*pipeline.settings).clone();
    replica.projector.db_path = pipeline.dir.path().join("replica.sqlite3");
    let other_app = TestApp::start(&replica).await;
    let racers = (0..8).map(|i| {
        let app = if i % 2 == 0 { &app } else { &other_app };
        post(app, "/v1/documents", Some("k-race"), OTHER)
    });
    let answers = futures_util::future::join_all(racers).await;
    other_app.stop().await;
    let statuses: Vec<StatusCode> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::ACCEPTED)
            .count(),
        1,
        "{answers:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        7,
        "{answers:?}"
    );
    let raced: BTreeSet<Uuid> = answers.iter().map(|(_, b)| task_of(b)).collect();
    assert_eq!(raced.len(), 1, "{answers:?}");
    let raced = *raced.first().unwrap();

    // Both tasks run to the end: ingest finds the key claimed by its own task.
    for task in [first, raced] {
        let view = app
            .wait_for(&format!("/v1/tasks/{task}"), 60, |v| v["state"] == "done")
            .await;
        assert!(view.get("duplicate_of").is_none(), "{view}");
    }
    let (_, view) = app.get(&format!("/v1/tasks/{first}")).await;
    assert_eq!(view["external_id"], "proj-17");
    // Two tasks were started in all, whatever was sent.
    let all = listed(&app, "").await;
    assert_eq!(all.len(), 2, "{all:?}");

    // A multipart form carries the reference as a field.
    let form = reqwest::multipart::Form::new()
        .text("external_id", "proj-17")
        .part(
            "file",
            reqwest::multipart::Part::bytes(OTHER.as_bytes().to_vec()).file_name("other.md"),
        );
    let response = app
        .http
        .post(app.url("/v1/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let third = task_of(&response.json().await.unwrap());
    app.wait_for(&format!("/v1/tasks/{third}"), 30, |v| {
        v["external_id"] == "proj-17"
    })
    .await;

    // The reference finds its tasks, newest first, and only those.
    assert_eq!(
        listed(&app, "external_id=proj-17").await,
        vec![third, first]
    );
    assert_eq!(
        listed(&app, "external_id=proj-17&limit=1").await,
        vec![third]
    );
    assert!(listed(&app, "external_id=proj-404").await.is_empty());
    let client = tenderflow::client::ApiClient::new(app.base.clone(), None);
    let page = client
        .tasks(None, Some("proj-17"), None, None)
        .await
        .unwrap();
    let ids: Vec<Uuid> = page.tasks.iter().map(|t| t.task_id).collect();
    assert_eq!(ids, vec![third, first]);

    app.stop().await;
    pipeline.teardown().await;
}

#[tokio::test]
async fn bad_references_are_refused_with_a_clear_error() {
    let pipeline = test_pipeline(|_| {});
    let app = TestApp::start(&pipeline.settings).await;
    let long = "项".repeat(201);
    let encoded = percent_encoding::utf8_percent_encode(&long, percent_encoding::NON_ALPHANUMERIC);

    let (status, body) = post(
        &app,
        &format!("/v1/documents?external_id={encoded}"),
        None,
        NOTICE,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("201 characters") && message.contains("200"),
        "{message}"
    );

    let form = reqwest::multipart::Form::new()
        .text("external_id", "line\nbreak")
        .part(
            "file",
            reqwest::multipart::Part::bytes(NOTICE.as_bytes().to_vec()).file_name("n.md"),
        );
    let response = app
        .http
        .post(app.url("/v1/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("control"),
        "{body}"
    );

    for key in ["has space", &"k".repeat(256)] {
        let (status, body) = post(&app, "/v1/documents", Some(key), NOTICE).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Idempotency-Key"),
            "{body}"
        );
    }
    let (status, body) = app.get(&format!("/v1/tasks?external_id={encoded}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Nothing was started by any of them.
    assert!(listed(&app, "").await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn after_the_window_a_key_starts_a_new_task() {
    let pipeline = test_pipeline(|settings| settings.store.idempotency_window_ms = 2000);
    let app = TestApp::start(&pipeline.settings).await;
    let (status, body) = post(&app, "/v1/documents", Some("k-window"), NOTICE).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let first = task_of(&body);
    let (status, body) = post(&app, "/v1/documents", Some("k-window"), NOTICE).await;
    assert_eq!((status, task_of(&body)), (StatusCode::OK, first));

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = post(&app, "/v1/documents", Some("k-window"), NOTICE).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let second = task_of(&body);
    assert_ne!(second, first);
    // The new claim holds in its turn, also for other documents.
    let (status, body) = post(&app, "/v1/documents", Some("k-window"), NOTICE).await;
    assert_eq!((status, task_of(&body)), (StatusCode::OK, second));
    let (status, _) = post(&app, "/v1/documents", Some("k-window"), OTHER).await;
    assert_eq!(status, StatusCode::CONFLICT);
    app.stop().await;
}

/// A task's first message as another system publishes it, of one stored
/// document.
async fn envelope_of(store: &Store, text: &str) -> Envelope {
    let stored = store
        .put_original(Bytes::from(text.as_bytes().to_vec()))
        .await
        .unwrap();
    Envelope::new_task(
        vec![DocumentRef {
            uri: format!("store:{}", stored.key),
            sha256: stored.sha256,
            size: stored.size,
            media_type: None,
            filename: "notice.md".into(),
        }],
        TaskOptions::default(),
    )
}

fn to_ingest(pipeline: &crate::helpers::TestPipeline, body: Vec<u8>, task: Uuid) -> Outgoing {
    Outgoing::new(
        pipeline.topology().work_exchange(),
        Stage::Ingest.as_str(),
        body,
    )
    .for_task(task, None)
}

#[tokio::test]
async fn over_amqp_ingest_claims_the_key_and_acks_a_duplicate_without_work() {
    let pipeline = test_pipeline(|_| {});
    let app = TestApp::start(&pipeline.settings).await;
    pipeline.start_all();
    let store = Store::from_settings(&pipeline.settings).unwrap();

    let mut first = envelope_of(&store, NOTICE).await;
    first.external_id = Some("crm-7".into());
    first.idempotency_key = Some("amqp-1".into());
    let message = to_ingest(&pipeline, first.encode(), first.task_id);
    crate::helpers::publish_retrying(&pipeline.settings, &[message]).await;
    app.wait_for(&format!("/v1/tasks/{}", first.task_id), 60, |v| {
        v["state"] == "done"
    })
    .await;

    // The same request under the key, as another task; another document
    // under it; a reference over the limit.
    let mut again = envelope_of(&store, NOTICE).await;
    again.external_id = Some("crm-7".into());
    again.idempotency_key = Some("amqp-1".into());
    let mut other = envelope_of(&store, OTHER).await;
    other.external_id = Some("crm-7".into());
    other.idempotency_key = Some("amqp-1".into());
    let mut long = envelope_of(&store, OTHER).await;
    long.external_id = Some("x".repeat(201));
    let messages: Vec<Outgoing> = [&again, &other, &long]
        .iter()
        .map(|e| to_ingest(&pipeline, e.encode(), e.task_id))
        .collect();
    let follower = pipeline.follower().await;
    crate::helpers::publish_retrying(&pipeline.settings, &messages).await;
    // A follower (as `submit --wait` uses) hears the duplicate's end.
    let ended = crate::helpers::outcomes(follower, &[again.task_id], 30).await;
    assert_eq!(
        ended[&again.task_id],
        tenderflow::submit::Outcome::Duplicate { of: first.task_id }
    );

    let duplicate = app
        .wait_for(&format!("/v1/tasks/{}", again.task_id), 30, |v| {
            v["state"] == "duplicate"
        })
        .await;
    assert_eq!(duplicate["duplicate_of"], first.task_id.to_string());
    assert_eq!(duplicate["external_id"], "crm-7");
    // Every field of it is in the API's document, the new state too.
    let doc: Value = serde_json::from_str(tenderflow::http::dashboard::OPENAPI).unwrap();
    let schema = &doc["components"]["schemas"]["TaskView"]["properties"];
    for key in duplicate.as_object().unwrap().keys() {
        assert!(schema.get(key).is_some(), "{key} is not documented");
    }
    let states = &doc["components"]["schemas"]["TaskState"]["enum"];
    assert!(states.as_array().unwrap().contains(&duplicate["state"]));
    assert_eq!(duplicate["stages"][1]["state"], "pending", "{duplicate}");
    assert!(duplicate["finished_at"].is_string(), "{duplicate}");
    let (_, events) = app
        .get(&format!("/v1/tasks/{}/events", again.task_id))
        .await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    // Told of, and nothing done: no stage succeeded, none went on.
    assert_eq!(kinds.first(), Some(&"received"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"duplicate"), "{kinds:?}");
    assert!(!kinds.contains(&"succeeded"), "{kinds:?}");
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["stage"] == "ingest"),
        "{events}"
    );

    let conflict = app
        .wait_for(&format!("/v1/tasks/{}", other.task_id), 30, |v| {
            v["state"] == "failed"
        })
        .await;
    assert_eq!(conflict["last_error"]["kind"], "idempotency_conflict");
    let message = conflict["last_error"]["message"].as_str().unwrap();
    assert!(message.contains(&first.task_id.to_string()), "{message}");

    let invalid = app
        .wait_for(&format!("/v1/tasks/{}", long.task_id), 30, |v| {
            v["state"] == "failed"
        })
        .await;
    assert_eq!(invalid["last_error"]["kind"], "invalid_message");

    let letters = pipeline.pending_dead_letters(Stage::Ingest).await;
    let kinds: BTreeSet<(Option<Uuid>, String)> = letters
        .iter()
        .map(|l| (l.task_id, l.error_kind.clone()))
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            (Some(other.task_id), "idempotency_conflict".to_string()),
            (Some(long.task_id), "invalid_message".to_string()),
        ])
    );
    // The reference over AMQP is in the index too (the invalid message's
    // task never had a `received`).
    let mut found = listed(&app, "external_id=crm-7").await;
    found.sort();
    let mut want = vec![first.task_id, again.task_id, other.task_id];
    want.sort();
    assert_eq!(found, want);

    app.stop().await;
    pipeline.teardown().await;
}

#[tokio::test]
async fn the_command_line_submits_once_under_a_key_and_finds_by_reference() {
    let pipeline = test_pipeline(|_| {});
    let app = TestApp::start(&pipeline.settings).await;
    let file = pipeline.dir.path().join("notice.md");
    std::fs::write(&file, NOTICE).unwrap();
    let addr = app.base.trim_start_matches("http://").to_string();
    // Asynchronously: the API the command asks lives on this runtime.
    let prefix = pipeline.topology().prefix().to_string();
    let root = pipeline.settings.store.root.clone();
    let run = async |args: &[&str]| {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenderflow"))
            .args(args)
            .env_remove("TENDERFLOW_CONFIG")
            .env("TENDERFLOW__TOPOLOGY__PREFIX", &prefix)
            .env("TENDERFLOW__STORE__ROOT", &root)
            .env("TENDERFLOW__HTTP__ADDR", &addr)
            .output()
            .await
            .unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let path = file.to_str().unwrap();
    let submit = [
        "submit",
        "--json",
        "--external-id",
        "proj-cli",
        "--idempotency-key",
        "cli-1",
        path,
    ];
    let first: Value = serde_json::from_str(run(&submit).await.trim()).unwrap();
    assert_eq!(first["existing"], false);
    let again: Value = serde_json::from_str(run(&submit).await.trim()).unwrap();
    assert_eq!(again["existing"], true);
    assert_eq!(again["task_id"], first["task_id"]);
    let task = task_of(&first);
    app.wait_for(&format!("/v1/tasks/{task}"), 30, |v| {
        v["external_id"] == "proj-cli"
    })
    .await;
    let page: Value =
        serde_json::from_str(&run(&["tasks", "--json", "--external-id", "proj-cli"]).await)
            .unwrap();
    let ids: Vec<&str> = page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![task.to_string()]);
    app.stop().await;
}
