//! The backbone end to end: stages, retries, dead letters, replay, restarts
//! and bad input, on the real broker.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use lapin::options::BasicGetOptions;
use tenderflow::broker::{self, Outgoing};
use tenderflow::config::WorkQueues;
use tenderflow::dlq;
use tenderflow::envelope::{DocumentRef, Envelope, Stage, TaskOptions};
use tenderflow::events::{Event, EventKind};
use tenderflow::submit::{Outcome, Submitter};
use tenderflow::summary::Summary;

use crate::helpers::{Flaky, Panics, TestPipeline, outcomes};

/// Follows `tasks` and keeps every event of theirs.
async fn events_until_done(
    pipeline: &TestPipeline,
    follower: tenderflow::submit::Follower,
    tasks: &[uuid::Uuid],
) -> (Vec<Event>, std::collections::BTreeMap<uuid::Uuid, Outcome>) {
    let mut events = Vec::new();
    let done = tokio::time::timeout(
        Duration::from_secs(60),
        follower.wait(tasks, |e| events.push(e.clone())),
    )
    .await
    .expect("tasks end in time")
    .unwrap();
    let _ = pipeline;
    (events, done)
}

fn failure(outcome: &Outcome) -> (Stage, String, String) {
    match outcome {
        Outcome::Failed {
            stage,
            kind,
            message,
        } => (*stage, kind.clone(), message.clone()),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_document_goes_through_all_four_stages_and_its_summary_is_stored() {
    let pipeline = TestPipeline::new(|_, _| {});
    pipeline.start_all();
    let follower = pipeline.follower().await;
    let tasks = pipeline.submit_files(&["cn_selection.md"]).await;
    let (events, done) = events_until_done(&pipeline, follower, &tasks).await;

    let Outcome::Completed { summary_key } = &done[&tasks[0]] else {
        panic!("task failed: {:?}", done[&tasks[0]]);
    };
    for stage in Stage::ALL {
        assert!(
            events
                .iter()
                .any(|e| e.stage == stage && matches!(e.kind, EventKind::Succeeded { .. })),
            "{stage} reported no success"
        );
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Received { .. }))
    );
    let bytes = std::fs::read(pipeline.settings.store.root.join(summary_key)).unwrap();
    let mut summary: Summary = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(summary.schema, tenderflow::summary::SUMMARY_SCHEMA);
    // The same summary as extracting in-process: the pipeline adds the list
    // of the task's files and nothing else, and loses nothing.
    let listed = std::mem::take(&mut summary.documents);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "cn_selection.md");
    assert_eq!(listed[0].role, tenderflow::envelope::Role::Main);
    assert_eq!(listed[0].document, Some(0));
    let direct = tenderflow::extract::summarize_files(&[crate::helpers::corpus("cn_selection.md")])
        .await
        .unwrap();
    assert_eq!(summary, direct);
    assert!(
        summary.fields.contains_key("project"),
        "{:?}",
        summary.fields.keys()
    );
    for stage in Stage::ALL {
        assert_eq!(
            pipeline
                .depth(&pipeline.topology().stage_queue(stage))
                .await,
            0
        );
    }
    pipeline.teardown().await;
}

#[tokio::test]
async fn a_transient_failure_is_retried_after_the_tier_delay_then_succeeds() {
    let pipeline = TestPipeline::new(|_, _| {});
    pipeline.start_all_but(
        Stage::Parse,
        Flaky {
            inner: pipeline.real_handler(Stage::Parse),
            failures: Arc::new(AtomicU32::new(1)),
            transient: true,
        },
    );
    let follower = pipeline.follower().await;
    let tasks = pipeline.submit_files(&["cn_selection.md"]).await;
    let (events, done) = events_until_done(&pipeline, follower, &tasks).await;

    assert!(
        matches!(done[&tasks[0]], Outcome::Completed { .. }),
        "{:?}",
        done[&tasks[0]]
    );
    let retry = events
        .iter()
        .find(|e| e.stage == Stage::Parse && matches!(e.kind, EventKind::RetryScheduled { .. }))
        .expect("a retry was scheduled");
    let EventKind::RetryScheduled { due_at, error } = &retry.kind else {
        unreachable!()
    };
    assert_eq!(error.kind, "transient");
    assert_eq!(
        (*due_at - retry.at).num_milliseconds(),
        200,
        "first tier is 200 ms"
    );
    let second = events
        .iter()
        .filter(|e| e.stage == Stage::Parse && e.attempt == 2)
        .find_map(Event::attempt_began)
        .expect("parse ran a second attempt");
    let waited = (second - retry.at).num_milliseconds();
    assert!(
        waited >= 150,
        "the retry waited in the broker ({waited} ms)"
    );
    pipeline.teardown().await;
}

