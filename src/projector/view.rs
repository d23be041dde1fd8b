//! The task view and the fold that builds it from events.
//!
//! The fold is a pure function of the *set* of a task's events: duplicates
//! are dropped by event id, and every choice (which event is a stage's latest,
//! which error is the last) is made by a key derived from the events' content
//! (replay epoch, attempt, what happened, time, id), never by arrival order.
//! So the same events delivered twice, or in another order, give the same view.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{ArtifactRef, Stage, TaskFile, TaskOptions};
use crate::events::{DocumentInfo, ErrorInfo, Event, EventKind};

/// Where a task is, overall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Submitted; no stage has started on it yet.
    Queued,
    /// A stage is working on it or it waits between stages.
    Running,
    /// A stage failed an attempt and will try again.
    Retrying,
    /// The summary is stored.
    Done,
    /// A stage gave up; the task waits in a dead-letter queue.
    Failed,
    /// Its idempotency key belongs to an earlier task with the same
    /// documents: nothing was done, `duplicate_of` names that task.
    Duplicate,
    /// Cancelled: its stages drop its messages. Final, whatever comes
    /// after (short of a forced replay).
    Cancelled,
}

impl TaskState {
    /// Every state.
    pub const ALL: [TaskState; 7] = [
        TaskState::Queued,
        TaskState::Running,
        TaskState::Retrying,
        TaskState::Done,
        TaskState::Failed,
        TaskState::Duplicate,
        TaskState::Cancelled,
    ];

    /// The state's name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Retrying => "retrying",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
            TaskState::Duplicate => "duplicate",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// Whether the task will change no more (short of a replay).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Done | TaskState::Failed | TaskState::Duplicate | TaskState::Cancelled
        )
    }
}

impl std::str::FromStr for TaskState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown state {s:?} (expected queued, running, retrying, done, failed, duplicate or cancelled)"
                )
            })
    }
}

/// Where one stage of a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageState {
    /// Nothing has reached this stage yet.
    Pending,
    /// The stage's message waits in its queue.
    Queued,
    /// An attempt is under way.
    Running,
    /// An attempt failed; the next one is due at `next_retry_at`.
    Retrying,
    /// The stage is done with the task.
    Succeeded,
    /// The stage gave up; the message is in its dead-letter queue.
    Failed,
    /// The task was cancelled and the stage dropped its message.
    Dropped,
}

/// One stage of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageView {
    /// The stage.
    pub stage: Stage,
    /// Where it is.
    pub state: StageState,
    /// Attempts made at this stage, replays included.
    pub attempts: u32,
    /// When its first attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it succeeded or gave up.
    pub finished_at: Option<DateTime<Utc>>,
    /// How long the successful attempt took.
    pub duration_ms: Option<u64>,
    /// When the next attempt is due, while retrying.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// Its latest error, if any attempt failed.
    pub error: Option<ErrorInfo>,
}

/// The most recent error of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastError {
    /// The stage that failed.
    pub stage: Stage,
    /// A stable, machine-readable kind.
    pub kind: String,
    /// A sentence for people.
    pub message: String,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// A task's cancellation, as its `cancelled` event tells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cancellation {
    /// When it was cancelled.
    pub at: DateTime<Utc>,
    /// Who asked.
    pub by: String,
    /// Why, as the caller said.
    pub reason: Option<String>,
}

