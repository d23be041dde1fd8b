//! The pipeline under real load: the corpus documents through every stage,
//! the parse stage scaled out over worker processes, the overhead burst with
//! each stage its own process, and the memory of the `tenderflow` binary.
//!
//! Every measurement gets a fresh topology prefix, store and view database;
//! a [`Rig`] deletes the topology and kills the child processes it started
//! when it is dropped, also when the benchmark panics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use tenderflow::broker::{self, Outgoing};
use tenderflow::config::Settings;
use tenderflow::document::ParsedDocument;
use tenderflow::envelope::{DocumentRef, Envelope, Stage, TaskOptions};
use tenderflow::events::EventKind;
use tenderflow::projector::db::ViewDb;
use tenderflow::projector::view::{StageState, StageView, TaskState, TaskView};
use tenderflow::runtime::{self, WorkerOptions};
use tenderflow::stages::{StageContext, StageHandler};
use tenderflow::store::Store;
use tenderflow::submit::{Submitter, Upload};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::procs::{Proc, rss_kib_of, settings_env};
use super::{Figures, PREFETCH, figures, small_doc};

/// The corpus, relative to the repository root.
const CORPUS: &str = "../shared/corpus/dev";

/// Longest wait for any one phase (a backlog to drain, a process to come
/// up) before the benchmark gives up with a message.
const PHASE_LIMIT: Duration = Duration::from_secs(300);

/// Longest the memory of a worker is sampled while it works through its
/// backlog (the rest of the backlog is deleted with the topology).
const BACKLOG_WINDOW: Duration = Duration::from_secs(30);

/// What the workload part runs; sizes come from the command line.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Measurements of each kind; the tables show medians.
    pub runs: usize,
    /// Copies of each corpus file (real documents, and PDFs for scaling).
    pub copies: usize,
    /// Messages queued in front of a worker for the memory measurement.
    pub backlog: usize,
}

/// The `tenderflow` binary cargo built for this benchmark.
fn binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_tenderflow"));
    assert!(
        path.exists(),
        "the tenderflow binary {} is missing: build it with `cargo bench --bench pipeline --no-run`",
        path.display()
    );
    path
}

/// The corpus folder, if it is there.
fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS);
    dir.is_dir().then_some(dir)
}

/// The corpus files with `extension`, by name.
fn corpus_files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == extension))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

// ---- Child processes ----

/// `stage`'s queue in the pipeline `settings` describe (declared first, if
/// need be): messages ready, and consumers.
pub async fn stage_queue(settings: &Settings, stage: Stage) -> (u32, u32) {
    let (conn, channel, topology) = broker::open(settings, "bench-depth")
        .await
        .expect("the broker answers");
    let passive = QueueDeclareOptions {
        passive: true,
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let queue = channel
        .queue_declare(
            topology.stage_queue(stage).as_str().into(),
            passive,
            FieldTable::default(),
        )
        .await
        .expect("the stage queue exists");
    let _ = conn.close(200, "done".into()).await;
    (queue.message_count(), queue.consumer_count())
}

/// A loopback address with a port nobody listens on right now (a child
/// process cannot report the port it got from port 0).
fn free_port_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    listener.local_addr().unwrap().to_string()
}

// ---- One measurement's pipeline ----

/// The pipeline of one measurement: its own prefix, store, view database,
/// in-process stages and child processes.
struct Rig {
    settings: Arc<Settings>,
    dir: Option<tempfile::TempDir>,
    token: CancellationToken,
    view: Option<ViewDb>,
    procs: Vec<Proc>,
}

impl Rig {
    /// Fresh settings; each stage takes `concurrency` messages at once.
    fn new(concurrency: u16) -> Rig {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut settings = Settings::load(None).expect("the default settings load");
        settings.topology.prefix = format!("bench-{}", Uuid::now_v7().simple());
        settings.store.root = dir.path().join("store");
        settings.stages.concurrency = concurrency;
        settings.projector.db_path = dir.path().join("view.sqlite3");
        settings.http.addr = free_port_addr();
        Rig {
            settings: Arc::new(settings),
            dir: Some(dir),
            token: CancellationToken::new(),
            view: None,
            procs: Vec::new(),
        }
    }

