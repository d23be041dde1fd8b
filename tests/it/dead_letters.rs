//! Dead letters kept in streams: listing changes nothing, replay reads what
//! it replays, a lost artifact is made again by replaying from the stage
//! that wrote it, and a message the broker dead-letters itself still ends
//! its task's view.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tenderflow::broker::{self, Outgoing};
use tenderflow::dlq;
use tenderflow::envelope::Stage;
use uuid::Uuid;

use crate::api::{TestApp, test_pipeline};

/// Parks `n` parse messages of new tasks in parse's dead-letter stream, as
/// the runtime would; answers their task ids.
pub(crate) async fn park(settings: &tenderflow::config::Settings, n: usize) -> Vec<Uuid> {
    let topology = tenderflow::topology::Topology::from_settings(settings).unwrap();
    let mut tasks = Vec::new();
    let mut messages = Vec::new();
    for i in 0..n {
        let mut envelope = tenderflow::envelope::Envelope::new_task(
            vec![tenderflow::envelope::DocumentRef {
                uri: format!("store:originals/{}", "ab".repeat(32)),
                sha256: "ab".repeat(32),
                size: 3,
                media_type: None,
                filename: format!("notice-{i}.md"),
            }],
            Default::default(),
        );
        envelope = envelope.advance(Stage::Parse, Default::default());
        tasks.push(envelope.task_id);
        messages.push(
            Outgoing::new(
                "",
                topology.dead_letter_queue(Stage::Parse),
                envelope.encode(),
            )
            .for_task(envelope.task_id, None)
            .header("x-tf-task-id", envelope.task_id.to_string())
            .header("x-tf-error-kind", "corrupt")
            .header("x-tf-error-message", "not a document")
            .int_header("x-tf-attempts", 1),
        );
    }
    crate::helpers::publish_retrying(settings, &messages).await;
    tasks
}

