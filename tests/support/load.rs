//! Load and its check for the broker fault tests (`broker_faults`,
//! `broker_cluster`): a few dozen tasks of quick and slow documents, the
//! wait until a fault can come under load, and the end of every scenario:
//! every task done once with one summary, nothing dead-lettered, the work
//! queues drained, and the view equal to the fold of the events.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tenderflow::config::Settings;
use tenderflow::envelope::Stage;
use uuid::Uuid;

use crate::helpers::TestPipeline;
use crate::ledger::{self, EventLog, Tally};
use crate::support::view::assert_view_equals_fold;

/// A few dozen tasks: quick documents among slow ones (a PDF or DOCX takes
/// a second or more to parse in a debug build), so that work is in every
/// stage when the fault comes.
pub const LOAD: [&str; 6] = [
    "cn_selection.md",
    "cn_construction.pdf",
    "en_itt.md",
    "cn_selection.docx",
    "cn_selection.gbk.txt",
    "en_itt.pdf",
];

/// Tasks per test.
pub const TASKS: usize = 36;

/// Submits `count` tasks, cycling through [`LOAD`].
pub async fn submit_load(pipeline: &TestPipeline, count: usize) -> Vec<Uuid> {
    let names: Vec<&str> = LOAD.iter().copied().cycle().take(count).collect();
    pipeline.submit_files(&names).await
}

/// Waits until some but not all of `tasks` completed: the fault then comes
/// under load.
pub async fn await_under_load(log: &EventLog, tasks: &[Uuid]) {
    let now = log
        .wait_for(Duration::from_secs(90), |t| t.completed(tasks) >= 2)
        .await;
    let completed = now.completed(tasks);
    assert!(completed >= 2, "the pipeline makes progress: {completed}");
    assert!(
        completed < tasks.len(),
        "tasks were still in flight when the fault came"
    );
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

/// The end of every scenario: every task completed, never dead-lettered,
/// with one summary and no other summary written; the work and retry
/// queues drained; the API serves every task done, as its events fold.
pub async fn assert_nothing_lost(pipeline: &TestPipeline, log: &EventLog, tasks: &[Uuid]) -> Tally {
    let tally = log
        .wait_for(Duration::from_secs(120), |t| t.ended(tasks) == tasks.len())
        .await;
    if tally.completed(tasks) < tasks.len() {
        let stuck: Vec<_> = tasks
            .iter()
            .map(|t| (t, tally.book(t)))
            .filter(|(_, book)| book.completed == 0 || !book.dead_lettered.is_empty())
            .take(3)
            .collect();
        panic!(
            "{} of {} tasks completed; first unfinished {stuck:#?}",
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
    assert_work_drained(&pipeline.settings).await;
    let base = format!("http://{}", pipeline.settings.http.addr);
    let views = assert_view_equals_fold(&base, || log.events(), tasks, 60).await;
    for task in tasks {
        let summary = tally.book(task).summaries.into_iter().next();
        assert_eq!(views[task]["state"], "done", "{}", views[task]);
        assert_eq!(
            views[task]["summary"]["key"].as_str().map(str::to_string),
            summary,
            "the view names the task's one summary"
        );
    }
    tally
}

/// Waits (up to 20 s) for every stage and retry queue to be empty (a
/// quorum queue's count can trail what was just acked). Dead letters are
/// checked through the events, not here.
pub async fn assert_work_drained(settings: &Settings) {
    let topology = pipeline_topology(settings);
    let dead: BTreeSet<String> = Stage::ALL
        .iter()
        .map(|s| topology.dead_letter_queue(*s))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut depths = ledger::depths(settings).await.unwrap();
        depths.retain(|queue, _| !dead.contains(queue));
        if depths.values().all(|n| *n == 0) {
            return;
        }
        assert!(Instant::now() < deadline, "queues drained: {depths:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn pipeline_topology(settings: &Settings) -> tenderflow::topology::Topology {
    tenderflow::topology::Topology::from_settings(settings).unwrap()
}
