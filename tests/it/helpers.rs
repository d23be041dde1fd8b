//! Starting a pipeline for a test, following its tasks, and cleaning up.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use tempfile::TempDir;
use tenderflow::broker;
use tenderflow::config::Settings;
use tenderflow::envelope::{Envelope, Stage, TaskOptions};
use tenderflow::runtime::{self, Handler, WorkerOptions};
use tenderflow::stages::{StageContext, StageError, StageHandler, StageOutput};
use tenderflow::store::Store;
use tenderflow::submit::{Follower, Outcome, Submitter, Upload};
use tenderflow::topology::Topology;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// The corpus shipped beside the repository.
pub fn corpus(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/dev")
        .join(name)
}

/// Logs only when TEST_LOG is set.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_test_writer()
            .try_init();
    }
}

/// A pipeline of one test: its own prefix, store folder and workers.
pub struct TestPipeline {
    pub settings: Arc<Settings>,
    pub dir: TempDir,
    token: CancellationToken,
    tracker: TaskTracker,
}

impl TestPipeline {
    /// Settings with a fresh prefix and store, fast retries, and `tweak`
    /// (which gets the test's temporary folder).
    pub fn new(tweak: impl FnOnce(&mut Settings, &Path)) -> TestPipeline {
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::load(None).unwrap();
        settings.topology.prefix = format!("t-{}", Uuid::now_v7().simple());
        settings.store.root = dir.path().join("store");
        settings.retry.delays_ms = vec![200, 400];
        settings.stages.handler_timeout_ms = 20_000;
        // Parse in child processes, as production does, of the real binary
        // (this test binary has no `parse-child`).
        settings.parse.program = Some(env!("CARGO_BIN_EXE_tenderflow").into());
        tweak(&mut settings, dir.path());
        settings.validate().unwrap();
        TestPipeline {
            settings: Arc::new(settings),
            dir,
            token: CancellationToken::new(),
            tracker: TaskTracker::new(),
        }
    }

    /// The real handler of `stage`.
    pub fn real_handler(&self, stage: Stage) -> StageHandler {
        StageHandler {
            stage,
            context: StageContext {
                settings: Arc::clone(&self.settings),
                store: Store::from_settings(&self.settings).unwrap(),
            },
        }
    }

    /// Starts every stage with its real handler.
    pub fn start_all(&self) {
        for stage in Stage::ALL {
            self.start(stage, self.real_handler(stage));
        }
    }

    /// Starts `stage` with `handler` and every other stage with its real one.
    pub fn start_all_but<H: Handler>(&self, stage: Stage, handler: H) {
        for other in Stage::ALL.into_iter().filter(|s| *s != stage) {
            self.start(other, self.real_handler(other));
        }
        self.start(stage, handler);
    }

    /// Starts one stage worker with `handler`.
    pub fn start<H: Handler>(&self, stage: Stage, handler: H) {
        self.start_with(stage, handler, 4);
    }

    /// Starts one stage worker with `handler`, `concurrency` messages at once.
    pub fn start_with<H: Handler>(&self, stage: Stage, handler: H, concurrency: u16) {
        let options = WorkerOptions { stage, concurrency };
        let settings = Arc::clone(&self.settings);
        let token = self.token.clone();
        self.tracker.spawn(async move {
            runtime::run_worker(settings, options, Arc::new(handler), token)
                .await
                .unwrap();
        });
    }

    /// Starts the notify consumer (completion callbacks).
    pub fn start_notify(&self) {
        let settings = Arc::clone(&self.settings);
        let token = self.token.clone();
        self.tracker.spawn(async move {
            tenderflow::notify::run_notifier(settings, Some(4), token)
                .await
                .unwrap();
        });
    }

    /// Stops every worker gracefully and waits for them.
    pub async fn stop(&mut self) {
        self.token.cancel();
        self.tracker.close();
        tokio::time::timeout(Duration::from_secs(30), self.tracker.wait())
            .await
            .expect("workers stop within 30 s");
        self.token = CancellationToken::new();
        self.tracker = TaskTracker::new();
    }

    /// The test's topology.
    pub fn topology(&self) -> Topology {
        Topology::from_settings(&self.settings).unwrap()
    }

    /// A follower of the events stream, started now.
    pub async fn follower(&self) -> Follower {
        Follower::start(&self.settings, chrono::Utc::now())
            .await
            .unwrap()
    }

    /// Submits corpus files, one task each.
    pub async fn submit_files(&self, names: &[&str]) -> Vec<Uuid> {
        let submitter = Submitter::new(Arc::clone(&self.settings)).unwrap();
        let mut ids = Vec::new();
        for name in names {
            let upload = Upload {
                filename: name.to_string(),
                bytes: Bytes::from(std::fs::read(corpus(name)).unwrap()),
            };
            let envelope = submitter
                .submit(vec![upload], TaskOptions::default())
                .await
                .unwrap();
            ids.push(envelope.task_id);
        }
        ids
    }