/// What the projector knows about one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskView {
    /// The task.
    pub task_id: Uuid,
    /// Where it is, overall.
    pub state: TaskState,
    /// The furthest stage it has reached.
    pub stage: Stage,
    /// Every stage, in pipeline order.
    pub stages: Vec<StageView>,
    /// Attempts made, over all stages.
    pub attempts: u32,
    /// When the first stage started on it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it was done or failed.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its most recent error.
    pub last_error: Option<LastError>,
    /// When the next attempt is due, while retrying.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// Its documents as submitted, main document first (or one package).
    pub documents: Vec<DocumentInfo>,
    /// Every file of the task with what it was taken as (main document,
    /// amendment, attachment, package) and why, once ingest has sorted
    /// them: the main document first, then the amendments in order.
    #[serde(default)]
    pub files: Vec<TaskFile>,
    /// Its options, once the `received` event is known.
    pub options: Option<TaskOptions>,
    /// The submitter's reference for the task, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The earlier task with the same idempotency key, documents and
    /// options, when this one is a duplicate of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<Uuid>,
    /// The stored summary, once done. A cancelled task can have one too:
    /// its last stage finished while the cancel was on its way.
    pub summary: Option<ArtifactRef>,
    /// Its cancellation, while it is cancelled.
    #[serde(default)]
    pub cancelled: Option<Cancellation>,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When its latest event happened.
    pub updated_at: DateTime<Utc>,
    /// How many distinct events it has.
    pub events: usize,
}

/// Folds a task's events into its view; `None` when there are none.
///
/// Events of other tasks than the first one's are ignored, so a caller's
/// grouping mistake cannot blend two tasks.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> Option<TaskView> {
    let mut unique: BTreeMap<Uuid, &Event> = BTreeMap::new();
    let mut task_id = None;
    for event in events {
        let task = *task_id.get_or_insert(event.task_id);
        if event.task_id == task {
            unique.entry(event.event_id).or_insert(event);
        }
    }
    let events: Vec<&Event> = unique.into_values().collect();
    let first = events.first()?;
    let stages: Vec<StageView> = Stage::ALL
        .into_iter()
        .map(|stage| stage_view(stage, &events))
        .collect();
    // A duplicate goes no further than ingest: no later stage waits.
    let stages = if events.iter().any(|e| duplicate_of(e).is_some()) {
        stages
    } else {
        stage_queued(stages)
    };
    Some(task_view(first.task_id, &events, stages))
}

/// Orders a stage's events: by replay epoch, then attempt, then what
/// happened within the attempt, then time and id as tie-breakers. A replay
/// starts a new epoch whose attempts count from 1 again.
type StageKey = (usize, bool, u32, u8, DateTime<Utc>, Uuid);

fn stage_key(event: &Event, replays: &[&Event]) -> StageKey {
    let replayed = matches!(event.kind, EventKind::Replayed);
    let epoch = replays
        .iter()
        .filter(|r| (r.at, r.event_id) <= (event.at, event.event_id))
        .count();
    let rank = match event.kind {
        EventKind::Replayed | EventKind::Received { .. } => 0,
        EventKind::Started => 1,
        EventKind::RetryScheduled { .. } => 2,
        EventKind::DeadLettered { .. }
        | EventKind::Succeeded { .. }
        | EventKind::Duplicate { .. }
        | EventKind::Dropped => 3,
        EventKind::Completed { .. } => 4,
        // Not a stage's event (see `stage_view`): it is the task's.
        EventKind::Cancelled { .. } => 0,
    };
    (
        epoch,
        !replayed,
        event.attempt,
        rank,
        event.at,
        event.event_id,
    )
}

fn stage_view(stage: Stage, events: &[&Event]) -> StageView {
    let own: Vec<&Event> = events
        .iter()
        .copied()
        .filter(|e| e.stage == stage && !matches!(e.kind, EventKind::Cancelled { .. }))
        .collect();
    let replays: Vec<&Event> = own
        .iter()
        .copied()
        .filter(|e| matches!(e.kind, EventKind::Replayed))
        .collect();
    let keyed = |e: &&&Event| stage_key(e, &replays);
    let latest = own.iter().max_by_key(keyed);
    let latest_error = own
        .iter()
        .filter(|e| error_of(e).is_some())
        .max_by_key(keyed)
        .and_then(|e| error_of(e).cloned());
    let attempts = own
        .iter()
        .filter(|e| {
            // A drop is a delivery the stage did not work on.
            !matches!(
                e.kind,
                EventKind::Replayed | EventKind::Received { .. } | EventKind::Dropped
            )
        })
        .map(|e| (stage_key(e, &replays).0, e.attempt))
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u32;
    let started_at = own.iter().filter_map(|e| e.attempt_began()).min();
    let mut view = StageView {
        stage,
        state: StageState::Pending,
        attempts,
        started_at,
        finished_at: None,
        duration_ms: None,
        next_retry_at: None,
        error: latest_error,
    };
    if let Some(latest) = latest {
        apply_latest(&mut view, latest);
    }
    if view.state == StageState::Succeeded && view.duration_ms.is_none() {
        // The last stage's latest event is `completed`; its time is on the
        // `succeeded` beside it.
        view.duration_ms = own
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Succeeded { .. }))
            .max_by_key(keyed)
            .and_then(|e| match e.kind {
                EventKind::Succeeded { duration_ms, .. } => Some(duration_ms),
                _ => None,
            });
    }
    view
}

