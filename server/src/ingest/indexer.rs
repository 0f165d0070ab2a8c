//! The full-text indexer: makes captured messages searchable moments after
//! they are stored.
//!
//! Tokenising a Spring failure (body, stack trace, headers) cost more than
//! storing it, and capture acks only after its commit, so indexing inside
//! that transaction held every delivery back. Capture now commits without
//! it and wakes this task, which indexes what is new in chunks. A message is
//! searchable within a fraction of a second of its commit while capture
//! keeps up; in a burst the index catches up right after, and searches say
//! how many messages they cannot see yet (`Store::unindexed`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::{now_ms, Store};

/// Messages indexed per transaction: enough to amortise the commit, few
/// enough that a capture commit waits for the write lock only briefly.
const CHUNK: u32 = 500;
/// Pause between chunks while capture is busy with a burst: the write lock
/// goes to capture (which acks only after its commit), and indexing takes
/// about a tenth of it; the rest is indexed as soon as the burst is over.
const BURST_PAUSE: Duration = Duration::from_millis(250);
/// Capture counts as busy when it committed this recently.
const BUSY_WITHIN: Duration = Duration::from_millis(100);
/// Look for unindexed messages at least this often without a wake-up
/// (messages stored by another path, or a wake-up lost to a restart).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Wait after a failed pass (the database is down or full).
const RETRY: Duration = Duration::from_secs(2);

/// Wakes the indexer; capture calls `wake` after every commit.
#[derive(Clone, Default)]
pub struct IndexerWake(Arc<Wake>);

#[derive(Default)]
struct Wake {
    notify: Notify,
    /// When capture last committed (ms since the epoch).
    last_commit: AtomicI64,
}

impl IndexerWake {
    pub fn wake(&self) {
        self.0.last_commit.store(now_ms(), Ordering::Relaxed);
        // A permit is kept when the indexer is busy, so no wake-up is lost.
        self.0.notify.notify_one();
    }

    /// Capture committed within `BUSY_WITHIN`: a burst is on.
    fn capture_busy(&self) -> bool {
        now_ms() - self.0.last_commit.load(Ordering::Relaxed) < BUSY_WITHIN.as_millis() as i64
    }
}

/// Indexes until `stop`.
pub async fn run(store: Store, wake: IndexerWake, stop: CancellationToken) {
    loop {
        let pause = match store.index_pending(CHUNK).await {
            Ok(n) if n == CHUNK as usize && wake.capture_busy() => Some(BURST_PAUSE),
            Ok(n) if n == CHUNK as usize => Some(Duration::ZERO),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "full-text indexing failed; retrying");
                Some(RETRY)
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = wake.0.notify.notified(), if pause.is_none() => {}
            _ = tokio::time::sleep(pause.unwrap_or(IDLE_POLL)) => {}
        }
    }
}
