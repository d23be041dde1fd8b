//! The bulk submit part (`--only submit`): `tenderflow submit FOLDER` of
//! small documents, the real binary from its start to its exit (every
//! original stored and synced, every task confirmed), against the
//! in-process pipeline's burst rate measured in the same run.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tenderflow::config::WorkQueues;

use super::{Figures, Pipeline, figures, median, pipeline_burst, procs, small_doc};

/// How one `submit` measurement runs.
#[derive(Debug, Clone, Copy)]
struct Setup {
    /// `--jobs`; `None`: the command's default.
    jobs: Option<u16>,
    /// The pipeline's stages and projector run meanwhile, taking the
    /// tasks as they come (and the machine's CPU with them).
    consumed: bool,
}

impl Setup {
    fn name(self) -> String {
        let jobs = self
            .jobs
            .map_or("default --jobs".to_string(), |j| format!("--jobs {j}"));
        let into = if self.consumed {
            "into the running pipeline"
        } else {
            "into the queues (no consumers)"
        };
        format!("tenderflow submit FOLDER, {jobs}, {into}")
    }
}

const SETUPS: [Setup; 4] = [
    Setup {
        jobs: Some(1),
        consumed: false,
    },
    Setup {
        jobs: None,
        consumed: false,
    },
    Setup {
        jobs: Some(64),
        consumed: false,
    },
    Setup {
        jobs: None,
        consumed: true,
    },
];

/// Files per second of one `tenderflow submit` of `docs` files.
async fn cli_submit(docs: usize, setup: Setup) -> Figures {
    let mut pipeline = Pipeline::new(WorkQueues::Classic);
    let folder = pipeline.dir.path().join("archive");
    std::fs::create_dir_all(&folder).unwrap();
    for id in 0..docs {
        let doc = small_doc(id);
        std::fs::write(folder.join(&doc.filename), &doc.bytes).unwrap();
    }
    if setup.consumed {
        pipeline.start_projector().await;
        pipeline.start();
        pipeline.wait_consuming().await;
    }
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenderflow"));
    command
        .arg("submit")
        .arg(&folder)
        .env_remove("TENDERFLOW_CONFIG")
        .env_remove("RUST_LOG")
        .envs(procs::settings_env(&pipeline.settings))
        .env("TENDERFLOW__LOG__FILTER", "error")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(jobs) = setup.jobs {
        command.args(["--jobs", &jobs.to_string()]);
    }
    let start = Instant::now();
    let output = command.output().await.unwrap();
    let elapsed = start.elapsed();
    assert!(output.status.success(), "{:?}", output.status);
    let lines = String::from_utf8_lossy(&output.stdout).lines().count();
    assert_eq!(lines, docs, "a line per task submitted");
    if setup.consumed {
        // Let the pipeline finish before its queues go, so that the next
        // measurement starts on an idle machine.
        let deadline = Instant::now() + Duration::from_secs(120);
        while super::count_state(&pipeline, "done").await < docs as u64 && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    pipeline.delete().await;
    figures(docs, elapsed, Vec::new())
}

/// Runs the part and prints its table.
pub async fn run(docs: usize, runs: usize) {
    println!("tenderflow bulk submit benchmark: {docs} small Markdown files, {runs} runs");
    let mut burst = Vec::new();
    let mut submits: Vec<Vec<Figures>> = vec![Vec::new(); SETUPS.len()];
    for run in 0..runs {
        burst.push(pipeline_burst(docs, WorkQueues::Classic).await);
        for (setup, figures) in SETUPS.iter().zip(&mut submits) {
            figures.push(cli_submit(docs, *setup).await);
        }
        eprintln!("run {} of {runs} done", run + 1);
    }
    let burst = median(&burst);
    println!();
    println!(
        "| measurement (median of {runs}) | files or docs/s | ratio to the pipeline's burst |"
    );
    println!("|---|---|---|");
    println!(
        "| tenderflow run, classic work queues, burst: done in the view | {:.0} | 1.00 |",
        burst.per_sec
    );
    for (setup, figures) in SETUPS.iter().zip(&submits) {
        let m = median(figures);
        let each: Vec<String> = figures
            .iter()
            .map(|f| format!("{:.0}", f.per_sec))
            .collect();
        println!(
            "| {} | {:.0} (runs: {}) | {:.2} |",
            setup.name(),
            m.per_sec,
            each.join(", "),
            m.per_sec / burst.per_sec
        );
    }
}