    /// The projector, in this process (its API on a port of its own).
    async fn start_projector(&mut self) {
        let mut settings = (*self.settings).clone();
        settings.http.addr = "127.0.0.1:0".into();
        let running = tenderflow::projector::start(settings, self.token.clone())
            .await
            .expect("the projector starts");
        self.view = Some(running.db);
    }

    /// One stage, in this process, with its real handler.
    fn start_stage(&self, stage: Stage, concurrency: u16) {
        let handler = Arc::new(StageHandler {
            stage,
            context: StageContext {
                settings: Arc::clone(&self.settings),
                store: Store::from_settings(&self.settings).expect("the store opens"),
            },
        });
        let options = WorkerOptions { stage, concurrency };
        tokio::spawn(runtime::run_worker(
            Arc::clone(&self.settings),
            options,
            handler,
            self.token.clone(),
        ));
    }

    /// Starts `tenderflow ARGS` with this pipeline's settings.
    fn spawn(&mut self, args: &[&str]) -> &mut Proc {
        let name = format!("tenderflow {}", args.join(" "));
        let env = settings_env(&self.settings);
        let proc = Proc::spawn(&name, &binary(), args, &env)
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.procs.push(proc);
        self.procs.last_mut().unwrap()
    }

    /// Panics if any child process has exited: a measurement of a dead
    /// worker would be meaningless.
    fn assert_alive(&mut self) {
        for proc in &mut self.procs {
            if let Some(status) = proc.try_status() {
                panic!(
                    "{} exited ({status}); run with TEST_LOG=1 to see why",
                    proc.name
                );
            }
        }
    }

    /// Every task view.
    async fn views(&self) -> Vec<TaskView> {
        let view = self.view.clone().expect("the projector runs");
        tokio::task::spawn_blocking(move || view.all_views())
            .await
            .unwrap()
            .expect("reading the view")
    }

    /// Waits until `ready` holds of the task views (checking that no task
    /// failed and every child lives), polling every `every`.
    async fn wait_views(
        &mut self,
        what: &str,
        every: Duration,
        ready: impl Fn(&[TaskView]) -> bool,
    ) -> Vec<TaskView> {
        let deadline = Instant::now() + PHASE_LIMIT;
        loop {
            let views = self.views().await;
            if let Some(failed) = views.iter().find(|v| v.state == TaskState::Failed) {
                panic!(
                    "{what}: task {} failed: {:?}",
                    failed.task_id, failed.last_error
                );
            }
            if ready(&views) {
                return views;
            }
            self.assert_alive();
            assert!(
                Instant::now() < deadline,
                "{what}: not reached in {PHASE_LIMIT:?}"
            );
            tokio::time::sleep(every).await;
        }
    }

    /// Messages waiting in `stage`'s queue, and its consumers.
    async fn queue(&self, stage: Stage) -> (u32, u32) {
        stage_queue(&self.settings, stage).await
    }

