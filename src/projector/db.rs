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
use crate::dlq::{DeadLetter, Entry};
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
    /// Only tasks submitted with this reference.
    pub external_id: Option<String>,
    /// Only done tasks whose project name, tender number or owner contains
    /// this (any case).
    pub q: Option<String>,
    /// Only done tasks whose bid deadline (an absolute one) is at or after this.
    pub deadline_after: Option<chrono::DateTime<chrono::Utc>>,
    /// Only done tasks whose bid deadline (an absolute one) is at or before this.
    pub deadline_before: Option<chrono::DateTime<chrono::Utc>>,
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
-- Before any table: a new database frees the pages retention empties in
-- small steps (see retention.rs); an older one is converted by
-- `tenderflow projector vacuum`.
PRAGMA auto_vacuum = INCREMENTAL;
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
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    stage TEXT NOT NULL,
    stream_offset INTEGER NOT NULL,
    task_id TEXT,
    settled_by TEXT,
    letter TEXT NOT NULL,
    UNIQUE (stage, stream_offset)
);
CREATE INDEX IF NOT EXISTS dead_letters_pending ON dead_letters (settled_by, stage, id);
CREATE INDEX IF NOT EXISTS dead_letters_by_task ON dead_letters (task_id);
CREATE TABLE IF NOT EXISTS dead_letter_progress (
    stage TEXT PRIMARY KEY,
    stream_offset INTEGER NOT NULL
);
-- The submitters' references: a table of its own, so a database of an
-- older build gains it as it opens (and fills it as it folds again, see
-- FOLD_VERSION), with no column to add to a table that has rows.
CREATE TABLE IF NOT EXISTS task_refs (
    external_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    PRIMARY KEY (external_id, task_id)
) WITHOUT ROWID;
-- Tasks retention removed: their later events (a redelivery, a replay) are
-- counted here instead of folding into a view that would lack the task's
-- beginning (see retention.rs).
CREATE TABLE IF NOT EXISTS pruned_tasks (
    task_id TEXT PRIMARY KEY,
    pruned_at INTEGER NOT NULL,
    late_events INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
";

/// Which dead letters to list.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    /// Only this stage's.
    pub stage: Option<Stage>,
    /// Only these tasks' (all, when empty).
    pub task_ids: Vec<Uuid>,
    /// Only those after this cursor (the previous page's).
    pub after: Option<i64>,
    /// Settled ones too (replayed, superseded), not only those waiting.
    pub settled: bool,
    /// At most this many.
    pub limit: usize,
}

/// A page of dead letters, oldest first.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetterPage {
    /// The dead letters, each with whether it is settled.
    pub dead_letters: Vec<IndexedDeadLetter>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A dead letter in the projector's index.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IndexedDeadLetter {
    #[serde(flatten)]
    pub letter: DeadLetter,
    /// How it was settled (`replayed`, `superseded`); absent while it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_by: Option<String>,
}

