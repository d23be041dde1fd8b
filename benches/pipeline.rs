//! Throughput and latency of the pipeline against the broker's own ceiling,
//! measured in one run so that the ratios hold on a noisy machine.
//!
//! `cargo bench --bench pipeline -- [--docs N] [--runs R] [--rate R] [--secs S] [--breakdown]
//! [--copies C] [--backlog B] [--only overhead|workload|classic|submit] [--keep]`
//!
//! The overhead part is below; the workload part (real documents, parse
//! scaling, memory) is in `pipeline/workload.rs`; the bulk submit part
//! (`tenderflow submit FOLDER` against the pipeline's burst rate) in
//! `pipeline/submit.rs`.
//!
//! Needs RabbitMQ on 127.0.0.1:5672. Every run uses fresh queue names and
//! deletes them afterwards.

/// The allocator `tenderflow run` has (`src/main.rs`), so that the
/// in-process pipelines cost what `run` costs: under glibc's malloc,
/// allocating and freeing took 8 % of this process's CPU samples in a
/// classic run (`perf record -g`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tenderflow::config::{Settings, WorkQueues};
use tenderflow::envelope::{Stage, TaskOptions};
use tenderflow::projector::db::ListFilter;
use tenderflow::projector::view::{TaskState, TaskView};
use tenderflow::runtime::{self, WorkerOptions};
use tenderflow::stages::{StageContext, StageHandler};
use tenderflow::store::Store;
use tenderflow::submit::{Submitter, Upload};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[path = "pipeline/workload.rs"]
mod workload;

#[path = "pipeline/submit.rs"]
mod submit;

// The integration tests' child-process settings, so a worker the bench
// starts gets every setting the bench's pipeline has.
#[allow(dead_code)]
#[path = "../tests/it/procs.rs"]
mod procs;

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Temporary folders of finished measurements, deleted when the bench ends.
///
/// Deleting thousands of artifacts between measurements would tax the next
/// one: ext4 without a journal skips inodes freed in the last one to six
/// minutes when it allocates new ones, and that scan showed up as a third
/// of the pipeline's CPU. The cleanup is the bench's cost, not the
/// pipeline's.
static FINISHED: std::sync::Mutex<Vec<tempfile::TempDir>> = std::sync::Mutex::new(Vec::new());

/// Keeps `dir` until the bench ends (see [`DeleteFinished`]).
fn keep_until_the_end(dir: tempfile::TempDir) {
    FINISHED.lock().unwrap().push(dir);
}

/// Deletes the folders of every finished measurement when dropped, also
/// when the bench panics; with `keep`, leaves them and says where they are
/// (so that back-to-back runs do not pay for each other's cleanup).
struct DeleteFinished {
    keep: bool,
}

impl Drop for DeleteFinished {
    fn drop(&mut self) {
        let mut finished = FINISHED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for dir in finished.drain(..) {
            if self.keep {
                eprintln!("kept {}", dir.keep().display());
            }
        }
    }
}

const PREFETCH: u16 = 64;

#[derive(Debug, Clone, Copy)]
struct Args {
    docs: usize,
    runs: usize,
    rate: u32,
    secs: u64,
    /// Print where the paced documents' time went (last run).
    breakdown: bool,
    /// Copies of each corpus file in the workload part.
    copies: usize,
    /// Messages queued in front of a worker in the memory measurement.
    backlog: usize,
    /// Only this part, if set.
    only: Option<Part>,
    /// Leave the measurements' temporary folders in place.
    keep: bool,
}

/// The benchmark's parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The ceiling and tenderflow's overhead against it.
    Overhead,
    /// Real documents, parse scaling and memory.
    Workload,
    /// The ceiling and the in-process pipeline on classic work queues
    /// only: the quick loop for profiling a change.
    Classic,
    /// `tenderflow submit` of a folder of small documents against the
    /// in-process pipeline's burst rate.
    Submit,
}

