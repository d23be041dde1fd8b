//! Fault injection against the real `tenderflow` binary and the real
//! broker: connections cut, the broker unreachable, workers killed, poison,
//! shutdown under load, deep queues, bad input. Each test has its own
//! topology prefix and store (a [`TestPipeline`] that runs no in-process
//! worker unless said), its own child processes (killed when it ends, even
//! on a panic), and closes only its own connections.
//!
//! The books are kept from the events stream (read from its first offset)
//! and the queue depths: every task must complete, every `completed` event
//! of a task must name the same summary (a redelivery may repeat work, never
//! change its result), and every queue must end empty.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::os::unix::process::ExitStatusExt;

use bytes::Bytes;
use tenderflow::broker::{self, Outgoing};
use tenderflow::config::{Settings, WorkQueues};
use tenderflow::dlq;
use tenderflow::envelope::{DocumentRef, Envelope, Stage, TaskOptions};
use tenderflow::store::Store;
use tenderflow::submit::{Submitter, Upload};
use uuid::Uuid;

use crate::books::{api, assert_nothing_lost, assert_view_consistent};
use crate::helpers::{TestPipeline, corpus};
use crate::ledger::{EventLog, wait_queues_settled};
use crate::procs::{Proc, example, settings_env};
use crate::proxy::Proxy;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_tenderflow");

/// Corpus documents that all four stages handle today, large and small.
const MIX: [&str; 4] = [
    "cn_construction.md",
    "cn_selection.md",
    "en_itt.md",
    "cn_selection.gbk.txt",
];

/// A fault test's pipeline: fresh prefix, store and view database, retries
/// fast, and a free port for the API of `run` and `serve`.
fn rig(tweak: impl FnOnce(&mut Settings, &Path)) -> TestPipeline {
    TestPipeline::new(|settings, dir| {
        settings.stages.concurrency = 2;
        // Parsing a PDF takes seconds in a debug build, and far longer when
        // the machine is busy; an overrun here is not what is tested.
        settings.stages.handler_timeout_ms = 120_000;
        settings.amqp.reconnect_max_delay_ms = 2_000;
        settings.projector.db_path = dir.join("view.sqlite3");
        settings.http.addr = free_port_addr();
        tweak(settings, dir);
    })
}

/// A loopback address with a port nobody listens on right now (a child
/// process cannot report the port it got from port 0).
fn free_port_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Starts `tenderflow ARGS` with the pipeline's settings; `amqp_url`
/// overrides the broker address (to go through a proxy).
fn tenderflow(settings: &Settings, args: &[&str], amqp_url: Option<&str>) -> Proc {
    let mut env = settings_env(settings);
    if let Some(url) = amqp_url {
        env.retain(|(k, _)| k != "TENDERFLOW__AMQP__URL");
        env.push(("TENDERFLOW__AMQP__URL".into(), url.into()));
    }
    Proc::spawn(
        &format!("tenderflow {}", args.join(" ")),
        Path::new(BIN),
        args,
        &env,
    )
    .expect("the tenderflow binary starts")
}

/// Submits `count` tasks of corpus documents, cycling through `names`:
/// each document is stored once, then its reference is published again as
/// a new task, so a big backlog is quick to build.
async fn submit_mix(settings: &Arc<Settings>, names: &[&str], count: usize) -> Vec<Uuid> {
    let submitter = Submitter::new(Arc::clone(settings)).unwrap();
    let mut stored: BTreeMap<&str, Vec<DocumentRef>> = BTreeMap::new();
    let mut ids = Vec::with_capacity(count);
    for name in names.iter().cycle().take(count) {
        let envelope = match stored.get(name) {
            Some(documents) => {
                let envelope = Envelope::new_task(documents.clone(), TaskOptions::default());
                submitter.publish_task(&envelope).await.unwrap();
                envelope
            }
            None => {
                let upload = Upload {
                    filename: name.to_string(),
                    bytes: Bytes::from(std::fs::read(corpus(name)).unwrap()),
                };
                let envelope = submitter
                    .submit(vec![upload], TaskOptions::default())
                    .await
                    .unwrap();
                stored.insert(name, envelope.documents.clone());
                envelope
            }
        };
        ids.push(envelope.task_id);
    }
    ids
}

/// The broker's ids of the connections whose names mark them as workers
/// of `prefix` (the runtime names them `tenderflow-{prefix}-{stage}-consume`
/// and `…-publish`, the projector `tenderflow-{prefix}-projector`).
async fn worker_connections(prefix: &str) -> Vec<String> {
    let listing = tokio::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "-q",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
        .await
        .expect("rabbitmqctl runs");
    let marker = format!("\"tenderflow-{prefix}-");
    String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter(|l| l.contains(&marker))
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .collect()
}

