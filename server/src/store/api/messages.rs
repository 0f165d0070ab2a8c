//! Failed messages: reading and moving them, capturing them, replaying
//! them one at a time, searching them, and the vhosts they belong to.

use std::ops::RangeInclusive;
use std::time::Duration;

use app::model::{MessageDetail, MessagePage, MessageQuery, MessageStatus};
use async_trait::async_trait;

use crate::domain::NewMessage;
use crate::store::{AckState, Committed, Event, Filter, Scope, Settlement, StoreError, StoredMessage};

/// Failed messages as operators read and move them: pages and counts,
/// detail with history, status transitions, exports and retention.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// A page of messages in `visible` vhosts (all when `None`).
    async fn list_within(
        &self,
        q: &MessageQuery,
        visible: Option<&[String]>,
    ) -> Result<MessagePage, StoreError>;

    /// Messages matching `filter`; with a `cap`, counting stops after `cap + 1`
    /// so a page never pays for counting a million rows.
    async fn count_matching(&self, filter: &Filter, cap: Option<i64>) -> Result<i64, StoreError>;

    /// One batch of an export, newest first, below `before` (an id).
    async fn export_batch(
        &self,
        filter: &Filter,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<StoredMessage>, StoreError>;

    async fn get(&self, id: i64) -> Result<StoredMessage, StoreError>;

    async fn detail(&self, id: i64) -> Result<MessageDetail, StoreError>;

    /// Moves a message from one status to another and records the event, atomically.
    /// Fails with `WrongState` (nothing written) when the message is not in `from`.
    async fn transition(
        &self,
        id: i64,
        from: &[MessageStatus],
        to: MessageStatus,
        event: Option<Event<'_>>,
    ) -> Result<(), StoreError>;

    /// Deletes messages discarded before `cutoff_ms` (with their history and
    /// job items). Returns how many were purged.
    async fn purge_discarded(&self, cutoff_ms: i64) -> Result<u64, StoreError>;

    /// Stored messages per status (`/metrics`): one pass over the
    /// `(status, id)` index, tens of milliseconds at a million.
    async fn count_by_status(&self) -> Result<Vec<(String, i64)>, StoreError>;

    async fn count(&self) -> Result<i64, StoreError>;
}

/// The full-text index, built behind capture, and how much of a
/// selection it covers yet.
#[async_trait]
pub trait SearchIndex: Send + Sync {
    /// Indexes up to `limit` messages the index does not cover yet, oldest
    /// first, in one transaction; returns how many it indexed.
    ///
    /// Capture commits a batch without indexing it (tokenising a Spring
    /// failure's stack trace cost more than storing it), so this runs
    /// beside it. The write lock makes the watermark exact: no batch can
    /// commit between reading the pending rows and moving the mark.
    async fn index_pending(&self, limit: u32) -> Result<usize, StoreError>;

    /// Before a query with search text: indexes what capture stored since
    /// the indexer's last pass, at most `bound` messages (all with `None`),
    /// so the query sees every stored message. A page of results passes a
    /// bound (it stays quick in a burst and says what it cannot see yet);
    /// a job or an export selected by a search does not. Returns how many
    /// messages stay unsearchable.
    async fn searchable(&self, filter: &Filter, bound: Option<usize>) -> Result<i64, StoreError>;

    /// Messages stored but not searchable yet (the indexer's backlog).
    async fn unindexed(&self) -> Result<i64, StoreError>;
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

    /// Records how far the ack of the batch `ids` (a range `insert_batch`
    /// returned) got: one row, not one per message. Written through the
    /// no-fsync connection, so marking costs no disk flush and lands at once.
    /// It takes the process's write turn like every writer: without it, a
    /// marker meeting the indexer's open transaction would sleep in SQLite's
    /// busy handler (1, 2, 5, 10… ms) while capture waits on it.
    async fn set_ack_state(&self, ids: &RangeInclusive<i64>, state: AckState) -> Result<(), StoreError>;

    /// The row a message may be a redelivered copy of (see [`AckState::InFlight`]).
    async fn possible_copy_of(&self, id: i64) -> Result<Option<i64>, StoreError>;
}

/// A single replay: claimed before the publish, settled on the broker's
/// verdict; a claim whose holder stopped is swept to "outcome unknown",
/// never retried.
#[async_trait]
pub trait ReplayStore: Send + Sync {
    /// The replay id a retry must reuse: that of an earlier replay whose
    /// outcome is unknown.
    async fn uncertain_replay_id(&self, id: i64) -> Result<Option<String>, StoreError>;

    /// `failed` → `replaying`, leased to `owner`, carrying `replay_id`; the
    /// edit (if any) is recorded in the same transaction.
    async fn claim_replay(
        &self,
        id: i64,
        owner: &str,
        replay_id: &str,
        edit: Option<Event<'_>>,
    ) -> Result<(), StoreError>;

    /// Records the broker's verdict on a replay `owner` claimed.
    async fn settle_replay(
        &self,
        id: i64,
        owner: &str,
        settlement: Settlement,
        event: &Event<'_>,
    ) -> Result<(), StoreError>;

    /// Settles replays whose owner stopped renewing them before `stale_before`
    /// (a crash, a kill): they may or may not have been published, so they go
    /// back to `failed`, flagged, and any job item waiting on them is failed
    /// rather than retried. Returns how many were settled.
    async fn sweep_abandoned_replays(&self, stale_before: i64) -> Result<u64, StoreError>;
}

/// The vhosts a selection, job, group or finding touches: what a
/// user's permissions are checked against.
#[async_trait]
pub trait VhostAccess: Send + Sync {
    /// Every (vhost, queue, original exchange) the messages matching `filter` have.
    async fn scopes(&self, filter: &Filter) -> Result<Vec<Scope>, StoreError>;

    /// The vhosts of a job's messages, as recorded when it was created.
    async fn job_vhosts(&self, job_id: i64) -> Result<Vec<String>, StoreError>;

    /// The vhosts a failure group's messages are in.
    async fn group_vhosts(&self, group_id: &str) -> Result<Vec<String>, StoreError>;

    /// The vhost of an advisor finding; `None` when there is no such finding.
    async fn finding_vhost(&self, id: i64) -> Result<Option<String>, StoreError>;
}