#[tokio::test]
async fn transient_failures_that_persist_are_dead_lettered_after_the_last_tier() {
    let pipeline = TestPipeline::new(|_, _| {});
    pipeline.start(
        Stage::Ingest,
        Flaky {
            inner: pipeline.real_handler(Stage::Ingest),
            failures: Arc::new(AtomicU32::new(100)),
            transient: true,
        },
    );
    let follower = pipeline.follower().await;
    let tasks = pipeline.submit_files(&["en_itt.md"]).await;
    let (events, done) = events_until_done(&pipeline, follower, &tasks).await;

    let (stage, kind, message) = failure(&done[&tasks[0]]);
    assert_eq!((stage, kind.as_str()), (Stage::Ingest, "transient"));
    assert!(message.contains("gave up after 3 attempts"), "{message}");
    let retries = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::RetryScheduled { .. }))
        .count();
    assert_eq!(retries, 2, "one retry per tier");
    pipeline
        .wait_depth(&pipeline.topology().dead_letter_queue(Stage::Ingest), 1)
        .await;
    let letters = pipeline.pending_dead_letters(Stage::Ingest).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attempts, 3);
    pipeline.teardown().await;
}

#[tokio::test]
async fn a_permanent_failure_is_dead_lettered_with_headers_and_replay_completes_it() {
    let pipeline = TestPipeline::new(|_, _| {});
    pipeline.start_all_but(
        Stage::Filter,
        Flaky {
            inner: pipeline.real_handler(Stage::Filter),
            failures: Arc::new(AtomicU32::new(1)),
            transient: false,
        },
    );
    let follower = pipeline.follower().await;
    let tasks = pipeline.submit_files(&["cn_selection.md"]).await;
    let done = outcomes(follower, &tasks, 60).await;
    let (stage, kind, _) = failure(&done[&tasks[0]]);
    assert_eq!((stage, kind.as_str()), (Stage::Filter, "injected"));

    let (conn, _channel, topology) = broker::open(&pipeline.settings, "test").await.unwrap();
    pipeline
        .wait_depth(&topology.dead_letter_queue(Stage::Filter), 1)
        .await;
    let letters = dlq::scan(&conn, &topology, Stage::Filter).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.task_id, Some(tasks[0]));
    assert_eq!(letter.stage, Stage::Filter);
    assert_eq!(letter.error_kind, "injected");
    assert_eq!(letter.error_message, "injected permanent failure");
    assert_eq!(letter.attempts, 1);
    assert!(letter.first_failure_at.is_some() && letter.last_failure_at.is_some());
    assert!(letter.replayable);
    assert!(!letter.by_broker);
    // Reading changes nothing: the same letter, as often as it is read.
    for _ in 0..3 {
        assert_eq!(
            dlq::scan(&conn, &topology, Stage::Filter).await.unwrap(),
            letters
        );
    }

    let follower = pipeline.follower().await;
    let report = dlq::replay(&conn, &topology, Stage::Filter, &letters, Stage::Filter)
        .await
        .unwrap();
    assert_eq!(report.replayed, tasks);
    assert_eq!(report.settled, vec![letter.offset]);
    let mut events = Vec::new();
    let done = tokio::time::timeout(
        Duration::from_secs(60),
        follower.wait(&tasks, |e| events.push(e.clone())),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        matches!(done[&tasks[0]], Outcome::Completed { .. }),
        "{:?}",
        done[&tasks[0]]
    );
    assert!(events.iter().any(|e| matches!(e.kind, EventKind::Replayed)));
    assert!(
        dlq::scan(&conn, &topology, Stage::Filter)
            .await
            .unwrap()
            .is_empty(),
        "the replayed letter is settled"
    );
    pipeline.teardown().await;
}

