//! Failed messages as operators read and move them. Their SQL is in
//! `store/messages/`, compiled once per backend.

use crate::store::Event;
use crate::store::Filter;
use crate::store::StoreError;
use crate::store::StoredMessage;
use app::model::MessageDetail;
use app::model::MessagePage;
use app::model::MessageQuery;
use app::model::MessageStatus;
use app::model::MessageSummary;
use async_trait::async_trait;

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

    /// The stored messages whose AMQP `message_id` is `message_id`, newest
    /// first, at most `limit`, in `visible` vhosts (all when `None`): what
    /// a link built from a message id (`/m/{message_id}`) leads to.
    async fn with_message_id(
        &self,
        message_id: &str,
        visible: Option<&[String]>,
        limit: u32,
    ) -> Result<Vec<MessageSummary>, StoreError>;

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

/// Who is on one message, and its hold: beside its group's, for the one
/// message an operator takes, or holds aside while its fix ships.
#[async_trait]
pub trait MessageClaims: Send + Sync {
    /// Sets (or with `None` clears) the message's owner.
    async fn set_message_owner(
        &self,
        id: i64,
        owner: Option<&str>,
        by: &str,
    ) -> Result<app::model::MessageClaim, StoreError>;

    /// Puts the message on hold until `hold.until`, replacing a hold it
    /// had. Only a failed message: else `WrongState` (or `NotFound`), and
    /// nothing is written.
    async fn hold_message(
        &self,
        id: i64,
        hold: crate::store::NewHold<'_>,
    ) -> Result<app::model::MessageClaim, StoreError>;

    /// Ends its hold now; `Ok(false)` when it had none.
    async fn release_message(&self, id: i64) -> Result<bool, StoreError>;

    /// Its owner and its hold while it lasts at `now`.
    async fn message_claim(&self, id: i64, now: i64) -> Result<app::model::MessageClaim, StoreError>;

    /// Failed messages on hold at `now` by themselves (their group is not
    /// held), in `visible` vhosts (all when `None`): what the overview's
    /// waiting count leaves out beside the held groups.
    async fn held_messages(&self, now: i64, visible: Option<&[String]>) -> Result<i64, StoreError>;
}
