//! Retention: finished tasks leave the view some days after they finished,
//! with their events, references, summary index rows and settled dead
//! letters, so the database stops growing with every task ever run.
//!
//! What stays, whatever its age: a task not final (queued, running,
//! retrying), and a failed task while a dead letter of it waits (that is
//! work for a person) or while the dead-letter index has not seen its
//! letter yet (it could be waiting). A pruned task leaves a tombstone in
//! `pruned_tasks`: an event of it read later (a redelivery, a replay) is
//! counted there and not folded, because its earlier events are gone and
//! the fold of the rest would be a wrong view. Tombstones go after the
//! retention period again, long after the events stream has aged out any
//! entry of the task.
//!
//! Pruning runs in transactions of [`BATCH`] tasks, so the fold waits for
//! one short transaction at most; the pages it frees go back to the file
//! system by incremental vacuum, in steps of [`VACUUM_STEP`] pages.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior, params};
use tokio_util::sync::CancellationToken;

use super::db::{DbError, ViewDb};
use crate::config::Settings;

/// Tasks pruned in one transaction.
pub const BATCH: usize = 500;
/// Pages one incremental vacuum step frees (4 MiB of 4 KiB pages).
const VACUUM_STEP: i64 = 1024;

/// What a pass of retention did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Tasks removed.
    pub tasks: u64,
    /// Tombstones of long-pruned tasks removed.
    pub tombstones: u64,
}

/// The moment before which a task must have finished to be pruned, for
/// `days` of retention (`None`: 0 days, keep for ever).
pub fn cutoff(now: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
    (days > 0).then(|| now - chrono::Duration::days(i64::from(days)))
}

impl ViewDb {
    /// Drops the tombstones of tasks pruned before `cutoff`, prunes every
    /// task that finished before it, [`BATCH`] at a time, then frees pages.
    pub fn prune(&self, cutoff: DateTime<Utc>) -> Result<Pruned, DbError> {
        let now = Utc::now().timestamp();
        // The old tombstones first: this pass's own are never older.
        let tombstones = self.write_uncached(|conn| {
            Ok(conn.execute(
                "DELETE FROM pruned_tasks WHERE pruned_at < ?1",
                params![cutoff.timestamp()],
            )? as u64)
        })?;
        let mut pruned = Pruned {
            tasks: 0,
            tombstones,
        };
        loop {
            let n = self.write_uncached(|conn| prune_batch(conn, cutoff, now))?;
            pruned.tasks += n as u64;
            if n < BATCH {
                break;
            }
        }
        if pruned.tasks > 0 {
            self.free_pages()?;
        }
        Ok(pruned)
    }

    /// Gives free pages back to the file system, a step at a time, when the
    /// database has incremental vacuum on (a no-op otherwise).
    pub fn free_pages(&self) -> Result<(), DbError> {
        let incremental: i64 =
            self.read(|conn| Ok(conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?))?;
        if incremental != 2 {
            return Ok(());
        }
        let mut before = i64::MAX;
        loop {
            let free: i64 = self.write_uncached(|conn| {
                conn.execute_batch(&format!("PRAGMA incremental_vacuum({VACUUM_STEP})"))?;
                Ok(conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?)
            })?;
            // Stop at none left, or when a step freed nothing.
            if free == 0 || free >= before {
                return Ok(());
            }
            before = free;
        }
    }

    /// Prunes as [`prune`](Self::prune) (when `cutoff` is given), then
    /// turns incremental vacuum on and rewrites the file (a full `VACUUM`):
    /// every free page goes back. The rewrite holds the write lock for its
    /// whole length; run it while `serve` is stopped.
    pub fn vacuum(&self, cutoff: Option<DateTime<Utc>>) -> Result<Pruned, DbError> {
        let pruned = match cutoff {
            Some(cutoff) => self.prune(cutoff)?,
            None => Pruned::default(),
        };
        self.write_uncached(|conn| {
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
            conn.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")?;
            Ok(())
        })?;
        Ok(pruned)
    }
}