#[tokio::test]
async fn malformed_messages_are_dead_lettered_with_the_reason_and_the_worker_goes_on() {
    let pipeline = TestPipeline::new(|_, _| {});
    pipeline.start_all();
    let (_conn, channel, topology) = broker::open(&pipeline.settings, "test").await.unwrap();
    let valid = Envelope::new_task(
        vec![DocumentRef {
            uri: "store:originals/00".into(),
            sha256: "00".into(),
            size: 1,
            media_type: None,
            filename: "x.md".into(),
        }],
        TaskOptions::default(),
    );
    let mut wrong_schema = serde_json::to_value(&valid).unwrap();
    wrong_schema["schema"] = 7.into();
    let mut missing = serde_json::to_value(&valid).unwrap();
    missing.as_object_mut().unwrap().remove("documents");
    let bodies: Vec<(Vec<u8>, &str)> = vec![
        (vec![0xff, 0x00, 0x13], "not valid JSON"),
        (b"{\"schema\": 1, \"task_id\": ".to_vec(), "not valid JSON"),
        (wrong_schema.to_string().into_bytes(), "schema version 7"),
        (
            missing.to_string().into_bytes(),
            "missing field `documents`",
        ),
    ];
    for (body, _) in &bodies {
        broker::publish_all(
            &channel,
            &[Outgoing::new(
                topology.work_exchange(),
                "ingest",
                body.clone(),
            )],
        )
        .await
        .unwrap();
    }
    let queue = topology.dead_letter_queue(Stage::Ingest);
    pipeline.wait_depth(&queue, 4).await;
    let letters = pipeline.pending_dead_letters(Stage::Ingest).await;
    assert_eq!(letters.len(), 4);
    for (_, reason) in &bodies {
        assert!(
            letters
                .iter()
                .any(|l| l.error_kind == "invalid_message" && l.error_message.contains(reason)),
            "no dead letter says {reason:?}: {letters:?}"
        );
    }
    assert!(letters.iter().all(|l| !l.replayable));
    let (conn, _, _) = broker::open(&pipeline.settings, "test").await.unwrap();
    let report = dlq::replay(&conn, &topology, Stage::Ingest, &letters, Stage::Ingest)
        .await
        .unwrap();
    assert!(report.replayed.is_empty());
    assert_eq!(report.skipped.len(), 4, "unreplayable letters stay");
    assert_eq!(pipeline.depth(&queue).await, 4);

    let follower = pipeline.follower().await;
    let tasks = pipeline.submit_files(&["en_itt.md"]).await;
    let done = outcomes(follower, &tasks, 60).await;
    assert!(
        matches!(done[&tasks[0]], Outcome::Completed { .. }),
        "the worker lives on"
    );
    pipeline.teardown().await;
}

#[tokio::test]
async fn a_pipeline_stopped_and_restarted_mid_stream_loses_nothing() {
    let mut pipeline = TestPipeline::new(|s, _| s.stages.concurrency = 2);
    let follower = pipeline.follower().await;
    let names: Vec<&str> = ["cn_selection.md", "en_itt.md", "cn_selection.gbk.txt"].repeat(6);
    let tasks = pipeline.submit_files(&names).await;
    pipeline.start_all();
    tokio::time::sleep(Duration::from_millis(300)).await;
    pipeline.stop().await;
    pipeline.start_all();
    let done = outcomes(follower, &tasks, 120).await;
    assert_eq!(done.len(), tasks.len());
    assert!(
        done.values()
            .all(|o| matches!(o, Outcome::Completed { .. })),
        "{done:?}"
    );
    let topology = pipeline.topology();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for stage in Stage::ALL {
        assert_eq!(
            pipeline.depth(&topology.stage_queue(stage)).await,
            0,
            "{stage} queue drained"
        );
        assert_eq!(
            pipeline.depth(&topology.dead_letter_queue(stage)).await,
            0,
            "nothing dead-lettered"
        );
    }
    pipeline.teardown().await;
}

