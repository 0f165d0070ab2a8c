//! The PostgreSQL backend: several Redrive instances on one database. The
//! SQL shared with SQLite is in the aggregates' folders (see `store`).
//!
//! Writers of every instance run side by side; none waits for a turn the
//! others hold. What one writer (SQLite's) gave the shared SQL for free is
//! made explicit there: a capture batch draws its ids from the sequence and
//! is named by its lowest (`ack_batches.batch`), the search indexer keeps
//! the ids its watermark passed before they committed (`search_gaps`), a
//! status changes only in a statement that checks it, and the browse
//! counters are appended as deltas (folded by the indexer) instead of
//! updated in place. Only the search indexers take turns (a lock of their
//! own), so what one marks indexed is never marked twice.

#[cfg(test)]
mod plans;
mod search;
mod statistics;

super::shared_sql!(PgStore);

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions};
use sqlx::query::Query;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use super::backend::SqlBackend;
use super::StoreError;
use super::*;

/// The advisory lock the search indexers of every instance take turns on
/// (any fixed number: "redrive" and one).
const INDEX_TURN: i64 = 0x0072_6564_7269_7666;

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Connections that commit without waiting for the disk, for ack
    /// markers only (see [`PgStore::mark`]).
    acks: PgPool,
    index_mask: super::search::IndexMask,
}

/// A write transaction (it holds no turn of its own).
type WriteTx = super::WriteTx<Postgres>;

impl PgStore {
    /// Connects and applies migrations. The database must exist (a
    /// PostgreSQL role that may create databases is not assumed).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        use anyhow::Context;
        let options = PgConnectOptions::from_str(url)
            .with_context(|| "REDRIVE_DATABASE_URL is not a valid postgres URL")?
            // As SQLite's busy timeout: a write that cannot get its locks
            // (a row another writer holds, the indexers' turn, a table
            // someone locked) fails after 10 s and is reported ("database
            // commits failing" on /readyz, the deliveries held unacked)
            // instead of hanging unseen.
            .options([("lock_timeout", "10s")])
            // Planned for the values bound, every time: a list's filter
            // values are skewed (a vhost with half the store, a queue with
            // ten messages), and a plan cached for their average reads the
            // wrong index for both.
            .options([("plan_cache_mode", "force_custom_plan")]);
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .context("connecting to PostgreSQL")?;
        let acks = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options.options([("synchronous_commit", "off")]));
        let migrator = sqlx::migrate!("../migrations/postgres");
        // A table that does not exist yet (a fresh database) reads as None.
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&pool)
                .await
                .unwrap_or(None);
        super::refuse_newer_schema(&migrator, applied)?;
        // sqlx takes an advisory lock of its own, so instances starting
        // together migrate one after the other.
        migrator.run(&pool).await.context("applying migrations")?;
        Ok(Self {
            pool,
            acks,
            index_mask: Default::default(),
        })
    }
}

#[async_trait]
impl Database for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn refresh_statistics(&self) -> Result<Vec<String>, StoreError> {
        statistics::refresh(&self.pool).await
    }
}

impl SqlBackend for PgStore {
    type Db = Postgres;
    type Turn = ();

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn index_mask(&self) -> &super::search::IndexMask {
        &self.index_mask
    }

    /// A plain transaction: the shared SQL locks only the rows it changes.
    async fn write_tx(&self) -> Result<WriteTx, sqlx::Error> {
        Ok(WriteTx::new(self.pool.begin().await?, ()))
    }