/// Waits until `n` worker connections of `prefix` are open; returns them.
async fn await_worker_connections(prefix: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = worker_connections(prefix).await;
        if found.len() >= n || Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Closes the connections `pids`, broker side and all at once (rabbitmqctl
/// takes about a second a call); returns how many were closed.
async fn close_connections(pids: &[String]) -> usize {
    let closes = pids.iter().map(|pid| async move {
        tokio::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "fault test: connection cut"])
            .output()
            .await
            .is_ok_and(|o| o.status.success())
    });
    futures_util::future::join_all(closes)
        .await
        .into_iter()
        .filter(|closed| *closed)
        .count()
}

#[tokio::test]
async fn workers_of_the_binary_reconnect_when_the_broker_closes_their_connections() {
    let pipeline = rig(|s, _| s.stages.concurrency = 1);
    let log = EventLog::start(&pipeline.settings).await.unwrap();
    let mut run = tenderflow(&pipeline.settings, &["run"], None);
    let prefix = &pipeline.settings.topology.prefix;
    // Two connections per stage and the notify consumer (consuming and
    // publishing apart), and the projector's two (the events stream, the
    // dead-letter streams).
    let expected = 12;
    let connections = await_worker_connections(prefix, expected).await;
    assert_eq!(connections.len(), expected, "{connections:?}");
    let tasks = submit_mix(&pipeline.settings, &MIX, 160).await;

    // Cut as soon as the work is under way: rabbitmqctl takes a second or so.
    let first = log
        .wait_for(Duration::from_secs(60), |t| t.handled(&tasks) >= 1)
        .await;
    assert!(first.handled(&tasks) >= 1, "the pipeline makes progress");
    let closed = close_connections(&connections).await;
    assert_eq!(closed, expected, "every connection of the process was cut");
    let at_cut = log.tally().completed(&tasks);
    assert!(
        at_cut < tasks.len(),
        "tasks were still in flight at the cut"
    );
    // Work submitted while the workers reconnect is not lost either.
    let more = submit_mix(&pipeline.settings, &MIX, 4).await;
    let all: Vec<Uuid> = tasks.iter().chain(&more).copied().collect();

    assert_nothing_lost(&pipeline, &log, &all, 120, true).await;
    let reconnected = await_worker_connections(prefix, expected).await;
    assert!(
        reconnected.len() == expected && reconnected.iter().all(|c| !connections.contains(c)),
        "the workers and the projector run on new connections: {reconnected:?}"
    );
    assert!(run.try_status().is_none(), "the process lived through it");
    run.stop_cleanly().await;
}

#[tokio::test]
async fn workers_of_the_binary_ride_out_a_broker_unreachable_for_seconds() {
    let pipeline = rig(|_, _| {});
    let proxy = Proxy::start("127.0.0.1:5672".parse().unwrap())
        .await
        .unwrap();
    let log = EventLog::start(&pipeline.settings).await.unwrap();
    let tasks = submit_mix(&pipeline.settings, &MIX, 48).await;
    let mut run = tenderflow(&pipeline.settings, &["run"], Some(&proxy.amqp_url()));

    let first = log
        .wait_for(Duration::from_secs(60), |t| t.completed(&tasks) >= 1)
        .await;
    assert!(first.completed(&tasks) >= 1, "the pipeline makes progress");
    let before = proxy.accepted();
    proxy.refuse(true);
    proxy.cut();
    let at_cut = log.tally().completed(&tasks);
    assert!(
        at_cut < tasks.len(),
        "tasks were still in flight at the cut"
    );
    // The broker is "down" for 5 s; work keeps arriving meanwhile.
    let more = submit_mix(&pipeline.settings, &MIX, 4).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = log.tally();
    proxy.refuse(false);
    let all: Vec<Uuid> = tasks.iter().chain(&more).copied().collect();

    let tally = assert_nothing_lost(&pipeline, &log, &all, 120, true).await;
    assert!(
        proxy.accepted() >= before + 5,
        "every stage and the projector opened a new connection ({} before, {} after)",
        before,
        proxy.accepted()
    );
    assert!(
        tally.completed(&more) == more.len() && during.completed(&more) == 0,
        "work submitted during the outage waited for it and then completed"
    );
    assert!(run.try_status().is_none(), "the process lived through it");
    run.stop_cleanly().await;
}

/// With several nodes in `amqp.urls`, a connection skips a node that
/// refuses it and one that accepts TCP and never answers, and goes to the
/// next. With none answering, the error names each node, never the
/// credentials.
#[tokio::test]
async fn a_connection_skips_nodes_that_refuse_or_never_answer() {
    let closed = crate::helpers::free_port();
    // Its backlog accepts the TCP connection; nothing ever answers on it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = silent.local_addr().unwrap().port();
    let node = |port: u16| {
        tenderflow::secret::Secret::new(format!("amqp://guest:guest@127.0.0.1:{port}/%2f"))
    };
    let mut settings = Settings::load(None).unwrap();
    settings.amqp.connect_timeout_ms = 1_000;
    settings.amqp.urls = vec![node(closed), node(silent), settings.amqp.url.clone()];
    let started = Instant::now();
    let conn = broker::connect_once(&settings, "test-nodes").await.unwrap();
    assert!(conn.status().connected());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(15),
        "the silent node had its timeout, then the broker answered: {took:?}"
    );
    let _ = conn.close(200, "checked".into()).await;

    settings.amqp.urls = vec![node(closed), node(silent)];
    let err = broker::connect_once(&settings, "test-nodes")
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("no node of amqp.urls answered"), "{text}");
    assert!(text.contains(&format!("node 127.0.0.1:{closed}")), "{text}");
    assert!(
        text.contains(&format!(
            "node 127.0.0.1:{silent}: the node did not answer within 1000 ms"
        )),
        "{text}"
    );
    assert!(!text.contains("guest:guest"), "no credentials: {text}");
}

