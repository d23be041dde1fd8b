//! The soak: documents flow through a pipeline of real `tenderflow`
//! processes for a few minutes while faults are injected at random, then
//! the books are checked and a table printed. Loopback only, bounded in
//! time, leaves nothing behind on the broker.
//!
//! ```sh
//! cargo build --examples --bins
//! cargo run --example soak -- --minutes 3 --rate 4 --seed 7
//! ```
//!
//! The pipeline: `tenderflow worker ingest|filter|extract`, the parse stage
//! as `faulty_worker parse` (the real handler, except that documents named
//! `abort-me` abort the process and `panic-me` panic the handler), and
//! `tenderflow serve`; all of them reach the broker through a TCP proxy the
//! soak controls. Faults, one every few seconds: the broker closes every
//! connection of the pipeline; the broker unreachable for 3 to 6 s; a
//! worker SIGKILLed, or SIGTERMed (it must exit 0 within 10 s), and started
//! again; the projector SIGKILLed, sometimes with its store deleted.
//! Documents: corpus files, and by design a few that must be dead-lettered
//! (a missing original, panic-me, abort-me).
//!
//! It exits 1 if a task was lost, dead-lettered when it should not have
//! been, or got two different summaries, or if the view disagrees.

// The helpers are the integration tests' own; the soak uses part of them.
#[allow(dead_code)]
#[path = "../tests/it/ledger.rs"]
mod ledger;
#[allow(dead_code)]
#[path = "../tests/it/procs.rs"]
mod procs;
#[allow(dead_code)]
#[path = "../tests/it/proxy.rs"]
mod proxy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use tenderflow::broker;
use tenderflow::config::Settings;
use tenderflow::envelope::{DocumentRef, Envelope, Stage, TaskOptions};
use tenderflow::events::Event;
use tenderflow::projector::view::fold;
use tenderflow::submit::{Submitter, Upload};
use uuid::Uuid;

use ledger::{EventLog, Tally};
use procs::{Proc, settings_env};
use proxy::Proxy;

/// Corpus documents every stage handles today.
const MIX: [&str; 4] = [
    "cn_construction.md",
    "cn_selection.md",
    "en_itt.md",
    "cn_selection.gbk.txt",
];

/// What a submitted task is meant to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Intent {
    Complete,
    /// Ingest dead-letters it: its original is not in the store.
    MissingOriginal,
    /// The parse handler panics on it.
    Panic,
    /// The parse process aborts on it until the delivery limit.
    Abort,
}

struct Options {
    minutes: f64,
    rate: f64,
    seed: u64,
    bin: PathBuf,
}

fn options() -> anyhow::Result<Options> {
    let exe = std::env::current_exe()?;
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .context("the soak runs from target/<profile>/examples")?;
    let mut options = Options {
        minutes: 3.0,
        rate: 4.0,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64,
        bin: profile.join("tenderflow"),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).context("every option takes a value")?;
        match pair[0].as_str() {
            "--minutes" => options.minutes = value.parse()?,
            "--rate" => options.rate = value.parse()?,
            "--seed" => options.seed = value.parse()?,
            "--bin" => options.bin = value.into(),
            other => anyhow::bail!(
                "unknown option {other}; use --minutes M --rate DOCS_PER_S --seed N --bin PATH"
            ),
        }
    }
    anyhow::ensure!(
        options.minutes > 0.0 && options.minutes <= 60.0,
        "--minutes must be in (0, 60]"
    );
    anyhow::ensure!(
        options.rate > 0.0 && options.rate <= 50.0,
        "--rate must be in (0, 50]"
    );
    anyhow::ensure!(
        options.bin.exists(),
        "{} is missing: cargo build --bins",
        options.bin.display()
    );
    Ok(options)
}

/// xorshift64*: enough randomness for choosing faults, reproducible by seed.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A duration between `low` and `high` milliseconds.
    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.below(high - low + 1))
    }
}

/// The pipeline's processes, by role, started again when asked.
struct Pipeline {
    bin: PathBuf,
    faulty: PathBuf,
    env: Vec<(String, String)>,
    procs: BTreeMap<&'static str, Proc>,
}

const ROLES: [&str; 5] = ["ingest", "parse", "filter", "extract", "serve"];

impl Pipeline {
    fn start(&mut self, role: &'static str) -> anyhow::Result<()> {
        let proc = match role {
            "serve" => Proc::spawn(role, &self.bin, &["serve"], &self.env)?,
            "parse" => Proc::spawn(role, &self.faulty, &["parse"], &self.env)?,
            stage => Proc::spawn(stage, &self.bin, &["worker", stage], &self.env)?,
        };
        self.procs.insert(role, proc);
        Ok(())
    }

    fn proc(&mut self, role: &str) -> &mut Proc {
        self.procs.get_mut(role).expect("every role runs")
    }
}