fn apply_latest(view: &mut StageView, latest: &Event) {
    view.state = match &latest.kind {
        EventKind::Received { .. } | EventKind::Replayed => StageState::Queued,
        EventKind::Started => StageState::Running,
        EventKind::RetryScheduled { due_at, .. } => {
            view.next_retry_at = Some(*due_at);
            StageState::Retrying
        }
        EventKind::DeadLettered { .. } => {
            view.finished_at = Some(latest.at);
            StageState::Failed
        }
        EventKind::Succeeded { duration_ms, .. } => {
            view.finished_at = Some(latest.at);
            view.duration_ms = Some(*duration_ms);
            StageState::Succeeded
        }
        EventKind::Completed { .. } | EventKind::Duplicate { .. } => {
            view.finished_at = Some(latest.at);
            StageState::Succeeded
        }
        EventKind::Dropped => {
            view.finished_at = Some(latest.at);
            StageState::Dropped
        }
        // Never a stage's latest: `stage_view` leaves it out.
        EventKind::Cancelled { .. } => view.state,
    };
}

/// A stage nothing has reached yet, right after one that succeeded, has its
/// message waiting in its queue.
fn stage_queued(mut stages: Vec<StageView>) -> Vec<StageView> {
    for i in 1..stages.len() {
        if stages[i].state == StageState::Pending && stages[i - 1].state == StageState::Succeeded {
            stages[i].state = StageState::Queued;
        }
    }
    stages
}

fn duplicate_of(event: &Event) -> Option<Uuid> {
    match event.kind {
        EventKind::Duplicate { of } => Some(of),
        _ => None,
    }
}

fn error_of(event: &Event) -> Option<&ErrorInfo> {
    match &event.kind {
        EventKind::RetryScheduled { error, .. } | EventKind::DeadLettered { error } => Some(error),
        _ => None,
    }
}

fn by_time<'a>(events: &[&'a Event], pick: impl Fn(&Event) -> bool) -> Vec<&'a Event> {
    let mut picked: Vec<&Event> = events.iter().copied().filter(|e| pick(e)).collect();
    picked.sort_by_key(|e| (e.at, e.event_id));
    picked
}

