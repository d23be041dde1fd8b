//! Snapshots of the view database: a consistent copy (views, events,
//! dead-letter index, the stream offsets) taken while the projector runs,
//! and its restore into an empty database, from which `serve` folds the
//! events stream on from the snapshot's offset.
//!
//! The copy is SQLite's `VACUUM INTO` inside one read transaction, so it is
//! the database as of one commit, compacted, without stopping the writer
//! (WAL mode). A snapshot made by a build with another fold version is
//! folded again from its events when `serve` opens it (see `FOLD_VERSION`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// What a snapshot holds, as the commands report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Tasks in the view.
    pub tasks: u64,
    /// The offset of the last events stream entry folded in, if any.
    pub stream_offset: Option<u64>,
    /// The fold version of its views.
    pub fold_version: i64,
}

/// Tables a view database (or snapshot) must have.
const TABLES: [&str; 4] = ["events", "tasks", "progress", "dead_letters"];

/// Writes a snapshot of the view database at `db` to `file` (which must not
/// exist), through a temporary file beside it so that a failed copy leaves
/// nothing that looks like a snapshot.
pub fn snapshot(db: &Path, file: &Path) -> anyhow::Result<Summary> {
    if file.exists() {
        bail!(
            "{} exists already: snapshots never overwrite",
            file.display()
        );
    }
    let source = open_read_only(db)
        .with_context(|| format!("opening the view database {}", db.display()))?;
    check_tables(&source).with_context(|| format!("{} is no view database", db.display()))?;
    let partial = partial_path(file);
    let _ = std::fs::remove_file(&partial);
    let copied = source
        .execute("VACUUM INTO ?1", [path_text(&partial)?])
        .with_context(|| format!("copying the view database into {}", partial.display()));
    if let Err(error) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    std::fs::rename(&partial, file)
        .with_context(|| format!("moving the snapshot to {}", file.display()))?;
    let copy = open_read_only(file)?;
    summarise(&copy)
}

/// Installs the snapshot `file` as the view database `db`. Refuses a
/// database that holds anything unless `force`; refuses a file that is
/// not a sound view database. `serve` must not be running on `db`.
pub fn restore(file: &Path, db: &Path, force: bool) -> anyhow::Result<Summary> {
    let snapshot = check_snapshot(file)
        .with_context(|| format!("{} is not a usable snapshot", file.display()))?;
    if db.exists() && !force {
        let held = open_read_only(db)
            .and_then(|conn| held(&conn))
            .with_context(|| format!("reading the view database {}", db.display()))?;
        if let Some(held) = held {
            bail!(
                "the view database {} is not empty ({held}); pass --force to replace it",
                db.display()
            );
        }
    }
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let source = open_read_only(file)?;
    let partial = partial_path(db);
    let _ = std::fs::remove_file(&partial);
    source
        .execute("VACUUM INTO ?1", [path_text(&partial)?])
        .with_context(|| format!("copying the snapshot into {}", partial.display()))?;
    // The old database's journal belongs to the old file: left beside the
    // new one, SQLite would apply it to the wrong pages.
    for suffix in ["-wal", "-shm"] {
        let journal = with_suffix(db, suffix);
        match std::fs::remove_file(&journal) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", journal.display())),
        }
    }
    std::fs::rename(&partial, db).with_context(|| format!("installing {}", db.display()))?;
    Ok(snapshot)
}

/// Opens `file` and checks it is a whole view database; answers what it holds.
fn check_snapshot(file: &Path) -> anyhow::Result<Summary> {
    if !file.is_file() {
        bail!("no such file");
    }
    let conn = open_read_only(file)?;
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .context("SQLite cannot read it (not a database, or a damaged one)")?;
    if verdict != "ok" {
        bail!("SQLite finds it damaged: {verdict}");
    }
    check_tables(&conn)?;
    summarise(&conn)
}

