//! Retention: discarded messages stay restorable for `REDRIVE_RETENTION_DAYS`,
//! then a background purge deletes them (and says so in the log).

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::store::{now_ms, Store};

const DAY_MS: f64 = 86_400_000.0;

pub async fn run(store: Store, config: std::sync::Arc<Config>, shutdown: CancellationToken) {
    loop {
        let cutoff = now_ms() - (config.retention_days * DAY_MS) as i64;
        match store.purge_discarded(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                purged = n,
                days = config.retention_days,
                "purged expired discarded messages"
            ),
            Err(e) => tracing::warn!(error = %e, "purge of discarded messages failed; retrying later"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(config.purge_interval) => {}
        }
    }
}