fn args() -> Args {
    let mut args = Args {
        docs: 2000,
        runs: 3,
        rate: 200,
        secs: 10,
        breakdown: false,
        copies: 6,
        backlog: 10_000,
        only: None,
        keep: false,
    };
    let raw: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < raw.len() {
        if raw[i] == "--only" {
            args.only = match raw.get(i + 1).map(String::as_str) {
                Some("overhead") => Some(Part::Overhead),
                Some("workload") => Some(Part::Workload),
                Some("classic") => Some(Part::Classic),
                Some("submit") => Some(Part::Submit),
                other => {
                    panic!("--only takes overhead, workload, classic or submit, not {other:?}")
                }
            };
            i += 2;
            continue;
        }
        let value = raw.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (raw[i].as_str(), value) {
            ("--docs", Some(v)) => args.docs = v as usize,
            ("--runs", Some(v)) => args.runs = v as usize,
            ("--rate", Some(v)) => args.rate = v as u32,
            ("--secs", Some(v)) => args.secs = v,
            ("--copies", Some(v)) => args.copies = v as usize,
            ("--backlog", Some(v)) => args.backlog = v as usize,
            ("--breakdown", _) => {
                args.breakdown = true;
                i += 1;
                continue;
            }
            ("--keep", _) => {
                args.keep = true;
                i += 1;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    args
}

/// One measurement: documents per second, latency percentiles (ms), and
/// the CPU time per document of this process and of the broker (ms), which
/// noise on a shared machine disturbs far less than wall-clock rates.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_ms: f64,
    broker_cpu_ms: f64,
    /// The parse processes this process started and reaped (`parse.isolation
    /// = "process"`, one per document): not in `cpu_ms`, which is this
    /// process's own.
    children_cpu_ms: f64,
}

/// CPU time (user + system) used so far by process `pid`, in ms.
fn cpu_ms_of(pid: &str) -> Option<f64> {
    stat_ticks_ms(pid, 11)
}

/// CPU time (user + system) of the children `pid` has waited for, in ms.
fn children_cpu_ms_of(pid: &str) -> Option<f64> {
    stat_ticks_ms(pid, 13)
}

/// Two adjacent clock-tick fields of `/proc/PID/stat` summed, in ms; `at`
/// counts from field 3 (`utime` is 11, `cutime` 13).
fn stat_ticks_ms(pid: &str, at: usize) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 =
        fields.get(at)?.parse::<f64>().ok()? + fields.get(at + 1)?.parse::<f64>().ok()?;
    // Linux reports in clock ticks of 1/100 s.
    Some(ticks * 10.0)
}

/// The local broker's process (the Erlang VM running RabbitMQ), if this
/// machine runs it; looked up once, so that another Erlang VM starting
/// mid-run (a `rabbitmqctl`) cannot be taken for it.
fn broker_pid() -> Option<String> {
    static PID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    PID.get_or_init(|| {
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .find_map(|entry| {
                let pid = entry.file_name().into_string().ok()?;
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let rabbit = String::from_utf8_lossy(&cmdline).contains("rabbit");
                (comm.trim().starts_with("beam") && rabbit).then_some(pid)
            })
    })
    .clone()
}

/// CPU time used by this process and the broker between `start` and `stop`.
#[derive(Debug, Clone, Copy)]
struct CpuClock {
    own: f64,
    broker: f64,
    children: f64,
}

impl CpuClock {
    fn now() -> CpuClock {
        CpuClock {
            own: cpu_ms_of("self").unwrap_or(f64::NAN),
            broker: broker_pid().and_then(|p| cpu_ms_of(&p)).unwrap_or(f64::NAN),
            children: children_cpu_ms_of("self").unwrap_or(f64::NAN),
        }
    }

    /// Stamps the CPU per document since `self` onto `figures`.
    fn per_doc(self, docs: usize, mut figures: Figures) -> Figures {
        let now = CpuClock::now();
        figures.cpu_ms = (now.own - self.own) / docs as f64;
        figures.broker_cpu_ms = (now.broker - self.broker) / docs as f64;
        figures.children_cpu_ms = (now.children - self.children) / docs as f64;
        figures
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn figures(count: usize, elapsed: Duration, mut latencies: Vec<f64>) -> Figures {
    latencies.sort_by(|a, b| a.total_cmp(b));
    Figures {
        per_sec: count as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        ..Figures::default()
    }
}

fn median(values: &[Figures]) -> Figures {
    let pick = |f: fn(&Figures) -> f64| {
        let mut v: Vec<f64> = values.iter().map(f).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    Figures {
        per_sec: pick(|f| f.per_sec),
        p50_ms: pick(|f| f.p50_ms),
        p99_ms: pick(|f| f.p99_ms),
        cpu_ms: pick(|f| f.cpu_ms),
        broker_cpu_ms: pick(|f| f.broker_cpu_ms),
        children_cpu_ms: pick(|f| f.children_cpu_ms),
    }
}

// ---- The ceiling: plain lapin, four hops, no tenderflow code ----

async fn confirm_channel(conn: &Connection) -> Channel {
    let channel = conn.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    channel
}

/// Publishes persistently and waits for the confirm; fails only once the
/// run is over and its connections are closing.
async fn publish(channel: &Channel, queue: &str, body: &[u8]) -> Result<(), lapin::Error> {
    let confirm = channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await?
        .await?;
    assert!(confirm.is_ack());
    Ok(())
}

/// One hop: consume `from`, publish to `to` with a confirm, then ack.
async fn hop(conn: Connection, from: String, to: String, token: CancellationToken) {
    let out = confirm_channel(&conn).await;
    let input = conn.create_channel().await.unwrap();
    input
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = input
        .basic_consume(
            from.as_str().into(),
            "hop".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            Some(Ok(delivery)) = consumer.next() => {
                let out = out.clone();
                let to = to.clone();
                tokio::spawn(async move {
                    if publish(&out, &to, &delivery.data).await.is_ok() {
                        let _ = delivery.acker.ack(BasicAckOptions::default()).await;
                    }
                });
            }
        }
    }
    let _ = conn.close(200, "done".into()).await;
}

/// Runs the four hops into a sink; returns the sink's receiver of bodies.
async fn ceiling_chain(
    queues: &[String],
    token: &CancellationToken,
) -> mpsc::UnboundedReceiver<(Instant, Vec<u8>)> {
    for window in queues.windows(2) {
        let conn = Connection::connect(URL, ConnectionProperties::default())
            .await
            .unwrap();
        tokio::spawn(hop(
            conn,
            window[0].clone(),
            window[1].clone(),
            token.clone(),
        ));
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let conn = Connection::connect(URL, ConnectionProperties::default())
        .await
        .unwrap();
    let sink = conn.create_channel().await.unwrap();
    sink.basic_qos(1000, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = sink
        .basic_consume(
            queues[4].as_str().into(),
            "sink".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let token = token.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                Some(Ok(delivery)) = consumer.next() => {
                    let _ = tx.send((Instant::now(), delivery.data.clone()));
                    let _ = delivery.acker.ack(BasicAckOptions::default()).await;
                }
            }
        }
        let _ = conn.close(200, "done".into()).await;
    });
    rx
}

async fn with_queues<F, Fut>(f: F) -> Figures
where
    F: FnOnce(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Figures>,
{
    let prefix = format!("bench-{}", Uuid::now_v7().simple());
    let queues: Vec<String> = (0..5).map(|i| format!("{prefix}.q{i}")).collect();
    let conn = Connection::connect(URL, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    for queue in &queues {
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }
    let result = f(queues.clone()).await;
    for queue in &queues {
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "done".into()).await;
    result
}

/// A body of about the size of a real envelope, stamped with its id.
fn body(id: usize) -> Vec<u8> {
    let mut body = format!("{id:>12}").into_bytes();
    body.resize(600, b' ');
    body
}

fn id_of(body: &[u8]) -> usize {
    std::str::from_utf8(&body[..12])
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

async fn ceiling_burst(docs: usize) -> Figures {
    with_queues(|queues| async move {
        let conn = Connection::connect(URL, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = confirm_channel(&conn).await;
        let mut pending = Vec::new();
        for id in 0..docs {
            let confirm = channel
                .basic_publish(
                    "".into(),
                    queues[0].as_str().into(),
                    BasicPublishOptions::default(),
                    &body(id),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .unwrap();
            pending.push(confirm);
        }
        for confirm in pending {
            confirm.await.unwrap();
        }
        let token = CancellationToken::new();
        let start = Instant::now();
        let cpu = CpuClock::now();
        let mut rx = ceiling_chain(&queues, &token).await;
        let mut latencies = Vec::with_capacity(docs);
        for _ in 0..docs {
            let (at, _) = rx.recv().await.unwrap();
            latencies.push((at - start).as_secs_f64() * 1000.0);
        }
        let elapsed = start.elapsed();
        let result = cpu.per_doc(docs, figures(docs, elapsed, latencies));
        token.cancel();
        let _ = conn.close(200, "done".into()).await;
        result
    })
    .await
}

async fn ceiling_paced(rate: u32, secs: u64) -> Figures {
    with_queues(|queues| async move {
        let token = CancellationToken::new();
        let mut rx = ceiling_chain(&queues, &token).await;
        let conn = Connection::connect(URL, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = confirm_channel(&conn).await;
        let total = (rate as u64 * secs) as usize;
        let sent: Arc<std::sync::Mutex<HashMap<usize, Instant>>> = Arc::default();
        let start = Instant::now();
        let publisher = {
            let sent = Arc::clone(&sent);
            let queue = queues[0].clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
                let mut publishes = tokio::task::JoinSet::new();
                for id in 0..total {
                    tick.tick().await;
                    sent.lock().unwrap().insert(id, Instant::now());
                    let channel = channel.clone();
                    let queue = queue.clone();
                    publishes
                        .spawn(async move { publish(&channel, &queue, &body(id)).await.unwrap() });
                }
                // A message can reach the last hop before the broker has
                // confirmed its first publish (a classic queue delivers
                // before its fsync): every confirm is awaited before the
                // connection closes.
                while let Some(joined) = publishes.join_next().await {
                    joined.unwrap();
                }
            })
        };
        let mut latencies = Vec::with_capacity(total);
        for _ in 0..total {
            let (at, data) = rx.recv().await.unwrap();
            let sent_at = sent.lock().unwrap()[&id_of(&data)];
            latencies.push((at - sent_at).as_secs_f64() * 1000.0);
        }
        publisher.await.unwrap();
        token.cancel();
        let _ = conn.close(200, "done".into()).await;
        figures(total, start.elapsed(), latencies)
    })
    .await
}

// ---- tenderflow: the four real stages in this process ----

struct Pipeline {
    settings: Arc<Settings>,
    dir: tempfile::TempDir,
    token: CancellationToken,
    view: Option<tenderflow::projector::db::ViewDb>,
    changes: Option<tokio::sync::broadcast::Sender<TaskView>>,
}

impl Pipeline {
    fn new(work_queues: WorkQueues) -> Pipeline {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::load(None).unwrap();
        settings.topology.prefix = format!("bench-{}", Uuid::now_v7().simple());
        settings.topology.work_queues = work_queues;
        settings.store.root = dir.path().join("store");
        settings.stages.concurrency = PREFETCH;
        settings.projector.db_path = dir.path().join("view.sqlite3");
        settings.http.addr = "127.0.0.1:0".into();
        Pipeline {
            settings: Arc::new(settings),
            dir,
            token: CancellationToken::new(),
            view: None,
            changes: None,
        }
    }

    /// The projector and its API, as `tenderflow run` has them.
    async fn start_projector(&mut self) {
        let running = tenderflow::projector::start((*self.settings).clone(), self.token.clone())
            .await
            .unwrap();
        self.view = Some(running.db);
        self.changes = Some(running.changes);
    }

    /// Tasks the view shows as done, as the projector commits them: it
    /// announces every changed view, as it does to the API's watch streams.
    fn watch_done(&self) -> mpsc::UnboundedReceiver<(Instant, Uuid)> {
        let mut changes = self
            .changes
            .as_ref()
            .expect("the projector runs")
            .subscribe();
        let view = self.view.clone().expect("the projector runs");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(task) if task.state == TaskState::Done => {
                        if tx.send((Instant::now(), task.task_id)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        // Fell behind: take the done tasks from the view
                        // (late, so these latencies only grow).
                        let view = view.clone();
                        let filter = ListFilter {
                            state: Some(TaskState::Done),
                            limit: 100_000,
                            ..Default::default()
                        };
                        let page = tokio::task::spawn_blocking(move || view.tasks(&filter))
                            .await
                            .unwrap()
                            .unwrap();
                        let now = Instant::now();
                        for task in page.tasks {
                            if tx.send((now, task.task_id)).is_err() {
                                return;
                            }
                        }
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        rx
    }

    fn start(&self) {
        let context = StageContext {
            settings: Arc::clone(&self.settings),
            store: Store::from_settings(&self.settings).unwrap(),
        };
        for stage in Stage::ALL {
            let handler = Arc::new(StageHandler {
                stage,
                context: context.clone(),
            });
            let options = WorkerOptions {
                stage,
                concurrency: PREFETCH,
            };
            tokio::spawn(runtime::run_worker(
                Arc::clone(&self.settings),
                options,
                handler,
                self.token.clone(),
            ));
        }
    }

    /// Waits until every stage's queue has its consumer, so that a paced
    /// run measures documents, not the workers connecting.
    async fn wait_consuming(&self) {
        for stage in Stage::ALL {
            while workload::stage_queue(&self.settings, stage).await.1 == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    async fn delete(self) {
        self.token.cancel();
        tokio::time::sleep(Duration::from_millis(300)).await;
        tenderflow::broker::delete_topology(&self.settings, "bench-teardown").await;
        keep_until_the_end(self.dir);
    }
}

fn small_doc(id: usize) -> Upload {
    Upload {
        filename: format!("tender-{id}.md"),
        bytes: Bytes::from(format!(
            "# 招标公告 {id}\n\n| 条款 | 内容 |\n|---|---|\n| 项目名称 | 测试道路工程{id}标段 |\n| 招标编号 | BENCH-{id:06} |\n| 最高投标限价 | 人民币{id}万元 |\n\n投标截止时间为2027年3月18日9时30分。\n"
        )),
    }
}

async fn pipeline_burst(docs: usize, work_queues: WorkQueues) -> Figures {
    let mut pipeline = Pipeline::new(work_queues);
    pipeline.start_projector().await;
    let submitter = Arc::new(Submitter::new(Arc::clone(&pipeline.settings)).unwrap());
    let mut batch = futures_util::stream::iter(0..docs)
        .map(|id| {
            let submitter = Arc::clone(&submitter);
            async move {
                submitter
                    .submit(vec![small_doc(id)], TaskOptions::default())
                    .await
                    .unwrap()
                    .task_id
            }
        })
        .buffer_unordered(64);
    while batch.next().await.is_some() {}
    // Wait until the view has caught up with the submissions, so that the
    // clock measures the stages alone.
    while count_state(&pipeline, "queued").await < docs as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Burst throughput only: count the tasks the view shows as done, as
    // the projector announces them (asking the view for counts every few
    // ms would load the machine being measured).
    let mut done_rx = pipeline.watch_done();
    let start = Instant::now();
    let cpu = CpuClock::now();
    pipeline.start();
    let mut done = std::collections::HashSet::with_capacity(docs);
    while done.len() < docs {
        let (_, task) = done_rx.recv().await.expect("the projector runs");
        done.insert(task);
    }
    let result = cpu.per_doc(docs, figures(docs, start.elapsed(), Vec::new()));
    let view = pipeline.view.clone().unwrap();
    if let Ok(Some(offset)) = tokio::task::spawn_blocking(move || view.offset())
        .await
        .unwrap()
    {
        // Stream offsets count from 0; the submissions wrote some of them.
        eprintln!(
            "{work_queues:?} burst: {:.2} events stream entries per document",
            (offset + 1) as f64 / docs as f64
        );
    }
    pipeline.delete().await;
    result
}

async fn count_state(pipeline: &Pipeline, state: &str) -> u64 {
    let view = pipeline.view.clone().unwrap();
    let counts = tokio::task::spawn_blocking(move || view.count_by_state())
        .await
        .unwrap()
        .unwrap();
    counts
        .iter()
        .find(|(s, _)| s == state)
        .map_or(0, |(_, n)| *n)
}

async fn pipeline_paced(rate: u32, secs: u64, work_queues: WorkQueues, breakdown: bool) -> Figures {
    let mut pipeline = Pipeline::new(work_queues);
    pipeline.start_projector().await;
    pipeline.start();
    pipeline.wait_consuming().await;
    let mut rx = pipeline.watch_done();
    let submitter = Arc::new(Submitter::new(Arc::clone(&pipeline.settings)).unwrap());
    let total = (rate as u64 * secs) as usize;
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<(Uuid, Instant)>();
    let start = Instant::now();
    let publisher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        for id in 0..total {
            tick.tick().await;
            let submitter = Arc::clone(&submitter);
            let sent_tx = sent_tx.clone();
            tokio::spawn(async move {
                let at = Instant::now();
                let task = submitter
                    .submit(vec![small_doc(id)], TaskOptions::default())
                    .await
                    .unwrap()
                    .task_id;
                let _ = sent_tx.send((task, at));
            });
        }
    });
    let mut sent = HashMap::new();
    let mut done = HashMap::new();
    while done.len() < total {
        tokio::select! {
            Some((task, at)) = sent_rx.recv() => { sent.insert(task, at); }
            Some((at, task)) = rx.recv() => { done.entry(task).or_insert(at); }
        }
    }
    while sent.len() < total {
        let (task, at) = sent_rx.recv().await.unwrap();
        sent.insert(task, at);
    }
    publisher.await.unwrap();
    let latencies = done
        .iter()
        .filter_map(|(task, at)| sent.get(task).map(|s| (*at - *s).as_secs_f64() * 1000.0))
        .collect();
    let result = figures(total, start.elapsed(), latencies);
    if breakdown {
        print_breakdown(&pipeline.view.clone().unwrap().all_views().unwrap());
    }
    pipeline.delete().await;
    result
}

/// Where the time of the paced documents went, from the views' own
/// timestamps (the stages' clocks): submit to the first stage, each stage,
/// and each wait between stages.
fn print_breakdown(views: &[TaskView]) {
    let ms = |from: Option<chrono::DateTime<chrono::Utc>>,
              to: Option<chrono::DateTime<chrono::Utc>>| {
        Some((to? - from?).num_microseconds()? as f64 / 1000.0)
    };
    let mut spans: Vec<(String, Vec<f64>)> = Vec::new();
    let mut add = |name: String, value: Option<f64>| {
        let Some(value) = value else { return };
        match spans.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => spans.push((name, vec![value])),
        }
    };
    for view in views {
        let stages = &view.stages;
        add(
            format!("submit to {} start", stages[0].stage),
            ms(Some(view.created_at), stages[0].started_at),
        );
        for (i, stage) in stages.iter().enumerate() {
            add(
                stage.stage.to_string(),
                ms(stage.started_at, stage.finished_at),
            );
            if let Some(next) = stages.get(i + 1) {
                add(
                    format!("{} to {} start", stage.stage, next.stage),
                    ms(stage.finished_at, next.started_at),
                );
            }
        }
        add(
            "submit to done".into(),
            ms(Some(view.created_at), view.finished_at),
        );
    }
    eprintln!("  where the time went (ms, from the events' clocks):");
    for (name, mut values) in spans {
        values.sort_by(|a, b| a.total_cmp(b));
        eprintln!(
            "    {name:24} p50 {:7.1}  p99 {:7.1}",
            percentile(&values, 0.5),
            percentile(&values, 0.99)
        );
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let _delete_finished = DeleteFinished { keep: args.keep };
    let workload = workload::Options {
        runs: args.runs,
        copies: args.copies,
        backlog: args.backlog,
    };
    if args.only == Some(Part::Workload) {
        workload::run(workload).await;
        return;
    }
    if args.only == Some(Part::Submit) {
        submit::run(args.docs, args.runs).await;
        return;
    }
    println!(
        "tenderflow pipeline benchmark: {} docs burst, {} docs/s paced for {} s, {} runs, prefetch {PREFETCH}",
        args.docs, args.rate, args.secs, args.runs
    );
    let mut rows: Vec<(&str, Vec<Figures>)> = vec![
        ("ceiling, burst (lapin, 4 hops, classic queues)", vec![]),
        ("ceiling, paced", vec![]),
        (
            "tenderflow run, classic work queues, burst: done in the view",
            vec![],
        ),
        (
            "tenderflow run, classic work queues, paced: submit to done in the view",
            vec![],
        ),
        (
            "tenderflow run, quorum work queues, burst: done in the view",
            vec![],
        ),
        (
            "tenderflow run, quorum work queues, paced: submit to done in the view",
            vec![],
        ),
        (
            "tenderflow, 4 worker processes + projector, quorum work queues, burst: done in the view",
            vec![],
        ),
    ];
    for run in 0..args.runs {
        let last = run + 1 == args.runs && args.breakdown;
        rows[0].1.push(ceiling_burst(args.docs).await);
        rows[1].1.push(ceiling_paced(args.rate, args.secs).await);
        let classic_only = args.only == Some(Part::Classic);
        for (i, work_queues) in [WorkQueues::Classic, WorkQueues::Quorum]
            .into_iter()
            .enumerate()
            .take(if classic_only { 1 } else { 2 })
        {
            rows[2 + 2 * i]
                .1
                .push(pipeline_burst(args.docs, work_queues).await);
            if last {
                eprintln!("paced, {work_queues:?} work queues:");
            }
            rows[3 + 2 * i]
                .1
                .push(pipeline_paced(args.rate, args.secs, work_queues, last).await);
        }
        if !classic_only {
            rows[6].1.push(workload::processes_burst(args.docs).await);
        }
        eprintln!("run {} of {} done", run + 1, args.runs);
    }
    let ceiling_burst = median(&rows[0].1);
    let ceiling_paced = median(&rows[1].1);
    println!();
    println!(
        "| measurement (median of {}) | docs/s | ratio to ceiling | p50 ms | p99 ms | p99 / ceiling p99 | CPU ms/doc: bench process | CPU ms/doc: broker | CPU ms/doc: parse processes |",
        args.runs
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, values) in rows.iter().filter(|(_, values)| !values.is_empty()) {
        let m = median(values);
        let reference = if name.contains("paced") {
            ceiling_paced
        } else {
            ceiling_burst
        };
        // Latency is measured per document only where documents arrive
        // over time (paced); a burst is judged by its throughput.
        let latency = if name.contains("paced") {
            format!(
                "{:.1} | {:.1} | {:.2}",
                m.p50_ms,
                m.p99_ms,
                m.p99_ms / reference.p99_ms
            )
        } else {
            "- | - | -".to_string()
        };
        // CPU is counted over the in-process bursts, where the work is the
        // same fixed set of documents (worker processes are not counted).
        let cpu = if name.contains("paced") || name.contains("processes") {
            "- | - | -".to_string()
        } else {
            format!(
                "{:.3} | {:.3} | {:.3}",
                m.cpu_ms, m.broker_cpu_ms, m.children_cpu_ms
            )
        };
        println!(
            "| {name} | {:.0} | {:.2} | {latency} | {cpu} |",
            m.per_sec,
            m.per_sec / reference.per_sec,
        );
    }
    if args.only.is_none() {
        workload::run(workload).await;
    }
}