#[tokio::test]
async fn a_worker_killed_mid_handling_is_redelivered_and_duplicates_change_no_summary() {
    killed_twice_under_load(WorkQueues::Quorum).await;
}

#[tokio::test]
async fn on_classic_queues_a_worker_killed_twice_under_load_loses_nothing() {
    killed_twice_under_load(WorkQueues::Classic).await;
}

async fn killed_twice_under_load(work_queues: WorkQueues) {
    let pipeline = rig(|s, _| s.topology.work_queues = work_queues);
    let log = EventLog::start(&pipeline.settings).await.unwrap();
    // Slow documents among the quick ones, so that parse is in the middle
    // of a PDF (2 s and more in a debug build) when the kill comes.
    let slow = ["cn_construction.pdf", "cn_selection.docx", "en_itt.pdf"];
    let mut tasks = submit_mix(&pipeline.settings, &slow, 3).await;
    tasks.extend(submit_mix(&pipeline.settings, &MIX, 100).await);
    tasks.extend(submit_mix(&pipeline.settings, &slow, 3).await);
    let mut run = tenderflow(&pipeline.settings, &["run"], None);

    // SIGKILL twice while the backlog flows (four stages, two messages in
    // hand each), starting the process again each time.
    for progress in [1, tasks.len() / 3] {
        let now = log
            .wait_for(Duration::from_secs(60), |t| t.completed(&tasks) >= progress)
            .await;
        assert!(
            now.completed(&tasks) >= progress,
            "the pipeline makes progress"
        );
        let status = run.kill();
        assert!(!status.success(), "SIGKILL ended it: {status:?}");
        run = tenderflow(&pipeline.settings, &["run"], None);
    }
    let tally = assert_nothing_lost(&pipeline, &log, &tasks, 180, true).await;
    let redone = tally.redone(&tasks);
    assert!(
        redone >= 1,
        "some message in hand at a kill was delivered again and handled twice"
    );
    let repeated = tasks.iter().filter(|t| tally.book(t).completed > 1).count();
    eprintln!(
        "SIGKILL x2: {} tasks completed, {redone} messages handled again, {repeated} repeated `completed` events (same summary)",
        tasks.len()
    );
    run.stop_cleanly().await;
}

