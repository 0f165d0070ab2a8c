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
/// Pause between chunks while a foreground writer is busy (capture in a
/// burst, a bulk job): the write lock and the CPU go to work someone waits
/// for (capture acks only after its commit; an operator watches a job), and
/// indexing takes about a tenth of it; the rest is indexed as soon as the
/// burst is over. A search meanwhile indexes what it needs first.
const BURST_PAUSE: Duration = Duration::from_millis(250);
/// A foreground writer counts as busy when it committed this recently.
const BUSY_WITHIN: Duration = Duration::from_millis(100);
/// Look for unindexed messages at least this often without a wake-up
/// (messages stored by another path, or a wake-up lost to a restart).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Wait after a failed pass (the database is down or full).
const RETRY: Duration = Duration::from_secs(2);
/// How often, at most, the indexer (caught up) asks the store to refresh
/// its planner statistics (see `Database::refresh_statistics`): after a
/// burst, the pages' plans are right within this long of the index.
const STATISTICS_EVERY: Duration = Duration::from_secs(10);

/// Wakes the indexer and tells it when to hold back: capture calls `wake`
/// after every commit, bulk jobs `foreground_commit` after every step.
#[derive(Clone, Default)]
pub struct IndexerWake(Arc<Wake>);

#[derive(Default)]
struct Wake {
    notify: Notify,
    /// When a foreground writer last committed (ms since the epoch).
    last_foreground: AtomicI64,
}

impl IndexerWake {
    /// New messages were stored: index them (after the burst, if one is on).
    pub fn wake(&self) {
        self.foreground_commit();
        // A permit is kept when the indexer is busy, so no wake-up is lost.
        self.0.notify.notify_one();
    }

    /// Work someone waits for committed (a bulk job's step): the indexer
    /// keeps to one chunk per [`BURST_PAUSE`] while this goes on. Measured
    /// with a replay of 100,000 just-captured failures, catching up at full
    /// speed beside it cost the replay about a tenth of its rate.
    pub fn foreground_commit(&self) {
        self.0.last_foreground.store(now_ms(), Ordering::Relaxed);
    }

    /// A foreground writer committed within `BUSY_WITHIN`.
    fn foreground_busy(&self) -> bool {
        now_ms() - self.0.last_foreground.load(Ordering::Relaxed) < BUSY_WITHIN.as_millis() as i64
    }
}

/// Indexes until `stop`.
pub async fn run(store: Store, wake: IndexerWake, stop: CancellationToken) {
    let mut statistics_due = tokio::time::Instant::now();
    loop {
        let pause = match store.index_pending(CHUNK).await {
            Ok(n) if n == CHUNK as usize && wake.foreground_busy() => Some(BURST_PAUSE),
            Ok(n) if n == CHUNK as usize => Some(Duration::ZERO),
            Ok(_) => {
                if tokio::time::Instant::now() >= statistics_due {
                    statistics_due = tokio::time::Instant::now() + STATISTICS_EVERY;
                    match store.refresh_statistics().await {
                        Ok(tables) if tables.is_empty() => {}
                        Ok(tables) => tracing::info!(?tables, "refreshed the query planner's statistics"),
                        Err(e) => {
                            tracing::warn!(error = %e, "refreshing the query planner's statistics failed")
                        }
                    }
                }
                None
            }
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
