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

use std::ops::RangeInclusive;

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

/// What a committed batch wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Rows inserted (deliveries not absorbed as redelivered copies).
    pub stored: usize,
    /// Their ids (one transaction writes a contiguous range), to settle.
    pub ids: Option<RangeInclusive<i64>>,
    /// Rows stored with a doubt: redelivered twins of a row whose ack was in
    /// flight.
    pub possible_copies: usize,
}