    /// Once the indexers' turn is this one's: the watermark and the gaps
    /// then move only forward, and the counters' deltas are folded by one
    /// instance at a time. The lock is released by COMMIT or ROLLBACK, or
    /// by PostgreSQL when the connection (or the instance) dies: a crash
    /// never leaves it taken. Capture never waits for it.
    async fn index_tx(&self) -> Result<WriteTx, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(INDEX_TURN)
            .execute(&mut *tx)
            .await?;
        Ok(WriteTx::new(tx, ()))
    }

    /// One statement that does not wait for the disk, as a marker must land
    /// the instant before or after an ack (one lost with the database
    /// server only makes a redelivered copy a flagged duplicate, never a
    /// loss). A marker is committed before its ack is sent, so a
    /// redelivery that could read the row's old state cannot exist yet.
    async fn mark<'q>(&self, query: Query<'q, Postgres, PgArguments>) -> Result<(), StoreError> {
        query.execute(&self.acks).await?;
        Ok(())
    }

    /// PostgreSQL's planner needs no hint here.
    const VISIBLE_VHOST: &'static str = "vhost";

    /// Writers of several instances run side by side: rows read to decide
    /// a write are locked, and a row another transaction changed is read
    /// again once it commits.
    const LOCK_ROWS: &'static str = " FOR UPDATE";

    /// Each run of a batch is a range of the primary key.
    const TWINS: &'static str = "SELECT m.id, b.state, m.content_hash FROM ack_batches b
     JOIN messages m ON m.id BETWEEN b.first_id AND b.last_id
     WHERE b.committed_at >= $1 AND m.vhost = $2 AND m.queue = $3
       AND m.absorbed_redelivery = 0 AND m.received_at >= $1
     ORDER BY b.state, m.id";

    /// `TEXT` refuses the NUL character, which AMQP strings may carry, so
    /// it becomes U+FFFD (the body, stored as bytes, and the headers, stored
    /// as JSON with escapes, keep every byte). Without this one such header
    /// would stop capture of its queue.
    fn text(value: &str) -> Cow<'_, str> {
        if value.contains('\0') {
            Cow::Owned(value.replace('\0', "\u{fffd}"))
        } else {
            Cow::Borrowed(value)
        }
    }

    /// PostgreSQL's planner picks the index whose key is the arm's columns
    /// and `id`.
    fn arm_source(_index: Option<&str>) -> String {
        "messages".to_owned()
    }

    /// One array bind, whatever its length.
    fn push_id_set(b: &mut QueryBuilder<'_, Postgres>, column: &str, ids: &[i64]) {
        b.push(format_args!(" AND {column} = ANY("))
            .push_bind(ids.to_vec())
            .push(")");
    }

    /// From the table's sequence, which hands each caller its own ids
    /// whatever the others draw, without waiting for their transactions.
    async fn allocate_message_ids(tx: &mut PgConnection, n: usize) -> Result<Vec<i64>, StoreError> {
        let mut ids: Vec<i64> =
            sqlx::query_scalar("SELECT nextval('messages_id_seq') FROM generate_series(1, $1)")
                .bind(n as i64)
                .fetch_all(&mut *tx)
                .await?;
        ids.sort_unstable();
        Ok(ids)
    }

    /// Each statement moves every delta to its folded row in one step, so
    /// a count read through the views is never counted twice or missed.
    const FOLD: &'static [&'static str] = &[
        "WITH moved AS (DELETE FROM message_count_deltas
                        RETURNING vhost, queue, service, group_id, status, messages, transient)
         INSERT INTO message_counts_folded AS c
         SELECT vhost, queue, service, group_id, status, SUM(messages), SUM(transient) FROM moved
         GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
         ON CONFLICT (vhost, queue, service, group_id, status) DO UPDATE
         SET messages = c.messages + excluded.messages, transient = c.transient + excluded.transient",
        "WITH moved AS (DELETE FROM received_block_deltas RETURNING block, min_received_at, max_received_at)
         INSERT INTO received_blocks_folded AS r
         SELECT block, MIN(min_received_at), MAX(max_received_at) FROM moved GROUP BY 1 ORDER BY 1
         ON CONFLICT (block) DO UPDATE SET
             min_received_at = LEAST(r.min_received_at, excluded.min_received_at),
             max_received_at = GREATEST(r.max_received_at, excluded.max_received_at)",
    ];

    type Search = search::TsVector;
}
