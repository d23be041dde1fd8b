//! How `submit --wait` shows its tasks while they run: on a terminal, one
//! bar per task (`indicatif`), its stages done out of four and each
//! stage's mark in aligned columns, folded from the events seen so far;
//! past [`MAX_TASK_BARS`] tasks, one bar of the tasks ended; elsewhere (a
//! pipe, a log file) one plain line per event, in aligned columns; with
//! `--json`, the events as JSON lines.
//!
//! And how `submit` of many files shows them being submitted
//! ([`Submitting`]): a bar on standard error when it is a terminal, beside
//! the lines of the tasks on standard output.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use uuid::Uuid;

use crate::envelope::Stage;
use crate::events::{Event, EventKind};
use crate::projector::view::{StageState, TaskView, fold};

/// Tasks followed beyond this many share one bar: a bar per task would
/// overflow the terminal.
pub const MAX_TASK_BARS: usize = 12;

/// The display of one `submit --wait`.
pub enum Progress {
    /// Each event as a JSON line.
    Json,
    /// Each event as a line of text.
    Lines,
    /// A bar per task, redrawn in place.
    Bars(Bars),
    /// One bar of the tasks that have ended.
    Ended(Ended),
}

/// The bar of many tasks followed: how many have ended, how many failed.
pub struct Ended {
    bar: ProgressBar,
    /// The tasks followed, and whether each ended in failure, once it ended.
    tasks: HashMap<Uuid, Option<bool>>,
}

/// The bars of the tasks followed, and the events that make their views.
pub struct Bars {
    bars: HashMap<Uuid, ProgressBar>,
    events: HashMap<Uuid, Vec<Event>>,
    /// Kept so the bars draw as one block.
    _multi: MultiProgress,
}

impl Progress {
    /// The display for `tasks`: bars when standard output is a terminal
    /// and JSON was not asked for.
    pub fn new(tasks: &[Uuid], json: bool) -> Progress {
        if json {
            Progress::Json
        } else if !std::io::stdout().is_terminal() {
            Progress::Lines
        } else if tasks.len() > MAX_TASK_BARS {
            Progress::Ended(Ended::new(tasks, ProgressDrawTarget::stdout()))
        } else {
            Progress::Bars(Bars::new(tasks, ProgressDrawTarget::stdout()))
        }
    }

    /// Shows one more event.
    pub fn show(&mut self, event: &Event) {
        match self {
            Progress::Json => {
                outln!("{}", serde_json::to_string(event).unwrap_or_default());
            }
            Progress::Lines => outln!("{}", event_line(event)),
            Progress::Bars(bars) => bars.show(event),
            Progress::Ended(ended) => ended.show(event),
        }
    }

    /// Leaves the bars as they last were (the outcome lines follow).
    pub fn finish(&mut self) {
        match self {
            Progress::Bars(bars) => {
                for bar in bars.bars.values() {
                    bar.abandon();
                }
            }
            Progress::Ended(ended) => ended.bar.abandon(),
            Progress::Json | Progress::Lines => {}
        }
    }
}

impl Ended {
    fn new(tasks: &[Uuid], target: ProgressDrawTarget) -> Ended {
        let bar = ProgressBar::with_draw_target(Some(tasks.len() as u64), target);
        bar.set_style(
            ProgressStyle::with_template("[{bar:30}] {pos}/{len} tasks ended  {msg}")
                .expect("a valid progress template")
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(500));
        Ended {
            bar,
            tasks: tasks.iter().map(|t| (*t, None)).collect(),
        }
    }