    /// Waits until `stage`'s queue has a consumer (a worker is up).
    async fn wait_consumer(&mut self, stage: Stage) {
        let deadline = Instant::now() + PHASE_LIMIT;
        while self.queue(stage).await.1 == 0 {
            self.assert_alive();
            assert!(
                Instant::now() < deadline,
                "no {stage} worker came up in {PHASE_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops everything, gives the in-process stages a moment to let go of
    /// their queues, and deletes the topology (in `Drop`).
    async fn finish(mut self) {
        self.procs.clear();
        self.token.cancel();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

impl Drop for Rig {
    /// Kills the child processes and deletes the topology, also when the
    /// benchmark panicked, so runs leave nothing behind on the broker.
    fn drop(&mut self) {
        self.procs.clear();
        self.token.cancel();
        let settings = Arc::clone(&self.settings);
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(broker::delete_topology(&settings, "bench-teardown"));
        });
        let _ = cleanup.join();
        if let Some(dir) = self.dir.take() {
            crate::keep_until_the_end(dir);
        }
    }
}

/// Submits `copies` tasks of each file: each file is stored once, then its
/// reference is published again as a new task (ingest still reads and
/// checks every copy). Answers the first task of each file.
async fn submit_copies(settings: &Arc<Settings>, files: &[PathBuf], copies: usize) -> Vec<Uuid> {
    let submitter = Arc::new(Submitter::new(Arc::clone(settings)).expect("a submitter"));
    let mut firsts = Vec::new();
    let mut stored = Vec::new();
    for file in files {
        let upload = Upload {
            filename: tenderflow::submit::file_name(file),
            bytes: Bytes::from(
                std::fs::read(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display())),
            ),
        };
        let envelope = submitter
            .submit(vec![upload], TaskOptions::default())
            .await
            .expect("submitting a corpus file");
        firsts.push(envelope.task_id);
        stored.push(envelope.documents);
    }
    // The rest in the same order, file after file, so every stretch of
    // the queue holds the same mix.
    let rest = (1..copies).flat_map(|_| stored.iter().cloned());
    let mut publishes = futures_util::stream::iter(rest)
        .map(|documents| {
            let submitter = Arc::clone(&submitter);
            async move {
                let envelope = Envelope::new_task(documents, TaskOptions::default());
                submitter
                    .publish_task(&envelope)
                    .await
                    .expect("publishing a copy");
            }
        })
        .buffer_unordered(64);
    while publishes.next().await.is_some() {}
    firsts
}

/// The page count of each task's parsed document, read back from the
/// parsed artifact the pipeline stored (none for formats without pages).
async fn pages_of(rig: &Rig, tasks: &[Uuid]) -> Vec<u32> {
    let view = rig.view.clone().expect("the projector runs");
    let store = Store::from_settings(&rig.settings).expect("the store opens");
    let mut pages = Vec::new();
    for &task in tasks {
        let view = view.clone();
        let events = tokio::task::spawn_blocking(move || view.events(task))
            .await
            .unwrap()
            .expect("reading the task's events");
        let artifact = events
            .iter()
            .find_map(|e| match (&e.kind, e.stage) {
                (EventKind::Succeeded { artifact, .. }, Stage::Parse) => artifact.clone(),
                _ => None,
            })
            .expect("the parse stage named its artifact");
        let bytes = store.get(&artifact.key).await.expect("the parsed artifact");
        let doc: ParsedDocument = serde_json::from_slice(&bytes).expect("a parsed document");
        pages.push(doc.meta.page_count.unwrap_or(0));
    }
    pages
}

fn stage_view(view: &TaskView, stage: Stage) -> &StageView {
    view.stages
        .iter()
        .find(|s| s.stage == stage)
        .expect("every stage is in the view")
}

fn all_done(total: usize) -> impl Fn(&[TaskView]) -> bool {
    move |views| views.iter().filter(|v| v.state == TaskState::Done).count() >= total
}

fn all_passed(stage: Stage, total: usize) -> impl Fn(&[TaskView]) -> bool {
    move |views| {
        views
            .iter()
            .filter(|v| stage_view(v, stage).state == StageState::Succeeded)
            .count()
            >= total
    }
}

// ---- (3) Real documents through the whole pipeline ----

/// One run of the corpus through `run`'s stages and projector.
#[derive(Debug, Clone, Default)]
struct Corpus {
    docs_per_sec: f64,
    pages_per_sec: f64,
    /// Each stage's successful-attempt durations, in ms.
    durations: BTreeMap<&'static str, Vec<f64>>,
    docs: usize,
    pages: u64,
    secs: f64,
}

async fn real_documents(dir: &Path, copies: usize) -> Corpus {
    let mut files = corpus_files(dir, "pdf");
    files.extend(corpus_files(dir, "docx"));
    assert!(!files.is_empty(), "no PDF or DOCX files in the corpus");
    // As `tenderflow run` ships: each stage takes stages.concurrency at once.
    let concurrency = Settings::load(None).unwrap().stages.concurrency;
    let mut rig = Rig::new(concurrency);
    rig.start_projector().await;
    let firsts = submit_copies(&rig.settings, &files, copies).await;
    let total = files.len() * copies;
    rig.wait_views("the view has every task", Duration::from_millis(20), |v| {
        v.len() >= total
    })
    .await;
    let start = Instant::now();
    for stage in Stage::ALL {
        rig.start_stage(stage, concurrency);
    }
    let views = rig
        .wait_views(
            "every document done",
            Duration::from_millis(20),
            all_done(total),
        )
        .await;
    let elapsed = start.elapsed().as_secs_f64();
    let per_copy: u64 = pages_of(&rig, &firsts)
        .await
        .iter()
        .map(|&p| p as u64)
        .sum();
    let mut durations: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for view in &views {
        for stage in &view.stages {
            if let Some(ms) = stage.duration_ms {
                durations
                    .entry(stage.stage.as_str())
                    .or_default()
                    .push(ms as f64);
            }
        }
    }
    rig.finish().await;
    let pages = per_copy * copies as u64;
    Corpus {
        docs_per_sec: total as f64 / elapsed,
        pages_per_sec: pages as f64 / elapsed,
        durations,
        docs: total,
        pages,
        secs: elapsed,
    }
}

// ---- (4) Parse scaled out over worker processes ----

/// How the parse stage runs in a scaling measurement.
#[derive(Debug, Clone, Copy)]
struct ParseWorkers {
    processes: usize,
    concurrency: u16,
}

/// Parse throughput (documents a second) of `workers` over the PDFs, each
/// `copies` times: timed from the first parse attempt's start to the last
/// one's success, by the events' own clocks.
///
/// Ingest runs (in this process) before the clock, so the whole set waits
/// in the parse queue; filter and extract are not started, so that on a
/// small machine they do not take the cores the parse workers are measured
/// on. The projector runs in this process throughout.
async fn parse_scaling(pdfs: &[PathBuf], copies: usize, workers: ParseWorkers) -> f64 {
    let mut rig = Rig::new(PREFETCH);
    rig.start_projector().await;
    rig.start_stage(Stage::Ingest, PREFETCH);
    submit_copies(&rig.settings, pdfs, copies).await;
    let total = pdfs.len() * copies;
    rig.wait_views(
        "every document ingested",
        Duration::from_millis(50),
        all_passed(Stage::Ingest, total),
    )
    .await;
    let concurrency = workers.concurrency.to_string();
    for _ in 0..workers.processes {
        rig.spawn(&["worker", "parse", "--concurrency", concurrency.as_str()]);
    }
    let views = rig
        .wait_views(
            "every document parsed",
            Duration::from_millis(100),
            all_passed(Stage::Parse, total),
        )
        .await;
    let parse: Vec<_> = views.iter().map(|v| stage_view(v, Stage::Parse)).collect();
    let first = parse.iter().filter_map(|s| s.started_at).min().unwrap();
    let last = parse.iter().filter_map(|s| s.finished_at).max().unwrap();
    rig.finish().await;
    let secs = (last - first).num_milliseconds() as f64 / 1000.0;
    total as f64 / secs
}

// ---- (2b) The overhead burst with each stage its own process ----

/// The burst of `super::pipeline_burst`, with the four stages as separate
/// `tenderflow worker` processes (prefetch 64 each) and the projector in
/// this process: documents a second, timed from starting the workers to the
/// view showing every task done.
pub async fn processes_burst(docs: usize) -> Figures {
    let mut rig = Rig::new(PREFETCH);
    rig.start_projector().await;
    let submitter = Arc::new(Submitter::new(Arc::clone(&rig.settings)).expect("a submitter"));
    let mut batch = futures_util::stream::iter(0..docs)
        .map(|id| {
            let submitter = Arc::clone(&submitter);
            async move {
                submitter
                    .submit(vec![small_doc(id)], TaskOptions::default())
                    .await
                    .expect("submitting a document");
            }
        })
        .buffer_unordered(64);
    while batch.next().await.is_some() {}
    rig.wait_views("the view has every task", Duration::from_millis(20), |v| {
        v.len() >= docs
    })
    .await;
    let start = Instant::now();
    for stage in Stage::ALL {
        rig.spawn(&["worker", stage.as_str()]);
    }
    // Counting states is cheaper than reading every view.
    let view = rig.view.clone().expect("the projector runs");
    let deadline = Instant::now() + PHASE_LIMIT;
    loop {
        let view = view.clone();
        let counts = tokio::task::spawn_blocking(move || view.count_by_state())
            .await
            .unwrap()
            .expect("counting tasks");
        let count = |state: &str| {
            counts
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n)
        };
        assert_eq!(count("failed"), 0, "tasks failed in the process burst");
        if count("done") >= docs as u64 {
            break;
        }
        rig.assert_alive();
        assert!(
            Instant::now() < deadline,
            "process burst not done in {PHASE_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let result = figures(docs, start.elapsed(), Vec::new());
    rig.finish().await;
    result
}

// ---- (5) Memory of the binary ----

/// VmRSS of an idle `tenderflow run`, in KiB: sampled once its API says
/// ready, after two quiet seconds.
async fn idle_run_rss() -> u64 {
    let mut rig = Rig::new(Settings::load(None).unwrap().stages.concurrency);
    let url = format!("http://{}/readyz", rig.settings.http.addr);
    rig.spawn(&["run"]);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + PHASE_LIMIT;
    loop {
        let ready = http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            break;
        }
        rig.assert_alive();
        assert!(Instant::now() < deadline, "`tenderflow run` never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Each stage declares its topology and starts consuming after the API
    // is up: wait for the last of them, then let it settle.
    for stage in Stage::ALL {
        rig.wait_consumer(stage).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = rig.procs[0].rss_kib().expect("the process's VmRSS");
    rig.finish().await;
    rss
}

/// One worker's memory facing a backlog.
#[derive(Debug, Clone, Copy, Default)]
struct Backlog {
    /// Never used yet, empty queue.
    idle_kib: u64,
    /// After [`WARM_UP`] messages handled, empty queue again.
    warm_kib: u64,
    peak_kib: u64,
    deepest: u32,
    handled: u32,
    secs: f64,
}

/// Messages a worker handles before its warm empty-queue RSS is taken.
const WARM_UP: usize = 100;

/// Publishes `count` copies of `template`, each its own task, with confirms.
async fn publish_copies(
    channel: &lapin::Channel,
    topology: &tenderflow::topology::Topology,
    template: &Envelope,
    count: usize,
) {
    let mut left = count;
    while left > 0 {
        let batch = left.min(500);
        let mut pending = Vec::with_capacity(batch);
        for _ in 0..batch {
            let mut envelope = template.clone();
            envelope.task_id = Uuid::now_v7();
            let message = Outgoing::new(topology.work_exchange(), "parse", envelope.encode())
                .for_task(envelope.task_id, None);
            pending.push(
                broker::publish(channel, &message)
                    .await
                    .expect("publishing the backlog"),
            );
        }
        for confirm in pending {
            confirm
                .wait()
                .await
                .expect("the broker confirms the backlog");
        }
        left -= batch;
    }
}

/// VmRSS of one `tenderflow worker parse` (stages.concurrency as shipped)
/// with an empty queue, twice: never used, and warm (after [`WARM_UP`]
/// messages, the queue empty again); then its peak while `backlog` small
/// Markdown documents, published at once, queue in front of it and it works
/// through them (sampled every 100 ms until the queue is empty, or for
/// [`BACKLOG_WINDOW`]). The warm figure separates what a first use costs
/// (code pages, threads, buffers) from what a deep queue would.
async fn worker_backlog_rss(backlog: usize) -> Backlog {
    let mut rig = Rig::new(Settings::load(None).unwrap().stages.concurrency);
    let store = Store::from_settings(&rig.settings).expect("the store opens");
    let doc = small_doc(0);
    let original = store
        .put_original(doc.bytes)
        .await
        .expect("storing the document");
    let mut template = Envelope::new_task(
        vec![DocumentRef {
            uri: format!("store:{}", original.key),
            sha256: original.sha256.clone(),
            size: original.size,
            media_type: Some("text/markdown".into()),
            filename: doc.filename,
        }],
        TaskOptions::default(),
    );
    template.stage = Stage::Parse;
    template.artifacts.originals = vec![original];

    rig.spawn(&["worker", "parse"]);
    rig.wait_consumer(Stage::Parse).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_kib = rig.procs[0].rss_kib().expect("the worker's VmRSS");

    let (conn, channel, topology) = broker::open(&rig.settings, "bench-backlog")
        .await
        .expect("the broker answers");
    publish_copies(&channel, &topology, &template, WARM_UP).await;
    let deadline = Instant::now() + PHASE_LIMIT;
    while rig.queue(Stage::Filter).await.0 < WARM_UP as u32 {
        rig.assert_alive();
        assert!(
            Instant::now() < deadline,
            "warm-up not done in {PHASE_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let warm_kib = rig.procs[0].rss_kib().expect("the worker's VmRSS");

    let sampler = {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let pid = rig.procs[0].pid();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = &mut stopped => return peak,
                    _ = tick.tick() => {
                        peak = peak.max(rss_kib_of(pid).unwrap_or(0));
                    }
                }
            }
        });
        (stop, task)
    };
    let start = Instant::now();
    publish_copies(&channel, &topology, &template, backlog).await;
    let _ = conn.close(200, "done".into()).await;
    let mut deepest = 0;
    loop {
        let (depth, _) = rig.queue(Stage::Parse).await;
        deepest = deepest.max(depth);
        if depth == 0 || start.elapsed() > BACKLOG_WINDOW {
            break;
        }
        rig.assert_alive();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let handled = rig
        .queue(Stage::Filter)
        .await
        .0
        .saturating_sub(WARM_UP as u32);
    let (stop, task) = sampler;
    let _ = stop.send(());
    let peak_kib = task.await.unwrap().max(warm_kib);
    rig.finish().await;
    Backlog {
        idle_kib,
        warm_kib,
        peak_kib,
        deepest,
        handled,
        secs,
    }
}

// ---- The workload part: runs and tables ----

fn median_of(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn quantile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    super::percentile(&sorted, p)
}

/// Runs the real-document, scaling and memory measurements `options.runs`
/// times each and prints their tables.
pub async fn run(options: Options) {
    println!();
    println!(
        "workload: corpus files x {} copies, parse scaling over the PDFs x {} copies, \
         memory with a backlog of {}, {} runs",
        options.copies, options.copies, options.backlog, options.runs
    );
    let dir = corpus();
    if dir.is_none() {
        println!(
            "the corpus ({CORPUS} from the repository root) is missing: \
             skipping the real-document and scaling measurements"
        );
    }
    let pdfs = dir
        .as_deref()
        .map(|d| corpus_files(d, "pdf"))
        .unwrap_or_default();
    let setups = [
        (
            "1 worker process, concurrency 1",
            ParseWorkers {
                processes: 1,
                concurrency: 1,
            },
        ),
        (
            "2 worker processes, concurrency 1 each",
            ParseWorkers {
                processes: 2,
                concurrency: 1,
            },
        ),
        (
            "1 worker process, concurrency 2",
            ParseWorkers {
                processes: 1,
                concurrency: 2,
            },
        ),
    ];
    let mut corpus_runs = Vec::new();
    let mut scaling: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    let mut run_rss = Vec::new();
    let mut backlogs = Vec::new();
    for run in 0..options.runs {
        if let Some(dir) = &dir {
            corpus_runs.push(real_documents(dir, options.copies).await);
            if !pdfs.is_empty() {
                for (i, (_, workers)) in setups.iter().enumerate() {
                    scaling[i].push(parse_scaling(&pdfs, options.copies, *workers).await);
                }
            }
        }
        run_rss.push(idle_run_rss().await as f64);
        backlogs.push(worker_backlog_rss(options.backlog).await);
        eprintln!("workload run {} of {} done", run + 1, options.runs);
    }
    let runs = options.runs;

    if !corpus_runs.is_empty() {
        let last = corpus_runs.last().unwrap();
        println!();
        println!(
            "Real documents (`run`'s four stages + projector in one process, concurrency as shipped): \
             {} docs, {} PDF pages a run, queued first, timed until the view shows all done",
            last.docs, last.pages
        );
        println!();
        println!("| measurement (median of {runs}) | value |");
        println!("|---|---|");
        let docs = median_of(corpus_runs.iter().map(|c| c.docs_per_sec).collect());
        let pages = median_of(corpus_runs.iter().map(|c| c.pages_per_sec).collect());
        let secs = median_of(corpus_runs.iter().map(|c| c.secs).collect());
        println!("| documents / s | {docs:.1} |");
        println!("| PDF pages / s | {pages:.1} |");
        println!("| wall time, s | {secs:.1} |");
        println!();
        println!("| stage (all runs' attempts) | median ms | p90 ms | max ms |");
        println!("|---|---|---|---|");
        for stage in Stage::ALL {
            let all: Vec<f64> = corpus_runs
                .iter()
                .flat_map(|c| c.durations.get(stage.as_str()).cloned().unwrap_or_default())
                .collect();
            println!(
                "| {stage} | {:.0} | {:.0} | {:.0} |",
                quantile(&all, 0.5),
                quantile(&all, 0.9),
                quantile(&all, 1.0)
            );
        }
    }

    if scaling.iter().all(|s| !s.is_empty()) {
        println!();
        println!(
            "Parse scaling: {} PDFs x {} copies ingested first, then parsed by separate \
             `tenderflow worker parse` processes (filter and extract not running); \
             first parse start to last parse success",
            pdfs.len(),
            options.copies
        );
        println!();
        println!("| parse workers (median of {runs}) | docs / s | ratio to 1 worker |");
        println!("|---|---|---|");
        let base = median_of(scaling[0].clone());
        for ((name, _), values) in setups.iter().zip(&scaling) {
            let m = median_of(values.clone());
            println!("| {name} | {m:.2} | {:.2} |", m / base);
        }
    }

    println!();
    println!("Memory (VmRSS of the release binary)");
    println!();
    println!("| measurement (median of {runs}) | MiB |");
    println!("|---|---|");
    let mib = |kib: f64| kib / 1024.0;
    println!(
        "| idle `tenderflow run` (4 stages + projector + API) | {:.1} |",
        mib(median_of(run_rss))
    );
    let idle = median_of(backlogs.iter().map(|b| b.idle_kib as f64).collect());
    let warm = median_of(backlogs.iter().map(|b| b.warm_kib as f64).collect());
    let peak = median_of(backlogs.iter().map(|b| b.peak_kib as f64).collect());
    let ratio = |base: fn(&Backlog) -> u64| {
        median_of(
            backlogs
                .iter()
                .map(|b| b.peak_kib as f64 / base(b) as f64)
                .collect(),
        )
    };
    let last = backlogs.last().copied().unwrap_or_default();
    println!(
        "| `tenderflow worker parse`, empty queue, never used | {:.1} |",
        mib(idle)
    );
    println!(
        "| same worker, empty queue again after {WARM_UP} messages | {:.1} |",
        mib(warm)
    );
    println!(
        "| same worker, peak while it works through {} queued messages (deepest seen {}, {} handled in {:.1} s) | {:.1} |",
        options.backlog,
        last.deepest,
        last.handled,
        last.secs,
        mib(peak)
    );
    println!(
        "| peak / warm empty-queue RSS (target <= 1.20) | {:.2} |",
        ratio(|b| b.warm_kib)
    );
    println!(
        "| peak / never-used empty-queue RSS | {:.2} |",
        ratio(|b| b.idle_kib)
    );
}
