//! The books at the end of a fault scenario: every task completed once with
//! one summary, no other summary written, every queue empty, and the API
//! serving the fold of the events. Shared by the fault tests of `it` and
//! the broker fault and cluster test binaries.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tenderflow::config::Settings;
use uuid::Uuid;

use crate::helpers::TestPipeline;
use crate::ledger::{EventLog, Tally, wait_queues_settled};

/// The base URL of the API the pipeline's `run` or `serve` listens on.
pub fn api(settings: &Settings) -> String {
    format!("http://{}", settings.http.addr)
}

/// Waits until the API serves, for every task of `tasks`, exactly the view
/// that folding the task's events from the stream gives (the projector has
/// caught up and agrees with the log); returns those views by task.
pub async fn assert_view_consistent(
    settings: &Settings,
    log: &EventLog,
    tasks: &[Uuid],
    secs: u64,
) -> BTreeMap<Uuid, serde_json::Value> {
    crate::view::assert_view_equals_fold(&api(settings), || log.events(), tasks, secs).await
}

/// The summary artifacts in the store.
pub fn stored_summaries(settings: &Settings) -> BTreeSet<String> {
    let folder = settings.store.root.join("artifacts/summary");
    std::fs::read_dir(&folder)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| format!("artifacts/summary/{}", e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default()
}

/// The end of every scenario: every task completed, each with one summary,
/// no other summary written, every queue empty; with `view`, the API of the
/// pipeline's projector serves every task done with that summary, exactly
/// as its events fold.
pub async fn assert_nothing_lost(
    pipeline: &TestPipeline,
    log: &EventLog,
    tasks: &[Uuid],
    secs: u64,
    view: bool,
) -> Tally {
    let tally = log
        .wait_for(Duration::from_secs(secs), |t| t.ended(tasks) == tasks.len())
        .await;
    if tally.completed(tasks) < tasks.len() {
        let depths = crate::ledger::depths(&pipeline.settings).await.unwrap();
        let stuck: Vec<_> = tasks
            .iter()
            .filter(|t| {
                let book = tally.book(t);
                book.completed == 0 || !book.dead_lettered.is_empty()
            })
            .take(3)
            .map(|t| (t, tally.book(t)))
            .collect();
        panic!(
            "{} of {} tasks completed within {secs} s; queues {depths:?}; first unfinished {stuck:#?}",
            tally.completed(tasks),
            tasks.len()
        );
    }
    tally.assert_all_completed_once(tasks);
    let named: BTreeSet<String> = tasks.iter().flat_map(|t| tally.book(t).summaries).collect();
    assert_eq!(
        stored_summaries(&pipeline.settings),
        named,
        "the store holds exactly the summaries the tasks name"
    );
    let depths = wait_queues_settled(
        &pipeline.settings,
        &BTreeMap::new(),
        Duration::from_secs(20),
    )
    .await;
    assert!(
        depths.values().all(|n| *n == 0),
        "queues drained: {depths:?}"
    );
    if view {
        let views = assert_view_consistent(&pipeline.settings, log, tasks, 60).await;
        for task in tasks {
            let summary = tally.book(task).summaries.into_iter().next();
            assert_eq!(views[task]["state"], "done", "{}", views[task]);
            assert_eq!(
                views[task]["summary"]["key"].as_str().map(str::to_string),
                summary,
                "the view names the task's one summary"
            );
        }
    }
    tally
}