    /// Messages waiting in `queue` (for a dead-letter stream, its entries).
    pub async fn depth(&self, queue: &str) -> u32 {
        let (conn, channel, _) = broker::open(&self.settings, "test-depth").await.unwrap();
        if queue.ends_with(".dlq") {
            let entries = tenderflow::dlq::entries(&conn, queue).await.unwrap() as u32;
            let _ = conn.close(200, "done".into()).await;
            return entries;
        }
        let passive = QueueDeclareOptions {
            passive: true,
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let count = channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            .unwrap()
            .message_count();
        let _ = conn.close(200, "done".into()).await;
        count
    }

    /// The dead letters waiting at `stage`, read from its stream.
    pub async fn pending_dead_letters(&self, stage: Stage) -> Vec<tenderflow::dlq::DeadLetter> {
        let (conn, _, topology) = broker::open(&self.settings, "test-dlq").await.unwrap();
        let letters = tenderflow::dlq::scan(&conn, &topology, stage)
            .await
            .unwrap();
        let _ = conn.close(200, "done".into()).await;
        letters
    }

    /// Asserts that no stage's dead-letter queue holds a message.
    pub async fn assert_nothing_dead_lettered(&self) {
        for stage in Stage::ALL {
            let queue = self.topology().dead_letter_queue(stage);
            assert_eq!(
                self.depth(&queue).await,
                0,
                "nothing dead-lettered at {stage}"
            );
        }
    }

    /// Waits (up to 5 s) until `queue` holds at least `n` messages: a
    /// quorum queue's count can trail the confirm of what was published to it.
    pub async fn wait_depth(&self, queue: &str, n: u32) -> u32 {
        let mut depth = 0;
        for _ in 0..50 {
            depth = self.depth(queue).await;
            if depth >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        depth
    }

    /// Stops the workers; the test's exchanges and queues go when the
    /// pipeline is dropped.
    pub async fn teardown(mut self) {
        self.stop().await;
    }
}

impl Drop for TestPipeline {
    /// Deletes the test's exchanges and queues, even when the test panicked,
    /// so runs leave nothing behind on the shared broker.
    fn drop(&mut self) {
        self.token.cancel();
        let settings = Arc::clone(&self.settings);
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(delete_topology(&settings));
        });
        let _ = cleanup.join();
    }
}

async fn delete_topology(settings: &Settings) {
    broker::delete_topology(settings, "test-teardown").await;
}

/// Follows `tasks` to their outcome, failing the test after `secs`.
pub async fn outcomes(follower: Follower, tasks: &[Uuid], secs: u64) -> BTreeMap<Uuid, Outcome> {
    tokio::time::timeout(Duration::from_secs(secs), follower.wait(tasks, |_| {}))
        .await
        .expect("tasks end in time")
        .unwrap()
}

/// A handler that fails its first `failures` calls (transiently or
/// permanently), then behaves like `inner`.
pub struct Flaky<H> {
    pub inner: H,
    pub failures: Arc<AtomicU32>,
    pub transient: bool,
}

impl<H: Handler> Handler for Flaky<H> {
    fn handle(&self, envelope: Envelope) -> BoxFuture<'static, Result<StageOutput, StageError>> {
        let remaining = self.failures.load(Ordering::SeqCst);
        if remaining > 0 {
            self.failures.store(remaining - 1, Ordering::SeqCst);
            let err = if self.transient {
                StageError::transient("injected transient failure")
            } else {
                StageError::permanent("injected", "injected permanent failure")
            };
            return Box::pin(async move { Err(err) });
        }
        self.inner.handle(envelope)
    }
}

/// A handler that panics.
pub struct Panics;

impl Handler for Panics {
    fn handle(&self, _envelope: Envelope) -> BoxFuture<'static, Result<StageOutput, StageError>> {
        Box::pin(async { panic!("injected panic") })
    }
}

/// Closes, broker side, every connection of this prefix's workers (their
/// names carry the prefix); returns how many were closed.
pub fn close_worker_connections(prefix: &str) -> usize {
    let listing = std::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "-q",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
        .expect("rabbitmqctl runs");
    let marker = format!("\"tenderflow-{prefix}-");
    let text = String::from_utf8_lossy(&listing.stdout);
    let mut closed = 0;
    for line in text.lines().filter(|l| l.contains(&marker)) {
        let pid = line.split('\t').next().unwrap_or_default();
        let status = std::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "test: connection cut"])
            .status()
            .expect("rabbitmqctl runs");
        if status.success() {
            closed += 1;
        }
    }
    closed
}

/// Publishes `messages` (confirmed) on a fresh connection, trying again on
/// another when the broker fails the publish: RabbitMQ 3.10 can fail a
/// publish to a stream it has only just created (its writer not yet known:
/// an `INTERNAL_ERROR` that closes the connection).
pub async fn publish_retrying(settings: &Settings, messages: &[broker::Outgoing]) {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let sent = async {
            let (conn, channel, _) = broker::open(settings, "test-publisher").await?;
            for chunk in messages.chunks(500) {
                broker::publish_all(&channel, chunk).await?;
            }
            let _ = conn.close(200, "done".into()).await;
            anyhow::Ok(())
        }
        .await;
        match sent {
            Ok(()) => return,
            Err(err) if attempts < 5 => {
                eprintln!("publishing failed, trying again: {err:#}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("publishing: {err:#}"),
        }
    }
}

/// A loopback TCP port nobody listens on right now, for a server that
/// cannot report its own.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The stage, kind and message of a failed outcome; panics on any other.
pub fn failure(outcome: &Outcome) -> (Stage, &str, &str) {
    match outcome {
        Outcome::Failed {
            stage,
            kind,
            message,
        } => (*stage, kind, message),
        other => panic!("expected a failure, got {other:?}"),
    }
}
