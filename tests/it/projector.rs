//! The projector against the real broker: a restart resumes from the stored
//! offset, and a projector with an empty store rebuilds the identical view.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use tenderflow::envelope::{ArtifactRef, Stage, TaskOptions};
use tenderflow::events::{DocumentInfo, EVENT_SCHEMA, ErrorInfo, Event, EventKind};
use tenderflow::projector::db::ViewDb;
use tenderflow::projector::view::{TaskView, fold};
use uuid::Uuid;

use crate::api::{TestApp, publish_events, test_pipeline};

/// A varied run of one task: some finish, some retry, some die in a
/// dead-letter queue; timestamps are spread so order matters to the fold.
pub(crate) fn task_events(i: usize) -> Vec<Event> {
    let task_id = Uuid::now_v7();
    let mut clock = 0i64;
    let mut events = Vec::new();
    let mut push = |stage: Stage, attempt: u32, kind: EventKind| {
        clock += 3;
        events.push(Event {
            callback: None,
            schema: EVENT_SCHEMA,
            event_id: Uuid::now_v7(),
            task_id,
            stage,
            attempt,
            at: Utc
                .timestamp_millis_opt(1_780_000_000_000 + i as i64 * 100 + clock)
                .unwrap(),
            kind,
        });
    };
    let documents = vec![DocumentInfo {
        filename: format!("notice-{i}.md"),
        sha256: format!("{i:064x}"),
        size: 100 + i as u64,
    }];
    let options = TaskOptions::default();
    push(
        Stage::Ingest,
        1,
        EventKind::Received {
            documents,
            options,
            external_id: None,
        },
    );
    let reached = i % 5;
    for stage in Stage::ALL.into_iter().take(reached) {
        let mut attempt = 1;
        if i.is_multiple_of(3) {
            push(stage, 1, EventKind::Started);
            let error = ErrorInfo {
                kind: "transient".into(),
                message: "busy".into(),
            };
            let due_at = Utc.timestamp_millis_opt(1_790_000_000_000).unwrap();
            push(stage, 1, EventKind::RetryScheduled { error, due_at });
            attempt = 2;
        }
        push(stage, attempt, EventKind::Started);
        push(
            stage,
            attempt,
            EventKind::Succeeded {
                artifact: None,
                duration_ms: 4,
                files: Vec::new(),
            },
        );
    }
    if reached == 4 {
        let summary = ArtifactRef {
            key: format!("summaries/{i}"),
            sha256: "00".repeat(32),
            size: 9,
        };
        push(Stage::Extract, 1, EventKind::Completed { summary });
    } else if i.is_multiple_of(2) {
        let stage = Stage::ALL[reached];
        let error = ErrorInfo {
            kind: "unsupported_type".into(),
            message: "no".into(),
        };
        push(stage, 1, EventKind::Started);
        push(stage, 1, EventKind::DeadLettered { error });
    }
    events
}

/// What the view must be: the pure fold of every event, per task.
pub(crate) fn expected(events: &[Event]) -> Vec<TaskView> {
    let mut by_task: BTreeMap<Uuid, Vec<&Event>> = BTreeMap::new();
    for event in events {
        by_task.entry(event.task_id).or_default().push(event);
    }
    by_task.into_values().map(|e| fold(e).unwrap()).collect()
}

