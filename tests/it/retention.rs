//! Retention and snapshots of the projector against the real broker: old
//! finished tasks leave the view (and stay gone when a late event of them
//! comes), while unfinished ones and those with a waiting dead letter stay;
//! a replica restored from a snapshot and fed the rest of the stream holds
//! the same views as one that folded everything; restore refuses what it
//! must.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;
use tenderflow::envelope::{ArtifactRef, Stage, TaskOptions};
use tenderflow::events::{EVENT_SCHEMA, ErrorInfo, Event, EventKind};
use uuid::Uuid;

use crate::api::{TestApp, publish_events, test_pipeline};
use crate::projector::{expected, task_events, wait_for_offset};

fn event(task_id: Uuid, days_ago: i64, kind: EventKind) -> Event {
    Event {
        callback: None,
        schema: EVENT_SCHEMA,
        event_id: Uuid::now_v7(),
        task_id,
        stage: Stage::Extract,
        attempt: 1,
        at: Utc::now() - chrono::Duration::days(days_ago),
        kind,
    }
}

fn received(task_id: Uuid, days_ago: i64) -> Event {
    let kind = EventKind::Received {
        documents: Vec::new(),
        options: TaskOptions::default(),
        external_id: Some(format!("ref-{task_id}")),
    };
    event(task_id, days_ago, kind)
}

fn completed(task_id: Uuid, days_ago: i64) -> Event {
    let summary = ArtifactRef {
        key: format!("summaries/{task_id}"),
        sha256: "00".repeat(32),
        size: 9,
    };
    event(task_id, days_ago, EventKind::Completed { summary })
}

fn dead_lettered(task_id: Uuid, days_ago: i64) -> Event {
    let error = ErrorInfo {
        kind: "corrupt".into(),
        message: "not a document".into(),
    };
    event(task_id, days_ago, EventKind::DeadLettered { error })
}

