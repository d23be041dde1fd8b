//! The summary index: the fields of each done task's summary, kept in the
//! view database so that exports and the calendar read one table instead
//! of every summary from the store per request.
//!
//! The fold never waits for it: the events fold as before, and the
//! [`Indexer`] fills a row for every done task that lacks one (or whose row
//! names another summary, after a replay), reading the summary from the
//! store. A store that fails is tried again on the next pass, so the index
//! catches up after an outage, and after a rebuild of the view from the
//! stream, by itself.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::DateTime;
use rusqlite::params;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::db::{DbError, ViewDb};
use super::view::{TaskState, TaskView};
use crate::envelope::ArtifactRef;
use crate::store::{Store, StoreError};
use crate::summary::{FieldValue, Summary};

/// The index table. Its own table (not columns of `tasks`), so opening an
/// older database only adds it.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS summary_index (
    task_id TEXT PRIMARY KEY,
    summary_key TEXT NOT NULL,
    search TEXT NOT NULL,
    deadline INTEGER,
    row TEXT NOT NULL
);
";

/// How often the indexer looks for done tasks without a row even when no
/// task changed: the retry of a failed store read.
pub const RETRY_EVERY: Duration = Duration::from_secs(5);

/// Most rows one pass fills, so a rebuild of many tasks commits as it goes.
const PASS_LIMIT: usize = 200;

/// What the index keeps of one done task's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexRow {
    /// The summary the row was made from.
    pub summary: ArtifactRef,
    /// The summary's fields, each with its value, normal form and evidence.
    pub fields: BTreeMap<String, FieldValue>,
    /// The summary's files by evidence number (0: main document), for
    /// naming the document an amendment's evidence comes from.
    #[serde(default)]
    pub documents: Vec<String>,
    /// Rejection clauses in the summary.
    pub rejections: usize,
    /// Scoring items in the summary.
    pub scoring: usize,
}

impl IndexRow {
    /// The row of `summary`, stored at `artifact`.
    pub fn of(artifact: ArtifactRef, summary: &Summary) -> IndexRow {
        let mut documents: Vec<(usize, String)> = summary
            .documents
            .iter()
            .filter_map(|d| d.document.map(|n| (n, d.name.clone())))
            .collect();
        documents.sort();
        IndexRow {
            summary: artifact,
            fields: summary.fields.clone(),
            documents: documents.into_iter().map(|(_, name)| name).collect(),
            rejections: summary.rejections.len(),
            scoring: summary.scoring.len(),
        }
    }

    /// What `q` searches: project name, tender number and owner, in
    /// lower case.
    pub fn search_text(&self) -> String {
        ["project", "tender_no", "owner"]
            .iter()
            .filter_map(|id| self.fields.get(*id))
            .map(|f| f.value.to_lowercase())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A time field's normal form (RFC 3339 with the document's offset),
    /// when the summary has one; `None` for an absent field and for a
    /// relative one ("开标前3个工作日") that has no absolute time.
    pub fn time(&self, field: &str) -> Option<DateTime<chrono::FixedOffset>> {
        let normalized = self.fields.get(field)?.normalized.as_str()?;
        DateTime::parse_from_rfc3339(normalized).ok()
    }
}

/// A done task with its index row.
#[derive(Debug, Clone, PartialEq)]
pub struct Indexed {
    /// The task's view.
    pub view: TaskView,
    /// Its row; `None` when the task is not done.
    pub row: Option<IndexRow>,
}