fn open_read_only(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

fn check_tables(conn: &Connection) -> anyhow::Result<()> {
    for table in TABLES {
        let found: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .optional()
            .context("reading the schema (not a database, or a damaged one)")?;
        if found.is_none() {
            bail!("it has no {table} table: not a tenderflow view database");
        }
    }
    Ok(())
}

fn summarise(conn: &Connection) -> anyhow::Result<Summary> {
    let tasks: i64 = conn.query_row("SELECT COUNT(*) FROM tasks", [], |r| r.get(0))?;
    let offset: Option<i64> = conn
        .query_row("SELECT stream_offset FROM progress WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?;
    let fold_version = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok(Summary {
        tasks: tasks as u64,
        stream_offset: offset.map(|o| o as u64),
        fold_version,
    })
}

/// What a database holds, if anything, in words; `None` when it is empty
/// (or a file SQLite made but nothing wrote).
fn held(conn: &Connection) -> anyhow::Result<Option<String>> {
    if check_tables(conn).is_err() {
        let objects: i64 =
            conn.query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| r.get(0))?;
        return Ok((objects > 0).then(|| format!("{objects} schema objects of something else")));
    }
    let summary = summarise(conn)?;
    let events: i64 = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
    let empty = summary.tasks == 0 && events == 0 && summary.stream_offset.is_none();
    Ok((!empty).then(|| {
        format!(
            "{} tasks, {events} events, stream offset {:?}",
            summary.tasks, summary.stream_offset
        )
    }))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn partial_path(path: &Path) -> PathBuf {
    with_suffix(path, ".partial")
}

fn path_text(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not valid UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::events::EventKind;
    use crate::projector::db::tests::event;
    use crate::projector::db::{Batch, FOLD_VERSION, ViewDb};

    fn fill(db: &ViewDb, tasks: usize, offset: u64) {
        let events = (0..tasks)
            .map(|_| {
                let kind = EventKind::Received {
                    documents: Vec::new(),
                    options: Default::default(),
                    external_id: None,
                };
                event(Uuid::now_v7(), kind)
            })
            .collect();
        db.apply(&Batch {
            events,
            last_offset: offset,
        })
        .unwrap();
    }

    #[test]
    fn a_snapshot_taken_while_open_restores_views_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.sqlite3");
        let db = ViewDb::open(&live).unwrap();
        fill(&db, 5, 41);
        let file = dir.path().join("snap.sqlite3");
        let taken = snapshot(&live, &file).unwrap();
        assert_eq!(
            taken,
            Summary {
                tasks: 5,
                stream_offset: Some(41),
                fold_version: FOLD_VERSION
            }
        );
        assert!(snapshot(&live, &file).is_err(), "never overwrites");
        fill(&db, 2, 50);

        let fresh = dir.path().join("fresh/view.sqlite3");
        assert_eq!(restore(&file, &fresh, false).unwrap(), taken);
        let restored = ViewDb::open(&fresh).unwrap();
        assert_eq!(restored.offset().unwrap(), Some(41));
        assert_eq!(restored.all_views().unwrap().len(), 5);

        // Not onto a database that holds something, unless forced.
        let err = restore(&file, &live, false).unwrap_err();
        assert!(format!("{err:#}").contains("--force"), "{err:#}");
        assert_eq!(db.all_views().unwrap().len(), 7, "left as it was");
        drop(db);
        restore(&file, &live, true).unwrap();
        assert_eq!(ViewDb::open(&live).unwrap().offset().unwrap(), Some(41));
    }

    #[test]
    fn a_snapshot_of_another_fold_version_is_folded_again_once_restored() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.sqlite3");
        let db = ViewDb::open(&live).unwrap();
        fill(&db, 3, 7);
        let right = db.all_views().unwrap();
        let file = dir.path().join("snap.sqlite3");
        snapshot(&live, &file).unwrap();
        // What a build with an older fold would have written.
        let old = Connection::open(&file).unwrap();
        old.execute_batch(
            "UPDATE tasks SET view = json_set(view, '$.state', 'failed'); PRAGMA user_version = 1;",
        )
        .unwrap();
        drop(old);
        let fresh = dir.path().join("fresh.sqlite3");
        assert_eq!(restore(&file, &fresh, false).unwrap().fold_version, 1);
        assert_eq!(ViewDb::open(&fresh).unwrap().all_views().unwrap(), right);
    }

    #[test]
    fn a_damaged_or_foreign_file_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("view.sqlite3");
        let garbage = dir.path().join("garbage");
        std::fs::write(
            &garbage,
            b"this is not a database, it is a text file".repeat(200),
        )
        .unwrap();
        let err = format!("{:#}", restore(&garbage, &target, false).unwrap_err());
        assert!(err.contains("not a usable snapshot"), "{err}");
        assert!(err.contains("not a database"), "{err}");

        let foreign = dir.path().join("foreign.sqlite3");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE things (x)")
            .unwrap();
        let err = format!("{:#}", restore(&foreign, &target, false).unwrap_err());
        assert!(err.contains("not a tenderflow view database"), "{err}");
        let err = format!(
            "{:#}",
            restore(&dir.path().join("none"), &target, false).unwrap_err()
        );
        assert!(err.contains("no such file"), "{err}");
        assert!(!target.exists(), "nothing installed");
    }
}