    /// Counts a task as ended at its outcome event (a cancel seen after
    /// a completion makes it a failure, as [`crate::submit::Follower`] does).
    fn show(&mut self, event: &Event) {
        let failed = match &event.kind {
            EventKind::Completed { .. } | EventKind::Duplicate { .. } => false,
            EventKind::DeadLettered { .. } | EventKind::Cancelled { .. } => true,
            _ => return,
        };
        let Some(ended) = self.tasks.get_mut(&event.task_id) else {
            return;
        };
        let cancelled = matches!(event.kind, EventKind::Cancelled { .. });
        *ended = match *ended {
            Some(before) if !cancelled => Some(before),
            _ => Some(failed),
        };
        let done = self.tasks.values().filter(|e| e.is_some()).count();
        let failures = self.tasks.values().filter(|e| **e == Some(true)).count();
        self.bar.set_position(done as u64);
        if failures > 0 {
            self.bar.set_message(format!("{failures} failed"));
        }
    }
}

/// The bar of a `submit` of many files: files submitted (published and
/// confirmed) or failed, out of all. Drawn on standard error, and only
/// when it is a terminal: the task lines on standard output stay as they
/// are for a script, and are printed above the bar.
pub struct Submitting {
    bar: Option<ProgressBar>,
    failed: usize,
}

impl Submitting {
    /// The display for `files` files: a bar only for more than one, on a
    /// terminal.
    pub fn new(files: usize) -> Submitting {
        let bar = (files > 1 && std::io::stderr().is_terminal())
            .then(|| Submitting::bar(files, ProgressDrawTarget::stderr()));
        Submitting { bar, failed: 0 }
    }

    fn bar(files: usize, target: ProgressDrawTarget) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(files as u64), target);
        bar.set_style(
            ProgressStyle::with_template(
                "[{bar:30}] {pos}/{len} files submitted  {per_sec:.0}  eta {eta}  {msg}",
            )
            .expect("a valid progress template")
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// Prints with the bar out of the way.
    pub fn print(&self, print: impl FnOnce()) {
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// One more file submitted.
    pub fn submitted(&mut self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// One more file that could not be submitted.
    pub fn failed(&mut self) {
        self.failed += 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!("{} failed", self.failed));
        }
    }

    /// Takes the bar away: what was submitted is in the lines printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Bars {
    fn new(tasks: &[Uuid], target: ProgressDrawTarget) -> Bars {
        let multi = MultiProgress::with_draw_target(target);
        let style = ProgressStyle::with_template("{prefix}  [{bar:8}] {msg}")
            .expect("a valid progress template")
            .progress_chars("=> ");
        let bars = tasks
            .iter()
            .map(|task| {
                let bar = multi.add(ProgressBar::new(Stage::ALL.len() as u64));
                bar.set_style(style.clone());
                bar.set_prefix(task.to_string());
                bar.set_message("waiting");
                (*task, bar)
            })
            .collect();
        Bars {
            bars,
            events: HashMap::new(),
            _multi: multi,
        }
    }

    fn show(&mut self, event: &Event) {
        let Some(bar) = self.bars.get(&event.task_id) else {
            return;
        };
        let events = self.events.entry(event.task_id).or_default();
        events.push(event.clone());
        if let Some(view) = fold(events.iter()) {
            bar.set_position(stages_done(&view));
            bar.set_message(crate::client::progress_line(&view));
            if view.state.is_final() {
                bar.finish();
            }
        }
    }
}

/// Stages of the view that have succeeded.
fn stages_done(view: &TaskView) -> u64 {
    view.stages
        .iter()
        .filter(|s| s.state == StageState::Succeeded)
        .count() as u64
}