#[tokio::test]
async fn old_finished_tasks_are_pruned_and_stay_pruned_the_rest_stays() {
    let pipeline = test_pipeline(|settings| {
        settings.projector.retain_finished_days = 30;
        settings.projector.retention_interval_ms = 100;
    });
    let settings = &*pipeline.settings;
    // A failed task whose dead letter waits in parse's dead-letter stream.
    let waiting = crate::dead_letters::park(settings, 1).await[0];
    let (old, recent, unfinished) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let events = vec![
        received(old, 40),
        completed(old, 40),
        received(recent, 3),
        completed(recent, 3),
        received(unfinished, 40),
        event(unfinished, 40, EventKind::Started),
        received(waiting, 40),
        dead_lettered(waiting, 40),
    ];
    publish_events(settings, &events).await;
    let app = TestApp::start(settings).await;
    wait_for_offset(&app.db, events.len() as u64 - 1, 20).await;
    // The dead letter is indexed, and the old task pruned, within a few passes.
    app.wait_for("/v1/dead-letters", 20, |body| {
        body["dead_letters"]
            .as_array()
            .is_some_and(|d| d.len() == 1)
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while app.db.task(old).unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "not pruned in 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = app.get(&format!("/v1/tasks/{old}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("retention pruned it"), "{message}");
    let (status, _) = app.get(&format!("/v1/tasks/{old}/events")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, by_ref) = app.get(&format!("/v1/tasks?external_id=ref-{old}")).await;
    assert_eq!(
        by_ref["tasks"],
        serde_json::json!([]),
        "its reference went too"
    );
    for kept in [recent, unfinished, waiting] {
        let (status, body) = app.get(&format!("/v1/tasks/{kept}")).await;
        assert_eq!(status, StatusCode::OK, "{kept}: {body}");
    }
    let (_, failed) = app.get(&format!("/v1/tasks/{waiting}")).await;
    assert_eq!(failed["state"], "failed");

    // A late event of the pruned task (a redelivery, a replay) does not
    // bring back a view without its beginning.
    let late = vec![
        event(old, 0, EventKind::Started),
        received(Uuid::now_v7(), 0),
    ];
    publish_events(settings, &late).await;
    wait_for_offset(&app.db, (events.len() + late.len()) as u64 - 1, 20).await;
    assert!(app.db.task(old).unwrap().is_none());
    assert_eq!(app.db.pruned(old).unwrap().map(|(_, late)| late), Some(1));
    assert!(app.db.task(late[1].task_id).unwrap().is_some());
    let (status, _) = app.get(&format!("/v1/tasks/{old}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// Runs `tenderflow projector ARGS` on the view database `db`.
fn projector_command(db: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tenderflow"))
        .arg("projector")
        .args(args)
        .env_remove("TENDERFLOW_CONFIG")
        .env("TENDERFLOW__PROJECTOR__DB_PATH", db)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn a_replica_restored_from_a_snapshot_and_the_stream_equals_a_full_fold() {
    let pipeline = test_pipeline(|_| {});
    let settings = &*pipeline.settings;
    let all: Vec<Event> = (0..120).flat_map(task_events).collect();
    let (first, second) = all.split_at(all.len() / 2);
    publish_events(settings, first).await;
    let full = TestApp::start(settings).await;
    wait_for_offset(&full.db, first.len() as u64 - 1, 30).await;

    // Taken by the command while the projector runs (and keeps writing).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snapshot.sqlite3");
    let publishing = {
        let settings = settings.clone();
        let second = second.to_vec();
        tokio::spawn(async move { publish_events(&settings, &second).await })
    };
    let output = projector_command(
        &settings.projector.db_path,
        &["snapshot", file.to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("stream offset"), "{}", text(&output));
    // Neither a restore nor a vacuum runs under the projector.
    for args in [
        vec!["restore", "--force", file.to_str().unwrap()],
        vec!["vacuum"],
    ] {
        let output = projector_command(&settings.projector.db_path, &args);
        assert!(!output.status.success(), "{args:?}: {}", text(&output));
        assert!(
            text(&output).contains("in use by a running `tenderflow serve`"),
            "{args:?}: {}",
            text(&output)
        );
    }
    publishing.await.unwrap();

    let replica_db = dir.path().join("replica/view.sqlite3");
    let output = projector_command(&replica_db, &["restore", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let restored_at = tenderflow::projector::db::ViewDb::open(&replica_db)
        .unwrap()
        .offset()
        .unwrap()
        .expect("the snapshot's offset");
    assert!(restored_at >= first.len() as u64 - 1, "{restored_at}");

    let mut replica_settings = settings.clone();
    replica_settings.projector.db_path = replica_db;
    let replica = TestApp::start(&replica_settings).await;
    let end = all.len() as u64 - 1;
    wait_for_offset(&full.db, end, 60).await;
    wait_for_offset(&replica.db, end, 60).await;
    let want = expected(&all);
    assert_eq!(full.db.all_views().unwrap(), want);
    assert_eq!(replica.db.all_views().unwrap(), want);
    let ready = replica.wait_for("/readyz", 10, |_| true).await;
    assert_eq!(ready["lost_events"], 0, "{ready}");
    full.stop().await;
    replica.stop().await;
}

#[test]
fn restore_refuses_a_database_with_tasks_and_a_damaged_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.sqlite3");
    let db = tenderflow::projector::db::ViewDb::open(&live).unwrap();
    let batch = tenderflow::projector::db::Batch {
        events: vec![received(Uuid::now_v7(), 0)],
        last_offset: 3,
    };
    db.apply(&batch).unwrap();
    let file = dir.path().join("snapshot.sqlite3");
    let output = projector_command(&live, &["snapshot", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));

    let other = dir.path().join("other.sqlite3");
    let other_db = tenderflow::projector::db::ViewDb::open(&other).unwrap();
    let mut batch = batch.clone();
    batch.events = vec![received(Uuid::now_v7(), 0), received(Uuid::now_v7(), 0)];
    other_db.apply(&batch).unwrap();
    drop(other_db);
    let output = projector_command(&other, &["restore", file.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(text(&output).contains("not empty"), "{}", text(&output));
    assert!(text(&output).contains("--force"), "{}", text(&output));
    let kept = tenderflow::projector::db::ViewDb::open(&other).unwrap();
    assert_eq!(kept.all_views().unwrap().len(), 2, "left as it was");
    drop(kept);
    let output = projector_command(&other, &["restore", "--force", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let restored = tenderflow::projector::db::ViewDb::open(&other).unwrap();
    assert_eq!(restored.all_views().unwrap(), db.all_views().unwrap());
    assert_eq!(restored.offset().unwrap(), Some(3));

    // A damaged snapshot: the file cut short.
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.path().join("cut.sqlite3");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let empty = dir.path().join("empty/view.sqlite3");
    let output = projector_command(&empty, &["restore", cut.to_str().unwrap()]);
    assert!(!output.status.success());
    let said = text(&output);
    assert!(said.contains("not a usable snapshot"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
    assert!(!empty.exists(), "nothing installed");
}

#[test]
fn vacuum_prunes_old_finished_tasks_and_gives_the_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("view.sqlite3");
    let db = tenderflow::projector::db::ViewDb::open(&path).unwrap();
    let old: Vec<Uuid> = (0..300).map(|_| Uuid::now_v7()).collect();
    let recent = Uuid::now_v7();
    let mut events: Vec<Event> = old
        .iter()
        .flat_map(|t| [received(*t, 200), completed(*t, 200)])
        .collect();
    events.extend([received(recent, 1), completed(recent, 1)]);
    db.apply(&tenderflow::projector::db::Batch {
        events,
        last_offset: 601,
    })
    .unwrap();
    drop(db);
    let output = projector_command(&path, &["vacuum"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("pruned 300 finished tasks"),
        "{}",
        text(&output)
    );
    let db = tenderflow::projector::db::ViewDb::open(&path).unwrap();
    let views = db.all_views().unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].task_id, recent);
    assert_eq!(db.offset().unwrap(), Some(601), "the offset stays");
    let free: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    assert_eq!(free, 0, "every freed page went back");
}