#[tokio::test]
async fn bad_inputs_are_dead_lettered_at_ingest_with_a_clear_reason() {
    let pipeline = TestPipeline::new(|s, dir| {
        s.store.max_document_bytes = 1000;
        s.store.allowed_roots = vec![dir.join("shared")];
    });
    let root = pipeline.dir.path().join("shared");
    let outside = pipeline.dir.path().join("elsewhere");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("gone.md"), "# 招标公告").unwrap();
    std::fs::write(outside.join("secret.md"), "# secret").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.md"), root.join("escape.md")).unwrap();
    std::fs::write(root.join("empty.md"), "").unwrap();
    std::fs::write(root.join("big.md"), "#".repeat(2000)).unwrap();
    std::fs::write(root.join("binary.pdf"), [0u8, 1, 2, 3, 0, 0, 7]).unwrap();
    std::fs::write(
        root.join("legacy.doc"),
        [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0],
    )
    .unwrap();
    let cases = [
        (root.join("gone.md"), "not_found"),
        (outside.join("secret.md"), "forbidden_path"),
        (root.join("escape.md"), "forbidden_path"),
        (root.join("empty.md"), "empty"),
        (root.join("big.md"), "too_large"),
        (root.join("binary.pdf"), "unsupported_type"),
        (root.join("legacy.doc"), "corrupt"),
    ];
    let submitter = Submitter::new(Arc::clone(&pipeline.settings)).unwrap();
    let follower = pipeline.follower().await;
    let mut tasks = Vec::new();
    for (path, _) in &cases {
        let envelope = submitter
            .submit_by_reference(std::slice::from_ref(path), TaskOptions::default())
            .await
            .unwrap();
        tasks.push(envelope.task_id);
    }
    std::fs::remove_file(root.join("gone.md")).unwrap();
    pipeline.start_all();
    let done = outcomes(follower, &tasks, 60).await;
    for ((path, expected), task) in cases.iter().zip(&tasks) {
        let (stage, kind, message) = failure(&done[task]);
        assert_eq!(stage, Stage::Ingest, "{}", path.display());
        assert_eq!(kind, *expected, "{}: {message}", path.display());
        assert!(!message.is_empty());
    }
    std::fs::write(root.join("fine.md"), "# 招标公告\n项目名称：某道路工程").unwrap();
    let follower = pipeline.follower().await;
    let good = submitter
        .submit_by_reference(&[root.join("fine.md")], TaskOptions::default())
        .await
        .unwrap();
    let good = vec![good.task_id];
    let done = outcomes(follower, &good, 60).await;
    assert!(
        matches!(done[&good[0]], Outcome::Completed { .. }),
        "the worker lives on"
    );
    pipeline.teardown().await;
}

#[tokio::test]
async fn a_panicking_handler_is_contained_and_dead_letters_the_task() {
    let pipeline = TestPipeline::new(|_, _| {});
    pipeline.start_all_but(Stage::Parse, Panics);
    let follower = pipeline.follower().await;
    let tasks = pipeline
        .submit_files(&["en_itt.md", "cn_selection.md"])
        .await;
    let done = outcomes(follower, &tasks, 60).await;
    for task in &tasks {
        let (stage, kind, message) = failure(&done[task]);
        assert_eq!((stage, kind.as_str()), (Stage::Parse, "panic"));
        assert!(message.contains("injected panic"), "{message}");
    }
    pipeline.teardown().await;
}

#[tokio::test]
async fn a_message_that_keeps_killing_its_worker_is_dead_lettered_as_poison() {
    // The broker counts both returns.
    killed_then_poison(WorkQueues::Quorum, 2).await;
}

#[tokio::test]
async fn on_classic_queues_the_runtime_counts_returns_and_dead_letters_the_poison() {
    // A classic queue only marks a returned message `redelivered`: the
    // runtime counts the return itself (in a republished copy), so one
    // return plus the copy's delivery reach a limit of two.
    killed_then_poison(WorkQueues::Classic, 1).await;
}