/// Version of the fold's output. Bump it when the fold changes what it
/// derives: opening a database folded by another version folds every task
/// again from its stored events, so old views do not linger until their
/// task's next event.
pub const FOLD_VERSION: i64 = 3;

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
        writer.execute_batch(super::index::SCHEMA)?;
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
    /// order is their creation order and doubles as a stable cursor. The
    /// search and deadline filters read the summary index, so they find
    /// done tasks once the index has their row.
    pub fn tasks(&self, filter: &ListFilter) -> Result<Page, DbError> {
        let conn = lock(&self.reader);
        // With a reference, the walk is over its rows of `task_refs` (in
        // task order, by its key), never over every task.
        let sql = if filter.external_id.is_some() {
            "SELECT t.view FROM task_refs r JOIN tasks t ON t.task_id = r.task_id
             LEFT JOIN summary_index s ON s.task_id = r.task_id
             WHERE r.external_id = ?5
               AND (?1 IS NULL OR t.state = ?1)
               AND (?2 IS NULL OR t.stage = ?2)
               AND (?3 IS NULL OR r.task_id < ?3)
               AND (?6 IS NULL OR instr(s.search, ?6) > 0)
               AND (?7 IS NULL OR s.deadline >= ?7)
               AND (?8 IS NULL OR s.deadline <= ?8)
             ORDER BY r.task_id DESC LIMIT ?4"
        } else {
            "SELECT t.view FROM tasks t LEFT JOIN summary_index s USING (task_id)
             WHERE (?1 IS NULL OR t.state = ?1)
               AND (?2 IS NULL OR t.stage = ?2)
               AND (?3 IS NULL OR t.task_id < ?3)
               AND ?5 IS NULL
               AND (?6 IS NULL OR instr(s.search, ?6) > 0)
               AND (?7 IS NULL OR s.deadline >= ?7)
               AND (?8 IS NULL OR s.deadline <= ?8)
             ORDER BY t.task_id DESC LIMIT ?4"
        };
        let mut query = conn.prepare_cached(sql)?;
        let rows = query.query_map(
            params![
                filter.state.map(TaskState::as_str),
                filter.stage.map(Stage::as_str),
                filter.before.map(|id| id.to_string()),
                filter.limit as i64 + 1,
                filter.external_id.as_deref(),
                filter.q.as_ref().map(|q| q.to_lowercase()),
                filter.deadline_after.map(|t| t.timestamp()),
                filter.deadline_before.map(|t| t.timestamp()),
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

    /// Runs a read on the reading connection.
    pub(super) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        read(&lock(&self.reader))
    }

    /// Runs a write on the writing connection, outside the fold's batches
    /// (its own commits leave the fold's event cache valid).
    pub(super) fn write<T>(
        &self,
        write: impl FnOnce(&Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        write(&lock(&self.writer).conn)
    }

    /// Runs a write that may delete what the fold's event cache holds
    /// (retention): the next batch starts with an empty cache.
    pub(super) fn write_uncached<T>(
        &self,
        write: impl FnOnce(&mut Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut writer = lock(&self.writer);
        writer.data_version = None;
        write(&mut writer.conn)
    }

    /// When retention pruned `task_id`, and how many events of it came
    /// since (and were not folded).
    pub fn pruned(&self, task_id: Uuid) -> Result<Option<(i64, u64)>, DbError> {
        let conn = lock(&self.reader);
        let row = conn
            .prepare_cached("SELECT pruned_at, late_events FROM pruned_tasks WHERE task_id = ?1")?
            .query_row(params![task_id.to_string()], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .optional()?;
        Ok(row)
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

/// The dead-letter index: the fold of the dead-letter streams (see
/// [`crate::dlq`]). Written by the writer connection, whose own commits do
/// not disturb its event cache; read by the reader.
impl ViewDb {
    /// The offset of the last entry of `stage`'s dead-letter stream folded
    /// in, if any.
    pub fn dead_letter_offset(&self, stage: Stage) -> Result<Option<u64>, DbError> {
        let writer = lock(&self.writer);
        let offset: Option<i64> = writer
            .conn
            .query_row(
                "SELECT stream_offset FROM dead_letter_progress WHERE stage = ?1",
                params![stage.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(offset.map(|o| o as u64))
    }

    /// Folds entries of `stage`'s dead-letter stream in and moves its
    /// offset to `last_offset`, in one transaction. Entries read again
    /// change nothing.
    pub fn apply_dead_letters(
        &self,
        stage: Stage,
        entries: &[Entry],
        last_offset: u64,
    ) -> Result<(), DbError> {
        let mut writer = lock(&self.writer);
        let tx = writer
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO dead_letters (stage, stream_offset, task_id, letter)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut settle = tx.prepare_cached(
                "UPDATE dead_letters SET settled_by = ?3
                 WHERE stage = ?1 AND stream_offset = ?2 AND settled_by IS NULL",
            )?;
            for entry in entries {
                match entry {
                    Entry::Letter(letter) => {
                        insert.execute(params![
                            stage.as_str(),
                            letter.offset as i64,
                            letter.task_id.map(|t| t.to_string()),
                            serde_json::to_string(letter)?,
                        ])?;
                    }
                    Entry::Settles { offset, by } => {
                        settle.execute(params![stage.as_str(), *offset as i64, by])?;
                    }
                }
            }
        }
        tx.execute(
            "INSERT INTO dead_letter_progress (stage, stream_offset) VALUES (?1, ?2)
             ON CONFLICT (stage) DO UPDATE SET stream_offset = excluded.stream_offset",
            params![stage.as_str(), last_offset as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Marks `stage`'s dead letters at `offsets` settled (a replay that
    /// just appended their settlement entries): listing shows it at once,
    /// before the projector reads those entries.
    pub fn settle_dead_letters(
        &self,
        stage: Stage,
        offsets: &[u64],
        by: &str,
    ) -> Result<(), DbError> {
        let mut writer = lock(&self.writer);
        let tx = writer.conn.transaction()?;
        {
            let mut settle = tx.prepare_cached(
                "UPDATE dead_letters SET settled_by = ?3
                 WHERE stage = ?1 AND stream_offset = ?2 AND settled_by IS NULL",
            )?;
            for offset in offsets {
                settle.execute(params![stage.as_str(), *offset as i64, by])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// A page of indexed dead letters, oldest first (in the order the
    /// projector read them).
    pub fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<DeadLetterPage, DbError> {
        let conn = lock(&self.reader);
        let tasks: Vec<String> = filter.task_ids.iter().map(Uuid::to_string).collect();
        let tasks = serde_json::to_string(&tasks)?;
        let mut query = conn.prepare_cached(
            "SELECT id, letter, settled_by FROM dead_letters
             WHERE (?1 OR settled_by IS NULL)
               AND (?2 IS NULL OR stage = ?2)
               AND (?3 IS NULL OR id > ?3)
               AND (?4 = '[]' OR task_id IN (SELECT value FROM json_each(?4)))
             ORDER BY id LIMIT ?5",
        )?;
        let rows = query.query_map(
            params![
                filter.settled,
                filter.stage.map(Stage::as_str),
                filter.after,
                tasks,
                filter.limit as i64 + 1,
            ],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            },
        )?;
        let mut dead_letters = Vec::new();
        let mut last_id = None;
        let mut next_cursor = None;
        for row in rows {
            let (id, letter, settled_by) = row?;
            if dead_letters.len() == filter.limit {
                next_cursor = last_id.map(|id: i64| id.to_string());
                break;
            }
            dead_letters.push(IndexedDeadLetter {
                letter: serde_json::from_str(&letter)?,
                settled_by,
            });
            last_id = Some(id);
        }
        Ok(DeadLetterPage {
            dead_letters,
            next_cursor,
        })
    }

    /// Dead letters waiting, by stage (stages with none are left out).
    pub fn pending_dead_letters(&self) -> Result<Vec<(Stage, u64)>, DbError> {
        let conn = lock(&self.reader);
        let mut query = conn.prepare_cached(
            "SELECT stage, COUNT(*) FROM dead_letters WHERE settled_by IS NULL GROUP BY stage",
        )?;
        let rows = query.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut counts = Vec::new();
        for row in rows {
            let (stage, n) = row?;
            if let Ok(stage) = stage.parse() {
                counts.push((stage, n as u64));
            }
        }
        Ok(counts)
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
            let mut late = tx.prepare_cached(
                "UPDATE pruned_tasks SET late_events = late_events + 1 WHERE task_id = ?1",
            )?;
            for event in &batch.events {
                let body = serde_json::to_string(event)?;
                let id = event.event_id.to_string();
                let task = event.task_id.to_string();
                // A pruned task lacks its earlier events: folding this one
                // alone would show a wrong view (a task "running" for ever).
                if late.execute(params![task])? == 1 {
                    tracing::warn!(
                        task_id = %event.task_id,
                        event_id = %event.event_id,
                        kind = event.kind.name(),
                        "an event of a task retention pruned: counted, not folded"
                    );
                    continue;
                }
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

/// Stores a task's view, and its reference in `task_refs`; returns
/// whether the view changed. A task's reference comes from its `received`
/// event, which never changes, so a row once written stays right.
fn store_view(conn: &Connection, view: &TaskView) -> Result<bool, DbError> {
    if let Some(external_id) = &view.external_id {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO task_refs (external_id, task_id) VALUES (?1, ?2)",
        )?
        .execute(params![external_id, view.task_id.to_string()])?;
    }
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
            callback: None,
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
            external_id: None,
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

    #[test]
    fn tasks_are_found_by_their_reference_and_again_after_a_refold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("view.sqlite3");
        let db = ViewDb::open(&path).unwrap();
        let with_ref = |task_id, external_id: &str| {
            let kind = EventKind::Received {
                documents: Vec::new(),
                options: Default::default(),
                external_id: Some(external_id.into()),
            };
            event(task_id, kind)
        };
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let events = vec![
            with_ref(a, "proj-1"),
            with_ref(b, "proj-2"),
            with_ref(c, "proj-1"),
            received(Uuid::now_v7()),
        ];
        db.apply(&Batch {
            events,
            last_offset: 0,
        })
        .unwrap();
        let find = |db: &ViewDb, id: &str| -> Vec<Uuid> {
            let filter = ListFilter {
                external_id: Some(id.into()),
                limit: 10,
                ..Default::default()
            };
            db.tasks(&filter)
                .unwrap()
                .tasks
                .iter()
                .map(|t| t.task_id)
                .collect()
        };
        assert_eq!(find(&db, "proj-1"), vec![c, a]);
        assert_eq!(find(&db, "proj-2"), vec![b]);
        assert!(find(&db, "proj-3").is_empty());
        assert_eq!(
            db.task(a).unwrap().unwrap().external_id.as_deref(),
            Some("proj-1")
        );
        // The plan walks the index of references, not every task.
        let plan: Vec<String> = {
            let conn = lock(&db.reader);
            let mut query = conn
                .prepare("EXPLAIN QUERY PLAN SELECT t.view FROM task_refs r JOIN tasks t ON t.task_id = r.task_id WHERE r.external_id = 'x' ORDER BY r.task_id DESC")
                .unwrap();
            query
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert!(
            plan.iter().any(|step| step.contains("SEARCH r")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN")),
            "{plan:?}"
        );
        // A database of an older fold, without the index's rows, gets them back.
        drop(db);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("DELETE FROM task_refs; PRAGMA user_version = 2;")
            .unwrap();
        drop(conn);
        let db = ViewDb::open(&path).unwrap();
        assert_eq!(find(&db, "proj-1"), vec![c, a]);
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
