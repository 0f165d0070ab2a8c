//! What capture writes and how far each batch's ack got.
//!
//! Never merge, never lose: a redelivered copy may be dropped only when it is
//! provably the copy of a row this store already holds, i.e. Redrive
//! committed the row and its ack never left (a crash between commit and ack).
//!
//! The proof is the [`AckState`] of the row's batch (one row of
//! `ack_batches` per committed batch). A batch is committed `Unsent`,
//! marked `InFlight` the moment before its ack goes out, and `Settled` once a
//! round trip on the channel shows the broker processed the ack (markers go
//! through a connection that commits without fsync: they survive a crash of
//! Redrive and cost no disk flush). An ack that could not be sent at all puts
//! the batch back to `Unsent`.
//!
//! A redelivered twin of an `Unsent` row is its copy: absorbed. A twin of a
//! `Settled` row is another failure (say, one another consumer took and gave
//! back): a row of its own. A twin of an `InFlight` row is undecidable (the
//! process died, or the connection dropped, between sending the ack and
//! learning its fate); it is stored, and flagged as a possible copy of that
//! row, so an operator sees the doubt instead of a silent duplicate or a
//! silent merge.

use crate::domain::NewMessage;
use crate::store::StoreError;
use async_trait::async_trait;
use std::time::Duration;

/// How far a stored row's delivery got in being acked; decides what a
/// redelivered twin of it is (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckState {
    /// The broker processed the ack, or the row came from no delivery.
    Settled,
    /// Committed; the ack was never sent.
    Unsent,
    /// The ack was sent; whether the broker processed it is not known yet.
    InFlight,
}

impl AckState {
    pub(super) fn code(self) -> i64 {
        match self {
            Self::Settled => 0,
            Self::Unsent => 1,
            Self::InFlight => 2,
        }
    }
}

/// A committed capture batch, as its ack markers address it: its lowest
/// id. Its ids need not be one range (on PostgreSQL another instance may
/// draw ids between them), so it is named rather than bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureBatch(pub(super) i64);

/// What a committed batch wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Rows inserted (deliveries not absorbed as redelivered copies).
    pub stored: usize,
    /// Originals taken from a formerly tapped queue that a stored copy
    /// answered for (see [`Origin::Adopted`](crate::domain::Origin)).
    pub adopted: usize,
    /// The batch, to mark its ack; `None` when it stored nothing.
    pub batch: Option<CaptureBatch>,
    /// The ids it stored, ascending.
    pub ids: Vec<i64>,
    /// Rows stored with a doubt: redelivered twins of a row whose ack was in
    /// flight.
    pub possible_copies: usize,
}

/// What ingest writes: batches committed before their ack, and ack
/// markers after it.
#[async_trait]
pub trait CaptureStore: Send + Sync {
    /// Stores a batch in one transaction, `Unsent`, and says what it wrote.
    ///
    /// A redelivered delivery (`redelivered` set by the broker) is matched
    /// with an identical row of the same queue, preferring an `Unsent` one,
    /// that
    /// - is `Unsent` (absorbs the delivery) or `InFlight` (the delivery is
    ///   stored, flagged as its possible copy);
    /// - was committed by an earlier transaction (rows of this batch never match:
    ///   three identical messages in one batch are three failures),
    /// - has not answered for another copy already (each row stands for exactly
    ///   one delivery, so N identical messages redelivered N times stay N rows),
    /// - was received within `window` (the broker redelivers an unacked message
    ///   within its consumer timeout of the crash; an older twin is a new failure).
    ///
    /// When Redrive stays down longer than `window`, a lost ack shows up as a
    /// duplicate row: a duplicate an operator can discard beats a lost failure.
    async fn insert_batch(&self, batch: &[NewMessage], window: Duration) -> Result<Committed, StoreError>;

    /// Records how far the ack of `batch` (as `insert_batch` returned it)
    /// got: a row per run of its ids, not one per message. Written through the
    /// no-fsync connection, so marking costs no disk flush and lands at once.
    /// It takes the process's write turn like every writer: without it, a
    /// marker meeting the indexer's open transaction would sleep in SQLite's
    /// busy handler (1, 2, 5, 10… ms) while capture waits on it.
    async fn set_ack_state(&self, batch: CaptureBatch, state: AckState) -> Result<(), StoreError>;

    /// Whether copies of `queue` taken from its tap still count their
    /// originals as waiting in it (the queue was tapped until now).
    async fn tap_originals_waiting(&self, vhost: &str, queue: &str) -> Result<bool, StoreError>;

    /// Marks the copies whose originals no delivery answered for as having
    /// left the queue without Redrive, and ends the queue's switch back to
    /// consume; returns how many.
    async fn leave_tap_originals(&self, vhost: &str, queue: &str) -> Result<u64, StoreError>;

    /// The row a message may be a redelivered copy of (see [`AckState::InFlight`]).
    async fn possible_copy_of(&self, id: i64) -> Result<Option<i64>, StoreError>;
}
