//! The durable task view: events, folded views and the stream offset in one
//! SQLite file, written together in one transaction per batch.
//!
//! Events are kept (deduplicated by id) so that a task's view can always be
//! folded again from all of its events; the fold is order-insensitive, so a
//! late or duplicated event simply folds into the same answer.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use uuid::Uuid;

use super::cache::{self, EventCache};
use super::view::{TaskState, TaskView, fold};
use crate::envelope::Stage;
use crate::events::Event;

/// Why the view store failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite refused.
    #[error("view database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored row no longer reads back.
    #[error("view database holds an unreadable row: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// The database's folder could not be made.
    #[error("creating the view database's folder: {0}")]
    Io(#[from] std::io::Error),
}

/// Events read from the stream, up to and including `last_offset`.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The events that decoded; the others are skipped but counted in the offset.
    pub events: Vec<Event>,
    /// The stream offset of the batch's last delivery.
    pub last_offset: u64,
}

/// Which tasks to list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only tasks in this state.
    pub state: Option<TaskState>,
    /// Only tasks at this stage.
    pub stage: Option<Stage>,
    /// Only tasks older than this one (the previous page's cursor).
    pub before: Option<Uuid>,
    /// At most this many.
    pub limit: usize,
}

/// A page of tasks, newest first.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Page {
    /// The tasks.
    pub tasks: Vec<TaskView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The task view database; cheap to clone. One connection writes (the
/// stream consumer), another reads (the API), so reads never wait for a batch
/// (WAL mode).
#[derive(Clone)]
pub struct ViewDb {
    writer: Arc<Mutex<Writer>>,
    reader: Arc<Mutex<Connection>>,
    checkpoints: Arc<Checkpoints>,
}

/// Checkpoints (copying the WAL into the database file, with an fsync) are
/// the projector's, off the commit path: SQLite's automatic checkpoint runs
/// inside the commit that crosses 1000 pages, and that commit then waits for
/// the disk, which showed as the tail of the time to the view.
struct Checkpoints {
    conn: Mutex<Connection>,
    running: std::sync::atomic::AtomicBool,
    last: Mutex<std::time::Instant>,
}

/// How often the projector checkpoints while it writes.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The writing connection and what it remembers between batches.
struct Writer {
    conn: Connection,
    /// The stored events of recently folded tasks.
    cache: EventCache,
    /// The database's `data_version` after the last batch committed, while
    /// the cache matches the database: another connection's commit changes
    /// the version, and a batch that failed (or panicked) after touching
    /// the cache leaves `None`; either way the next batch empties the cache.
    data_version: Option<i64>,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    stream_offset INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_task ON events (task_id);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    stage TEXT NOT NULL,
    view TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state, task_id);
CREATE TABLE IF NOT EXISTS progress (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    stream_offset INTEGER NOT NULL
);
";

/// Version of the fold's output. Bump it when the fold changes what it
/// derives: opening a database folded by another version folds every task
/// again from its stored events, so old views do not linger until their
/// task's next event.
pub const FOLD_VERSION: i64 = 2;

/// The writer's SQLite page cache: negative means KiB, so 64 MiB (SQLite's
/// default is 2 MiB); a bound, allocated only as pages are used.
const WRITER_CACHE_KIB: i64 = -65_536;

fn lock<T>(conn: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves SQLite consistent (the
    // transaction rolls back on drop), so the poison carries no meaning.
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ViewDb {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<ViewDb, DbError> {
        ViewDb::open_with_cache(path, cache::CAPACITY)
    }

    /// Opens the database with a cache of at most `capacity` events.
    fn open_with_cache(path: &Path, capacity: usize) -> Result<ViewDb, DbError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut writer = Connection::open(path)?;
        writer.busy_timeout(std::time::Duration::from_secs(5))?;
        writer.execute_batch(SCHEMA)?;
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        // Room for the pages batches keep revisiting (the recent tasks' rows
        // and index pages), instead of reading them again from the files.
        writer.pragma_update(None, "cache_size", WRITER_CACHE_KIB)?;
        // Checkpoints are `checkpoint`'s, not the commits'.
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        refold_if_stale(&mut writer)?;
        let reader = Connection::open(path)?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        let checkpointer = Connection::open(path)?;
        checkpointer.busy_timeout(std::time::Duration::from_secs(5))?;
        let writer = Writer {
            conn: writer,
            cache: EventCache::new(capacity),
            data_version: None,
        };
        Ok(ViewDb {
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
            checkpoints: Arc::new(Checkpoints {
                conn: Mutex::new(checkpointer),
                running: Default::default(),
                last: Mutex::new(std::time::Instant::now()),
            }),
        })
    }

    /// Copies the WAL's committed pages into the database file (a passive
    /// checkpoint: it never waits for the writer or the readers). Answers
    /// the WAL's pages and how many of them are now in the database.
    pub fn checkpoint(&self) -> Result<(i64, i64), DbError> {
        let conn = lock(&self.checkpoints.conn);
        Ok(conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(1)?, r.get(2)?))
        })?)
    }

    /// Starts a [`checkpoint`](Self::checkpoint) on the blocking pool if the
    /// last began [`CHECKPOINT_EVERY`] ago and none is running. Call after a
    /// commit, within the Tokio runtime.
    pub fn checkpoint_when_due(&self) {
        use std::sync::atomic::Ordering;
        let checkpoints = &self.checkpoints;
        {
            let mut last = lock(&checkpoints.last);
            if last.elapsed() < CHECKPOINT_EVERY || checkpoints.running.swap(true, Ordering::AcqRel)
            {
                return;
            }
            *last = std::time::Instant::now();
        }
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(error) = db.checkpoint() {
                tracing::warn!(%error, "checkpointing the view database failed; trying again later");
            }
            db.checkpoints.running.store(false, Ordering::Release);
        });
    }

    /// The offset of the last stream entry folded in, if any.
    pub fn offset(&self) -> Result<Option<u64>, DbError> {
        let writer = lock(&self.writer);
        let offset: Option<i64> = writer
            .conn
            .query_row("SELECT stream_offset FROM progress WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(offset.map(|o| o as u64))
    }

    /// Folds a batch in and moves the offset, in one transaction. Returns the
    /// views that changed.
    pub fn apply(&self, batch: &Batch) -> Result<Vec<TaskView>, DbError> {
        lock(&self.writer).apply(batch)
    }

    /// One task's view.
    pub fn task(&self, task_id: Uuid) -> Result<Option<TaskView>, DbError> {
        let conn = lock(&self.reader);
        let view: Option<String> = conn
            .query_row(
                "SELECT view FROM tasks WHERE task_id = ?1",
                params![task_id.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(view.map(|v| serde_json::from_str(&v)).transpose()?)
    }

    /// A task's events, in the order they happened.
    pub fn events(&self, task_id: Uuid) -> Result<Vec<Event>, DbError> {
        let conn = lock(&self.reader);
        let mut events = load_events(&conn, task_id)?;
        events.sort_by_key(|e| (e.at, e.event_id));
        Ok(events)
    }

    /// A page of tasks, newest first. Task ids are UUID v7, so their text
    /// order is their creation order and doubles as a stable cursor.
    pub fn tasks(&self, filter: &ListFilter) -> Result<Page, DbError> {
        let conn = lock(&self.reader);
        let mut query = conn.prepare_cached(
            "SELECT view FROM tasks
             WHERE (?1 IS NULL OR state = ?1)
               AND (?2 IS NULL OR stage = ?2)
               AND (?3 IS NULL OR task_id < ?3)
             ORDER BY task_id DESC LIMIT ?4",
        )?;
        let rows = query.query_map(
            params![
                filter.state.map(TaskState::as_str),
                filter.stage.map(Stage::as_str),
                filter.before.map(|id| id.to_string()),
                filter.limit as i64 + 1,
            ],
            |r| r.get::<_, String>(0),
        )?;
        let mut tasks = Vec::new();
        let mut next_cursor = None;
        for row in rows {
            if tasks.len() == filter.limit {
                next_cursor = tasks.last().map(|v: &TaskView| v.task_id.to_string());
                break;
            }
            tasks.push(serde_json::from_str(&row?)?);
        }
        Ok(Page { tasks, next_cursor })
    }

    /// How many tasks are in each state (states with none are left out).
    pub fn count_by_state(&self) -> Result<Vec<(String, u64)>, DbError> {
        let conn = lock(&self.reader);
        let mut query =
            conn.prepare_cached("SELECT state, COUNT(*) FROM tasks GROUP BY state ORDER BY state")?;
        let rows = query.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut counts = Vec::new();
        for row in rows {
            let (state, n) = row?;
            counts.push((state, n as u64));
        }
        Ok(counts)
    }

    /// Every view, by task id: for comparing two projectors' views.
    pub fn all_views(&self) -> Result<Vec<TaskView>, DbError> {
        let conn = lock(&self.reader);
        let mut query = conn.prepare("SELECT view FROM tasks ORDER BY task_id")?;
        let views = query.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for view in views {
            out.push(serde_json::from_str(&view?)?);
        }
        Ok(out)
    }
}

impl Writer {
    /// [`ViewDb::apply`], with the cache.
    fn apply(&mut self, batch: &Batch) -> Result<Vec<TaskView>, DbError> {
        let cache_version = self.data_version.take();
        // Immediate: the write lock from the start, so no other connection
        // commits between the `data_version` check and this commit.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "data_version", |r| r.get(0))?;
        if cache_version != Some(version) {
            self.cache.clear();
        }
        // The events each task gained, by task (so views come out in task order).
        let mut fresh: BTreeMap<Uuid, Vec<&Event>> = BTreeMap::new();
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO events (event_id, task_id, stream_offset, body)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for event in &batch.events {
                let body = serde_json::to_string(event)?;
                let id = event.event_id.to_string();
                let task = event.task_id.to_string();
                if insert.execute(params![id, task, batch.last_offset as i64, body])? == 1 {
                    fresh.entry(event.task_id).or_default().push(event);
                }
            }
        }
        let mut changed = Vec::new();
        for (task_id, gained) in fresh {
            let events = self
                .cache
                .events(task_id, &gained, || load_events(&tx, task_id))?;
            let Some(view) = fold(events) else {
                continue;
            };
            self.cache.set_final(task_id, view.state.is_final());
            if store_view(&tx, &view)? {
                changed.push(view);
            }
        }
        tx.prepare_cached(
            "INSERT INTO progress (id, stream_offset) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET stream_offset = excluded.stream_offset",
        )?
        .execute(params![batch.last_offset as i64])?;
        tx.commit()?;
        // A connection's own commits leave its `data_version` as it was.
        self.data_version = Some(version);
        self.cache.shrink();
        Ok(changed)
    }
}

/// Folds every task again when the stored views come from another
/// [`FOLD_VERSION`].
fn refold_if_stale(conn: &mut Connection) -> Result<(), DbError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == FOLD_VERSION {
        return Ok(());
    }
    let tx = conn.transaction()?;
    let tasks: Vec<String> = {
        let mut query = tx.prepare("SELECT DISTINCT task_id FROM events")?;
        let rows = query.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for task in &tasks {
        if let Ok(task_id) = task.parse() {
            refold(&tx, task_id)?;
        }
    }
    tx.pragma_update(None, "user_version", FOLD_VERSION)?;
    tx.commit()?;
    if !tasks.is_empty() {
        tracing::info!(
            tasks = tasks.len(),
            from = version,
            to = FOLD_VERSION,
            "folded the view again"
        );
    }
    Ok(())
}

/// A task's stored events, in no particular order.
fn load_events(conn: &Connection, task_id: Uuid) -> Result<Vec<Event>, DbError> {
    let mut query = conn.prepare_cached("SELECT body FROM events WHERE task_id = ?1")?;
    let bodies = query.query_map(params![task_id.to_string()], |r| r.get::<_, String>(0))?;
    let mut events = Vec::new();
    for body in bodies {
        events.push(serde_json::from_str(&body?)?);
    }
    Ok(events)
}

/// Folds a task again from all its stored events and stores the view;
/// returns it when it changed.
fn refold(conn: &Connection, task_id: Uuid) -> Result<Option<TaskView>, DbError> {
    let events = load_events(conn, task_id)?;
    let Some(view) = fold(&events) else {
        return Ok(None);
    };
    Ok(store_view(conn, &view)?.then_some(view))
}

/// Stores a task's view; returns whether it changed.
fn store_view(conn: &Connection, view: &TaskView) -> Result<bool, DbError> {
    let json = serde_json::to_string(view)?;
    let changed = conn
        .prepare_cached(
            "INSERT INTO tasks (task_id, state, stage, view) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (task_id) DO UPDATE
             SET state = excluded.state, stage = excluded.stage, view = excluded.view
             WHERE tasks.view IS NOT excluded.view",
        )?
        .execute(params![
            view.task_id.to_string(),
            view.state.as_str(),
            view.stage.as_str(),
            json
        ])?;
    Ok(changed == 1)
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::Utc;

    use super::*;
    use crate::events::{EVENT_SCHEMA, EventKind};

    /// An event of `kind` about `task_id`'s first ingest attempt, now.
    pub(crate) fn event(task_id: Uuid, kind: EventKind) -> Event {
        Event {
            schema: EVENT_SCHEMA,
            event_id: Uuid::now_v7(),
            task_id,
            stage: Stage::Ingest,
            attempt: 1,
            at: Utc::now(),
            kind,
        }
    }

    fn received(task_id: Uuid) -> Event {
        let kind = EventKind::Received {
            documents: Vec::new(),
            options: Default::default(),
        };
        event(task_id, kind)
    }

    #[test]
    fn a_batch_moves_the_offset_and_a_duplicate_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = ViewDb::open(&dir.path().join("sub/view.sqlite3")).unwrap();
        assert_eq!(db.offset().unwrap(), None);
        let task = Uuid::now_v7();
        let first = received(task);
        let batch = Batch {
            events: vec![first.clone()],
            last_offset: 3,
        };
        assert_eq!(db.apply(&batch).unwrap().len(), 1);
        assert_eq!(db.offset().unwrap(), Some(3));
        let again = Batch {
            events: vec![first],
            last_offset: 4,
        };
        assert!(db.apply(&again).unwrap().is_empty());
        assert_eq!(db.offset().unwrap(), Some(4));
        assert_eq!(db.task(task).unwrap().unwrap().events, 1);
        assert_eq!(db.events(task).unwrap().len(), 1);
        assert!(db.task(Uuid::now_v7()).unwrap().is_none());

        let started = Batch {
            events: vec![event(task, EventKind::Started)],
            last_offset: 5,
        };
        let changed = db.apply(&started).unwrap();
        assert_eq!(changed[0].state, TaskState::Running);
        let reopened = ViewDb::open(&dir.path().join("sub/view.sqlite3")).unwrap();
        assert_eq!(reopened.offset().unwrap(), Some(5));
        assert_eq!(
            reopened.task(task).unwrap().unwrap().state,
            TaskState::Running
        );
    }

    #[test]
    fn commits_leave_checkpoints_to_the_checkpointer() {
        let dir = tempfile::tempdir().unwrap();
        let db = ViewDb::open(&dir.path().join("view.sqlite3")).unwrap();
        for offset in 0..300 {
            let batch = Batch {
                events: vec![received(Uuid::now_v7())],
                last_offset: offset,
            };
            db.apply(&batch).unwrap();
        }
        let (wal, copied) = db.checkpoint().unwrap();
        // 300 commits of a few pages each: past SQLite's automatic
        // checkpoint of 1000 pages, which would have emptied the WAL.
        assert!(wal > 1000, "{wal} pages in the WAL");
        assert_eq!(
            copied, wal,
            "a passive checkpoint with no reader copies all"
        );
        assert_eq!(db.count_by_state().unwrap(), vec![("queued".into(), 300)]);
    }

    #[test]
    fn a_view_from_another_fold_version_is_folded_again_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("view.sqlite3");
        let task = Uuid::now_v7();
        let right = {
            let db = ViewDb::open(&path).unwrap();
            let batch = Batch {
                events: vec![received(task)],
                last_offset: 0,
            };
            db.apply(&batch).unwrap();
            db.task(task).unwrap().unwrap()
        };
        // What an older fold might have stored.
        let mut stale = right.clone();
        stale.state = TaskState::Failed;
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE tasks SET view = ?1",
            params![serde_json::to_string(&stale).unwrap()],
        )
        .unwrap();
        let db = ViewDb::open(&path).unwrap();
        assert_eq!(db.task(task).unwrap().unwrap(), stale, "same version: kept");
        conn.pragma_update(None, "user_version", 0).unwrap();
        drop(db);
        let db = ViewDb::open(&path).unwrap();
        assert_eq!(db.task(task).unwrap().unwrap(), right);
    }

    #[test]
    fn pages_go_newest_first_and_end_without_a_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let db = ViewDb::open(&dir.path().join("view.sqlite3")).unwrap();
        let tasks: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
        let events = tasks.iter().map(|t| received(*t)).collect();
        db.apply(&Batch {
            events,
            last_offset: 0,
        })
        .unwrap();
        let mut filter = ListFilter {
            limit: 2,
            ..Default::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = db.tasks(&filter).unwrap();
            seen.extend(page.tasks.iter().map(|t| t.task_id));
            match page.next_cursor {
                Some(cursor) => filter.before = Some(cursor.parse().unwrap()),
                None => break,
            }
        }
        let newest_first: Vec<Uuid> = tasks.into_iter().rev().collect();
        assert_eq!(seen, newest_first);
        filter = ListFilter {
            state: Some(TaskState::Done),
            limit: 10,
            ..Default::default()
        };
        assert!(db.tasks(&filter).unwrap().tasks.is_empty());
        filter.state = Some(TaskState::Queued);
        assert_eq!(db.tasks(&filter).unwrap().tasks.len(), 5);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Whatever the batches (split anywhere, redelivered, shuffled), the
        /// stored views are the pure fold of the events.
        #[test]
        fn stored_views_are_the_fold_of_the_events(
            (events, redelivered) in crate::projector::view::tests::delivered(),
            cut in 1usize..50,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let db = ViewDb::open(&dir.path().join("view.sqlite3")).unwrap();
            for (n, chunk) in redelivered.chunks(cut).enumerate() {
                let batch = Batch { events: chunk.to_vec(), last_offset: n as u64 };
                db.apply(&batch).unwrap();
            }
            let want: Vec<TaskView> =
                crate::projector::view::tests::project(&events).into_values().collect();
            proptest::prop_assert_eq!(db.all_views().unwrap(), want);
        }

        /// The same through a cache small enough to evict tasks between
        /// batches, with the database reopened (cache lost) half way.
        #[test]
        fn views_through_a_small_cache_are_the_fold_of_the_events(
            (events, redelivered) in crate::projector::view::tests::delivered(),
            cut in 1usize..50,
            capacity in 0usize..40,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("view.sqlite3");
            let mut db = ViewDb::open_with_cache(&path, capacity).unwrap();
            let chunks: Vec<&[Event]> = redelivered.chunks(cut).collect();
            for (n, chunk) in chunks.iter().enumerate() {
                if n == chunks.len() / 2 {
                    db = ViewDb::open_with_cache(&path, capacity).unwrap();
                }
                let batch = Batch { events: chunk.to_vec(), last_offset: n as u64 };
                for view in db.apply(&batch).unwrap() {
                    let stored = db.events(view.task_id).unwrap();
                    proptest::prop_assert_eq!(Some(view), fold(&stored));
                }
            }
            let want: Vec<TaskView> =
                crate::projector::view::tests::project(&events).into_values().collect();
            proptest::prop_assert_eq!(db.all_views().unwrap(), want);
        }
    }

    fn batch(events: &[&Event], last_offset: u64) -> Batch {
        Batch {
            events: events.iter().copied().cloned().collect(),
            last_offset,
        }
    }

    fn retry(task_id: Uuid) -> Event {
        let kind = EventKind::RetryScheduled {
            error: crate::events::ErrorInfo {
                kind: "transient".into(),
                message: "busy".into(),
            },
            due_at: Utc::now(),
        };
        event(task_id, kind)
    }

    #[test]
    fn a_failed_batch_leaves_nothing_of_it_in_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let db = ViewDb::open(&dir.path().join("view.sqlite3")).unwrap();
        let task = Uuid::now_v7();
        let (first, started, later) =
            (received(task), event(task, EventKind::Started), retry(task));
        db.apply(&batch(&[&first], 0)).unwrap();
        // Through the writer's own connection, so `data_version` stays.
        let refuse_running = "CREATE TRIGGER refuse BEFORE UPDATE ON tasks
            WHEN NEW.state = 'running' BEGIN SELECT RAISE(ABORT, 'refused'); END";
        lock(&db.writer).conn.execute_batch(refuse_running).unwrap();
        assert!(db.apply(&batch(&[&started], 1)).is_err());
        lock(&db.writer)
            .conn
            .execute_batch("DROP TRIGGER refuse")
            .unwrap();
        db.apply(&batch(&[&later], 2)).unwrap();
        assert_eq!(db.offset().unwrap(), Some(2));
        assert_eq!(db.task(task).unwrap(), fold([&first, &later]));
        assert_eq!(db.task(task).unwrap().unwrap().events, 2);
    }

    #[test]
    fn a_commit_by_another_connection_empties_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("view.sqlite3");
        let (one, other) = (ViewDb::open(&path).unwrap(), ViewDb::open(&path).unwrap());
        let task = Uuid::now_v7();
        let events = [received(task), event(task, EventKind::Started), retry(task)];
        one.apply(&batch(&[&events[0]], 0)).unwrap();
        other.apply(&batch(&[&events[1]], 1)).unwrap();
        one.apply(&batch(&[&events[2]], 2)).unwrap();
        assert_eq!(one.task(task).unwrap(), fold(&events));
        assert_eq!(one.task(task).unwrap().unwrap().events, 3);
    }

    #[test]
    fn an_evicted_task_is_read_back_from_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = ViewDb::open_with_cache(&dir.path().join("view.sqlite3"), 2).unwrap();
        let (task, crowd) = (Uuid::now_v7(), Uuid::now_v7());
        let first = received(task);
        let others: Vec<Event> = (0..3).map(|_| received(crowd)).collect();
        db.apply(&batch(&[&first], 0)).unwrap();
        db.apply(&batch(&others.iter().collect::<Vec<_>>(), 1))
            .unwrap();
        assert!(!lock(&db.writer).cache.contains(task), "evicted");
        let started = event(task, EventKind::Started);
        // Again with a duplicate of an event already stored.
        db.apply(&batch(&[&started, &first, &started], 2)).unwrap();
        assert_eq!(db.task(task).unwrap(), fold([&first, &started]));
        assert_eq!(db.task(task).unwrap().unwrap().events, 2);
    }
}
