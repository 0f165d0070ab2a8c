//! The SQLite backend: one file, one instance (see `instance`), one writer
//! at a time. The SQL shared with PostgreSQL is in the aggregates' folders (see `store`).

#[cfg(test)]
mod plans;
mod search;

super::shared_sql!(SqliteStore);

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::backend::SqlBackend;
use super::StoreError;
use super::*;

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The one connection write transactions use. Writes are one at a time
    /// anyway (SQLite has one writer; see `turn`), and on one long-lived
    /// connection the pages they touch (the right edge of every index) stay
    /// in its page cache instead of being read again by whichever pooled
    /// connection comes next.
    writer: SqlitePool,
    /// One connection that commits without fsync, for ack markers only: a
    /// marker must be written the instant the broker confirmed an ack, and
    /// one that reached the OS survives a crash of Redrive (see `store::capture`).
    acks: SqlitePool,
    /// This process's turn to write. SQLite has one writer; a connection
    /// that finds the write lock taken sleeps in its busy handler, in steps
    /// of up to 100 ms, and wakes late. Writers of this process queue here
    /// instead and start the moment the previous one commits.
    turn: Arc<Mutex<()>>,
    index_mask: super::search::IndexMask,
}

/// A write transaction holding the process's write turn.
type WriteTx = super::WriteTx<Sqlite, OwnedMutexGuard<()>>;

/// A connection whose COMMIT failed (disk full) can be left with sqlx
/// believing a transaction is open after SQLite already rolled it back;
/// every later BEGIN on it would fail. Such a connection is closed instead of
/// being handed out again.
fn sound(
    conn: &mut sqlx::SqliteConnection,
    _: sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, Result<bool, sqlx::Error>> {
    let idle = !sqlx::Connection::is_in_transaction(conn);
    Box::pin(async move { Ok(idle) })
}

impl SqliteStore {
    /// Opens (creating if missing) the database and applies migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        use anyhow::Context;
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| "REDRIVE_DATABASE_URL is not a valid sqlite URL")?
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before we ack the broker, even on power loss.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // No memory map: a 128 MiB map per connection made no measurable
            // difference to replay or browsing but counted up to 388 MB of
            // peak RSS through a million-message ingest (BENCHMARKS.md).
            // Readers keep SQLite's default 2 MiB page cache each (a page
            // of the list touches a few dozen pages; the OS caches the file);
            // the one writer gets 16 MiB for the index edges it rewrites.
            .pragma("cache_size", "-2048");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .before_acquire(sound)
            .connect_with(options.clone())
            .await
            .context("opening the database")?;
        let acks = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .before_acquire(sound)
            .connect_lazy_with(options.clone().synchronous(SqliteSynchronous::Normal));
        let migrator = sqlx::migrate!("../migrations/sqlite");
        // A table that does not exist yet (a fresh database) reads as None.
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1")
                .fetch_one(&pool)
                .await
                .unwrap_or(None);
        super::refuse_newer_schema(&migrator, applied)?;
        migrator.run(&pool).await.context("applying migrations")?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .before_acquire(sound)
            .connect_lazy_with(options.clone().pragma("cache_size", "-16384"));
        Ok(Self {
            pool,
            writer,
            acks,
            turn: Arc::default(),
            index_mask: Default::default(),
        })
    }
}

#[async_trait]
impl Database for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// None to keep: every page names its index (see `SqlBackend::arm_source`).
    async fn refresh_statistics(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
}

impl SqlBackend for SqliteStore {
    type Db = Sqlite;
    type Turn = OwnedMutexGuard<()>;

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn index_mask(&self) -> &super::search::IndexMask {
        &self.index_mask
    }

    /// `BEGIN IMMEDIATE` takes SQLite's write lock up front, waiting up to
    /// the busy timeout for it; a deferred transaction that reads first and
    /// then writes fails at once with `SQLITE_BUSY` when another connection
    /// committed in between, which the busy timeout does not cover.
    async fn write_tx(&self) -> Result<WriteTx, sqlx::Error> {
        let turn = self.turn.clone().lock_owned().await;
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx::new(tx, turn))
    }

    /// The write turn, as every writer (SQLite has one), so no capture
    /// batch commits between reading the pending rows and moving the
    /// watermark.
    async fn index_tx(&self) -> Result<WriteTx, sqlx::Error> {
        self.write_tx().await
    }

    /// Through the no-fsync connection. It takes the process's write turn
    /// like every writer: without it, a marker meeting the indexer's open
    /// transaction would sleep in SQLite's busy handler (1, 2, 5, 10… ms)
    /// while capture waits on it.
    async fn mark<'q>(&self, query: Query<'q, Sqlite, SqliteArguments<'q>>) -> Result<(), StoreError> {
        let _turn = self.turn.lock().await;
        query.execute(&self.acks).await?;
        Ok(())
    }

    /// The unary `+` keeps SQLite from answering the vhost condition with
    /// the (vhost, queue) index. Every page carries the caller's visible
    /// vhosts, and reading them through that index meant sorting every
    /// visible message by id for one page (226 ms at 100,000 stored). Read
    /// in id order instead, a page stops after its rows; a queue filter
    /// still uses the index through `vhost = ?`.
    const VISIBLE_VHOST: &'static str = "+vhost";

    /// One writer at a time (the write turn): nothing to lock.
    const LOCK_ROWS: &'static str = "";

    /// Only a few batches are ever unsettled, each run read as a range of the
    /// primary key (checked in `plans`): `CROSS JOIN` keeps the batches the
    /// outer loop, and the unary `+` keeps the planner off other indexes
    /// (the queue's would read every row of the queue) and from building
    /// one of its own.
    const TWINS: &'static str = "SELECT m.id, b.state, m.content_hash FROM ack_batches b
     CROSS JOIN messages m ON m.id BETWEEN b.first_id AND b.last_id
     WHERE b.committed_at >= $1 AND +m.vhost = $2 AND +m.queue = $3
       AND +m.absorbed_redelivery = 0 AND +m.received_at >= $1
     ORDER BY b.state, m.id";

    /// SQLite keeps every character (PostgreSQL's backend has to replace NUL).
    fn text(value: &str) -> Cow<'_, str> {
        Cow::Borrowed(value)
    }

    /// The arm's index, named, since SQLite's planner (without statistics)
    /// would rather read another index and sort; the primary key alone when
    /// it has none.
    fn arm_source(index: Option<&str>) -> String {
        match index {
            Some(index) => format!("messages INDEXED BY {index}"),
            None => "messages NOT INDEXED".to_owned(),
        }
    }

    /// One bind of a JSON array, whatever its length (a bind per id would
    /// pass SQLite's limit of 32,766 parameters).
    fn push_id_set(b: &mut QueryBuilder<'_, Sqlite>, column: &str, ids: &[i64]) {
        let list = serde_json::to_string(ids).expect("integers serialise");
        b.push(format_args!(" AND {column} IN (SELECT value FROM json_each("))
            .push_bind(list)
            .push("))");
    }

    /// The ones after the last `sqlite_sequence` records (`AUTOINCREMENT`
    /// never hands out an id twice), consecutive: SQLite has one writer,
    /// whose turn the caller holds.
    async fn allocate_message_ids(tx: &mut SqliteConnection, n: usize) -> Result<Vec<i64>, StoreError> {
        let last: i64 = sqlx::query_scalar(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0)",
        )
        .fetch_one(&mut *tx)
        .await?;
        Ok((last + 1..=last + n as i64).collect())
    }

    /// Nothing: the counters' triggers update them in place (one writer).
    const FOLD: &'static [&'static str] = &[];

    type Search = search::Fts5;
}