impl ViewDb {
    /// Done tasks whose summary has no row yet (or a row of another
    /// summary), oldest first, at most `limit`.
    pub fn unindexed(&self, limit: usize) -> Result<Vec<(Uuid, ArtifactRef)>, DbError> {
        self.read(|conn| {
            let mut query = conn.prepare_cached(
                "SELECT t.view FROM tasks t LEFT JOIN summary_index s USING (task_id)
                 WHERE t.state = 'done'
                   AND (s.task_id IS NULL
                        OR s.summary_key IS NOT json_extract(t.view, '$.summary.key'))
                 ORDER BY t.task_id LIMIT ?1",
            )?;
            let views = query.query_map(params![limit as i64], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for view in views {
                let view: TaskView = serde_json::from_str(&view?)?;
                if let Some(summary) = view.summary {
                    out.push((view.task_id, summary));
                }
            }
            Ok(out)
        })
    }

    /// Stores (or replaces) a task's row.
    pub fn put_index(&self, task_id: Uuid, row: &IndexRow) -> Result<(), DbError> {
        self.put_indexes(&[(task_id, row.clone())])
    }

    /// Stores (or replaces) the rows of tasks, in one transaction.
    pub fn put_indexes(&self, rows: &[(Uuid, IndexRow)]) -> Result<(), DbError> {
        let mut encoded = Vec::with_capacity(rows.len());
        for (task_id, row) in rows {
            encoded.push((task_id, row, serde_json::to_string(row)?));
        }
        self.write(|conn| {
            let tx = conn.unchecked_transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO summary_index (task_id, summary_key, search, deadline, row)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (task_id) DO UPDATE
                     SET summary_key = excluded.summary_key, search = excluded.search,
                         deadline = excluded.deadline, row = excluded.row",
                )?;
                for (task_id, row, json) in &encoded {
                    insert.execute(params![
                        task_id.to_string(),
                        row.summary.key,
                        row.search_text(),
                        row.time("deadline_bid").map(|t| t.timestamp()),
                        json
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// A page of tasks in `state` (newest first, older than `before`), each
    /// with its index row when it has one for its current summary.
    pub fn indexed_tasks(
        &self,
        state: TaskState,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Indexed>, DbError> {
        self.read(|conn| {
            let mut query = conn.prepare_cached(
                "SELECT t.view, s.row, s.summary_key FROM tasks t
                 LEFT JOIN summary_index s USING (task_id)
                 WHERE t.state = ?1 AND (?2 IS NULL OR t.task_id < ?2)
                 ORDER BY t.task_id DESC LIMIT ?3",
            )?;
            let rows = query.query_map(
                params![state.as_str(), before.map(|b| b.to_string()), limit as i64],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                },
            )?;
            let mut out = Vec::new();
            for row in rows {
                let (view, row, key) = row?;
                let view: TaskView = serde_json::from_str(&view)?;
                let current = view.summary.as_ref().map(|s| s.key.as_str());
                let row = match (row, key) {
                    (Some(row), Some(key)) if Some(key.as_str()) == current => {
                        Some(serde_json::from_str(&row)?)
                    }
                    _ => None,
                };
                out.push(Indexed { view, row });
            }
            Ok(out)
        })
    }
}

/// Reads a done task's summary from the store and stores its row.
pub async fn fill(
    db: &ViewDb,
    store: &Store,
    task_id: Uuid,
    artifact: &ArtifactRef,
) -> Result<IndexRow, FillError> {
    let row = read_row(store, artifact).await?;
    let db = db.clone();
    let stored = vec![(task_id, row.clone())];
    tokio::task::spawn_blocking(move || db.put_indexes(&stored))
        .await
        .map_err(|e| FillError::Db(DbError::Io(std::io::Error::other(e))))??;
    Ok(row)
}

/// The row of the summary at `artifact`, read from the store.
async fn read_row(store: &Store, artifact: &ArtifactRef) -> Result<IndexRow, StoreError> {
    let summary: Summary = store.get_json(artifact).await?;
    Ok(IndexRow::of(artifact.clone(), &summary))
}

/// Why a row could not be filled.
#[derive(Debug, thiserror::Error)]
pub enum FillError {
    /// The summary could not be read: try again later.
    #[error("reading the summary: {0}")]
    Store(#[from] StoreError),
    /// The view database refused.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Fills the index in the background: the row of each task the projector
/// announces done, as it announces it; and with a search of the view for
/// done tasks without their row at the start (a rebuilt or restored view,
/// rows a stop left out), after falling behind the announcements, and
/// [`RETRY_EVERY`] after a summary could not be read.
///
/// The search is not made on every change: it reads every done task's
/// view, so on a view of many tasks each search costs more the longer the
/// pipeline runs (during a burst of 2000 small documents it was most of
/// the projector's work).
pub struct Indexer {
    /// The view and the index.
    pub db: ViewDb,
    /// Where the summaries are.
    pub store: Store,
    /// The projector's changes, to wake when a task is done.
    pub changes: broadcast::Sender<TaskView>,
}

impl Indexer {
    /// Runs until `token` is cancelled. Store failures are logged and
    /// retried; only the view database failing stops it.
    pub async fn run(self, token: CancellationToken) -> anyhow::Result<()> {
        let mut changes = self.changes.subscribe();
        let mut gone = HashSet::new();
        let mut search = true;
        loop {
            if search {
                search = self.pass(&mut gone).await?;
            }
            let retry = tokio::time::sleep(RETRY_EVERY);
            tokio::pin!(retry);
            let mut done = BTreeMap::new();
            tokio::select! {
                () = token.cancelled() => return Ok(()),
                () = &mut retry, if search => continue,
                change = changes.recv() => match change {
                    Ok(view) => note_done(&mut done, view),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        search = true;
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
            }
            // What else was announced meanwhile goes in the same commit.
            while done.len() < PASS_LIMIT {
                match changes.try_recv() {
                    Ok(view) => note_done(&mut done, view),
                    Err(broadcast::error::TryRecvError::Lagged(_)) => {
                        search = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            if !done.is_empty() && !self.fill_all(done, &mut gone).await?.1 {
                search = true;
            }
        }
    }

    /// Fills the rows of `done` tasks in one commit. Answers how many it
    /// filled, and `false` when a summary could not be read and should be
    /// tried again. A summary gone from the store is remembered in `gone`
    /// and not read again (nor logged again) by this process: its task is
    /// done, nothing will bring it back.
    async fn fill_all(
        &self,
        done: BTreeMap<Uuid, ArtifactRef>,
        gone: &mut HashSet<String>,
    ) -> anyhow::Result<(usize, bool)> {
        let mut rows = Vec::with_capacity(done.len());
        let mut all = true;
        for (task_id, artifact) in done {
            if gone.contains(&artifact.key) {
                continue;
            }
            match read_row(&self.store, &artifact).await {
                Ok(row) => rows.push((task_id, row)),
                Err(StoreError::NotFound(key)) => {
                    tracing::warn!(%task_id, %key, "a done task's summary is gone from the store; it stays out of the index");
                    gone.insert(key);
                }
                Err(error) => {
                    all = false;
                    tracing::warn!(%task_id, %error, "indexing a summary failed; trying again later");
                }
            }
        }
        let filled = rows.len();
        if !rows.is_empty() {
            let db = self.db.clone();
            tokio::task::spawn_blocking(move || db.put_indexes(&rows)).await??;
        }
        Ok((filled, all))
    }

    /// Fills the rows that are missing now, until none is left or a pass
    /// filled none. Answers whether a summary could not be read and should
    /// be tried again.
    async fn pass(&self, gone: &mut HashSet<String>) -> anyhow::Result<bool> {
        loop {
            let reader = self.db.clone();
            let missing =
                tokio::task::spawn_blocking(move || reader.unindexed(PASS_LIMIT)).await??;
            let full = missing.len() == PASS_LIMIT;
            let (filled, all) = self.fill_all(missing.into_iter().collect(), gone).await?;
            if !full || filled == 0 {
                return Ok(!all);
            }
        }
    }
}

/// Notes `view`'s summary when it is done: the latest announcement of a
/// task wins.
fn note_done(done: &mut BTreeMap<Uuid, ArtifactRef>, view: TaskView) {
    if view.state == TaskState::Done
        && let Some(summary) = view.summary
    {
        done.insert(view.task_id, summary);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::Evidence;

    fn field(value: &str, normalized: serde_json::Value) -> FieldValue {
        FieldValue {
            value: value.into(),
            normalized,
            evidence: Evidence {
                section: "前附表".into(),
                page: None,
                quote: value.into(),
                document: 0,
                ocr: None,
            },
            superseded: Vec::new(),
            source: String::new(),
        }
    }

    #[tokio::test]
    async fn a_summary_the_store_cannot_give_is_indexed_on_a_later_pass_and_the_fold_goes_on() {
        use crate::events::EventKind;
        use crate::projector::db::{Batch, tests::event};

        let dir = tempfile::tempdir().unwrap();
        let db = ViewDb::open(&dir.path().join("view.sqlite3")).unwrap();
        let mut settings = crate::config::Settings::load(None).unwrap();
        settings.store.root = dir.path().join("store");
        let store = Store::from_settings(&settings).unwrap();
        let mut summary = Summary::default();
        summary.fields.insert(
            "project".into(),
            field("某河道整治工程", serde_json::Value::Null),
        );
        let stored = store.put_json("summary", &summary).await.unwrap();
        // The store answers, but not the summary it recorded (a half-synced
        // object, a remote store's bad read): unavailable, for now.
        let path = settings.store.root.join(&stored.key);
        let good = std::fs::read(&path).unwrap();
        std::fs::write(&path, b"{}").unwrap();

        let task = Uuid::now_v7();
        let completed = EventKind::Completed {
            summary: stored.clone(),
        };
        let batch = Batch {
            events: vec![event(task, completed)],
            last_offset: 0,
        };
        db.apply(&batch).unwrap();
        assert_eq!(db.task(task).unwrap().unwrap().state, TaskState::Done);

        let indexer = Indexer {
            db: db.clone(),
            store,
            changes: broadcast::channel(4).0,
        };
        let mut gone = HashSet::new();
        assert!(
            indexer.pass(&mut gone).await.unwrap(),
            "a summary that could not be read is tried again"
        );
        assert_eq!(db.unindexed(10).unwrap(), vec![(task, stored.clone())]);
        let listed = db.indexed_tasks(TaskState::Done, None, 10).unwrap();
        assert!(listed[0].row.is_none(), "no row until the summary reads");

        std::fs::write(&path, good).unwrap();
        assert!(!indexer.pass(&mut gone).await.unwrap());
        assert!(db.unindexed(10).unwrap().is_empty());
        let listed = db.indexed_tasks(TaskState::Done, None, 10).unwrap();
        assert_eq!(listed[0].row.as_ref().unwrap().fields, summary.fields);
        assert!(gone.is_empty());
    }

    #[tokio::test]
    async fn a_task_announced_done_gets_its_row_without_a_search() {
        use crate::events::EventKind;
        use crate::projector::db::{Batch, tests::event};

        let dir = tempfile::tempdir().unwrap();
        let db = ViewDb::open(&dir.path().join("view.sqlite3")).unwrap();
        let mut settings = crate::config::Settings::load(None).unwrap();
        settings.store.root = dir.path().join("store");
        let store = Store::from_settings(&settings).unwrap();
        let (changes, _) = broadcast::channel(16);
        let indexer = Indexer {
            db: db.clone(),
            store: store.clone(),
            changes: changes.clone(),
        };
        let token = CancellationToken::new();
        let running = tokio::spawn(indexer.run(token.clone()));
        // Its first search finds nothing; it then waits for announcements
        // alone (no read of the store has failed, so no retry is due).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut tasks = Vec::new();
        for n in 0..3 {
            let mut summary = Summary::default();
            let name = format!("某河道整治工程{n}");
            summary
                .fields
                .insert("project".into(), field(&name, serde_json::Value::Null));
            let stored = store.put_json("summary", &summary).await.unwrap();
            let task = Uuid::now_v7();
            let batch = Batch {
                events: vec![event(task, EventKind::Completed { summary: stored })],
                last_offset: n,
            };
            db.apply(&batch).unwrap();
            changes.send(db.task(task).unwrap().unwrap()).unwrap();
            tasks.push((task, name));
        }
        let started = std::time::Instant::now();
        while !db.unindexed(10).unwrap().is_empty() && started.elapsed() < RETRY_EVERY {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            started.elapsed() < RETRY_EVERY,
            "the rows came with the announcements, before any retry"
        );
        let listed = db.indexed_tasks(TaskState::Done, None, 10).unwrap();
        assert_eq!(listed.len(), 3);
        for (task, name) in &tasks {
            let row = listed
                .iter()
                .find(|i| i.view.task_id == *task)
                .and_then(|i| i.row.as_ref())
                .expect("a row for every task announced done");
            assert_eq!(&row.fields["project"].value, name);
        }
        token.cancel();
        running.await.unwrap().unwrap();
    }

    #[test]
    fn a_relative_deadline_has_no_time_and_an_absolute_one_keeps_its_offset() {
        let mut summary = Summary::default();
        summary.fields.insert(
            "deadline_query".into(),
            field("开标前3个工作日", serde_json::json!({"days": 3.0})),
        );
        summary.fields.insert(
            "deadline_bid".into(),
            field("2027年3月18日9时30分", "2027-03-18T09:30:00+08:00".into()),
        );
        let artifact = ArtifactRef {
            key: "k".into(),
            sha256: "s".into(),
            size: 1,
        };
        let row = IndexRow::of(artifact, &summary);
        assert_eq!(row.time("deadline_query"), None);
        assert_eq!(row.time("opening_time"), None);
        let bid = row.time("deadline_bid").unwrap();
        assert_eq!(bid.to_utc().to_rfc3339(), "2027-03-18T01:30:00+00:00");
    }
}
