//! Broker monitoring: a periodic look at every queue, sampled into the
//! database, checked by the advisor and the alert rules. The last good look is
//! kept, so pages keep showing data (with its age) when the management API is
//! down, while ingest, search and replay carry on without it.

pub mod advisor;
pub mod alerts;
pub mod notify;
pub mod snapshot;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::broker::Management;
use crate::config::Config;
use crate::ingest::CaptureStatus;
use crate::lease::{Lease, Leases, TTL};
use crate::store::samples::Sample;
use crate::store::{now_ms, Store};
use crate::topology::WatchRules;
use snapshot::{Cached, Snapshot};

/// How often samples are compacted and aged out.
const COMPACT_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Monitor {
    config: Arc<Config>,
    store: Store,
    management: Management,
    cache: Arc<RwLock<Cached>>,
    capture: CaptureStatus,
    /// Serialises refreshes so a burst of page loads makes one API call.
    refreshing: Arc<tokio::sync::Mutex<()>>,
    /// When set, samples, findings and alerts are written only while this
    /// instance holds the monitor's lease (every instance still refreshes
    /// its own view of the broker).
    leases: Option<Leases>,
}

impl Monitor {
    pub fn new(config: Arc<Config>, store: Store, management: Management, capture: CaptureStatus) -> Self {
        Self {
            config,
            store,
            management,
            cache: Arc::default(),
            capture,
            refreshing: Arc::default(),
            leases: None,
        }
    }

    /// Writes samples, findings and alerts only under the monitor's lease.
    pub fn with_leases(mut self, leases: Leases) -> Self {
        self.leases = Some(leases);
        self
    }

    /// Whether this instance writes this pass: it holds the monitor's lease,
    /// renewed for a few sample intervals, or runs without leases.
    async fn leads(&self) -> bool {
        match &self.leases {
            None => true,
            Some(l) => {
                l.hold_for(Lease::Monitor, self.config.monitor.sample_interval * 3 + TTL)
                    .await
            }
        }
    }

    pub fn cached(&self) -> Cached {
        self.cache.read().expect("monitor cache lock").clone()
    }

    /// Makes the next read fetch afresh (after a change Redrive made itself).
    pub fn invalidate(&self) {
        self.cache.write().expect("monitor cache lock").attempted_at = None;
    }

    /// Broker data at most `max_age` old: refreshed when older. When the
    /// management API fails, the last good data comes back with the error,
    /// and it is not asked again within `max_age`, so a slow API does not
    /// make every page wait for its timeout.
    pub async fn current(&self, max_age: Duration) -> Cached {
        let _guard = self.refreshing.lock().await;
        let cached = self.cached();
        let recent = cached
            .attempted_at
            .is_some_and(|at| now_ms() - at < max_age.as_millis() as i64);
        if recent {
            return cached;
        }
        self.refresh_locked().await
    }