#[tokio::test]
async fn sigterm_under_load_exits_zero_in_its_grace_period_and_loses_or_repeats_nothing() {
    let pipeline = rig(|_, _| {});
    let log = EventLog::start(&pipeline.settings).await.unwrap();
    let tasks = submit_mix(&pipeline.settings, &MIX, 120).await;
    let mut run = tenderflow(&pipeline.settings, &["run"], None);

    let flowing = log
        .wait_for(Duration::from_secs(60), |t| t.completed(&tasks) >= 5)
        .await;
    assert!(
        flowing.completed(&tasks) >= 5,
        "the pipeline makes progress"
    );
    run.signal("TERM");
    let signalled = Instant::now();
    let status = run.wait_exit(Duration::from_secs(10)).await;
    let took = signalled.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit 0 within 10 s of SIGTERM: {status:?} after {took:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_stop = log.tally().completed(&tasks);
    assert!(
        at_stop < tasks.len(),
        "documents were still flowing at SIGTERM"
    );

    let mut run = tenderflow(&pipeline.settings, &["run"], None);
    let tally = assert_nothing_lost(&pipeline, &log, &tasks, 180, true).await;
    // A graceful stop finishes and acks what it holds, and hands back what
    // it had not started: no message is handled twice.
    for task in &tasks {
        let book = tally.book(task);
        assert_eq!(book.completed, 1, "task {task} completed once: {book:?}");
        for stage in Stage::ALL {
            // Once: one `succeeded`, and at most one `started` (a quick
            // attempt publishes none).
            assert_eq!(
                book.succeeded.get(&stage),
                Some(&1),
                "task {task} went through {stage} once: {book:?}"
            );
            assert!(
                book.started.get(&stage).is_none_or(|n| *n == 1),
                "task {task} started {stage} once at most: {book:?}"
            );
        }
    }
    eprintln!(
        "SIGTERM under load: exit 0 after {took:?}, {at_stop}/{} done at the stop",
        tasks.len()
    );
    run.stop_cleanly().await;
}

#[tokio::test]
async fn a_message_that_aborts_its_worker_process_every_time_ends_in_the_dead_letter_queue() {
    aborting_poison(WorkQueues::Quorum).await;
}

#[tokio::test]
async fn on_classic_queues_too_a_message_that_aborts_its_worker_every_time_is_dead_lettered() {
    aborting_poison(WorkQueues::Classic).await;
}

async fn aborting_poison(work_queues: WorkQueues) {
    // The other stages run in this process; parse runs in a child process
    // whose handler aborts the process on one document and panics on
    // another. One message in hand at a time, so only the poison is in hand
    // when the process dies.
    let pipeline = rig(|s, _| {
        s.stages.concurrency = 1;
        s.topology.work_queues = work_queues;
    });
    let limit = pipeline.settings.stages.max_deliveries;
    for stage in [Stage::Ingest, Stage::Filter, Stage::Extract] {
        pipeline.start(stage, pipeline.real_handler(stage));
    }
    let log = EventLog::start(&pipeline.settings).await.unwrap();
    let submitter = Submitter::new(Arc::clone(&pipeline.settings)).unwrap();
    let bytes = Bytes::from(std::fs::read(corpus("en_itt.md")).unwrap());
    let mut tasks = BTreeMap::new();
    for name in [
        "good-1.md",
        "abort-me.md",
        "good-2.md",
        "panic-me.md",
        "good-3.md",
    ] {
        let upload = Upload {
            filename: name.into(),
            bytes: bytes.clone(),
        };
        let envelope = submitter
            .submit(vec![upload], TaskOptions::default())
            .await
            .unwrap();
        tasks.insert(name, envelope.task_id);
    }
    let all: Vec<Uuid> = tasks.values().copied().collect();

    let program = example(Path::new(BIN), "faulty_worker");
    let env = settings_env(&pipeline.settings);
    let spawn = || Proc::spawn("faulty_worker parse", &program, &["parse"], &env).unwrap();
    let mut worker = spawn();
    let mut aborts = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while log.tally().ended(&all) < all.len() && Instant::now() < deadline {
        if let Some(status) = worker.try_status() {
            assert_eq!(status.signal(), Some(6), "it died by abort: {status:?}");
            aborts += 1;
            assert!(aborts < 2 * limit, "the poison loops: {aborts} aborts");
            worker = spawn();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tally = log.tally();
    assert_eq!(tally.ended(&all), all.len(), "every task ended: {tally:?}");
    assert_eq!(
        tally.book(&tasks["abort-me.md"]).dead_lettered,
        vec![(Stage::Parse, "poison".to_string())]
    );
    assert_eq!(
        aborts,
        limit - 1,
        "the process died once per delivery before the limit of {limit}"
    );
    assert_eq!(
        tally.book(&tasks["panic-me.md"]).dead_lettered,
        vec![(Stage::Parse, "panic".to_string())]
    );
    let good = [tasks["good-1.md"], tasks["good-2.md"], tasks["good-3.md"]];
    tally.assert_all_completed_once(&good);
    let dead = BTreeMap::from([(Stage::Parse, 2)]);
    let depths = wait_queues_settled(&pipeline.settings, &dead, Duration::from_secs(20)).await;
    let parse_dlq = pipeline.topology().dead_letter_queue(Stage::Parse);
    assert_eq!(depths[&parse_dlq], 2, "{depths:?}");
    assert!(
        depths.iter().all(|(q, n)| *q == parse_dlq || *n == 0),
        "{depths:?}"
    );
    let letters = pipeline.pending_dead_letters(Stage::Parse).await;
    let poison = letters
        .iter()
        .find(|l| l.task_id == Some(tasks["abort-me.md"]))
        .expect("the poison is in the parse dead-letter queue");
    assert_eq!(poison.error_kind, "poison");
    assert!(
        poison
            .error_message
            .contains(&format!("delivered {limit} times")),
        "{poison:?}"
    );
    assert!(
        worker.try_status().is_none(),
        "the panic left the worker running"
    );
    worker.stop_cleanly().await;
}

/// Envelopes queued in front of the slow stage in the backpressure test,
/// and the padding of each (a long file name), so that a worker that took
/// more than its prefetch would show it in its memory.
const BACKLOG: usize = 10_000;
const PADDING: usize = 4_096;

#[tokio::test]
async fn a_worker_facing_ten_thousand_queued_documents_keeps_its_memory_flat() {
    // Parse, one message at a time, of the largest Markdown document of the
    // corpus: the slow stage; 10 000 messages are queued in front of it.
    let pipeline = rig(|s, _| s.stages.concurrency = 1);
    let store = Store::from_settings(&pipeline.settings).unwrap();
    let bytes = std::fs::read(corpus("cn_construction.md")).unwrap();
    let original = store.put_original(Bytes::from(bytes)).await.unwrap();
    let mut template = Envelope::new_task(
        vec![DocumentRef {
            uri: format!("store:{}", original.key),
            sha256: original.sha256.clone(),
            size: original.size,
            media_type: Some("text/markdown".into()),
            filename: format!("{}.md", "p".repeat(PADDING)),
        }],
        TaskOptions::default(),
    );
    template.stage = Stage::Parse;
    template.artifacts.originals = vec![original];
    let mut parse = tenderflow(&pipeline.settings, &["worker", "parse"], None);
    let prefix = &pipeline.settings.topology.prefix;
    // Its consuming and its publishing connection.
    assert_eq!(await_worker_connections(prefix, 2).await.len(), 2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = parse.rss_kib().expect("the worker's VmRSS");

    let (_conn, channel, topology) = broker::open(&pipeline.settings, "test").await.unwrap();
    for _ in 0..BACKLOG / 500 {
        let mut pending = Vec::with_capacity(500);
        for _ in 0..500 {
            let mut envelope = template.clone();
            envelope.task_id = Uuid::now_v7();
            let message = Outgoing::new(topology.work_exchange(), "parse", envelope.encode())
                .for_task(envelope.task_id, None);
            pending.push(broker::publish(&channel, &message).await.unwrap());
        }
        for confirm in pending {
            confirm.wait().await.unwrap();
        }
    }
    let queue = topology.stage_queue(Stage::Parse);
    let mut samples = Vec::new();
    let mut depth = pipeline.depth(&queue).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(parse.rss_kib().expect("the worker's VmRSS"));
        depth = pipeline.depth(&queue).await;
    }
    let peak = *samples.iter().max().unwrap();
    let last = *samples.last().unwrap();
    let handled = pipeline.depth(&topology.stage_queue(Stage::Filter)).await;
    eprintln!(
        "backpressure: {BACKLOG} parse messages of ~{} KiB queued; one parse worker, prefetch 1; \
         VmRSS idle {idle} KiB, peak {peak} KiB, after 30 s {last} KiB; \
         {handled} handled in 30 s, {depth} still queued; samples {samples:?}",
        (PADDING + 700) / 1024
    );
    assert!(depth > 0, "the queue stayed deep for the whole measurement");
    assert!(handled > 0, "the worker made progress");
    // The backlog is over 40 MiB: a worker holding more than its prefetch
    // would grow by that much.
    assert!(
        peak < idle + 20 * 1024,
        "memory bounded by the prefetch: idle {idle} KiB, peak {peak} KiB"
    );
    let first_half = samples[..samples.len() / 2].iter().max().unwrap();
    assert!(
        peak < first_half + 4 * 1024,
        "no growth with time: {samples:?}"
    );
    assert!(parse.try_status().is_none(), "the worker lives");
}

#[tokio::test]
async fn bad_messages_sent_to_the_binary_are_dead_lettered_with_a_reason_and_it_goes_on() {
    let pipeline = rig(|s, dir| s.store.allowed_roots = vec![dir.join("shared")]);
    let root = pipeline.dir.path().join("shared");
    let outside = pipeline.dir.path().join("elsewhere");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.md"), "# secret").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.md"), root.join("escape.md")).unwrap();
    let mut ingest = tenderflow(&pipeline.settings, &["worker", "ingest"], None);

    let task = |uri: String| {
        let mut envelope = Envelope::new_task(
            vec![DocumentRef {
                uri,
                sha256: "00".repeat(32),
                size: 8,
                media_type: None,
                filename: "x.md".into(),
            }],
            TaskOptions::default(),
        );
        envelope.stage = Stage::Ingest;
        envelope
    };
    let root_url = url::Url::from_directory_path(&root).unwrap();
    let absent = format!("store:originals/{}", "0".repeat(64));
    let huge_name = {
        let mut envelope = task(absent.clone());
        envelope.documents[0].filename = "n".repeat(10 << 20);
        envelope
    };
    let huge_uri = task(format!("store:originals/{}", "0".repeat(10 << 20)));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "raw bytes",
            vec![0x00, 0x9f, 0x92, 0x96, 0xff],
            "invalid_message",
        ),
        (
            "10 MB of bytes",
            (0..10 << 20).map(|i| (i % 251) as u8).collect(),
            "invalid_message",
        ),
        ("10 MB file name", huge_name.encode(), "not_found"),
        ("10 MB uri", huge_uri.encode(), "invalid_reference"),
        (
            "store key with ..",
            task("store:originals/../../etc/passwd".into()).encode(),
            "invalid_reference",
        ),
        (
            "file uri with ..",
            task(format!("{root_url}../elsewhere/secret.md")).encode(),
            "forbidden_path",
        ),
        (
            "unknown scheme",
            task("http://127.0.0.1:9/tender.pdf".into()).encode(),
            "unsupported_uri",
        ),
        (
            "another unknown scheme",
            task("s3://bucket/tender.pdf".into()).encode(),
            "unsupported_uri",
        ),
        (
            "symlink out of the allowed root",
            task(
                url::Url::from_file_path(root.join("escape.md"))
                    .unwrap()
                    .to_string(),
            )
            .encode(),
            "forbidden_path",
        ),
    ];
    let (_conn, channel, topology) = broker::open(&pipeline.settings, "test").await.unwrap();
    for (_, body, _) in &cases {
        let message = Outgoing::new(topology.work_exchange(), "ingest", body.clone());
        broker::publish_all(&channel, &[message]).await.unwrap();
    }
    let dead = BTreeMap::from([(Stage::Ingest, cases.len() as u32)]);
    let depths = wait_queues_settled(&pipeline.settings, &dead, Duration::from_secs(90)).await;
    let dlq_name = topology.dead_letter_queue(Stage::Ingest);
    assert_eq!(depths[&dlq_name], cases.len() as u32, "{depths:?}");
    let (conn, _, _) = broker::open(&pipeline.settings, "test").await.unwrap();
    let letters = dlq::scan(&conn, &topology, Stage::Ingest).await.unwrap();
    let mut kinds: Vec<&str> = letters.iter().map(|l| l.error_kind.as_str()).collect();
    let mut expected: Vec<&str> = cases.iter().map(|(_, _, kind)| *kind).collect();
    kinds.sort();
    expected.sort();
    assert_eq!(kinds, expected, "{letters:#?}");
    for letter in &letters {
        assert!(
            !letter.error_message.is_empty() && letter.error_message.len() < 4096,
            "a clear, short reason: {} bytes",
            letter.error_message.len()
        );
        assert_eq!(letter.attempts, 1, "dead-lettered at once: {letter:?}");
    }
    assert!(ingest.try_status().is_none(), "the worker lives on");
    let log = EventLog::start(&pipeline.settings).await.unwrap();
    let good = submit_mix(&pipeline.settings, &["en_itt.md"], 1).await;
    let tally = log
        .wait_for(Duration::from_secs(30), |t| {
            t.book(&good[0]).succeeded.contains_key(&Stage::Ingest)
        })
        .await;
    assert!(
        tally.book(&good[0]).succeeded.contains_key(&Stage::Ingest),
        "a good document still passes"
    );
    ingest.stop_cleanly().await;
}

/// GETs `path` of the pipeline's API as JSON.
async fn get_json(settings: &Settings, path: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{}{path}", api(settings)))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Publishes tasks that ingest dead-letters (their original is not in the
/// store): failed tasks for the view to show.
async fn publish_failing_tasks(settings: &Arc<Settings>, count: usize) -> Vec<Uuid> {
    let submitter = Submitter::new(Arc::clone(settings)).unwrap();
    let mut ids = Vec::new();
    for i in 0..count {
        let envelope = Envelope::new_task(
            vec![DocumentRef {
                uri: format!("store:originals/{:064x}", i + 1),
                sha256: format!("{:064x}", i + 1),
                size: 10,
                media_type: None,
                filename: format!("missing-{i}.md"),
            }],
            TaskOptions::default(),
        );
        submitter.publish_task(&envelope).await.unwrap();
        ids.push(envelope.task_id);
    }
    ids
}

#[tokio::test]
async fn a_projector_killed_and_its_store_deleted_rebuilds_the_identical_view() {
    // The stages run in this process; the projector is the real
    // `tenderflow serve`, killed twice.
    let pipeline = rig(|_, _| {});
    pipeline.start_all();
    let settings = &pipeline.settings;
    let log = EventLog::start(settings).await.unwrap();
    let serve = || tenderflow(settings, &["serve"], None);
    let mut projector = serve();
    let tasks = submit_mix(settings, &MIX, 40).await;
    let failing = publish_failing_tasks(settings, 3).await;
    let all: Vec<Uuid> = tasks.iter().chain(&failing).copied().collect();

    // Killed while the events flow; started again on the same store, it
    // resumes from its stored offset.
    log.wait_for(Duration::from_secs(60), |t| t.completed(&tasks) >= 5)
        .await;
    projector.kill();
    projector = serve();
    let tally = log
        .wait_for(Duration::from_secs(120), |t| t.ended(&all) == all.len())
        .await;
    tally.assert_all_completed_once(&tasks);
    for task in &failing {
        assert_eq!(
            tally.book(task).dead_lettered,
            vec![(Stage::Ingest, "not_found".to_string())]
        );
    }
    let before = assert_view_consistent(settings, &log, &all, 60).await;
    let page_before = get_json(settings, "/v1/tasks?limit=500").await;
    for task in &failing {
        assert_eq!(before[task]["state"], "failed", "{}", before[task]);
    }

    // Killed again, its store deleted, started again: it rebuilds the view
    // from the stream, identical.
    projector.kill();
    let db = &settings.projector.db_path;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    assert!(!db.exists(), "the view store is gone");
    projector = serve();
    let after = assert_view_consistent(settings, &log, &all, 60).await;
    assert_eq!(before, after, "the rebuilt view is identical");
    let page_after = get_json(settings, "/v1/tasks?limit=500").await;
    assert_eq!(page_before, page_after, "the task list is identical");
    assert_eq!(page_after["tasks"].as_array().unwrap().len(), all.len());

    projector.stop_cleanly().await;
}

/// One request of the HTTP fuzz.
#[derive(Debug, Clone)]
struct Probe {
    method: &'static str,
    path: String,
    query: Vec<(String, String)>,
    content_type: Option<&'static str>,
    auth: Option<&'static str>,
    body: Vec<u8>,
}

/// The fuzz's bearer token, and the body limit it runs the API with.
const FUZZ_TOKEN: &str = "fuzz-token";
const FUZZ_BODY_LIMIT: usize = 64 * 1024;
const FUZZ_CASES: u32 = 1000;

/// Requests aimed at every endpoint: their paths with good and bad ids and
/// suffixes, unknown paths, every method, query parameters with odd values,
/// content types, right and wrong tokens, and bodies from empty to over the
/// limit (random bytes, replay requests, multipart uploads).
fn probes() -> impl proptest::strategy::Strategy<Value = Probe> {
    use proptest::prelude::*;
    let segment = prop_oneof![
        any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
        "[a-zA-Z0-9._~-]{0,40}",
        Just("..".to_string()),
        "(%[0-9A-Fa-f]{2}){1,6}",
        "\\PC{1,8}".prop_map(|s| s
            .chars()
            .filter(|c| *c != '/' && *c != '?' && *c != '#')
            .collect()),
    ];
    let known = prop::sample::select(vec![
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/tasks",
        "/v1/dead-letters",
        "/v1/documents",
        "/v1/dead-letters/replay",
        "/",
        "/v1",
        "/v2/tasks",
    ])
    .prop_map(str::to_string);
    let suffix = prop::sample::select(vec!["", "/events", "/summary", "/watch", "/x", "/events/"]);
    let path = prop_oneof![
        5 => known,
        3 => (segment.clone(), suffix).prop_map(|(id, suffix)| format!("/v1/tasks/{id}{suffix}")),
        1 => prop::collection::vec(segment.clone(), 0..4).prop_map(|s| format!("/{}", s.join("/"))),
    ];
    let key = prop_oneof![
        prop::sample::select(vec![
            "state",
            "stage",
            "limit",
            "cursor",
            "filename",
            "filter_model",
            "extract_model",
        ])
        .prop_map(str::to_string),
        "[a-z_]{1,10}",
    ];
    let value = prop_oneof![
        prop::sample::select(vec![
            "",
            "0",
            "-1",
            "1",
            "500",
            "501",
            "99999999999999999999",
            "done",
            "failed",
            "queued",
            "running",
            "retrying",
            "parse",
            "ingest",
            "rules",
            "openai",
            "a.md",
            "../../etc/passwd",
        ])
        .prop_map(str::to_string),
        segment,
    ];
    let query = prop::collection::vec((key, value), 0..4);
    let method = prop::sample::select(vec![
        "GET", "GET", "GET", "GET", "POST", "POST", "POST", "POST", "PUT", "DELETE", "PATCH",
        "HEAD", "OPTIONS",
    ]);
    let content_type = prop::option::of(prop::sample::select(vec![
        "application/json",
        "multipart/form-data; boundary=XyZ",
        "multipart/form-data",
        "text/plain",
        "application/octet-stream",
        "garbage/;;=",
    ]));
    let auth = prop::option::of(prop::sample::select(vec![
        "Bearer fuzz-token",
        "Bearer fuzz-token",
        "Bearer fuzz-token",
        "Bearer wrong",
        "Bearer ",
        "Basic Zm9vOmJhcg==",
        "fuzz-token",
    ]));
    let replay = (
        prop::sample::select(vec!["parse", "ingest", "extract", "nope", ""]),
        prop::collection::vec(
            prop_oneof![
                any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
                "\\PC{0,12}"
            ],
            0..3,
        ),
        prop::option::of(any::<i64>()),
    )
        .prop_map(|(stage, ids, limit)| {
            let mut body = serde_json::json!({"stage": stage, "task_ids": ids});
            if let Some(limit) = limit {
                body["limit"] = limit.into();
            }
            body.to_string().into_bytes()
        });
    let multipart = (
        "[a-z]{1,8}\\.(md|txt|pdf|docx|exe)",
        prop::collection::vec(any::<u8>(), 0..512),
    )
        .prop_map(|(name, bytes)| {
            let mut body = format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n"
            )
            .into_bytes();
            body.extend(bytes);
            body.extend(b"\r\n--XyZ--\r\n");
            body
        });
    let body = prop_oneof![
        Just(Vec::new()),
        Just("招标公告\n项目名称：某道路工程\n".as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..2048),
        replay,
        multipart,
        Just("# 招标公告\n项目名称：某道路工程\n".as_bytes().to_vec()),
        Just(vec![b'x'; FUZZ_BODY_LIMIT + 1000]),
    ];
    let any_request = (
        method,
        path,
        query,
        content_type.clone(),
        auth,
        body.clone(),
    )
        .prop_map(|(method, path, query, content_type, auth, body)| Probe {
            method,
            path,
            query,
            content_type,
            auth,
            body,
        });
    // Uploads with the right token, so the submit path itself is fuzzed.
    let filename = prop::sample::select(vec!["a.md", "b.txt", "x.pdf", "", "../a.md", "a"]);
    let upload = (filename, content_type, body).prop_map(|(filename, content_type, body)| Probe {
        method: "POST",
        path: "/v1/documents".into(),
        query: vec![("filename".into(), filename.into())],
        content_type,
        auth: Some("Bearer fuzz-token"),
        body,
    });
    prop_oneof![4 => any_request, 1 => upload]
}

/// Sends `probe`; the status and body, or why there was no answer.
async fn send(http: &reqwest::Client, base: &str, probe: &Probe) -> Result<(u16, Vec<u8>), String> {
    let mut url = format!("{base}{}", probe.path);
    if !probe.query.is_empty() {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&probe.query)
            .finish();
        url = format!("{url}?{query}");
    }
    let method = reqwest::Method::from_bytes(probe.method.as_bytes()).unwrap();
    let mut request = http.request(method, &url).body(probe.body.clone());
    if let Some(content_type) = probe.content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(auth) = probe.auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.map_err(|e| format!("{e:#}"))?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| format!("{e:#}"))?;
    Ok((status, body.to_vec()))
}

