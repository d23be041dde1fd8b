//! The parse stage's child processes, on the real broker: a parse past its
//! timeout is stopped with every process it started, and a parse that
//! outgrows its memory limit is contained.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use tenderflow::envelope::{Stage, TaskOptions};
use tenderflow::submit::{Outcome, Submitter, Upload};
use uuid::Uuid;

use crate::helpers::{TestPipeline, corpus, outcomes};

/// One process of this machine, from `/proc/PID/stat` and its command line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Proc {
    pid: u32,
    ppid: u32,
    group: u32,
    command: String,
}

/// Every process now.
fn processes() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // After the command name in parentheses: state, ppid, pgrp.
        let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace().skip(1);
        let ppid = fields.next()?.parse().ok()?;
        let group = fields.next()?.parse().ok()?;
        let command = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let command = String::from_utf8_lossy(&command).replace('\0', " ");
        Some(Proc {
            pid,
            ppid,
            group,
            command,
        })
    })
    .collect()
}

/// Watches, until stopped, the parse processes this test process starts
/// for documents named `marker...` (tests run side by side in this
/// process) and every process in their groups (their OCR processes).
struct Watcher {
    stop: Arc<AtomicBool>,
    seen: JoinHandle<BTreeSet<Proc>>,
}

impl Watcher {
    fn start(marker: &str) -> Watcher {
        let marker = format!(" --filename={marker}");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let me = std::process::id();
        let seen = std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            let mut groups = BTreeSet::new();
            while !flag.load(Ordering::SeqCst) {
                for proc in processes() {
                    if proc.ppid == me && proc.command.contains(&marker) {
                        groups.insert(proc.pid);
                    }
                    if groups.contains(&proc.group) {
                        seen.insert(proc);
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            seen
        });
        Watcher { stop, seen }
    }

    /// Every process seen in a parse process's group.
    fn stop(self) -> BTreeSet<Proc> {
        self.stop.store(true, Ordering::SeqCst);
        self.seen.join().unwrap()
    }
}

/// This process's threads called `name`.
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == name)
        .count()
}

async fn submit(pipeline: &TestPipeline, filename: &str, bytes: Vec<u8>) -> Uuid {
    let submitter = Submitter::new(Arc::clone(&pipeline.settings)).unwrap();
    let upload = Upload {
        filename: filename.to_string(),
        bytes: Bytes::from(bytes),
    };
    submitter
        .submit(vec![upload], TaskOptions::default())
        .await
        .unwrap()
        .task_id
}

