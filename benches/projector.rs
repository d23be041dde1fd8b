//! Projector benchmark without a broker: folds a realistic events stream
//! into a fresh view database and prints events applied per second.
//!
//! Run: `cargo bench --bench projector` (options after `--`: `--tasks N`,
//! `--inflight N` tasks in progress at once, `--batch N` deliveries per
//! batch, `--runs N`).
//!
//! Each task publishes what the real stages do: `received`, then per stage
//! `started` and `succeeded` (the last stage's `succeeded` together with
//! `completed`), ten events in nine stream entries. The entries of many
//! tasks in progress at once are interleaved at random, as the stream has
//! them, and cut into batches as the consumer gathers them. Each run times
//! decoding the entries and `ViewDb::apply`, and checks afterwards that the
//! stored views are the fold of the events.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use tenderflow::envelope::{ArtifactRef, Stage, TaskOptions};
use tenderflow::events::{
    DocumentInfo, EVENT_SCHEMA, Event, EventKind, decode_entry, encode_batch,
};
use tenderflow::projector::db::{Batch, ViewDb};
use tenderflow::projector::view::{TaskView, fold};
use uuid::Uuid;

struct Options {
    tasks: usize,
    inflight: usize,
    batch: usize,
    runs: usize,
}

fn main() {
    let options = options();
    let entries = stream(options.tasks, options.inflight);
    let events: usize = entries.iter().map(Vec::len).sum();
    let bodies: Vec<Vec<u8>> = entries
        .iter()
        .map(|entry| encode_batch(&entry.iter().collect::<Vec<_>>()))
        .collect();
    println!(
        "{} tasks, {events} events in {} entries, {} in progress at once, batches of {} entries",
        options.tasks,
        bodies.len(),
        options.inflight,
        options.batch
    );
    let mut applied = Vec::new();
    let mut overall = Vec::new();
    for run in 1..=options.runs {
        let (decode, apply) = one_run(&bodies, options.batch, run == options.runs, &entries);
        let rate = |d: Duration| events as f64 / d.as_secs_f64();
        println!(
            "run {run}: apply {:.0} events/s ({:.2} s), decode + apply {:.0} events/s",
            rate(apply),
            apply.as_secs_f64(),
            rate(decode + apply)
        );
        applied.push(rate(apply));
        overall.push(rate(decode + apply));
    }
    println!(
        "median: apply {:.0} events/s, decode + apply {:.0} events/s",
        median(applied),
        median(overall)
    );
}

/// Decodes and applies every batch into a new database; returns the time
/// spent decoding and applying. `check` compares the views with the fold.
fn one_run(
    bodies: &[Vec<u8>],
    batch: usize,
    check: bool,
    entries: &[Vec<Event>],
) -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let db = ViewDb::open(&dir.path().join("view.sqlite3")).unwrap();
    let (mut decode, mut apply) = (Duration::ZERO, Duration::ZERO);
    for (n, chunk) in bodies.chunks(batch).enumerate() {
        let started = Instant::now();
        let mut batch = Batch {
            events: Vec::with_capacity(chunk.len()),
            last_offset: ((n + 1) * batch - 1) as u64,
        };
        for body in chunk {
            batch.events.extend(decode_entry(body).unwrap());
        }
        let decoded = Instant::now();
        db.apply(&batch).unwrap();
        decode += decoded - started;
        apply += decoded.elapsed();
    }
    if check {
        let all: Vec<Event> = entries.iter().flatten().cloned().collect();
        assert_eq!(
            db.all_views().unwrap(),
            expected(&all),
            "views are the fold"
        );
        println!("(views checked against the fold)");
    }
    (decode, apply)
}

/// The stream's entries: each task's entries in order, tasks interleaved
/// at random with `inflight` of them in progress at once.
fn stream(tasks: usize, inflight: usize) -> Vec<Vec<Event>> {
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut started = 0;
    let mut active: Vec<std::vec::IntoIter<Vec<Event>>> = Vec::new();
    let mut entries = Vec::new();
    loop {
        while active.len() < inflight && started < tasks {
            active.push(task_entries(started).into_iter());
            started += 1;
        }
        if active.is_empty() {
            return entries;
        }
        let i = random.below(active.len());
        match active[i].next() {
            Some(entry) => entries.push(entry),
            None => {
                active.swap_remove(i);
            }
        }
    }
}

/// One task's stream entries, as the stages publish them.
fn task_entries(i: usize) -> Vec<Vec<Event>> {
    let task_id = Uuid::now_v7();
    let mut clock = 0i64;
    let mut event = |stage: Stage, kind: EventKind| {
        clock += 3;
        Event {
            callback: None,
            schema: EVENT_SCHEMA,
            event_id: Uuid::now_v7(),
            task_id,
            stage,
            attempt: 1,
            at: Utc
                .timestamp_millis_opt(1_780_000_000_000 + i as i64 * 10 + clock)
                .unwrap(),
            kind,
        }
    };
    let documents = vec![DocumentInfo {
        filename: format!("notice-{i}.pdf"),
        sha256: format!("{i:064x}"),
        size: 100_000 + i as u64,
    }];
    let options = TaskOptions::default();
    let mut entries = vec![vec![event(
        Stage::Ingest,
        EventKind::Received {
            documents,
            options,
            external_id: None,
        },
    )]];
    for stage in Stage::ALL {
        entries.push(vec![event(stage, EventKind::Started)]);
        let artifact = ArtifactRef {
            key: format!("artifacts/{}/{i:064x}", stage.as_str()),
            sha256: format!("{i:064x}"),
            size: 2_000 + i as u64,
        };
        let succeeded = event(
            stage,
            EventKind::Succeeded {
                artifact: Some(artifact),
                duration_ms: 40,
                files: Vec::new(),
            },
        );
        if stage == Stage::Extract {
            let summary = ArtifactRef {
                key: format!("summaries/{i:064x}"),
                sha256: format!("{i:064x}"),
                size: 900,
            };
            entries.push(vec![
                succeeded,
                event(stage, EventKind::Completed { summary }),
            ]);
        } else {
            entries.push(vec![succeeded]);
        }
    }
    entries
}

/// What the view must be: the fold of each task's events.
fn expected(events: &[Event]) -> Vec<TaskView> {
    let mut by_task: BTreeMap<Uuid, Vec<&Event>> = BTreeMap::new();
    for event in events {
        by_task.entry(event.task_id).or_default().push(event);
    }
    by_task.into_values().map(|e| fold(e).unwrap()).collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A small deterministic generator (xorshift), so every run and every
/// version benchmarks the same interleaving.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn options() -> Options {
    let mut options = Options {
        tasks: 20_000,
        inflight: 1_000,
        batch: 500,
        runs: 5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let field = match arg.as_str() {
            "--tasks" => &mut options.tasks,
            "--inflight" => &mut options.inflight,
            "--batch" => &mut options.batch,
            "--runs" => &mut options.runs,
            // `cargo bench` passes `--bench`.
            _ => continue,
        };
        *field = args
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{arg} needs a number"));
    }
    options
}