/// Workers "die" `kills` times holding the message (taken, never acked,
/// channel gone); with a limit of `kills + 1` deliveries the next delivery
/// is poison.
async fn killed_then_poison(work_queues: WorkQueues, kills: u32) {
    let limit = kills + 1;
    let pipeline = TestPipeline::new(|s, _| {
        s.stages.max_deliveries = limit;
        s.topology.work_queues = work_queues;
    });
    let (conn, channel, topology) = broker::open(&pipeline.settings, "test").await.unwrap();
    let follower = pipeline.follower().await;
    let tasks = pipeline.submit_files(&["en_itt.md"]).await;
    for _ in 0..kills {
        let victim = conn.create_channel().await.unwrap();
        let taken = victim
            .basic_get(
                topology.stage_queue(Stage::Ingest).as_str().into(),
                BasicGetOptions { no_ack: false },
            )
            .await
            .unwrap();
        assert!(taken.is_some(), "the message is in the ingest queue");
        victim.close(200, "crash".into()).await.unwrap();
    }
    drop(channel);
    pipeline.start_all();
    let done = outcomes(follower, &tasks, 60).await;
    let (stage, kind, message) = failure(&done[&tasks[0]]);
    assert_eq!((stage, kind.as_str()), (Stage::Ingest, "poison"));
    assert!(
        message.contains(&format!("delivered {limit} times")),
        "{message}"
    );
    pipeline.teardown().await;
}

#[tokio::test]
async fn workers_reconnect_and_finish_the_work_when_their_connections_are_cut() {
    let pipeline = TestPipeline::new(|_, _| {});
    pipeline.start_all();
    let follower = pipeline.follower().await;
    let tasks = pipeline
        .submit_files(&[
            "cn_selection.md",
            "en_itt.md",
            "cn_selection.gbk.txt",
            "en_itt.md",
        ])
        .await;
    let prefix = pipeline.settings.topology.prefix.clone();
    let closed =
        tokio::task::spawn_blocking(move || crate::helpers::close_worker_connections(&prefix))
            .await
            .unwrap();
    assert!(
        closed >= 4,
        "every stage worker had a connection to cut ({closed})"
    );
    let done = outcomes(follower, &tasks, 90).await;
    assert!(
        done.values()
            .all(|o| matches!(o, Outcome::Completed { .. })),
        "{done:?}"
    );
    let follower = pipeline.follower().await;
    let more = pipeline.submit_files(&["en_itt.md"]).await;
    let done = outcomes(follower, &more, 60).await;
    assert!(
        matches!(done[&more[0]], Outcome::Completed { .. }),
        "consumers resumed"
    );
    pipeline.teardown().await;
}

#[test]
fn invalid_config_is_reported_before_anything_connects() {
    // An unreachable broker: had the binary tried to connect, it would hang
    // retrying instead of answering at once.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tenderflow"))
        .args(["worker", "parse"])
        .env(
            "TENDERFLOW__AMQP__URL",
            "amqp://guest:guest@127.0.0.1:1/%2f",
        )
        .env("TENDERFLOW__TOPOLOGY__PREFIX", "not a prefix")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("topology.prefix"), "{stderr}");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tenderflow"))
        .args(["run"])
        .env("TENDERFLOW__STAGES__CONCURRENCY", "many")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("concurrency"), "{stderr}");
}

#[tokio::test]
async fn a_topology_can_be_deleted_whole() {
    let pipeline = TestPipeline::new(|_, _| {});
    let (conn, _channel, topology) = broker::open(&pipeline.settings, "test").await.unwrap();
    let deleted = broker::delete_topology(&pipeline.settings, "test-delete").await;
    assert_eq!(deleted, topology.queues.len() + topology.exchanges.len());
    let channel = conn.create_channel().await.unwrap();
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let gone = channel
        .queue_declare(
            topology.stage_queue(Stage::Parse).as_str().into(),
            passive,
            lapin::types::FieldTable::default(),
        )
        .await;
    assert!(gone.is_err(), "the parse queue is gone");
}

/// Wraps a handler: after its first call, deletes the events exchange, so
/// that the outcome's work message is confirmed and its events are refused.
struct BreaksEventsOnce<H> {
    inner: H,
    settings: Arc<tenderflow::config::Settings>,
    done: Arc<std::sync::atomic::AtomicBool>,
}

