//! Durable storage of failed messages and their history.
//!
//! The rest of Redrive sees the traits of [`api`], one per aggregate, through
//! a [`Store`]; all SQL lives below them, so a second backend (PostgreSQL)
//! sits beside SQLite without touching ingest, replay or the API.

mod access;
mod alerts;
mod annotations;
mod api;
mod audit;
mod contents;
mod filter;
pub mod findings;
mod groups;
mod ingest;
mod job_batches;
mod jobs;
mod leases;
mod messages;
#[cfg(test)]
mod plans;
mod replays;
mod rows;
pub mod samples;
mod search;
mod sessions;
mod watched;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use app::model::{MessageDetail, MessageStatus};
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use tokio::sync::{Mutex, OwnedMutexGuard};

pub use access::Scope;
pub use api::{
    AlertStore, AnnotationStore, AuditLog, CaptureStore, Database, FindingStore, GroupStore, JobSteps,
    JobStore, LeaseStore, MessageStore, ReplayStore, SampleStore, SearchIndex, SessionStore, VhostAccess,
    WatchStore,
};
pub use audit::{AuditFilter, NewAudit};
pub use contents::{take_trace, trace_template, TraceTemplate};
pub use filter::Filter;
pub use ingest::{AckState, Committed};
pub use job_batches::{ClaimBatch, ClaimRequest, Claimed, JobReplay, JobReplayOutcome};
pub use jobs::{JobSpec, NewJob, SELECTABLE};
pub use replays::Settlement;
pub use rows::StoredMessage;
pub use sessions::Session;
pub use watched::WatchedQueue;

/// The store as the rest of Redrive holds it: every aggregate of one
/// database, cheap to clone.
pub type Store = Arc<dyn Database>;

/// Opens the database `url` names (creating and migrating it as needed).
/// The scheme picks the backend; SQLite is the only one so far.
pub async fn connect(url: &str) -> anyhow::Result<Store> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        anyhow::bail!(
            "REDRIVE_DATABASE_URL names PostgreSQL, which this build does not support yet; use a sqlite:// URL"
        );
    }
    Ok(Arc::new(SqliteStore::connect(url).await?))
}

/// Storage failures. `Database` is internal: logged, never shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("message {0} not found")]
    NotFound(i64),
    /// Something else that does not exist, named (`job 7`, `group ab12`).
    #[error("{0} not found")]
    Missing(String),
    /// A request the store cannot take as it is (a bad cursor, limit, time,
    /// status or tag); the text says what a valid one looks like.
    #[error("{0}")]
    Invalid(String),
    #[error("message {id} is {status}, expected {expected}")]
    WrongState {
        id: i64,
        status: MessageStatus,
        expected: &'static str,
    },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// One entry of a message's history, as written.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub action: &'a str,
    pub actor: &'a str,
    pub target: Option<String>,
    pub ok: bool,
    pub detail: Option<String>,
    /// Set on a confirmed replay: the `x-redrive-replay-id` the copy carries.
    pub replay_id: Option<String>,
}

/// Later records of a message's replays (copies that failed again); reads
/// the partial index `messages_replay_id` (checked in `store::plans`).
const CAME_BACK_AS: &str = "SELECT m.id FROM message_events e JOIN messages m ON m.replay_id = e.replay_id
     WHERE e.message_id = ? ORDER BY m.id";

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
    /// one that reached the OS survives a crash of Redrive (see `ingest`).
    acks: SqlitePool,
    /// This process's turn to write. SQLite has one writer; a connection
    /// that finds the write lock taken sleeps in its busy handler, in steps
    /// of up to 100 ms, and wakes late. Writers of this process queue here
    /// instead and start the moment the previous one commits.
    turn: Arc<Mutex<()>>,
}

/// A write transaction that holds the process's write turn until it ends.
/// Derefs to the connection, so `&mut *tx` runs statements in it.
pub(crate) struct WriteTx {
    tx: sqlx::Transaction<'static, Sqlite>,
    _turn: OwnedMutexGuard<()>,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

pub const MAX_PAGE: u32 = 500;
/// Messages a page with search text indexes on the spot, at most, when the
/// indexer is behind (a burst): about 100 ms of tokenising.
const SEARCH_CATCH_UP: usize = 2000;
const DEFAULT_PAGE: u32 = 50;

pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

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
    /// Starts a transaction that writes. `BEGIN IMMEDIATE` takes SQLite's
    /// write lock up front, waiting up to the busy timeout for it; a deferred
    /// transaction that reads first and then writes fails at once with
    /// `SQLITE_BUSY` when another connection committed in between, which the
    /// busy timeout does not cover.
    async fn write_tx(&self) -> Result<WriteTx, sqlx::Error> {
        let turn = self.turn.clone().lock_owned().await;
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx { tx, _turn: turn })
    }

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
        let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        // A table that does not exist yet (a fresh database) reads as None.
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1")
                .fetch_one(&pool)
                .await
                .unwrap_or(None);
        if let Some(newer) = applied.filter(|v| *v > known) {
            anyhow::bail!(
                "this database was written by a newer Redrive (schema version {newer}; this build knows up to \
                 {known}). Run the newer Redrive, or point REDRIVE_DATABASE_URL at another database; nothing \
                 was changed."
            );
        }
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
        })
    }

    /// The record a replayed copy came from (walking back the whole chain),
    /// and the later records of this message's own replays that failed again.
    async fn link_replays(
        &self,
        detail: &mut MessageDetail,
        replay_id: Option<String>,
    ) -> Result<(), StoreError> {
        const MAX_CHAIN: usize = 100;
        let origin = "SELECT e.message_id, m.replay_id FROM message_events e
                      JOIN messages m ON m.id = e.message_id WHERE e.replay_id = ?";
        let mut next = replay_id;
        let mut depth = 0;
        while let Some(rid) = next.take() {
            let Some((from, earlier)) = sqlx::query_as::<_, (i64, Option<String>)>(origin)
                .bind(&rid)
                .fetch_optional(&self.pool)
                .await?
            else {
                break;
            };
            if depth == 0 {
                detail.replayed_from = Some(from);
            }
            depth += 1;
            if depth < MAX_CHAIN {
                next = earlier;
            }
        }
        detail.failed_again_after_replay = depth as i64;
        detail.came_back_as = sqlx::query_scalar(CAME_BACK_AS)
            .bind(detail.summary.id)
            .fetch_all(&self.pool)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Database for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

pub(crate) fn expected_label(from: &[MessageStatus]) -> &'static str {
    match from {
        [MessageStatus::Failed] => "failed",
        [MessageStatus::Discarded] => "discarded",
        [MessageStatus::Replaying] => "replaying",
        _ => "another status",
    }
}

pub(crate) async fn insert_event(
    tx: &mut SqliteConnection,
    id: i64,
    e: &Event<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO message_events (message_id, at, action, actor, target, result, detail, replay_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(now_ms())
    .bind(e.action)
    .bind(e.actor)
    .bind(&e.target)
    .bind(if e.ok { "ok" } else { "error" })
    .bind(&e.detail)
    .bind(&e.replay_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