fn failure(outcome: &Outcome) -> (Stage, &str, &str) {
    match outcome {
        Outcome::Failed {
            stage,
            kind,
            message,
        } => (*stage, kind, message),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Starts every stage, parse with `concurrency`.
fn start(pipeline: &TestPipeline, concurrency: u16) {
    for stage in Stage::ALL.into_iter().filter(|s| *s != Stage::Parse) {
        pipeline.start(stage, pipeline.real_handler(stage));
    }
    pipeline.start_with(
        Stage::Parse,
        pipeline.real_handler(Stage::Parse),
        concurrency,
    );
}

#[tokio::test]
async fn a_parse_past_its_timeout_is_stopped_with_every_process_it_started() {
    let pipeline = TestPipeline::new(|settings, _| {
        settings.parse.timeout_ms = Some(1_500);
    });
    // One parse at a time: the slow documents come first, and the quick
    // one after them is parsed only if the worker is free again.
    start(&pipeline, 1);
    let follower = pipeline.follower().await;
    let watcher = Watcher::start("timeout-");
    // Seconds of pdf-extract each in a debug build; the scan's one page
    // spends its time in tesseract, a process of the parse's.
    let slow = std::fs::read(corpus("cn_construction.pdf")).unwrap();
    let scan = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/scan_cn_selection_p1.pdf"),
    )
    .unwrap();
    let mut stopped = Vec::new();
    for n in 0..2 {
        stopped.push(submit(&pipeline, &format!("timeout-slow-{n}.pdf"), slow.clone()).await);
    }
    stopped.push(submit(&pipeline, "timeout-scan.pdf", scan).await);
    let quick = submit(
        &pipeline,
        "timeout-quick.md",
        std::fs::read(corpus("cn_construction.md")).unwrap(),
    )
    .await;
    let all: Vec<Uuid> = stopped.iter().copied().chain([quick]).collect();
    let done = outcomes(follower, &all, 120).await;

    // Nothing of the stopped parses runs on in this process...
    assert_eq!(
        threads_named("pdf-extract"),
        0,
        "a PDF extraction thread runs on after its task was dead-lettered"
    );
    let seen = watcher.stop();
    let groups: BTreeSet<u32> = seen
        .iter()
        .filter(|p| p.command.contains(" parse-child --filename=timeout-"))
        .map(|p| p.pid)
        .collect();
    assert!(groups.len() >= 4, "a parse process per document: {seen:#?}");
    assert!(
        seen.iter().any(|p| p.command.contains("tesseract")),
        "the scan's OCR ran in the parse's group: {seen:#?}"
    );
    // ...nor outside it: every process of the parses' groups is gone.
    let left: Vec<Proc> = processes()
        .into_iter()
        .filter(|p| groups.contains(&p.group))
        .collect();
    assert!(left.is_empty(), "left running: {left:#?}");
    for task in &stopped {
        let (stage, kind, message) = failure(&done[task]);
        assert_eq!((stage, kind), (Stage::Parse, "parse_timeout"), "{message}");
        assert!(message.contains("1500 ms"), "{message}");
    }
    assert!(
        matches!(done[&quick], Outcome::Completed { .. }),
        "the next document is parsed: {:?}",
        done[&quick]
    );
    pipeline.teardown().await;
}

#[tokio::test]
async fn a_parse_that_outgrows_its_memory_is_contained() {
    let pipeline = TestPipeline::new(|settings, _| {
        settings.parse.max_memory_mb = 128;
    });
    start(&pipeline, 2);
    let follower = pipeline.follower().await;
    // 50 MB of markdown, under the 64 MiB input limit: parsed, it takes
    // some 200 MB, which 128 MiB of address space cannot hold.
    let text = std::fs::read(corpus("cn_construction.md")).unwrap();
    let big: Vec<u8> = text
        .iter()
        .copied()
        .cycle()
        .take(50_000_000 / text.len() * text.len())
        .collect();
    let heavy = submit(&pipeline, "heavy.md", big).await;
    let quick = submit(
        &pipeline,
        "cn_selection.md",
        std::fs::read(corpus("cn_selection.md")).unwrap(),
    )
    .await;
    let done = outcomes(follower, &[heavy, quick], 120).await;

    let (stage, kind, message) = failure(&done[&heavy]);
    assert_eq!((stage, kind), (Stage::Parse, "parser_crashed"), "{message}");
    assert!(
        message.contains("SIGABRT") && message.contains("memory limit of 128 MiB"),
        "{message}"
    );
    assert!(
        matches!(done[&quick], Outcome::Completed { .. }),
        "{:?}",
        done[&quick]
    );
    // The worker lives on and takes the next message.
    let follower = pipeline.follower().await;
    let after = submit(
        &pipeline,
        "en_itt.md",
        std::fs::read(corpus("en_itt.md")).unwrap(),
    )
    .await;
    let done = outcomes(follower, &[after], 60).await;
    assert!(
        matches!(done[&after], Outcome::Completed { .. }),
        "{:?}",
        done[&after]
    );
    let dead = pipeline.topology().dead_letter_queue(Stage::Parse);
    assert_eq!(
        pipeline.wait_depth(&dead, 1).await,
        1,
        "the heavy task, dead-lettered"
    );
    pipeline.teardown().await;
}