fn task_view(task_id: Uuid, events: &[&Event], stages: Vec<StageView>) -> TaskView {
    let received = by_time(events, |e| matches!(e.kind, EventKind::Received { .. }));
    let completed = by_time(events, |e| matches!(e.kind, EventKind::Completed { .. }));
    let (documents, options, external_id) = match received.first().map(|e| &e.kind) {
        Some(EventKind::Received {
            documents,
            options,
            external_id,
        }) => (
            documents.clone(),
            Some(options.clone()),
            external_id.clone(),
        ),
        _ => (Vec::new(), None, None),
    };
    let duplicate = by_time(events, |e| duplicate_of(e).is_some())
        .first()
        .and_then(|e| Some((e.at, duplicate_of(e)?)));
    let summary = match completed.first().map(|e| &e.kind) {
        Some(EventKind::Completed { summary }) => Some(summary.clone()),
        _ => None,
    };
    let files = sorted_files(events);
    let cancelled = cancellation(events);
    let state = match (&cancelled, duplicate) {
        (Some(_), _) => TaskState::Cancelled,
        (None, Some(_)) if summary.is_none() => TaskState::Duplicate,
        _ => overall_state(&stages, summary.is_some()),
    };
    let finished_at = match state {
        TaskState::Done => completed.first().map(|e| e.at),
        TaskState::Duplicate => duplicate.map(|(at, _)| at),
        TaskState::Cancelled => cancelled.as_ref().map(|c| c.at),
        TaskState::Failed => stages
            .iter()
            .filter_map(|s| s.finished_at.filter(|_| s.state == StageState::Failed))
            .max(),
        _ => None,
    };
    let at_min = events
        .iter()
        .map(|e| e.at)
        .min()
        .expect("events are not empty");
    TaskView {
        task_id,
        state,
        stage: furthest_stage(&stages, state),
        attempts: stages.iter().map(|s| s.attempts).sum(),
        started_at: stages.iter().filter_map(|s| s.started_at).min(),
        finished_at,
        last_error: last_error(events),
        // A cancelled task's retry is dropped when it falls due.
        next_retry_at: stages
            .iter()
            .filter_map(|s| s.next_retry_at)
            .min()
            .filter(|_| cancelled.is_none()),
        documents,
        files,
        options,
        external_id,
        duplicate_of: duplicate.map(|(_, of)| of),
        summary,
        cancelled,
        created_at: received.first().map_or(at_min, |e| e.at),
        updated_at: events
            .iter()
            .map(|e| e.at)
            .max()
            .expect("events are not empty"),
        events: events.len(),
        stages,
    }
}

/// The task's cancellation, if it stands: its latest `cancelled` event,
/// unless a `replayed` event (only a forced replay can follow a cancel)
/// came after it. Chosen by time and id, so arrival order does not matter;
/// a stage's `succeeded` or `completed` that raced the cancel does not
/// undo it.
fn cancellation(events: &[&Event]) -> Option<Cancellation> {
    let latest = by_time(events, |e| {
        matches!(e.kind, EventKind::Cancelled { .. } | EventKind::Replayed)
    })
    .pop()?;
    match &latest.kind {
        EventKind::Cancelled { by, reason } => Some(Cancellation {
            at: latest.at,
            by: by.clone(),
            reason: reason.clone(),
        }),
        _ => None,
    }
}

/// The files of ingest's latest success (by the stage's own order, so the
/// choice does not depend on arrival); ingest sorts the same bytes the same
/// way on every attempt.
fn sorted_files(events: &[&Event]) -> Vec<TaskFile> {
    let ingest: Vec<&Event> = events
        .iter()
        .copied()
        .filter(|e| e.stage == Stage::Ingest)
        .collect();
    let replays: Vec<&Event> = ingest
        .iter()
        .copied()
        .filter(|e| matches!(e.kind, EventKind::Replayed))
        .collect();
    ingest
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Succeeded { files, .. } if !files.is_empty() => Some((e, files)),
            _ => None,
        })
        .max_by_key(|(e, _)| stage_key(e, &replays))
        .map(|(_, files)| files.clone())
        .unwrap_or_default()
}

fn overall_state(stages: &[StageView], completed: bool) -> TaskState {
    let any = |state: StageState| stages.iter().any(|s| s.state == state);
    if completed {
        TaskState::Done
    } else if any(StageState::Failed) {
        TaskState::Failed
    } else if any(StageState::Retrying) {
        TaskState::Retrying
    } else if stages.iter().any(|s| s.attempts > 0) {
        TaskState::Running
    } else {
        TaskState::Queued
    }
}

fn furthest_stage(stages: &[StageView], state: TaskState) -> Stage {
    if state == TaskState::Done {
        return Stage::Extract;
    }
    stages
        .iter()
        .rev()
        .find(|s| s.state != StageState::Pending)
        .map_or(Stage::Ingest, |s| s.stage)
}

