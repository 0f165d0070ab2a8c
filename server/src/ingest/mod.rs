//! Capture: keep one supervised consumer on every watched queue, store what
//! it delivers, then ack.
//!
//! The invariant: a delivery is acked only after the transaction holding its
//! row has committed. Anything that goes wrong before the commit leaves the
//! delivery unacked, so the broker redelivers it.
//!
//! The watched set lives in the database: consumers start from it at boot,
//! and discovery (through the management API, when it answers) adds and
//! removes queues. Capture never waits for discovery to recover.

mod commit;
mod consumer;
pub mod decode;
pub mod indexer;
pub mod status;
mod window;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::broker::{AmqpPool, Management};
use crate::config::Config;
use crate::store::Store;
use crate::topology::{classify, VhostState, WatchRules};
pub use status::CaptureStatus;

#[derive(Clone)]
pub struct Ingest {
    pub config: Arc<Config>,
    pub store: Store,
    pub management: Management,
    pub amqp: AmqpPool,
    pub status: CaptureStatus,
    /// Told after every commit: the new messages need indexing.
    pub indexer: indexer::IndexerWake,
    pub metrics: crate::metrics::Metrics,
}

type QueueKey = (String, String);

/// A running consumer supervisor and the token that stops it alone.
struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Ingest {
    /// Runs until `shutdown`: starts consumers for the stored watched set,
    /// then re-discovers every interval.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut consumers: HashMap<QueueKey, Running> = HashMap::new();
        match self.store.watched_queues().await {
            Ok(stored) => {
                for w in stored {
                    self.start(&mut consumers, (w.vhost, w.name), &w.reason, &shutdown);
                }
            }
            Err(e) => tracing::error!(error = %e, "reading the watched queues; waiting for discovery"),
        }
        loop {
            if let Err(e) = self.discover(&mut consumers, &shutdown).await {
                tracing::warn!(error = %format!("{e:#}"), "queue discovery failed; capture goes on with the known queues");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.config.capture.discovery_interval) => {}
            }
        }
        for (_, running) in consumers {
            let _ = running.task.await;
        }
        self.amqp.close_all().await;
    }

    fn start(
        &self,
        consumers: &mut HashMap<QueueKey, Running>,
        key: QueueKey,
        reason: &str,
        shutdown: &CancellationToken,
    ) {
        if consumers.get(&key).is_some_and(|r| !r.task.is_finished()) {
            return;
        }
        tracing::info!(vhost = %key.0, queue = %key.1, %reason, "capturing queue");
        let stop = shutdown.child_token();
        let task = tokio::spawn(self.clone().supervise(key.0.clone(), key.1.clone(), stop.clone()));
        consumers.insert(key, Running { stop, task });
    }

    /// One discovery round. A vhost that fails keeps its current consumers
    /// and does not stop the others.
    async fn discover(
        &self,
        consumers: &mut HashMap<QueueKey, Running>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let explicit = self.config.broker.explicit_vhosts();
        let listed = explicit.is_empty();
        let vhosts = self
            .management
            .vhost_names(explicit)
            .await
            .context("listing vhosts")?;
        if listed {
            // Vhosts that were deleted take their watched queues with them.
            self.store.forget_watched_vhosts_except(&vhosts).await?;
            consumers.retain(|(vhost, _), r| {
                let keep = vhosts.contains(vhost);
                if !keep {
                    r.stop.cancel();
                }
                keep
            });
        }
        let rules = WatchRules::from_config(&self.config.capture);
        let mut failed = Vec::new();
        for vhost in &vhosts {
            match self.watched_in(vhost, &rules).await {
                Ok(watched) => {
                    self.store.sync_watched(vhost, &watched).await?;
                    consumers.retain(|(v, q), r| {
                        let keep = v != vhost || watched.contains_key(q);
                        if !keep {
                            tracing::info!(vhost = %v, queue = %q, "no longer capturing queue");
                            r.stop.cancel();
                            self.status.remove(v, q);
                        }
                        keep
                    });
                    for (queue, reason) in watched {
                        self.start(consumers, (vhost.clone(), queue), &reason, shutdown);
                    }
                }
                Err(e) => failed.push(format!("{vhost}: {e:#}")),
            }
        }
        if !failed.is_empty() {
            anyhow::bail!("{}", failed.join("; "));
        }
        Ok(())
    }

    /// The queues of `vhost` to capture, with why.
    async fn watched_in(&self, vhost: &str, rules: &WatchRules) -> anyhow::Result<HashMap<String, String>> {
        let state = VhostState::fetch_for_capture(&self.management, vhost).await?;
        let overrides = self.store.watch_overrides(vhost).await?;
        Ok(classify(&state, rules, &overrides)
            .into_iter()
            .filter(|(_, v)| v.watched)
            .map(|(name, v)| (name, v.reason.unwrap_or_default()))
            .collect())
    }
}
