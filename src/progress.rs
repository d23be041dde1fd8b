//! How `submit --wait` shows its tasks while they run: on a terminal, one
//! bar per task (`indicatif`), its stages done out of four and each
//! stage's mark in aligned columns, folded from the events seen so far;
//! elsewhere (a pipe, a log file) one plain line per event, in aligned
//! columns; with `--json`, the events as JSON lines.

use std::collections::HashMap;
use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use uuid::Uuid;

use crate::envelope::Stage;
use crate::events::Event;
use crate::projector::view::{StageState, TaskView, fold};

/// The display of one `submit --wait`.
pub enum Progress {
    /// Each event as a JSON line.
    Json,
    /// Each event as a line of text.
    Lines,
    /// A bar per task, redrawn in place.
    Bars(Bars),
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
        } else if std::io::stdout().is_terminal() {
            Progress::Bars(Bars::new(tasks, ProgressDrawTarget::stdout()))
        } else {
            Progress::Lines
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
        }
    }

    /// Leaves the bars as they last were (the outcome lines follow).
    pub fn finish(&mut self) {
        if let Progress::Bars(bars) = self {
            for bar in bars.bars.values() {
                bar.abandon();
            }
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
    use crate::events::EventKind;

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