impl<H: tenderflow::runtime::Handler> tenderflow::runtime::Handler for BreaksEventsOnce<H> {
    fn handle(
        &self,
        envelope: Envelope,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<tenderflow::stages::StageOutput, tenderflow::stages::StageError>,
    > {
        let inner = self.inner.handle(envelope);
        let first = !self.done.swap(true, std::sync::atomic::Ordering::SeqCst);
        let settings = Arc::clone(&self.settings);
        Box::pin(async move {
            let result = inner.await;
            if first {
                let (conn, channel, topology) =
                    broker::open(&settings, "test-break-events").await.unwrap();
                channel
                    .exchange_delete(
                        topology.events_exchange().as_str().into(),
                        lapin::options::ExchangeDeleteOptions::default(),
                    )
                    .await
                    .unwrap();
                let _ = conn.close(200, "done".into()).await;
            }
            result
        })
    }
}

/// Counts a handler's calls.
struct Counting<H> {
    inner: H,
    calls: Arc<AtomicU32>,
}

impl<H: tenderflow::runtime::Handler> tenderflow::runtime::Handler for Counting<H> {
    fn handle(
        &self,
        envelope: Envelope,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<tenderflow::stages::StageOutput, tenderflow::stages::StageError>,
    > {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.handle(envelope)
    }
}

#[tokio::test]
async fn events_refused_after_a_confirmed_forward_are_sent_again_and_the_input_is_not_redone() {
    let pipeline = TestPipeline::new(|_, _| {});
    let parse_calls = Arc::new(AtomicU32::new(0));
    for stage in [Stage::Filter, Stage::Extract] {
        pipeline.start(stage, pipeline.real_handler(stage));
    }
    pipeline.start(
        Stage::Ingest,
        BreaksEventsOnce {
            inner: pipeline.real_handler(Stage::Ingest),
            settings: Arc::clone(&pipeline.settings),
            done: Arc::default(),
        },
    );
    pipeline.start(
        Stage::Parse,
        Counting {
            inner: pipeline.real_handler(Stage::Parse),
            calls: Arc::clone(&parse_calls),
        },
    );
    let follower = pipeline.follower().await;
    let tasks = pipeline.submit_files(&["cn_selection.md"]).await;
    let (events, done) = events_until_done(&pipeline, follower, &tasks).await;

    assert!(
        matches!(done[&tasks[0]], Outcome::Completed { .. }),
        "{:?}",
        done[&tasks[0]]
    );
    assert_eq!(
        parse_calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "ingest's forward went out once"
    );
    assert!(
        events
            .iter()
            .any(|e| e.stage == Stage::Ingest && matches!(e.kind, EventKind::Succeeded { .. })),
        "ingest's own events arrived after all"
    );
    pipeline.assert_nothing_dead_lettered().await;
    pipeline.teardown().await;
}

/// Retry tiers dead-letter at least once: a retry whose stage queue cannot
/// take it when its delay runs out stays in its tier until it can. (A
/// classic tier dropped it.)
#[tokio::test]
async fn a_retry_whose_stage_queue_is_gone_for_a_while_is_not_lost() {
    let pipeline = TestPipeline::new(|settings, _| settings.retry.delays_ms = vec![300]);
    let (conn, channel, topology) = broker::open(&pipeline.settings, "test-retry-target")
        .await
        .unwrap();
    let (retry, _) = topology.retry_queue(Stage::Parse, 1).unwrap();
    let stage = topology.stage_queue(Stage::Parse);
    channel
        .queue_delete(
            stage.as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    broker::publish_all(
        &channel,
        &[Outgoing::new("", retry.as_str(), b"{\"retry\":1}".to_vec())],
    )
    .await
    .unwrap();
    // The delay runs out while the stage queue is gone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    topology.apply(&channel).await.unwrap();
    let started = std::time::Instant::now();
    let mut depth = 0;
    while depth == 0 && started.elapsed() < Duration::from_secs(280) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        depth = pipeline.depth(&stage).await;
    }
    // RabbitMQ's dead-letter worker tries an unroutable message again
    // after about three minutes (its publisher confirm timeout).
    assert_eq!(
        depth, 1,
        "the retry reached its stage once the queue was back"
    );
    let _ = conn.close(200, "done".into()).await;
    pipeline.teardown().await;
}