async fn wait_for_view(db: &ViewDb, want: &[TaskView], secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let views = db.all_views().unwrap();
        if views == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "view not complete after {secs} s: {} of {} tasks",
            views.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn wait_for_offset(db: &ViewDb, offset: u64, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while db.offset().unwrap() != Some(offset) {
        let at = db.offset().unwrap();
        assert!(
            tokio::time::Instant::now() < deadline,
            "offset {at:?}, not {offset}, after {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_restarted_projector_resumes_and_matches_one_rebuilt_from_empty() {
    let pipeline = test_pipeline(|_| {});
    let settings = &*pipeline.settings;
    let tasks = 300;
    let all: Vec<Event> = (0..tasks).flat_map(task_events).collect();
    let (first, second) = all.split_at(all.len() / 2);
    // Some events of the first half come again in the second (redelivery),
    // and the second half arrives in reverse (other publishers).
    let mut later: Vec<Event> = second.iter().rev().cloned().collect();
    later.extend(first.iter().step_by(7).cloned());

    publish_events(settings, first).await;
    let app = TestApp::start(settings).await;
    // Stop it as soon as it has written its first batch.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while app.db.offset().unwrap().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing read in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let db = app.db.clone();
    app.stop().await;
    let stopped_at = db.offset().unwrap().unwrap();
    // Usually a batch or two into the first half (batches hold up to 500);
    // on a busy machine it may have read all of it. Either way the second
    // half is published while it is stopped, so it must resume.
    assert!(stopped_at < first.len() as u64);

    publish_events(settings, &later).await;
    let started = std::time::Instant::now();
    let restarted = TestApp::start(settings).await;
    let want = expected(&all);
    let published = (first.len() + later.len()) as u64;
    // The view can be complete before the offset is (the last entries are
    // redeliveries), so wait for the last entry, then compare.
    wait_for_offset(&restarted.db, published - 1, 60).await;
    let resumed_in = started.elapsed();
    assert_eq!(restarted.db.all_views().unwrap(), want);
    let end = published - 1;

    // A second projector, empty store, same broker, side by side.
    let other_dir = tempfile::tempdir().unwrap();
    let mut other = settings.clone();
    other.projector.db_path = other_dir.path().join("view.sqlite3");
    let started = std::time::Instant::now();
    let rebuilt = TestApp::start(&other).await;
    wait_for_offset(&rebuilt.db, end, 60).await;
    assert_eq!(rebuilt.db.all_views().unwrap(), want);
    eprintln!(
        "{} events, {} tasks: stopped at offset {stopped_at}, resumed to done in {resumed_in:?}, \
         rebuilt from empty in {:?}",
        published,
        tasks,
        started.elapsed()
    );
    assert_eq!(
        rebuilt.db.all_views().unwrap(),
        restarted.db.all_views().unwrap()
    );
    // Ready once it has seen the stream go quiet.
    let ready = rebuilt.wait_for("/readyz", 5, |_| true).await;
    assert_eq!(ready["stream_offset"], end, "{ready}");

    restarted.stop().await;
    rebuilt.stop().await;
}

#[tokio::test]
async fn the_task_list_pages_newest_first_with_filters() {
    let pipeline = test_pipeline(|_| {});
    let settings = &*pipeline.settings;
    let events: Vec<Event> = (0..12).flat_map(task_events).collect();
    publish_events(settings, &events).await;
    let app = TestApp::start(settings).await;
    let want = expected(&events);
    wait_for_view(&app.db, &want, 30).await;

    let mut seen = Vec::new();
    let mut path = "/v1/tasks?limit=5".to_string();
    loop {
        let (status, page) = app.get(&path).await;
        assert_eq!(status, reqwest::StatusCode::OK);
        for task in page["tasks"].as_array().unwrap() {
            seen.push(task["task_id"].as_str().unwrap().parse::<Uuid>().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/tasks?limit=5&cursor={cursor}"),
            None => break,
        }
    }
    let mut newest_first: Vec<Uuid> = want.iter().map(|v| v.task_id).collect();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    let (_, done) = app.get("/v1/tasks?state=done").await;
    let done_count = want.iter().filter(|v| v.state.as_str() == "done").count();
    assert!(done_count > 0);
    assert_eq!(done["tasks"].as_array().unwrap().len(), done_count);
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    let line = format!("tenderflow_tasks{{state=\"done\"}} {done_count}");
    assert!(metrics.contains(&line), "{metrics}");
    let (_, at_parse) = app.get("/v1/tasks?stage=parse").await;
    for task in at_parse["tasks"].as_array().unwrap() {
        assert_eq!(task["stage"], "parse");
    }
    app.stop().await;
}

fn event(task_id: Uuid, stage: Stage, kind: EventKind) -> Event {
    Event {
        callback: None,
        schema: EVENT_SCHEMA,
        event_id: Uuid::now_v7(),
        task_id,
        stage,
        attempt: 1,
        at: Utc::now(),
        kind,
    }
}

#[tokio::test]
async fn a_watch_sends_each_change_and_ends_when_the_task_fails() {
    let pipeline = test_pipeline(|_| {});
    let settings = &*pipeline.settings;
    let app = TestApp::start(settings).await;
    let task = Uuid::now_v7();
    let received = EventKind::Received {
        documents: Vec::new(),
        options: TaskOptions::default(),
        external_id: None,
    };
    publish_events(settings, &[event(task, Stage::Ingest, received)]).await;
    let path = format!("/v1/tasks/{task}");
    app.wait_for(&path, 10, |_| true).await;

    let client = tenderflow::client::ApiClient::new(app.base.clone(), None);
    let (sent, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let follower = tokio::spawn(async move {
        client
            .follow(task, |v| sent.send(v.state.as_str().to_string()).unwrap())
            .await
    });
    let next_state = async |seen: &mut tokio::sync::mpsc::UnboundedReceiver<String>| {
        tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .expect("a view within 10 s")
    };
    assert_eq!(next_state(&mut seen).await.as_deref(), Some("queued"));
    let error = ErrorInfo {
        kind: "transient".into(),
        message: "busy".into(),
    };
    let steps = [
        (EventKind::Started, "running"),
        (
            EventKind::RetryScheduled {
                error: error.clone(),
                due_at: Utc::now(),
            },
            "retrying",
        ),
        (EventKind::DeadLettered { error }, "failed"),
    ];
    for (kind, state) in steps {
        publish_events(settings, &[event(task, Stage::Ingest, kind)]).await;
        assert_eq!(next_state(&mut seen).await.as_deref(), Some(state));
    }
    let last = tokio::time::timeout(Duration::from_secs(10), follower)
        .await
        .expect("the watch ends once the task failed")
        .unwrap();
    assert_eq!(seen.recv().await, None, "nothing after the end");
    let last = last.unwrap();
    assert_eq!(last.last_error.unwrap().kind, "transient");
    app.stop().await;
}

#[tokio::test]
async fn unreadable_stream_entries_are_skipped_and_counted() {
    let pipeline = test_pipeline(|_| {});
    let settings = &*pipeline.settings;
    let (conn, channel, topology) = tenderflow::broker::open(settings, "test-garbage")
        .await
        .unwrap();
    let garbage =
        tenderflow::broker::Outgoing::new(topology.events_exchange(), "", b"{oops".to_vec());
    tenderflow::broker::publish_all(&channel, &[garbage])
        .await
        .unwrap();
    let _ = conn.close(200, "done".into()).await;
    let events = task_events(4);
    publish_events(settings, &events).await;

    let app = TestApp::start(settings).await;
    wait_for_view(&app.db, &expected(&events), 10).await;
    let ready = app.wait_for("/readyz", 10, |_| true).await;
    assert_eq!(ready["skipped_events"], 1, "{ready}");
    assert_eq!(ready["stream_offset"], events.len(), "{ready}");
    app.stop().await;
}

#[tokio::test]
async fn without_a_broker_reads_still_work_and_readiness_says_why() {
    let pipeline = test_pipeline(|_| {});
    let mut settings = (*pipeline.settings).clone();
    let events = task_events(8);
    publish_events(&settings, &events).await;
    let app = TestApp::start(&settings).await;
    wait_for_view(&app.db, &expected(&events), 10).await;
    app.stop().await;

    // Nothing listens on port 1.
    settings.amqp.url = tenderflow::config::Secret::new("amqp://guest:guest@127.0.0.1:1/%2f");
    let app = TestApp::start(&settings).await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "not_ready");
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let (status, view) = app.get(&format!("/v1/tasks/{}", events[0].task_id)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "the stored view answers");
    assert_eq!(view["documents"][0]["filename"], "notice-8.md");
    let response = app
        .http
        .post(app.url("/v1/documents?filename=a.md"))
        .body("# 招标公告\n\n项目名称：测试\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    // Dead letters are listed from the stored index; replaying needs the
    // broker.
    let (status, body) = app.get("/v1/dead-letters").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["dead_letters"], serde_json::json!([]));
    let response = app
        .http
        .post(app.url("/v1/dead-letters/replay"))
        .json(&serde_json::json!({"stage": "parse", "limit": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    app.stop().await;
}

/// Not a check, a measurement: `cargo test --test it throughput -- --ignored
/// --nocapture` prints how fast an empty store rebuilds and how fast the API
/// answers single-task reads.
#[tokio::test]
#[ignore]
async fn throughput() {
    let pipeline = test_pipeline(|_| {});
    let settings = &*pipeline.settings;
    let tasks = 3000;
    let events: Vec<Event> = (0..tasks).flat_map(task_events).collect();
    let started = std::time::Instant::now();
    publish_events(settings, &events).await;
    let published_in = started.elapsed();
    let started = std::time::Instant::now();
    let app = TestApp::start(settings).await;
    wait_for_offset(&app.db, events.len() as u64 - 1, 300).await;
    let rebuilt_in = started.elapsed();
    let want = expected(&events);
    assert_eq!(app.db.all_views().unwrap(), want);
    let reads = 1000;
    let started = std::time::Instant::now();
    for view in want.iter().cycle().take(reads) {
        let (status, _) = app.get(&format!("/v1/tasks/{}", view.task_id)).await;
        assert_eq!(status, reqwest::StatusCode::OK);
    }
    let read_in = started.elapsed();
    eprintln!(
        "{} events of {tasks} tasks: published in {published_in:?}; rebuilt from empty in \
         {rebuilt_in:?} ({:.0} events/s); {reads} sequential GET /v1/tasks/{{id}} in {read_in:?} \
         ({:.2} ms each)",
        events.len(),
        events.len() as f64 / rebuilt_in.as_secs_f64(),
        read_in.as_secs_f64() * 1000.0 / reads as f64,
    );
    app.stop().await;
}

#[tokio::test]
async fn an_open_watch_does_not_hold_up_shutdown() {
    let pipeline = test_pipeline(|_| {});
    let settings = &*pipeline.settings;
    let events = task_events(1);
    publish_events(settings, &events[..1]).await;
    let app = TestApp::start(settings).await;
    let path = format!("/v1/tasks/{}", events[0].task_id);
    app.wait_for(&path, 10, |_| true).await;
    let mut watch = app
        .http
        .get(app.url(&format!("{path}/watch")))
        .send()
        .await
        .unwrap();
    let first = watch.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("\"queued\""));
    // Stops within its 10 s bound although the watched task is not done.
    app.stop().await;
    let rest = tokio::time::timeout(Duration::from_secs(5), watch.chunk()).await;
    assert!(
        matches!(rest, Ok(Ok(None)) | Ok(Err(_))),
        "the stream ended"
    );
}

#[tokio::test]
async fn a_cut_connection_is_re_established_and_reading_resumes() {
    let pipeline = test_pipeline(|_| {});
    let settings = &*pipeline.settings;
    let before = task_events(4);
    publish_events(settings, &before).await;
    let app = TestApp::start(settings).await;
    wait_for_view(&app.db, &expected(&before), 10).await;
    app.wait_for("/readyz", 10, |_| true).await;

    let closed = crate::helpers::close_worker_connections(&settings.topology.prefix);
    assert_eq!(
        closed, 2,
        "the projector's connections (events, dead letters) carry the prefix"
    );
    let after = task_events(9);
    publish_events(settings, &after).await;
    let all: Vec<Event> = before.iter().chain(&after).cloned().collect();
    wait_for_view(&app.db, &expected(&all), 30).await;
    app.wait_for("/readyz", 10, |_| true).await;
    app.stop().await;
}

#[tokio::test]
async fn a_stage_batches_its_events_into_few_entries_and_confirms_each_sender() {
    let pipeline = test_pipeline(|_| {});
    let settings = &*pipeline.settings;
    let (conn, channel, topology) = tenderflow::broker::open(settings, "test-sink")
        .await
        .unwrap();
    let sink = tenderflow::broker::EventSink::start(channel, &topology);
    // Forty tasks' events, each task's handed over on its own, one after
    // another, letting the sink run in between, as deliveries in hand would.
    let tasks: Vec<Vec<Event>> = (0..40).map(task_events).collect();
    let events = tasks.concat();
    let mut confirms = Vec::new();
    for task in tasks {
        confirms.push(sink.send(task).await);
        tokio::task::yield_now().await;
    }
    for confirm in confirms {
        confirm
            .wait()
            .await
            .expect("every sender learns its events are confirmed");
    }
    drop(sink);
    let _ = conn.close(200, "done".into()).await;

    let app = TestApp::start(settings).await;
    wait_for_view(&app.db, &expected(&events), 10).await;
    let entries = app.db.offset().unwrap().expect("an offset") + 1;
    // The first hand-over goes out alone, at once; the rest arrive while it
    // is in flight and go out together (at most 256 events an entry). A sink
    // that published each hand-over alone would write forty.
    assert!(
        entries <= 20 && entries >= (events.len() as u64).div_ceil(256),
        "{entries} stream entries for 40 hand-overs of {} events",
        events.len()
    );
    app.stop().await;
}
