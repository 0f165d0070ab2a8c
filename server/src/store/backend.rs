//! The backend contract: everything the SQL both databases share
//! (each aggregate's folder) needs from the one it runs on. A new backend implements
//! [`SqlBackend`] and invokes `shared_sql!` with its store type; the
//! compiler then names anything missing.
//!
//! The shared SQL is compiled once per backend (see `shared_sql!` in
//! `store/mod.rs`) rather than written generically over `sqlx::Database`:
//! a generic version needs a higher-ranked `Executor` bound and an
//! `Encode + Decode + Type` bound per bound type on every one of its
//! eighty-odd queries, and sqlx's `Any` driver cannot pass an array of ids
//! or read JSON. What differs is small, and it is all here.

use std::borrow::Cow;
use std::future::Future;

use sqlx::query::Query;
use sqlx::{Database as SqlxDatabase, Pool, QueryBuilder};

use super::search::Pending;
use super::{StoreError, WriteTx};

/// The connection type of a backend's database.
pub(crate) type ConnOf<B> = <<B as SqlBackend>::Db as SqlxDatabase>::Connection;

/// A backend: its pool and write discipline, the few places its SQL
/// dialect differs, and its full-text index.
pub(crate) trait SqlBackend: Clone + Send + Sync + 'static {
    /// The sqlx database the shared SQL is compiled for.
    type Db: SqlxDatabase;
    /// What a write transaction holds while it is open (a process-wide
    /// turn on SQLite; nothing on PostgreSQL, whose locks are its own).
    type Turn: Send;

    // --- Connections and writes ---

    /// The pool reads and single statements use.
    fn pool(&self) -> &Pool<Self::Db>;

    /// Starts a transaction that writes, under the backend's rules for
    /// concurrent writers.
    fn write_tx(&self) -> impl Future<Output = Result<WriteTx<Self::Db, Self::Turn>, sqlx::Error>> + Send;

    /// The search indexer's transaction: the indexers of every instance
    /// take turns, so what it marks indexed is never marked twice.
    fn index_tx(&self) -> impl Future<Output = Result<WriteTx<Self::Db, Self::Turn>, sqlx::Error>> + Send;

    /// The masking rules the search index is built with.
    fn index_mask(&self) -> &crate::store::search::IndexMask;

    /// Runs one ack-marker statement (see `CaptureStore::set_ack_state`)
    /// the instant it is asked, without waiting for the disk.
    fn mark<'q>(
        &self,
        query: Query<'q, Self::Db, <Self::Db as SqlxDatabase>::Arguments<'q>>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    // --- Dialect ---

    /// The messages list's vhost column (a planner hint where one is needed).
    const VISIBLE_VHOST: &'static str;

    /// Appended to a `SELECT` whose rows the transaction must hold until it
    /// ends (` FOR UPDATE` where writers run side by side; nothing where
    /// the write turn already serialises them).
    const LOCK_ROWS: &'static str;

    /// Rows a redelivered delivery may stand for: `(id, batch state,
    /// content hash)` of batches whose ack is unsettled, given
    /// `$1` = oldest commit time, `$2` = vhost, `$3` = queue; `Unsent`
    /// before `InFlight`, oldest first.
    const TWINS: &'static str;

    /// Publisher text as the database can store it.
    fn text(value: &str) -> Cow<'_, str>;

    /// Where a list arm reads (`FROM …`), given the index its plan names.
    fn arm_source(index: Option<&str>) -> String;

    /// ` AND {column} IN (ids)`, as one bind whatever the list's length.
    fn push_id_set(b: &mut QueryBuilder<'_, Self::Db>, column: &str, ids: &[i64]);

    /// Draws `n` ids for new rows of `messages`, ascending. They need not
    /// be consecutive: on PostgreSQL another instance draws from the same
    /// sequence meanwhile, and an id drawn by a transaction that rolls back
    /// is never used.
    fn allocate_message_ids(
        tx: &mut ConnOf<Self>,
        n: usize,
    ) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;

    /// Statements the search indexer runs on each pass, under its turn,
    /// before it indexes: on PostgreSQL they fold the counters' deltas
    /// (written by every instance without waiting for one another) into
    /// the tables only this turn updates.
    const FOLD: &'static [&'static str];

    // --- Full-text index ---

    /// The backend's full-text index.
    type Search: FullText<Db = Self::Db>;
}

/// A full-text index over the messages: how rows are added to it, and how
/// a statement asks it for the messages that match an operator's words.
/// Every word must match, as a phrase of its tokens, case folded.
pub(crate) trait FullText {
    type Db: SqlxDatabase;

    /// The index's table and its key column, for retention's purge.
    const INDEX_TABLE: &'static str;
    const INDEX_KEY: &'static str;
    /// The column a search page is ordered by.
    const MATCH_ID: &'static str;
    /// Whether the index yields matches newest first (a search page can
    /// then be read from it directly).
    const IN_ID_ORDER: bool;
    /// Run before a statement that reads the index's match set.
    const MATCH_SET_SETUP: Option<&'static str>;
    /// The stack trace the indexer reads with each message (an expression
    /// over `message_contents`): the trace as received where the index
    /// tokenises every message's trace, or only a trace stored whole where
    /// it tokenises each template once ([`Pending::trace_id`] names it).
    const PENDING_TRACE: &'static str;

    /// Empties the index, in the indexer's transaction (the masking rules
    /// changed: every message is indexed again).
    const CLEAR_INDEX: &'static str;

    /// Adds rows to the index.
    fn insert_index_rows<'a>(
        tx: &'a mut <Self::Db as SqlxDatabase>::Connection,
        rows: &'a [Pending],
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;

    /// `messages` joined to the matches of `text`, then ` WHERE` the match;
    /// `false` (nothing pushed) when the text has no words.
    fn push_search_from(b: &mut QueryBuilder<'_, Self::Db>, text: &str) -> bool;

    /// ` AND` the row matches `text` (one lookup by id).
    fn push_probe(b: &mut QueryBuilder<'_, Self::Db>, text: &str);

    /// Whether the row `messages.id` matches `text`; no words match nothing.
    fn push_hit(b: &mut QueryBuilder<'_, Self::Db>, text: &str);

    /// `SELECT id FROM` the index `WHERE` it matches `text`.
    fn push_matched_ids(b: &mut QueryBuilder<'_, Self::Db>, text: &str);

    /// ` AND messages.id IN (matches)` for a search text.
    fn push_match(b: &mut QueryBuilder<'_, Self::Db>, text: &str);
}