/// What the API promises for any request: an answer within 10 s, never a
/// 5xx (but the documented 503 of /readyz), only documented statuses, and
/// every error in the `{"error": {"code", "message"}}` shape.
fn check(probe: &Probe, answer: Result<(u16, Vec<u8>), String>) -> Result<(), String> {
    let (status, body) = answer.map_err(|e| format!("no answer: {e}"))?;
    let documented = [200, 202, 400, 401, 404, 405, 413, 415];
    let readyz_down = status == 503 && probe.path == "/readyz";
    if !documented.contains(&status) && !readyz_down {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    if status >= 400 && probe.method != "HEAD" {
        let json: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
            format!(
                "{status} without a JSON body: {}",
                String::from_utf8_lossy(&body)
            )
        })?;
        let code = json["error"]["code"].as_str().unwrap_or_default();
        if code.is_empty() || !json["error"]["message"].is_string() {
            return Err(format!("{status} not in the error shape: {json}"));
        }
    }
    Ok(())
}

#[tokio::test]
async fn every_endpoint_of_the_binary_answers_fuzzed_requests_with_a_4xx_never_a_5xx() {
    use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

    let pipeline = rig(|_, _| {});
    let mut env = settings_env(&pipeline.settings);
    env.push(("TENDERFLOW__HTTP__TOKEN".into(), FUZZ_TOKEN.into()));
    env.push((
        "TENDERFLOW__HTTP__BODY_LIMIT_BYTES".into(),
        FUZZ_BODY_LIMIT.to_string(),
    ));
    let mut serve = Proc::spawn("tenderflow serve", Path::new(BIN), &["serve"], &env).unwrap();
    let base = api(&pipeline.settings);
    // A fresh connection per request, so that one request's fate (a
    // connection the server closed early) cannot decide the next one's.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(send(&http, &base, &health_probe()).await, Ok((200, _))) {
        assert!(Instant::now() < deadline, "the API comes up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let runtime = tokio::runtime::Handle::current();
    let (client, root) = (http.clone(), base.clone());
    let statuses = tokio::task::spawn_blocking(move || {
        let config = Config {
            cases: FUZZ_CASES,
            failure_persistence: None,
            ..Config::default()
        };
        let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
        let mut runner = TestRunner::new_with_rng(config, rng);
        let seen = std::sync::Mutex::new(BTreeMap::<u16, usize>::new());
        let result = runner.run(&probes(), |probe| {
            let mut answer = runtime.block_on(send(&client, &root, &probe));
            // A server may answer (404, 413) before reading a large body and
            // close the connection; the client then fails to send the rest.
            // That is no hang and no crash as long as the server still
            // answers.
            if answer.is_err()
                && probe.body.len() > FUZZ_BODY_LIMIT / 4
                && matches!(
                    runtime.block_on(send(&client, &root, &health_probe())),
                    Ok((200, _))
                )
            {
                answer = Ok((
                    413,
                    br#"{"error":{"code":"early","message":"answered before the body"}}"#.to_vec(),
                ));
            }
            if let Ok((status, _)) = &answer {
                *seen.lock().unwrap().entry(*status).or_default() += 1;
            }
            check(&probe, answer).map_err(TestCaseError::fail)
        });
        result
            .map(|()| seen.into_inner().unwrap())
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap()
    .unwrap_or_else(|failure| panic!("the API broke its promise: {failure}"));

    eprintln!("HTTP fuzz: {FUZZ_CASES} requests, statuses {statuses:?}");
    assert!(serve.try_status().is_none(), "the server lives");
    assert!(
        matches!(send(&http, &base, &health_probe()).await, Ok((200, _))),
        "and still answers"
    );
    assert!(
        statuses.keys().any(|s| *s >= 400) && statuses.keys().any(|s| *s < 300),
        "the fuzz reached both answers and errors: {statuses:?}"
    );
    serve.stop_cleanly().await;
}

fn health_probe() -> Probe {
    Probe {
        method: "GET",
        path: "/healthz".into(),
        query: Vec::new(),
        content_type: None,
        auth: None,
        body: Vec::new(),
    }
}
