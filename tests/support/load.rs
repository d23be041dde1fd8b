//! Load and its check for the broker fault tests (`broker_faults`,
//! `broker_cluster`): a few dozen tasks of quick and slow documents, the
//! wait until a fault can come under load, and the end of every scenario
//! ([`crate::books::assert_nothing_lost`], with the view checked).

use std::time::Duration;

use uuid::Uuid;

use crate::helpers::TestPipeline;
use crate::ledger::{EventLog, Tally};

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

/// The end of every scenario: every task completed once with one summary
/// within two minutes, nothing else in the store, the queues empty, and the
/// view the fold of the events.
pub async fn assert_nothing_lost(pipeline: &TestPipeline, log: &EventLog, tasks: &[Uuid]) -> Tally {
    crate::books::assert_nothing_lost(pipeline, log, tasks, 120, true).await
}
