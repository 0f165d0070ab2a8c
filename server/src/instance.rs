//! One Redrive per SQLite database.
//!
//! Two instances on one SQLite file would each sweep the other's in-flight
//! replays as abandoned at start-up, drive the same jobs, write every sample
//! twice and send every webhook twice. SQLite itself would let them: the
//! guard is an exclusive lock on a file beside the database, held for the
//! life of the process and released by the OS when the process dies, so a
//! crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use sqlx::sqlite::SqliteConnectOptions;

/// Held while this instance runs; dropping it lets another start.
#[derive(Debug)]
pub struct InstanceLock {
    _file: Option<File>,
}

impl InstanceLock {
    /// Takes a SQLite database's instance lock, or says who holds it.
    /// An in-memory database belongs to this process alone, and PostgreSQL
    /// is shared by design (leases divide the work): no lock. (A URL of
    /// neither kind is refused by `store::connect`, with the schemes it takes.)
    pub fn acquire(database_url: &str) -> anyhow::Result<Self> {
        if crate::store::Backend::of(database_url) != Some(crate::store::Backend::Sqlite) {
            return Ok(Self { _file: None });
        }
        let options = SqliteConnectOptions::from_str(database_url)
            .context("REDRIVE_DATABASE_URL is not a valid sqlite URL")?;
        // sqlx names an in-memory database `file:sqlx-in-memory-N`, so the
        // URL, not the file name, says whether there is a file.
        if database_url.contains(":memory:") || database_url.contains("mode=memory") {
            return Ok(Self { _file: None });
        }
        let db = options.get_filename();
        let path = lock_path(db);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening the instance lock {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: Some(file) }),
            Err(TryLockError::WouldBlock) => anyhow::bail!(
                "another Redrive is already running on the database {}: a SQLite database serves one \
                 instance (it holds {}). Stop the other instance, or point REDRIVE_DATABASE_URL at \
                 another database.",
                db.display(),
                path.display()
            ),
            Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }
}

/// `redrive.db` → `redrive.db.instance-lock`, beside it.
fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".instance-lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_database_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("redrive-lock-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("r.db").display());
        let first = InstanceLock::acquire(&url).unwrap();
        let refused = InstanceLock::acquire(&url).unwrap_err().to_string();
        assert!(
            refused.contains("another Redrive is already running"),
            "{refused}"
        );
        let other = format!("sqlite://{}?mode=rwc", dir.join("other.db").display());
        drop(InstanceLock::acquire(&other).unwrap());
        drop(first);
        drop(InstanceLock::acquire(&url).unwrap());
        assert!(InstanceLock::acquire("sqlite::memory:").is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
