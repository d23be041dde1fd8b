//! `tenderflow submit` of many files at once, through the real binary:
//! folders and patterns, files that fail beside files that do not, the
//! exit code, and that no task is reported before its publish is confirmed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use tenderflow::envelope::Stage;
use tenderflow::submit::Outcome;
use uuid::Uuid;

use crate::helpers::{TestPipeline, outcomes};
use crate::procs::settings_env;

/// A small tender notice, different for each `n`.
fn notice(n: usize) -> String {
    format!(
        "# 招标公告 {n}\n\n| 条款 | 内容 |\n|---|---|\n| 项目名称 | 批量道路工程{n}标段 |\n\
         | 招标编号 | BULK-{n:04} |\n| 最高投标限价 | 人民币{n}万元 |\n\n投标截止时间为2027年3月18日9时30分。\n"
    )
}

/// Writes `files` (relative paths) under `root`, each its own notice.
fn write_notices(root: &Path, files: &[String]) {
    for (n, file) in files.iter().enumerate() {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, notice(n)).unwrap();
    }
}

/// Runs `tenderflow submit ARGS` with the pipeline's settings (and `env`).
async fn submit(pipeline: &TestPipeline, args: &[&str], env: &[(&str, String)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_tenderflow"))
        .arg("submit")
        .args(args)
        .env_remove("TENDERFLOW_CONFIG")
        .env_remove("RUST_LOG")
        .envs(settings_env(&pipeline.settings))
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .env("TENDERFLOW__LOG__FILTER", "error")
        .output()
        .await
        .unwrap()
}

/// The tasks of `submit --json` output: file to task id; the error lines
/// apart: file to reason.
fn parse_json_lines(output: &Output) -> (BTreeMap<String, Uuid>, BTreeMap<String, String>) {
    let mut tasks = BTreeMap::new();
    let mut errors = BTreeMap::new();
    for line in String::from_utf8(output.stdout.clone()).unwrap().lines() {
        let value: Value = serde_json::from_str(line).unwrap();
        let file = value["file"].as_str().unwrap().to_string();
        if let Some(error) = value["error"].as_str() {
            errors.insert(file, error.to_string());
        } else {
            let task = value["task_id"].as_str().unwrap().parse().unwrap();
            assert_eq!(value["existing"], false);
            assert!(tasks.insert(file, task).is_none(), "one line per file");
        }
    }
    (tasks, errors)
}

fn relative(root: &Path, files: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    files
        .into_iter()
        .map(|f| {
            Path::new(&f)
                .strip_prefix(root)
                .unwrap()
                .display()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_folder_submitted_at_once_arrives_as_one_task_per_file_and_each_completes() {
    let pipeline = TestPipeline::new(|_, _| {});
    let archive = pipeline.dir.path().join("archive");
    let files: Vec<String> = (0..60)
        .map(|n| format!("{}/notice-{n:02}.md", 2020 + n % 4))
        .collect();
    write_notices(&archive, &files);
    // Left out: hidden, and not of a format tenderflow reads.
    std::fs::write(archive.join(".index.md"), notice(99)).unwrap();
    std::fs::write(archive.join("2021/scan.psd"), b"8BPS").unwrap();

    // No workers yet: what reaches the ingest queue is what was submitted.
    let output = submit(
        &pipeline,
        &["--json", "--jobs", "8", archive.to_str().unwrap()],
        &[],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let (tasks, errors) = parse_json_lines(&output);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        relative(&archive, tasks.keys().cloned()),
        files.iter().cloned().collect::<BTreeSet<_>>()
    );
    let ids: BTreeSet<Uuid> = tasks.values().copied().collect();
    assert_eq!(ids.len(), files.len(), "a task of its own for each file");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("left out 1 file"), "{stderr}");
    let ingest = pipeline.topology().stage_queue(Stage::Ingest);
    assert_eq!(
        pipeline.wait_depth(&ingest, files.len() as u32).await,
        files.len() as u32,
        "each task published once"
    );

    let follower = pipeline.follower().await;
    pipeline.start_all();
    let ids: Vec<Uuid> = ids.into_iter().collect();
    let ended = outcomes(follower, &ids, 180).await;
    for (task, outcome) in &ended {
        assert!(
            matches!(outcome, Outcome::Completed { .. }),
            "{task}: {outcome:?}"
        );
    }
    assert_eq!(ended.len(), files.len());
    pipeline.teardown().await;
}

#[tokio::test]
async fn a_quoted_pattern_is_expanded_by_submit_itself() {
    let pipeline = TestPipeline::new(|_, _| {});
    let root = pipeline.dir.path().join("tenders");
    let files: Vec<String> = ["a/x.md", "a/b/y.md", "a/b/c/z.md", "a/w.txt", "a/.h.md"]
        .map(String::from)
        .to_vec();
    write_notices(&root, &files);
    let pattern = root.join("a/**/*.md");
    let output = submit(&pipeline, &["--json", pattern.to_str().unwrap()], &[]).await;
    assert!(output.status.success(), "{output:?}");
    let (tasks, _) = parse_json_lines(&output);
    assert_eq!(
        relative(&root, tasks.keys().cloned()),
        ["a/b/c/z.md", "a/b/y.md", "a/x.md"]
            .map(String::from)
            .into()
    );
    let ingest = pipeline.topology().stage_queue(Stage::Ingest);
    assert_eq!(pipeline.wait_depth(&ingest, 3).await, 3);
}

#[tokio::test]
async fn files_that_fail_are_reported_with_why_the_others_go_on_and_the_exit_code_says_so() {
    let pipeline = TestPipeline::new(|settings, _| {
        settings.store.max_document_bytes = 4096;
    });
    let folder = pipeline.dir.path().join("mixed");
    let good: Vec<String> = (0..6).map(|n| format!("good-{n}.md")).collect();
    write_notices(&folder, &good);
    std::fs::write(folder.join("empty.md"), b"").unwrap();
    std::fs::write(folder.join("huge.txt"), "标".repeat(2000)).unwrap();
    std::fs::write(folder.join("archive.zip"), b"PK\x03\x04 not a zip").unwrap();
    let missing = pipeline.dir.path().join("missing.pdf");
    let output = submit(
        &pipeline,
        &[folder.to_str().unwrap(), missing.to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    // The good ones: a line each, in the format scripts read.
    let submitted: BTreeSet<String> = stdout
        .lines()
        .map(|line| {
            let (task, file) = line.split_once("  ").unwrap();
            task.parse::<Uuid>().unwrap();
            Path::new(file)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(submitted, good.iter().cloned().collect());
    // The bad ones: each named, with its reason.
    for (file, reason) in [
        ("empty.md", "(0 bytes)"),
        ("huge.txt", "over the limit of 4096"),
        ("archive.zip", "broken zip"),
        ("missing.pdf", "no such file"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("error: ") && l.contains(file) && l.contains(reason)),
            "{file}: {reason} in\n{stderr}"
        );
    }
    assert!(stderr.contains("4 of 10 file(s) not submitted"), "{stderr}");
    let ingest = pipeline.topology().stage_queue(Stage::Ingest);
    assert_eq!(pipeline.wait_depth(&ingest, 6).await, 6);
}

/// The built-in topology with the ingest queue bound under another key:
/// every task's ingest message is returned unroutable, on any connection.
fn topology_that_routes_no_ingest(dir: &Path) -> PathBuf {
    let bind = r#"bind = { exchange = "work", routing_key = "{stage}" }"#;
    assert!(tenderflow::topology::BUILTIN.contains(bind));
    let text = tenderflow::topology::BUILTIN.replace(
        bind,
        r#"bind = { exchange = "work", routing_key = "elsewhere-{stage}" }"#,
    );
    let path = dir.join("topology.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn no_task_is_reported_submitted_unless_the_broker_confirmed_it() {
    let mut file = PathBuf::new();
    let pipeline = TestPipeline::new(|settings, dir| {
        file = topology_that_routes_no_ingest(dir);
        settings.topology.file = Some(file.clone());
    });
    let folder = pipeline.dir.path().join("batch");
    let files: Vec<String> = (0..12).map(|n| format!("n-{n}.md")).collect();
    write_notices(&folder, &files);
    let output = submit(
        &pipeline,
        &["--json", "--jobs", "4", folder.to_str().unwrap()],
        &[("TENDERFLOW__TOPOLOGY__FILE", file.display().to_string())],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let (tasks, errors) = parse_json_lines(&output);
    assert!(tasks.is_empty(), "reported though unrouted: {tasks:?}");
    assert_eq!(relative(&folder, errors.keys().cloned()).len(), files.len());
    for reason in errors.values() {
        assert!(reason.contains("unroutable"), "{reason}");
    }
}

#[tokio::test]
async fn submit_wait_follows_many_tasks_to_their_end() {
    let pipeline = TestPipeline::new(|_, _| {});
    pipeline.start_all();
    let folder = pipeline.dir.path().join("many");
    let files: Vec<String> = (0..24).map(|n| format!("n-{n:02}.md")).collect();
    write_notices(&folder, &files);
    let output = submit(
        &pipeline,
        &["--wait", "--timeout", "180", folder.to_str().unwrap()],
        &[],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let submitted: BTreeSet<&str> = stdout
        .lines()
        .filter(|l| l.ends_with(".md"))
        .map(|l| l.split_once("  ").unwrap().0)
        .collect();
    let done: BTreeSet<&str> = stdout
        .lines()
        .filter(|l| l.contains("  done: summary at "))
        .map(|l| l.split_once("  ").unwrap().0)
        .collect();
    assert_eq!(submitted.len(), files.len(), "{stdout}");
    assert_eq!(done, submitted, "{stdout}");
    pipeline.teardown().await;
}