/// Counts of what the soak did and saw.
#[derive(Default)]
struct Counts {
    faults: BTreeMap<&'static str, usize>,
    aborts: usize,
    unexpected_exits: Vec<String>,
    slow_sigterms: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match soak().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("soak: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn soak() -> anyhow::Result<bool> {
    let options = options()?;
    let faulty = procs::example(&options.bin, "faulty_worker");
    let dir = tempfile::tempdir()?;
    let proxy = Proxy::start("127.0.0.1:5672".parse()?).await?;
    let mut settings = Settings::load(None)?;
    settings.topology.prefix = format!("soak-{}", Uuid::now_v7().simple());
    settings.store.root = dir.path().join("store");
    settings.retry.delays_ms = vec![200, 400];
    settings.amqp.reconnect_max_delay_ms = 2_000;
    settings.stages.concurrency = 2;
    settings.projector.db_path = dir.path().join("view.sqlite3");
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    settings.http.addr = listener.local_addr()?.to_string();
    drop(listener);
    settings.validate()?;
    let settings = Arc::new(settings);
    let mut env = settings_env(&settings);
    env.retain(|(k, _)| k != "TENDERFLOW__AMQP__URL");
    env.push(("TENDERFLOW__AMQP__URL".into(), proxy.amqp_url()));

    println!(
        "soak: {} min, {} documents/s, seed {}, prefix {}",
        options.minutes, options.rate, options.seed, settings.topology.prefix
    );
    let result = run(&options, &settings, &proxy, faulty, env).await;
    delete_topology(&settings).await;
    result
}

async fn run(
    options: &Options,
    settings: &Arc<Settings>,
    proxy: &Proxy,
    faulty: PathBuf,
    env: Vec<(String, String)>,
) -> anyhow::Result<bool> {
    let log = EventLog::start(settings).await?;
    let mut pipeline = Pipeline {
        bin: options.bin.clone(),
        faulty,
        env,
        procs: BTreeMap::new(),
    };
    for role in ROLES {
        pipeline.start(role)?;
    }
    let submitter = Submitter::new(Arc::clone(settings))?;
    let mut stored: BTreeMap<&str, Vec<DocumentRef>> = BTreeMap::new();
    let mut intents: BTreeMap<Uuid, Intent> = BTreeMap::new();
    let mut dice = Dice(options.seed | 1);
    let mut counts = Counts::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(options.minutes * 60.0);
    let gap = Duration::from_secs_f64(1.0 / options.rate);
    let mut next_doc = Instant::now();
    let mut next_fault = Instant::now() + dice.millis(3_000, 8_000);
    let mut outage_ends: Option<Instant> = None;

    while Instant::now() < deadline {
        if Instant::now() >= next_doc {
            let (id, intent) = submit_one(&submitter, &mut stored, &mut dice).await?;
            intents.insert(id, intent);
            next_doc += gap;
        }
        if outage_ends.is_some_and(|end| Instant::now() >= end) {
            proxy.refuse(false);
            outage_ends = None;
        }
        if Instant::now() >= next_fault && outage_ends.is_none() {
            inject(
                &mut pipeline,
                settings,
                proxy,
                &mut dice,
                &mut counts,
                &mut outage_ends,
            )
            .await?;
            next_fault = Instant::now() + dice.millis(4_000, 12_000);
        }
        supervise(&mut pipeline, &mut counts)?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.refuse(false);
    let submitted = intents.len();
    println!(
        "soak: submitted {submitted} tasks in {:.0} s; draining",
        started.elapsed().as_secs_f64()
    );

    // Drain: every task ends, with the processes still supervised.
    let tasks: Vec<Uuid> = intents.keys().copied().collect();
    let drain = Instant::now() + Duration::from_secs(300);
    while log.tally().ended(&tasks) < tasks.len() && Instant::now() < drain {
        supervise(&mut pipeline, &mut counts)?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let views_differ = view_mismatches(settings, &log, &tasks).await;
    let tally = log.tally();
    let depths = ledger::depths(settings).await?;
    for role in ROLES {
        let proc = pipeline.proc(role);
        if proc.try_status().is_none() {
            proc.signal("TERM");
            let status = proc.wait_exit(Duration::from_secs(30)).await;
            if !status.is_some_and(|s| s.success()) {
                counts
                    .unexpected_exits
                    .push(format!("{role} at the end: {status:?}"));
            }
        }
    }
    Ok(report(&intents, &tally, &depths, views_differ, &counts))
}

/// Submits one task, mostly a corpus document, sometimes one meant to be
/// dead-lettered.
async fn submit_one(
    submitter: &Submitter,
    stored: &mut BTreeMap<&'static str, Vec<DocumentRef>>,
    dice: &mut Dice,
) -> anyhow::Result<(Uuid, Intent)> {
    let roll = dice.below(100);
    let (intent, name) = match roll {
        0..=2 => (Intent::MissingOriginal, "missing.md"),
        3..=4 => (Intent::Panic, "panic-me.md"),
        5 => (Intent::Abort, "abort-me.md"),
        _ => (Intent::Complete, MIX[dice.below(MIX.len() as u64) as usize]),
    };
    let envelope = match intent {
        Intent::MissingOriginal => {
            let hash = format!("{:064x}", dice.next());
            Envelope::new_task(
                vec![DocumentRef {
                    uri: format!("store:originals/{hash}"),
                    sha256: hash,
                    size: 10,
                    media_type: None,
                    filename: name.into(),
                }],
                TaskOptions::default(),
            )
        }
        Intent::Panic | Intent::Abort => {
            let bytes = std::fs::read(corpus("en_itt.md"))?;
            let upload = Upload {
                filename: name.into(),
                bytes: Bytes::from(bytes),
            };
            return Ok((
                submitter
                    .submit(vec![upload], TaskOptions::default())
                    .await?
                    .task_id,
                intent,
            ));
        }
        Intent::Complete => match stored.get(name) {
            Some(documents) => Envelope::new_task(documents.clone(), TaskOptions::default()),
            None => {
                let upload = Upload {
                    filename: name.into(),
                    bytes: Bytes::from(std::fs::read(corpus(name))?),
                };
                let envelope = submitter
                    .submit(vec![upload], TaskOptions::default())
                    .await?;
                stored.insert(name, envelope.documents.clone());
                return Ok((envelope.task_id, intent));
            }
        },
    };
    submitter.publish_task(&envelope).await?;
    Ok((envelope.task_id, intent))
}

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/dev")
        .join(name)
}

/// Injects one fault at random.
async fn inject(
    pipeline: &mut Pipeline,
    settings: &Settings,
    proxy: &Proxy,
    dice: &mut Dice,
    counts: &mut Counts,
    outage_ends: &mut Option<Instant>,
) -> anyhow::Result<()> {
    let kind = match dice.below(6) {
        0 => {
            close_connections(&settings.topology.prefix).await;
            "connections closed by the broker"
        }
        1 => {
            proxy.refuse(true);
            proxy.cut();
            *outage_ends = Some(Instant::now() + dice.millis(3_000, 6_000));
            "broker unreachable 3-6 s"
        }
        2 => {
            let role = ["ingest", "parse", "filter", "extract"][dice.below(4) as usize];
            pipeline.proc(role).kill();
            tokio::time::sleep(dice.millis(0, 2_000)).await;
            pipeline.start(role)?;
            "worker SIGKILL"
        }
        3 => {
            let role = ["ingest", "parse", "filter", "extract"][dice.below(4) as usize];
            let proc = pipeline.proc(role);
            if proc.try_status().is_none() {
                proc.signal("TERM");
                let status = proc.wait_exit(Duration::from_secs(10)).await;
                if !status.is_some_and(|s| s.success()) {
                    counts
                        .slow_sigterms
                        .push(format!("{role}: {status:?} within 10 s"));
                }
            }
            pipeline.start(role)?;
            "worker SIGTERM"
        }
        4 => {
            pipeline.proc("serve").kill();
            pipeline.start("serve")?;
            "projector SIGKILL"
        }
        _ => {
            pipeline.proc("serve").kill();
            let db = &settings.projector.db_path;
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
            pipeline.start("serve")?;
            "projector SIGKILL, store deleted"
        }
    };
    *counts.faults.entry(kind).or_default() += 1;
    Ok(())
}

/// Starts again whatever died on its own: the parse process dies by design
/// on abort-me; anything else is unexpected.
fn supervise(pipeline: &mut Pipeline, counts: &mut Counts) -> anyhow::Result<()> {
    use std::os::unix::process::ExitStatusExt;
    for role in ROLES {
        if let Some(status) = pipeline.proc(role).try_status() {
            if role == "parse" && status.signal() == Some(6) {
                counts.aborts += 1;
            } else {
                counts.unexpected_exits.push(format!("{role}: {status:?}"));
            }
            pipeline.start(role)?;
        }
    }
    Ok(())
}

/// Closes, broker side, every connection whose name carries the prefix.
async fn close_connections(prefix: &str) {
    let Ok(listing) = tokio::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "-q",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
        .await
    else {
        return;
    };
    let marker = format!("\"tenderflow-{prefix}-");
    let pids: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter(|l| l.contains(&marker))
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .collect();
    let closes = pids.iter().map(|pid| {
        tokio::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "soak: connection cut"])
            .output()
    });
    futures_util::future::join_all(closes).await;
}