fn last_error(events: &[&Event]) -> Option<LastError> {
    let latest = by_time(events, |e| error_of(e).is_some()).pop()?;
    let error = error_of(latest)?;
    Some(LastError {
        stage: latest.stage,
        kind: error.kind.clone(),
        message: error.message.clone(),
        at: latest.at,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;
    use proptest::prelude::*;
    use proptest::sample::Index;

    use super::*;
    use crate::events::EVENT_SCHEMA;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_780_000_000_000 + ms).unwrap()
    }

    fn error(kind: &str) -> ErrorInfo {
        ErrorInfo {
            kind: kind.into(),
            message: format!("{kind} happened"),
        }
    }

    fn artifact(name: &str) -> ArtifactRef {
        ArtifactRef {
            key: format!("artifacts/{name}"),
            sha256: "ab".repeat(32),
            size: 10,
        }
    }

    /// What ingest reports for a package of a main document, an amendment
    /// and a drawing.
    fn package_files() -> Vec<TaskFile> {
        let file = |name: &str, role| TaskFile {
            name: name.into(),
            role,
            package: Some("notice.zip".into()),
            stored: artifact(name),
            media_type: None,
            reason: format!("{name} by rule"),
        };
        vec![
            file("招标文件.docx", crate::envelope::Role::Main),
            file("补遗1.pdf", crate::envelope::Role::Amendment),
            file("图纸.dwg", crate::envelope::Role::Attachment),
        ]
    }

    /// Builds one task's events in the order a real run would emit them.
    struct Script {
        task_id: Uuid,
        clock: i64,
        events: Vec<Event>,
    }

    impl Script {
        fn new(skew: i64) -> Self {
            let mut script = Script {
                task_id: Uuid::now_v7(),
                clock: skew,
                events: Vec::new(),
            };
            let documents = vec![DocumentInfo {
                filename: "notice.md".into(),
                sha256: "cd".repeat(32),
                size: 42,
            }];
            let options = TaskOptions::default();
            script.push(
                Stage::Ingest,
                1,
                EventKind::Received {
                    documents,
                    options,
                    external_id: None,
                },
            );
            script
        }

        fn push(&mut self, stage: Stage, attempt: u32, kind: EventKind) -> &mut Self {
            self.clock += 7;
            self.events.push(Event {
                callback: None,
                schema: EVENT_SCHEMA,
                event_id: Uuid::now_v7(),
                task_id: self.task_id,
                stage,
                attempt,
                at: at(self.clock),
                kind,
            });
            self
        }

        fn retry(&mut self, stage: Stage, attempt: u32) -> &mut Self {
            let due_at = at(self.clock + 1000);
            self.push(stage, attempt, EventKind::Started).push(
                stage,
                attempt,
                EventKind::RetryScheduled {
                    error: error("transient"),
                    due_at,
                },
            )
        }

        fn succeed(&mut self, stage: Stage, attempt: u32) -> &mut Self {
            let output = Some(artifact(stage.as_str()));
            let files = match stage {
                Stage::Ingest => package_files(),
                _ => Vec::new(),
            };
            self.push(stage, attempt, EventKind::Started).push(
                stage,
                attempt,
                EventKind::Succeeded {
                    artifact: output,
                    duration_ms: 5,
                    files,
                },
            );
            if stage == Stage::Extract {
                let summary = artifact("summary");
                self.push(stage, attempt, EventKind::Completed { summary });
            }
            self
        }

        fn dead_letter(&mut self, stage: Stage, attempt: u32) -> &mut Self {
            let error = error("unsupported_type");
            self.push(stage, attempt, EventKind::Started).push(
                stage,
                attempt,
                EventKind::DeadLettered { error },
            )
        }

        fn view(&self) -> TaskView {
            fold(&self.events).unwrap()
        }

        fn cancel(&mut self, stage: Stage) -> &mut Self {
            self.push(
                stage,
                1,
                EventKind::Cancelled {
                    by: "test".into(),
                    reason: Some("withdrawn".into()),
                },
            )
        }
    }

    #[test]
    fn a_cancelled_task_stays_cancelled_whatever_raced_the_cancel() {
        let mut script = Script::new(0);
        script.succeed(Stage::Ingest, 1).succeed(Stage::Parse, 1);
        script.cancel(Stage::Filter);
        let view = script.view();
        assert_eq!(view.state, TaskState::Cancelled);
        assert!(view.state.is_final());
        let cancelled = view.cancelled.clone().unwrap();
        assert_eq!(cancelled.reason.as_deref(), Some("withdrawn"));
        assert_eq!(view.finished_at, Some(cancelled.at));
        // The cancel is no stage's event: filter still waits.
        assert_eq!(view.stages[2].state, StageState::Queued);
        script.push(Stage::Filter, 1, EventKind::Dropped);
        let view = script.view();
        assert_eq!(view.state, TaskState::Cancelled);
        assert_eq!(view.stages[2].state, StageState::Dropped);
        assert_eq!(view.stages[2].attempts, 0, "a drop is no attempt");
        // A stage that was already running when the cancel came, and
        // finished after it, does not bring the task back.
        let mut raced = Script::new(0);
        for stage in [Stage::Ingest, Stage::Parse, Stage::Filter] {
            raced.succeed(stage, 1);
        }
        raced.push(Stage::Extract, 1, EventKind::Started);
        raced.cancel(Stage::Extract);
        raced.succeed(Stage::Extract, 1);
        let view = raced.view();
        assert_eq!(view.state, TaskState::Cancelled);
        assert_eq!(
            view.summary,
            Some(artifact("summary")),
            "the summary was stored anyway"
        );
        assert_eq!(view.stages[3].state, StageState::Succeeded);
        // A task retrying when cancelled has no retry to wait for.
        let mut retrying = Script::new(0);
        retrying.succeed(Stage::Ingest, 1).retry(Stage::Parse, 1);
        assert!(retrying.view().next_retry_at.is_some());
        retrying.cancel(Stage::Parse);
        assert_eq!(retrying.view().next_retry_at, None);
        assert_eq!(retrying.view().state, TaskState::Cancelled);
    }

    #[test]
    fn a_forced_replay_after_the_cancel_runs_the_task_again() {
        let mut script = Script::new(0);
        script
            .succeed(Stage::Ingest, 1)
            .dead_letter(Stage::Parse, 1);
        script.cancel(Stage::Parse);
        assert_eq!(script.view().state, TaskState::Cancelled);
        script.push(Stage::Parse, 1, EventKind::Replayed);
        let view = script.view();
        assert_eq!(view.state, TaskState::Running);
        assert_eq!(view.cancelled, None);
        for stage in [Stage::Parse, Stage::Filter, Stage::Extract] {
            script.succeed(stage, 1);
        }
        assert_eq!(script.view().state, TaskState::Done);
        // Cancelled again later: cancelled again.
        script.cancel(Stage::Extract);
        assert_eq!(script.view().state, TaskState::Cancelled);
        assert_eq!("cancelled".parse::<TaskState>(), Ok(TaskState::Cancelled));
    }

    #[test]
    fn a_task_that_went_through_every_stage_is_done_with_its_summary() {
        let mut script = Script::new(0);
        for stage in Stage::ALL {
            script.succeed(stage, 1);
        }
        let view = script.view();
        assert_eq!(view.state, TaskState::Done);
        assert_eq!(view.stage, Stage::Extract);
        assert_eq!(view.summary, Some(artifact("summary")));
        assert_eq!(view.attempts, 4);
        assert_eq!(view.documents[0].filename, "notice.md");
        assert_eq!(view.files, package_files());
        assert!(view.stages.iter().all(|s| s.state == StageState::Succeeded));
        assert!(view.stages.iter().all(|s| s.duration_ms == Some(5)));
        assert_eq!(view.finished_at, Some(view.updated_at));
        assert!(view.last_error.is_none());
    }

    #[test]
    fn a_duplicate_ends_at_ingest_naming_the_first_task() {
        let mut script = Script::new(0);
        let first = Uuid::now_v7();
        script.push(Stage::Ingest, 1, EventKind::Duplicate { of: first });
        let at = script.events.last().unwrap().at;
        let view = script.view();
        assert_eq!(view.state, TaskState::Duplicate);
        assert!(view.state.is_final());
        assert_eq!(view.duplicate_of, Some(first));
        assert_eq!(view.finished_at, Some(at));
        assert_eq!(view.stage, Stage::Ingest);
        assert_eq!(view.stages[0].state, StageState::Succeeded);
        // Nothing waits in the later stages' queues.
        assert!(
            view.stages[1..]
                .iter()
                .all(|s| s.state == StageState::Pending)
        );
        assert!(view.summary.is_none() && view.last_error.is_none());
    }

    #[test]
    fn a_quick_attempt_without_started_begins_its_duration_before_it_succeeded() {
        let mut script = Script::new(0);
        script.succeed(Stage::Ingest, 1);
        // Parse ran 5 ms: the runtime published only `succeeded`.
        script.push(
            Stage::Parse,
            1,
            EventKind::Succeeded {
                artifact: Some(artifact("parse")),
                duration_ms: 5,
                files: Vec::new(),
            },
        );
        let finished = script.events.last().unwrap().at;
        let view = script.view();
        let parse = &view.stages[1];
        assert_eq!(parse.state, StageState::Succeeded);
        assert_eq!(parse.attempts, 1);
        assert_eq!(parse.finished_at, Some(finished));
        assert_eq!(
            parse.started_at,
            Some(finished - chrono::Duration::milliseconds(5))
        );
        assert_eq!(view.stages[2].state, StageState::Queued);
        assert_eq!(view.state, TaskState::Running);
        // An announced attempt starts at its `started`.
        let ingest = &view.stages[0];
        assert_eq!(ingest.started_at, Some(script.events[1].at));
    }

    #[test]
    fn a_retry_shows_its_due_time_and_error_until_the_next_attempt_succeeds() {
        let mut script = Script::new(0);
        script.succeed(Stage::Ingest, 1).retry(Stage::Parse, 1);
        let view = script.view();
        assert_eq!(view.state, TaskState::Retrying);
        assert_eq!(view.stage, Stage::Parse);
        assert!(view.next_retry_at.is_some());
        let last = view.last_error.unwrap();
        assert_eq!(
            (last.stage, last.kind.as_str()),
            (Stage::Parse, "transient")
        );

        script.succeed(Stage::Parse, 2);
        let view = script.view();
        assert_eq!(view.state, TaskState::Running);
        assert_eq!(view.stages[1].attempts, 2);
        assert_eq!(view.stages[2].state, StageState::Queued);
        assert_eq!(view.next_retry_at, None);
        assert!(view.last_error.is_some(), "the error stays in history");
    }

    #[test]
    fn a_dead_letter_fails_the_task_and_a_replay_brings_it_back() {
        let mut script = Script::new(0);
        script
            .succeed(Stage::Ingest, 1)
            .dead_letter(Stage::Parse, 1);
        let view = script.view();
        assert_eq!(view.state, TaskState::Failed);
        assert_eq!(view.stages[1].state, StageState::Failed);
        assert!(view.finished_at.is_some());
        assert_eq!(view.last_error.unwrap().kind, "unsupported_type");

        script.push(Stage::Parse, 1, EventKind::Replayed);
        assert_eq!(script.view().stages[1].state, StageState::Queued);
        assert_eq!(script.view().state, TaskState::Running);
        script.succeed(Stage::Parse, 1);
        let view = script.view();
        assert_eq!(view.stages[1].state, StageState::Succeeded);
        assert_eq!(
            view.stages[1].attempts, 2,
            "one attempt before, one after the replay"
        );
    }

    #[test]
    fn a_redelivered_attempt_after_success_does_not_undo_it() {
        let mut script = Script::new(0);
        script.succeed(Stage::Ingest, 1);
        script.push(Stage::Ingest, 1, EventKind::Started);
        let view = script.view();
        assert_eq!(view.stages[0].state, StageState::Succeeded);
        assert_eq!(view.state, TaskState::Running);
    }

    #[test]
    fn a_received_task_is_queued() {
        let view = Script::new(0).view();
        assert_eq!(view.state, TaskState::Queued);
        assert_eq!(view.stage, Stage::Ingest);
        assert_eq!(view.stages[0].state, StageState::Queued);
        assert_eq!(view.events, 1);
    }

    #[test]
    fn no_events_no_view() {
        assert!(fold(&[]).is_none());
    }

    /// One task's run: how far it gets, how many retries each stage needs,
    /// whether it is dead-lettered at the end, replayed, and its clock skew.
    pub(crate) fn run() -> impl Strategy<Value = Vec<Event>> {
        (
            0usize..=4,
            prop::collection::vec(0u32..3, 4),
            0u8..5,
            -500i64..500,
        )
            .prop_map(|(reached, retries, ending, skew)| {
                let mut script = Script::new(skew);
                for (i, stage) in Stage::ALL.into_iter().enumerate().take(reached) {
                    for attempt in 1..=retries[i] {
                        script.retry(stage, attempt);
                    }
                    script.succeed(stage, retries[i] + 1);
                }
                if let Some(stage) = Stage::ALL.get(reached).copied() {
                    if ending >= 1 {
                        script.dead_letter(stage, 1);
                    }
                    if ending == 2 {
                        script.push(stage, 1, EventKind::Replayed);
                        script.succeed(stage, 1);
                    }
                }
                if ending >= 3 {
                    // Cancelled; the next stage drops the message, and one
                    // run goes on with a forced replay.
                    let stage = Stage::ALL.get(reached).copied().unwrap_or(Stage::Extract);
                    script.cancel(stage).push(stage, 1, EventKind::Dropped);
                    if ending == 4 {
                        script.push(stage, 1, EventKind::Replayed);
                        script.succeed(stage, 1);
                    }
                }
                script.events
            })
    }

    pub(crate) fn project(events: &[Event]) -> BTreeMap<Uuid, TaskView> {
        let mut by_task: BTreeMap<Uuid, Vec<&Event>> = BTreeMap::new();
        for event in events {
            by_task.entry(event.task_id).or_default().push(event);
        }
        by_task
            .into_iter()
            .map(|(id, events)| (id, fold(events).unwrap()))
            .collect()
    }

    /// Several tasks' events in emission order, and the same events with some
    /// delivered again, all shuffled.
    pub(crate) fn delivered() -> impl Strategy<Value = (Vec<Event>, Vec<Event>)> {
        prop::collection::vec(run(), 1..4)
            .prop_map(|runs| runs.concat())
            .prop_flat_map(|events| {
                let n = events.len();
                (Just(events), prop::collection::vec(any::<Index>(), 0..n))
            })
            .prop_flat_map(|(events, again)| {
                let mut redelivered = events.clone();
                redelivered.extend(again.iter().map(|i| i.get(&events).clone()));
                (Just(events), Just(redelivered).prop_shuffle())
            })
    }

    proptest! {
        #[test]
        fn the_fold_converges_whatever_the_order_and_duplicates((events, redelivered) in delivered()) {
            prop_assert_eq!(project(&events), project(&redelivered));
        }

        #[test]
        fn folding_twice_changes_nothing(events in run()) {
            let twice: Vec<Event> = events.iter().chain(events.iter()).cloned().collect();
            prop_assert_eq!(fold(&events), fold(&twice));
        }
    }

    #[test]
    fn files_appear_once_ingest_succeeded_and_only_from_ingest() {
        let mut script = Script::new(0);
        script.retry(Stage::Ingest, 1);
        assert!(script.view().files.is_empty());
        script.succeed(Stage::Ingest, 2);
        assert_eq!(script.view().files, package_files());
        script.succeed(Stage::Parse, 1);
        assert_eq!(script.view().files, package_files());
    }

    #[test]
    fn views_round_trip_through_json() {
        let mut script = Script::new(0);
        script.succeed(Stage::Ingest, 1).retry(Stage::Parse, 1);
        let view = script.view();
        let json = serde_json::to_string(&view).unwrap();
        assert_eq!(serde_json::from_str::<TaskView>(&json).unwrap(), view);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["state"], "retrying");
        assert_eq!(value["stages"][1]["state"], "retrying");
    }
}