    async fn refresh_locked(&self) -> Cached {
        let overrides = self.store.all_watch_overrides().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading watch switches; classifying by the rules alone");
            Default::default()
        });
        let modes = self.store.capture_modes().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading capture modes; showing the default mode");
            Default::default()
        });
        let rules = WatchRules::from_config(&self.config.capture);
        let fetch = Snapshot::fetch(
            &self.management,
            self.config.broker.explicit_vhosts(),
            &rules,
            &overrides,
            &modes,
        );
        let result = match tokio::time::timeout(self.config.broker.management_timeout, fetch).await {
            Ok(Ok(snapshot)) => Ok(snapshot),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "management API did not answer within {} s",
                self.config.broker.management_timeout.as_secs_f64()
            )),
        };
        let mut cache = self.cache.write().expect("monitor cache lock");
        cache.attempted_at = Some(now_ms());
        match result {
            Ok(snapshot) => {
                cache.snapshot = Some(Arc::new(snapshot));
                cache.fetched_at = Some(now_ms());
                cache.error = None;
            }
            Err(error) => {
                if cache.error.is_none() {
                    tracing::warn!(%error, "management API unavailable; showing last known data");
                }
                cache.error = Some(error);
            }
        }
        cache.clone()
    }

    /// Samples, advises and evaluates alerts every `REDRIVE_SAMPLE_INTERVAL`
    /// until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(self.config.monitor.sample_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_compaction = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            match self.pass().await {
                Ok(true) => {}
                // Another instance samples; this one kept its view fresh.
                Ok(false) => continue,
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "monitor tick failed"),
            }
            if last_compaction.elapsed() >= COMPACT_EVERY {
                last_compaction = tokio::time::Instant::now();
                let retention = (self.config.monitor.sample_retention_days * 86_400_000.0) as i64;
                if let Err(e) = self.store.compact_samples(now_ms(), retention).await {
                    tracing::warn!(error = %e, "compacting queue samples failed");
                }
            }
        }
    }

    /// One pass of [`Monitor::run`]: a [`Monitor::tick`] when this instance
    /// holds the monitor's lease (`Ok(true)`), else only a refresh of its
    /// view of the broker (`Ok(false)`), so samples and findings are written
    /// once per cluster.
    pub async fn pass(&self) -> anyhow::Result<bool> {
        if self.leads().await {
            return self.tick().await.map(|()| true);
        }
        self.refresh().await;
        Ok(false)
    }

    /// A fresh view of the broker, one refresh at a time.
    async fn refresh(&self) -> Cached {
        let _guard = self.refreshing.lock().await;
        self.refresh_locked().await
    }

    /// One monitoring pass. Public so tests can drive it deterministically.
    pub async fn tick(&self) -> anyhow::Result<()> {
        let cached = self.refresh().await;
        let now = now_ms();
        let snapshot = cached.snapshot.filter(|_| cached.error.is_none());
        if let Some(snapshot) = &snapshot {
            self.sample_and_advise(snapshot, now).await?;
        }
        self.evaluate_alerts(snapshot.as_deref(), now).await
    }

    async fn sample_and_advise(&self, snapshot: &Snapshot, now: i64) -> anyhow::Result<()> {
        let unhandled = self
            .store
            .unhandled_counts()
            .await
            .context("counting unhandled")?;
        let samples: Vec<Sample> = snapshot
            .vhosts
            .iter()
            .flat_map(|v| v.queues.iter().map(move |q| (v, q)))
            .map(|(v, q)| {
                let held = if v.is_watched(&q.name) {
                    unhandled
                        .get(&(q.vhost.clone(), q.name.clone()))
                        .map_or(0, |c| c.0)
                } else {
                    0
                };
                let stats = q.message_stats;
                Sample {
                    vhost: q.vhost.clone(),
                    queue: q.name.clone(),
                    ready: q.messages_ready as f64,
                    unacked: q.messages_unacknowledged as f64,
                    consumers: q.consumers as f64,
                    publish_rate: stats.publish_details.rate,
                    deliver_rate: stats.deliver_get_details.rate,
                    redeliver_rate: stats.redeliver_details.rate,
                    ack_rate: stats.ack_details.rate,
                    backlog: (q.messages_ready + held) as f64,
                }
            })
            .collect();
        let resolution = self.config.monitor.sample_interval.as_secs().max(1) as i64;
        self.store
            .insert_samples(now, resolution, &samples)
            .await
            .context("storing samples")?;

        let window_ms = self.config.monitor.advisor_window.as_millis() as i64;
        let lookback = window_ms + 3 * self.config.monitor.sample_interval.as_millis() as i64;
        let history = self.store.samples_since(now - lookback).await?;
        let facts = advisor::Facts {
            now,
            history: &history,
            unhandled: &unhandled,
        };
        let thresholds = advisor::Thresholds {
            window_ms,
            deep_queue: self.config.monitor.advisor_deep_queue,
            redeliver_rate: self.config.monitor.advisor_redeliver_rate,
        };
        let observed = advisor::advise(snapshot, &facts, &thresholds);
        let vhosts: Vec<String> = snapshot.vhosts.iter().map(|v| v.name.clone()).collect();
        self.store
            .sync_findings(now, &vhosts, &observed)
            .await
            .context("recording findings")?;
        Ok(())
    }

    async fn evaluate_alerts(&self, snapshot: Option<&Snapshot>, now: i64) -> anyhow::Result<()> {
        let rules = self.store.alert_rules().await?;
        if rules.is_empty() {
            return Ok(());
        }
        let queues = snapshot.map(|s| s.queue_infos(&self.capture));
        let inflow = self.store.inflow_by_service(now - 60_000, None).await?;
        let findings = self.store.findings(now).await?;
        for rule in &rules {
            alerts::announce_new_groups(&self.store, rule, &self.config.mask.mask, now)
                .await
                .with_context(|| format!("alert rule {}", rule.id))?;
            if let Some(firing) = alerts::evaluate(rule, queues.as_deref(), &inflow, &findings) {
                alerts::apply(&self.store, rule, firing, now)
                    .await
                    .with_context(|| format!("alert rule {}", rule.id))?;
            }
        }
        Ok(())
    }
}