/// Tasks whose view, as the API serves it, is not the fold of their events
/// (after waiting up to a minute for the projector to catch up).
async fn view_mismatches(settings: &Settings, log: &EventLog, tasks: &[Uuid]) -> usize {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = log.events();
        let mut differ = 0;
        for task in tasks {
            let mine: Vec<&Event> = events.iter().filter(|e| e.task_id == *task).collect();
            let expected = serde_json::to_value(fold(mine)).expect("a view serialises");
            let url = format!("http://{}/v1/tasks/{task}", settings.http.addr);
            let served = match http.get(&url).send().await {
                Ok(response) => response.json::<serde_json::Value>().await.ok(),
                Err(_) => None,
            };
            if served.as_ref() != Some(&expected) {
                differ += 1;
            }
        }
        if differ == 0 || Instant::now() >= deadline {
            return differ;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Prints the table; `true` when nothing was lost, duplicated or wrong.
fn report(
    intents: &BTreeMap<Uuid, Intent>,
    tally: &Tally,
    depths: &BTreeMap<String, u32>,
    views_differ: usize,
    counts: &Counts,
) -> bool {
    let mut completed = 0;
    let mut dead_by_design = 0;
    let mut dead_unexpectedly = 0;
    let mut lost = 0;
    let mut duplicated = 0;
    let mut repeated_completions = 0;
    let mut wrong_outcome = 0;
    for (task, intent) in intents {
        let book = tally.book(task);
        if book.summaries.len() > 1 {
            duplicated += 1;
        }
        if book.completed > 1 {
            repeated_completions += 1;
        }
        match (intent, book.completed > 0, book.dead_lettered.first()) {
            (_, false, None) => lost += 1,
            (Intent::Complete, true, None) => completed += 1,
            (Intent::Complete, _, Some((stage, kind))) => {
                dead_unexpectedly += 1;
                println!("  dead-lettered unexpectedly: {task} at {stage}: {kind}");
            }
            (Intent::MissingOriginal, false, Some((Stage::Ingest, kind)))
                if kind == "not_found" =>
            {
                dead_by_design += 1
            }
            (Intent::Panic, false, Some((Stage::Parse, kind))) if kind == "panic" => {
                dead_by_design += 1
            }
            (Intent::Abort, false, Some((Stage::Parse, kind))) if kind == "poison" => {
                dead_by_design += 1
            }
            _ => wrong_outcome += 1,
        }
    }
    let submitted = intents.len();
    let parked: u32 = depths
        .iter()
        .filter(|(q, _)| q.ends_with(".dlq"))
        .map(|(_, n)| n)
        .sum();
    let waiting: u32 = depths
        .iter()
        .filter(|(q, _)| !q.ends_with(".dlq"))
        .map(|(_, n)| n)
        .sum();
    let row = |name: &str, value: String| println!("| {name:<48} | {value:>8} |");
    println!();
    println!("| {:<48} | {:>8} |", "what", "count");
    println!("|{}|{}|", "-".repeat(50), "-".repeat(10));
    row("documents submitted", submitted.to_string());
    row("done (completed, one summary)", completed.to_string());
    row("dead-lettered by design", dead_by_design.to_string());
    row("lost (must be 0)", lost.to_string());
    row("duplicated summaries (must be 0)", duplicated.to_string());
    row(
        "dead-lettered unexpectedly (must be 0)",
        dead_unexpectedly.to_string(),
    );
    row(
        "other outcome than intended (must be 0)",
        wrong_outcome.to_string(),
    );
    row(
        "views differing from the events (must be 0)",
        views_differ.to_string(),
    );
    row(
        "messages left in work/retry queues (must be 0)",
        waiting.to_string(),
    );
    row("messages in dead-letter queues", parked.to_string());
    row(
        "repeated `completed` events (same summary)",
        repeated_completions.to_string(),
    );
    row(
        "unexpected process exits (must be 0)",
        counts.unexpected_exits.len().to_string(),
    );
    row(
        "SIGTERM not exit 0 within 10 s (must be 0)",
        counts.slow_sigterms.len().to_string(),
    );
    for (kind, n) in &counts.faults {
        row(&format!("fault: {kind}"), n.to_string());
    }
    row(
        "fault: parse process aborted (abort-me)",
        counts.aborts.to_string(),
    );
    for line in counts.unexpected_exits.iter().chain(&counts.slow_sigterms) {
        println!("  {line}");
    }
    lost == 0
        && duplicated == 0
        && dead_unexpectedly == 0
        && wrong_outcome == 0
        && views_differ == 0
        && waiting == 0
        && parked as usize == dead_by_design
        && counts.unexpected_exits.is_empty()
        && counts.slow_sigterms.is_empty()
}

/// Deletes the soak's exchanges and queues.
async fn delete_topology(settings: &Settings) {
    broker::delete_topology(settings, "soak-teardown").await;
}
