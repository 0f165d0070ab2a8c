//! The PostgreSQL backend: several Redrive instances on one database. The
//! SQL shared with SQLite is in the aggregates' folders (see `store`).
//!
//! Writes take one turn across every instance: a transaction-scoped
//! advisory lock (see [`PgStore::write_tx`]). The shared SQL was written for
//! SQLite's single writer and relies on it: a capture batch's ids are one
//! range (`ack_batches`), ids commit in order (the search indexer's
//! watermark), and a status is read and then changed in one transaction.
//! Reads, sessions and single-statement updates do not wait for the turn.

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

/// The advisory lock that is the write turn (any fixed number; "redrive").
const WRITE_TURN: i64 = 0x0072_6564_7269_7665;
/// The advisory lock the search indexers of every instance take turns on.
const INDEX_TURN: i64 = WRITE_TURN + 1;

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Connections that commit without waiting for the disk, for ack
    /// markers only (see [`PgStore::mark`]).
    acks: PgPool,
}

/// A write transaction holding the write turn (the advisory lock, which
/// the transaction's end releases).
type WriteTx = super::WriteTx<Postgres>;

impl PgStore {
    async fn turn_tx(&self, turn: i64) -> Result<WriteTx, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(turn)
            .execute(&mut *tx)
            .await?;
        Ok(WriteTx::new(tx, ()))
    }

    /// Connects and applies migrations. The database must exist (a
    /// PostgreSQL role that may create databases is not assumed).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        use anyhow::Context;
        let options = PgConnectOptions::from_str(url)
            .with_context(|| "REDRIVE_DATABASE_URL is not a valid postgres URL")?
            // As SQLite's busy timeout: a write that cannot get its locks
            // (the write turn, a table someone locked) fails after 10 s and
            // is reported ("database commits failing" on /readyz, the
            // deliveries held unacked) instead of hanging unseen.
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
        Ok(Self { pool, acks })
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

    /// Once the write turn is this one's. The lock is released by COMMIT or
    /// ROLLBACK, or by PostgreSQL when the connection (or the instance)
    /// dies: a crash never leaves it taken.
    async fn write_tx(&self) -> Result<WriteTx, sqlx::Error> {
        self.turn_tx(WRITE_TURN).await
    }

    /// It does not wait for the write turn: capture allocates and commits
    /// ids in order under that turn, so the rows the indexer sees pending
    /// are all the rows below the ones in flight, and tokenising a thousand
    /// stack traces never holds capture up. The indexers of several
    /// instances take turns on a lock of their own, so the watermark only
    /// moves forward.
    async fn index_tx(&self) -> Result<WriteTx, sqlx::Error> {
        self.turn_tx(INDEX_TURN).await
    }

    /// One statement that does not wait for the disk, as a marker must land
    /// the instant before or after an ack (one lost with the database
    /// server only makes a redelivered copy a flagged duplicate, never a
    /// loss). It needs no write turn: a marker is committed before its ack
    /// is sent, so a redelivery that could read the row's old state cannot
    /// exist yet.
    async fn mark<'q>(&self, query: Query<'q, Postgres, PgArguments>) -> Result<(), StoreError> {
        query.execute(&self.acks).await?;
        Ok(())
    }

    /// PostgreSQL's planner needs no hint here.
    const VISIBLE_VHOST: &'static str = "vhost";

    /// Each batch is a range of the primary key.
    const TWINS: &'static str = "SELECT m.id, b.state, m.content_hash FROM ack_batches b
     JOIN messages m ON m.id BETWEEN b.first_id AND b.last_id
     WHERE b.committed_at >= $1 AND m.vhost = $2 AND m.queue = $3
       AND m.absorbed_redelivery = 0 AND m.received_at >= $1
     ORDER BY b.state, m.id";

    /// The inserted ids come back summed up in one row.
    const COUNTED_INSERT: (&'static str, &'static str) = (
        "WITH inserted AS (",
        " RETURNING id) SELECT COUNT(*), COALESCE(MAX(id), 0) FROM inserted",
    );

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

    async fn run_counted<'a>(
        tx: &'a mut PgConnection,
        mut b: QueryBuilder<'a, Postgres>,
    ) -> Result<(u64, i64), StoreError> {
        let (count, last): (i64, i64) = b.build_query_as().fetch_one(&mut *tx).await?;
        Ok((count as u64, last))
    }

    /// Exact under the write turn: every insert into `messages` holds it,
    /// so nothing else draws from the sequence.
    async fn last_message_id(tx: &mut PgConnection) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM messages_id_seq",
        )
        .fetch_one(&mut *tx)
        .await?)
    }

    type Search = search::TsVector;
}
