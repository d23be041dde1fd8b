//! The view database's lock file, `DB.lock` beside it: `serve` (and `run`)
//! hold a shared lock on it while they run, `projector restore` and
//! `projector vacuum` an exclusive one. So a restore never swaps the file
//! under a projector that keeps folding into the old one, and a vacuum
//! never locks a database a projector is writing; each says what is in the
//! way instead. Several projectors may share a database (they take shared
//! locks). The locks are the operating system's (`flock`), so a process
//! that dies leaves none behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// A held lock on a view database; released when dropped.
#[derive(Debug)]
pub struct DbLock {
    _file: File,
}

/// Takes the lock of a projector that serves the database at `db`. Fails
/// while a restore or a vacuum holds it.
pub fn serving(db: &Path) -> anyhow::Result<DbLock> {
    let file = open(db)?;
    match file.try_lock_shared() {
        Ok(()) => Ok(DbLock { _file: file }),
        Err(TryLockError::WouldBlock) => bail!(
            "the view database {} is being restored or vacuumed \
             (`tenderflow projector restore|vacuum`); start serve when it ends",
            db.display()
        ),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", lock_path(db).display()))
        }
    }
}

/// Takes the lock of `what` (a restore, a vacuum), which needs the database
/// at `db` to itself. Fails while a projector serves it.
pub fn alone(db: &Path, what: &str) -> anyhow::Result<DbLock> {
    let file = open(db)?;
    match file.try_lock() {
        Ok(()) => Ok(DbLock { _file: file }),
        Err(TryLockError::WouldBlock) => bail!(
            "the view database {} is in use by a running `tenderflow serve` or `run` \
             (or another restore or vacuum): stop it before the {what}",
            db.display()
        ),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", lock_path(db).display()))
        }
    }
}

fn open(db: &Path) -> anyhow::Result<File> {
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let path = lock_path(db);
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projectors_share_the_database_and_a_restore_or_vacuum_needs_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("views/view.sqlite3");
        let first = serving(&db).unwrap();
        let second = serving(&db).expect("two projectors may share a database");
        let err = alone(&db, "restore").unwrap_err();
        assert!(
            format!("{err:#}").contains("in use by a running `tenderflow serve`"),
            "{err:#}"
        );
        drop(first);
        assert!(alone(&db, "vacuum").is_err(), "one projector still serves");
        drop(second);

        let vacuum = alone(&db, "vacuum").expect("no projector serves");
        let err = serving(&db).unwrap_err();
        assert!(
            format!("{err:#}").contains("being restored or vacuumed"),
            "{err:#}"
        );
        assert!(alone(&db, "restore").is_err(), "one at a time");
        drop(vacuum);
        serving(&db).expect("the vacuum is over");
        assert!(dir.path().join("views/view.sqlite3.lock").exists());
    }
}