/// One event as a line of aligned columns: task, stage, kind, attempt.
pub fn event_line(event: &Event) -> String {
    let stage = Stage::ALL
        .iter()
        .map(|s| s.as_str().len())
        .max()
        .unwrap_or(0);
    format!(
        "{}  {:<stage$}  {:<15}  attempt {}",
        event.task_id,
        event.stage.as_str(),
        event.kind.name(),
        event.attempt
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(task_id: Uuid, stage: Stage, kind: EventKind) -> Event {
        Event {
            schema: crate::events::EVENT_SCHEMA,
            event_id: Uuid::now_v7(),
            task_id,
            stage,
            attempt: 1,
            at: chrono::Utc::now(),
            callback: None,
            kind,
        }
    }

    #[test]
    fn plain_lines_keep_their_columns_whatever_the_stage() {
        let task = Uuid::now_v7();
        let a = event_line(&event(task, Stage::Parse, EventKind::Started));
        let b = event_line(&event(task, Stage::Extract, EventKind::Replayed));
        let column = |line: &str, word: &str| line.find(word).unwrap();
        assert_eq!(column(&a, "started"), column(&b, "replayed"), "{a}\n{b}");
        assert_eq!(column(&a, "attempt"), column(&b, "attempt"), "{a}\n{b}");
    }

    #[test]
    fn progress_lines_of_tasks_at_different_attempts_stay_aligned() {
        let (one, two) = (Uuid::now_v7(), Uuid::now_v7());
        let tries: Vec<Event> = (1..=12)
            .map(|n| {
                let mut e = event(two, Stage::Parse, EventKind::Started);
                e.attempt = n;
                e
            })
            .collect();
        let a = fold([event(one, Stage::Parse, EventKind::Started)].iter()).unwrap();
        let b = fold(tries.iter()).unwrap();
        let (a, b) = (
            crate::client::progress_line(&a),
            crate::client::progress_line(&b),
        );
        assert!(b.contains("12"), "{b}");
        let column = |line: &str, word: &str| line.chars().collect::<String>().find(word).unwrap();
        for stage in ["parse", "filter", "extract"] {
            assert_eq!(
                a[..column(&a, stage)].chars().count(),
                b[..column(&b, stage)].chars().count(),
                "{a}\n{b}"
            );
        }
    }

    #[test]
    fn the_bar_of_many_tasks_counts_those_ended_and_failed_once() {
        let tasks: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
        let mut ended = Ended::new(&tasks, ProgressDrawTarget::hidden());
        let summary = crate::envelope::ArtifactRef {
            key: "artifacts/summary/x.json".into(),
            sha256: "x".into(),
            size: 1,
        };
        let completed = EventKind::Completed { summary };
        ended.show(&event(tasks[0], Stage::Extract, completed.clone()));
        ended.show(&event(tasks[0], Stage::Extract, completed.clone()));
        ended.show(&event(tasks[1], Stage::Parse, EventKind::Started));
        ended.show(&event(Uuid::now_v7(), Stage::Extract, completed.clone()));
        assert_eq!(ended.bar.position(), 1);
        assert_eq!(ended.bar.message(), "");
        let cancel = EventKind::Cancelled {
            reason: None,
            by: "test".into(),
        };
        ended.show(&event(tasks[0], Stage::Extract, cancel));
        ended.show(&event(tasks[2], Stage::Extract, completed));
        assert_eq!(ended.bar.position(), 2);
        assert_eq!(ended.bar.message(), "1 failed");
    }

    #[test]
    fn the_submit_bar_counts_files_submitted_and_failed() {
        let mut submitting = Submitting {
            bar: Some(Submitting::bar(3, ProgressDrawTarget::hidden())),
            failed: 0,
        };
        submitting.submitted();
        submitting.failed();
        let bar = submitting.bar.as_ref().unwrap();
        assert_eq!(bar.position(), 2);
        assert_eq!(bar.message(), "1 failed");
    }

    #[test]
    fn bars_follow_the_events_of_their_task_only() {
        let (one, two) = (Uuid::now_v7(), Uuid::now_v7());
        let mut bars = Bars::new(&[one, two], ProgressDrawTarget::hidden());
        bars.show(&event(one, Stage::Ingest, EventKind::Started));
        bars.show(&event(Uuid::now_v7(), Stage::Ingest, EventKind::Started));
        assert!(
            bars.bars[&one].message().contains("ingest ▶"),
            "{}",
            bars.bars[&one].message()
        );
        assert_eq!(bars.bars[&two].message(), "waiting");
    }
}