/// Prunes up to [`BATCH`] tasks finished before `cutoff` in one
/// transaction; answers how many.
fn prune_batch(conn: &mut Connection, cutoff: DateTime<Utc>, now: i64) -> Result<usize, DbError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let doomed: Vec<(String, Option<String>)> = {
        // `finished_at` is set on every final state; `updated_at` covers
        // a view folded by a build that did not set it.
        let mut query = tx.prepare_cached(
            "SELECT t.task_id, json_extract(t.view, '$.external_id') FROM tasks t
             WHERE t.state IN ('done', 'failed', 'duplicate', 'cancelled')
               AND unixepoch(COALESCE(json_extract(t.view, '$.finished_at'),
                                      json_extract(t.view, '$.updated_at'))) < ?1
               AND NOT EXISTS (SELECT 1 FROM dead_letters d
                               WHERE d.task_id = t.task_id AND d.settled_by IS NULL)
               AND (t.state <> 'failed'
                    OR EXISTS (SELECT 1 FROM dead_letters d WHERE d.task_id = t.task_id))
             LIMIT ?2",
        )?;
        let rows = query.query_map(params![cutoff.timestamp(), BATCH as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    for (task_id, external_id) in &doomed {
        tx.prepare_cached("DELETE FROM events WHERE task_id = ?1")?
            .execute(params![task_id])?;
        if let Some(external_id) = external_id {
            tx.prepare_cached("DELETE FROM task_refs WHERE external_id = ?1 AND task_id = ?2")?
                .execute(params![external_id, task_id])?;
        }
        tx.prepare_cached("DELETE FROM summary_index WHERE task_id = ?1")?
            .execute(params![task_id])?;
        // Only settled ones: the query above left tasks with waiting ones.
        tx.prepare_cached("DELETE FROM dead_letters WHERE task_id = ?1")?
            .execute(params![task_id])?;
        tx.prepare_cached("DELETE FROM tasks WHERE task_id = ?1")?
            .execute(params![task_id])?;
        tx.prepare_cached(
            "INSERT INTO pruned_tasks (task_id, pruned_at) VALUES (?1, ?2)
             ON CONFLICT (task_id) DO NOTHING",
        )?
        .execute(params![task_id, now])?;
    }
    tx.commit()?;
    Ok(doomed.len())
}

/// Prunes every `projector.retention_interval_ms` until `token` is
/// cancelled (never, with `projector.retain_finished_days` 0). A failed
/// pass is logged and tried again at the next interval: the view stays
/// right, only larger.
pub async fn run(db: ViewDb, settings: Arc<Settings>, token: CancellationToken) {
    let days = settings.projector.retain_finished_days;
    if days == 0 {
        return;
    }
    let mut every = tokio::time::interval(Duration::from_millis(
        settings.projector.retention_interval_ms,
    ));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = every.tick() => {}
        }
        let Some(cutoff) = cutoff(Utc::now(), days) else {
            return;
        };
        let db = db.clone();
        match tokio::task::spawn_blocking(move || db.prune(cutoff)).await {
            Ok(Ok(pruned)) if pruned != Pruned::default() => {
                tracing::info!(
                    tasks = pruned.tasks,
                    tombstones = pruned.tombstones,
                    %cutoff,
                    "retention pruned the view"
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "retention failed; trying again later"
                )
            }
            Err(error) => tracing::warn!(%error, "retention panicked; trying again later"),
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::events::{ErrorInfo, Event, EventKind};
    use crate::projector::db::Batch;
    use crate::projector::db::tests::event;
    use crate::projector::view::TaskState;

    fn at(mut event: Event, days_ago: i64) -> Event {
        event.at = Utc::now() - chrono::Duration::days(days_ago);
        event
    }

    fn received(task: Uuid, days_ago: i64) -> Event {
        let kind = EventKind::Received {
            documents: Vec::new(),
            options: Default::default(),
            external_id: Some(format!("ref-{task}")),
        };
        at(event(task, kind), days_ago)
    }

    fn dead_lettered(task: Uuid, days_ago: i64) -> Event {
        let error = ErrorInfo {
            kind: "unsupported_type".into(),
            message: "no".into(),
        };
        at(event(task, EventKind::DeadLettered { error }), days_ago)
    }

    #[test]
    fn old_finished_tasks_go_and_their_late_events_are_not_folded() {
        let dir = tempfile::tempdir().unwrap();
        let db = ViewDb::open(&dir.path().join("view.sqlite3")).unwrap();
        let (old, recent, running, failed) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let cancel = |task| {
            let kind = EventKind::Cancelled {
                by: "test".into(),
                reason: None,
            };
            event(task, kind)
        };
        let events = vec![
            received(old, 40),
            at(cancel(old), 40),
            received(recent, 2),
            at(cancel(recent), 2),
            received(running, 40),
            at(event(running, EventKind::Started), 40),
            received(failed, 40),
            dead_lettered(failed, 40),
        ];
        db.apply(&Batch {
            events,
            last_offset: 7,
        })
        .unwrap();
        let cutoff = cutoff(Utc::now(), 30).unwrap();
        let pruned = db.prune(cutoff).unwrap();
        assert_eq!(pruned.tasks, 1, "the failed task's letter is not indexed");
        assert!(db.task(old).unwrap().is_none());
        assert!(db.events(old).unwrap().is_empty());
        assert!(db.pruned(old).unwrap().is_some());
        for kept in [recent, running, failed] {
            assert!(db.task(kept).unwrap().is_some());
        }
        assert_eq!(db.task(failed).unwrap().unwrap().state, TaskState::Failed);
        // A redelivered event of the pruned task is counted, not folded.
        db.apply(&Batch {
            events: vec![event(old, EventKind::Started)],
            last_offset: 8,
        })
        .unwrap();
        assert!(db.task(old).unwrap().is_none());
        assert_eq!(db.pruned(old).unwrap().unwrap().1, 1);
        assert_eq!(db.offset().unwrap(), Some(8));
        // Tombstones go once they are older than the cutoff too.
        assert_eq!(db.prune(cutoff).unwrap(), Pruned::default());
        let later = Utc::now() + chrono::Duration::days(1);
        assert_eq!(db.prune(later).unwrap().tombstones, 1);
    }

    fn pages(db: &ViewDb) -> (i64, i64) {
        db.read(|conn| {
            let count = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
            let free = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
            Ok((count, free))
        })
        .unwrap()
    }

    #[test]
    fn a_failed_task_goes_once_its_dead_letters_are_settled_and_frees_its_pages() {
        let dir = tempfile::tempdir().unwrap();
        let db = ViewDb::open(&dir.path().join("view.sqlite3")).unwrap();
        let failed = Uuid::now_v7();
        let crowd: Vec<Uuid> = (0..2000).map(|_| Uuid::now_v7()).collect();
        let mut events = vec![received(failed, 40), dead_lettered(failed, 40)];
        events.extend(
            crowd
                .iter()
                .flat_map(|t| [received(*t, 40), dead_lettered(*t, 40)]),
        );
        db.apply(&Batch {
            events,
            last_offset: 1,
        })
        .unwrap();
        let letter = |task: Uuid, offset: u64| {
            crate::dlq::Entry::Letter(Box::new(crate::dlq::DeadLetter {
                stage: crate::envelope::Stage::Parse,
                offset,
                task_id: Some(task),
                error_kind: "corrupt".into(),
                error_message: "no".into(),
                attempts: 1,
                first_failure_at: None,
                last_failure_at: None,
                filenames: Vec::new(),
                replayable: true,
                by_broker: false,
                body_bytes: 0,
                preview: String::new(),
                callback: None,
            }))
        };
        let mut entries = vec![letter(failed, 0)];
        entries.extend(
            crowd
                .iter()
                .enumerate()
                .map(|(i, t)| letter(*t, i as u64 + 1)),
        );
        let stage = crate::envelope::Stage::Parse;
        db.apply_dead_letters(stage, &entries, crowd.len() as u64)
            .unwrap();
        let cutoff = cutoff(Utc::now(), 30).unwrap();
        assert_eq!(db.prune(cutoff).unwrap().tasks, 0, "every letter waits");
        // All but the first task's letters settled: they go, it stays.
        let settles: Vec<_> = (1..=crowd.len() as u64)
            .map(|offset| crate::dlq::Entry::Settles {
                offset,
                by: "superseded".into(),
            })
            .collect();
        db.apply_dead_letters(stage, &settles, 2 * crowd.len() as u64)
            .unwrap();
        let (pages_before, _) = pages(&db);
        assert_eq!(db.prune(cutoff).unwrap().tasks, crowd.len() as u64);
        assert_eq!(db.all_views().unwrap().len(), 1);
        assert!(db.task(failed).unwrap().is_some());
        let pending = db.pending_dead_letters().unwrap();
        assert_eq!(pending, vec![(stage, 1)], "the waiting letter stays");
        let (pages_after, free) = pages(&db);
        assert_eq!(free, 0, "incremental vacuum gave the pages back");
        assert!(pages_after < pages_before, "{pages_after} < {pages_before}");
    }

    #[test]
    fn zero_days_keeps_everything() {
        assert_eq!(cutoff(Utc::now(), 0), None);
        let now = Utc::now();
        assert_eq!(cutoff(now, 1), Some(now - chrono::Duration::days(1)));
    }
}