#[tokio::test]
async fn listing_dead_letters_again_and_again_changes_none_of_them() {
    let pipeline = test_pipeline(|_| {});
    let settings = &pipeline.settings;
    let app = TestApp::start(settings).await;
    let tasks = park(settings, 3).await;
    let page = app
        .wait_for("/v1/dead-letters?stage=parse", 10, |b| {
            b["dead_letters"].as_array().is_some_and(|l| l.len() == 3)
        })
        .await;
    // Listed many times: more than the twenty returns after which a
    // quorum queue's default delivery limit drops a message.
    for _ in 0..25 {
        let (status, again) = app.get("/v1/dead-letters?stage=parse").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again, page, "listing is a read");
    }
    let letters = page["dead_letters"].as_array().unwrap();
    let listed: Vec<Uuid> = letters
        .iter()
        .map(|l| l["task_id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(listed, tasks, "oldest first");
    for letter in letters {
        let preview = letter["preview"].as_str().unwrap();
        assert!(preview.len() <= dlq::PREVIEW_BYTES, "a bounded preview");
        assert!(letter["body_bytes"].as_u64().unwrap() > 0);
        assert!(letter.get("offset").is_some(), "{letter}");
    }
    // Nothing in the broker moved: the stream holds the three entries it
    // was given, each read back exactly as published (never redelivered).
    let (conn, _, topology) = broker::open(settings, "test").await.unwrap();
    let queue = topology.dead_letter_queue(Stage::Parse);
    assert_eq!(dlq::entries(&conn, &queue).await.unwrap(), 3);
    let fetched = dlq::fetch(&conn, &topology, Stage::Parse, &[0, 1, 2])
        .await
        .unwrap();
    for delivery in fetched.values() {
        let headers = delivery.properties.headers().as_ref().unwrap().inner();
        assert!(!headers.contains_key("x-delivery-count"), "{headers:?}");
        assert!(!delivery.redelivered);
    }
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tenderflow_dead_letters_waiting{stage=\"parse\"} 3"),
        "{metrics}"
    );
    // Pages of one, linked by their cursors.
    let (_, first) = app.get("/v1/dead-letters?stage=parse&limit=1").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let (_, second) = app
        .get(&format!(
            "/v1/dead-letters?stage=parse&limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(second["dead_letters"][0]["task_id"], tasks[1].to_string());
    let _ = conn.close(200, "done".into()).await;
    app.stop().await;
}

#[tokio::test]
async fn a_replay_reads_only_the_dead_letters_it_replays() {
    let pipeline = test_pipeline(|_| {});
    let settings = &pipeline.settings;
    let tasks = park(settings, 60).await;
    let (conn, _, topology) = broker::open(settings, "test").await.unwrap();
    let queue = topology.dead_letter_queue(Stage::Parse);
    for _ in 0..50 {
        if dlq::entries(&conn, &queue).await.unwrap() == 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two offsets far apart: two short reads, not the sixty between.
    let fetched = dlq::fetch(&conn, &topology, Stage::Parse, &[3, 57])
        .await
        .unwrap();
    assert_eq!(fetched.keys().copied().collect::<Vec<_>>(), vec![3, 57]);
    let letters = dlq::scan(&conn, &topology, Stage::Parse).await.unwrap();
    assert_eq!(letters.len(), 60);
    let chosen: Vec<dlq::DeadLetter> = letters
        .iter()
        .filter(|l| l.task_id == Some(tasks[10]))
        .cloned()
        .collect();
    let report = dlq::replay(&conn, &topology, Stage::Parse, &chosen, Stage::Parse)
        .await
        .unwrap();
    assert_eq!(report.replayed, vec![tasks[10]]);
    assert_eq!(report.settled, vec![10]);
    let pending = dlq::scan(&conn, &topology, Stage::Parse).await.unwrap();
    assert_eq!(pending.len(), 59, "only the replayed one is settled");
    assert!(pending.iter().all(|l| l.task_id != Some(tasks[10])));
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test]
async fn a_task_whose_artifact_is_lost_is_replayed_from_the_stage_that_made_it() {
    let pipeline = test_pipeline(|_| {});
    let settings = pipeline.settings.clone();
    let app = TestApp::start(&settings).await;
    // Everything but filter: the task waits at filter with its parsed
    // artifact written.
    for stage in [Stage::Ingest, Stage::Parse, Stage::Extract] {
        pipeline.start(stage, pipeline.real_handler(stage));
    }
    let task = pipeline.submit_files(&["en_itt.md"]).await[0];
    app.wait_for(&format!("/v1/tasks/{task}"), 60, |v| {
        v["stages"][1]["state"] == "succeeded"
    })
    .await;
    // The parsed artifact is lost (not yet on disk at a power cut).
    let (_, events) = app.get(&format!("/v1/tasks/{task}/events")).await;
    let parsed = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["stage"] == "parse" && e["kind"] == "succeeded")
        .and_then(|e| e["artifact"]["key"].as_str())
        .unwrap()
        .to_string();
    std::fs::remove_file(settings.store.root.join(&parsed)).unwrap();
    pipeline.start(Stage::Filter, pipeline.real_handler(Stage::Filter));
    let failed = app
        .wait_for(&format!("/v1/tasks/{task}"), 60, |v| v["state"] == "failed")
        .await;
    let error = &failed["last_error"];
    assert_eq!(error["kind"], "missing_artifact", "{failed}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("--from parse"),
        "says where from: {message}"
    );

    // Replaying at filter would fail again; from parse it makes the
    // artifact anew and the task completes.
    let response = app
        .http
        .post(app.url("/v1/dead-letters/replay"))
        .json(&json!({"stage": "filter", "task_ids": [task], "from": "extract"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "extract is later"
    );
    let response = app
        .http
        .post(app.url("/v1/dead-letters/replay"))
        .json(&json!({"stage": "filter", "task_ids": [task], "from": "parse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["replayed"], json!([task]), "{report}");
    assert_eq!(report["from"], "parse");
    let done = app
        .wait_for(&format!("/v1/tasks/{task}"), 60, |v| v["state"] == "done")
        .await;
    assert!(done["summary"].is_object(), "{done}");
    assert!(settings.store.root.join(&parsed).exists(), "made again");
    let (_, waiting) = app.get("/v1/dead-letters?stage=filter").await;
    assert_eq!(waiting["dead_letters"], json!([]));
    let (_, all) = app.get("/v1/dead-letters?stage=filter&settled=true").await;
    assert_eq!(all["dead_letters"][0]["settled_by"], "replayed", "{all}");

    // A summary lost from the store answers 404 gone, with advice.
    let summary = done["summary"]["key"].as_str().unwrap();
    std::fs::remove_file(settings.store.root.join(summary)).unwrap();
    let (status, body) = app.get(&format!("/v1/tasks/{task}/summary")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "gone");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("submit its documents again"),
        "{body}"
    );
    app.stop().await;
    pipeline.teardown().await;
}

#[tokio::test]
async fn a_message_the_broker_dead_letters_itself_shows_its_task_failed() {
    let pipeline = test_pipeline(|_| {});
    let settings = pipeline.settings.clone();
    let app = TestApp::start(&settings).await;
    pipeline.start(Stage::Ingest, pipeline.real_handler(Stage::Ingest));
    let task = pipeline.submit_files(&["en_itt.md"]).await[0];
    app.wait_for(&format!("/v1/tasks/{task}"), 30, |v| {
        v["stages"][0]["state"] == "succeeded"
    })
    .await;
    // A consumer that is not ours (or a worker dying before its own check)
    // hands the parse message back again and again, until the queue's
    // delivery limit: the broker dead-letters it, with none of our headers
    // and no event.
    let (conn, channel, topology) = broker::open(&settings, "test-returner").await.unwrap();
    channel
        .basic_qos(1, BasicQosOptions::default())
        .await
        .unwrap();
    let mut returns = channel
        .basic_consume(
            topology.stage_queue(Stage::Parse).as_str().into(),
            "returner".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let dlq_name = topology.dead_letter_queue(Stage::Parse);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while dlq::entries(&conn, &dlq_name).await.unwrap() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dead-lettered"
        );
        if let Ok(Some(delivery)) =
            tokio::time::timeout(Duration::from_millis(200), returns.next()).await
        {
            let delivery = delivery.unwrap();
            delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    multiple: false,
                })
                .await
                .unwrap();
        }
    }
    let _ = channel.close(200, "done".into()).await;
    let failed = app
        .wait_for(&format!("/v1/tasks/{task}"), 30, |v| v["state"] == "failed")
        .await;
    assert_eq!(failed["last_error"]["kind"], "delivery_limit", "{failed}");
    assert_eq!(failed["stage"], "parse");
    let (_, listed) = app.get("/v1/dead-letters?stage=parse").await;
    let letter = &listed["dead_letters"][0];
    assert_eq!(letter["by_broker"], true, "{listed}");
    assert_eq!(letter["task_id"], task.to_string());
    assert_eq!(letter["replayable"], true);
    // Announced once, however often the stream is read: a second projector
    // on the same view folds to the same task.
    let events = app.get(&format!("/v1/tasks/{task}/events")).await.1;
    let announced = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "dead_lettered")
        .count();
    assert_eq!(announced, 1, "{events}");
    let _ = conn.close(200, "done".into()).await;
    app.stop().await;
    pipeline.teardown().await;
}
