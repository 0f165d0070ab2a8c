//! Capture: keep one supervised consumer on every watched queue (or on its
//! tap, in tap mode), store what it delivers, then ack.
//!
//! The invariant: a delivery is acked only after the transaction holding its
//! row has committed. Anything that goes wrong before the commit leaves the
//! delivery unacked, so the broker redelivers it.
//!
//! The watched set lives in the database: consumers start from it at boot,
//! and discovery (through the management API, when it answers) adds and
//! removes queues, keeps taps bound like their queues, and carries out
//! switches of capture mode (`switch`). Capture never waits for discovery
//! to recover.

mod commit;
mod consumer;
pub mod decode;
pub mod indexer;
pub mod plan;
mod reconcile;
pub mod status;
mod switch;
mod tap;
mod window;

use std::collections::HashMap;
use std::sync::Arc;

use app::model::{tap_queue_name, CaptureMode};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::broker::{AmqpPool, Management};
use crate::config::Config;
use crate::lease::Leases;
use crate::store::{DefaultApplied, Store};
use plan::Plan;
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
    /// Who switches queues to tap when several instances share a database.
    pub leases: Leases,
    /// Wakes discovery early: a retired tap lets its queue be consumed.
    pub rediscover: Arc<Notify>,
}

/// `(vhost, the queue consumed)`: a watched queue, or a tap.
type QueueKey = (String, String);

/// What runs on one consumed queue, and the token that stops it alone.
pub(crate) struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
    role: Role,
}

enum Role {
    /// Consumes the watched queue (`Plan::consume`).
    Consume(Arc<Plan>),
    /// Consumes a tap, filing under its queue (`Plan::tap`).
    Tap(Arc<Plan>),
    /// Retires a tap: unbinds, drains and deletes it (`Ingest::retire_tap`).
    Retire,
}

impl Running {
    fn plan(&self) -> Option<&Arc<Plan>> {
        match &self.role {
            Role::Consume(p) | Role::Tap(p) => Some(p),
            Role::Retire => None,
        }
    }
}

impl Ingest {
    /// Runs until `shutdown`: starts consumers for the stored watched set,
    /// then re-discovers every interval.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut consumers: HashMap<QueueKey, Running> = HashMap::new();
        let mut default_applied = self.apply_default().await;
        if let Err(e) = self.boot(&mut consumers, &shutdown).await {
            tracing::error!(error = %format!("{e:#}"), "reading the watched queues; waiting for discovery");
        }
        loop {
            if !default_applied {
                default_applied = self.apply_default().await;
            }
            if let Err(e) = self.discover(&mut consumers, &shutdown).await {
                tracing::warn!(error = %format!("{e:#}"), "queue discovery failed; capture goes on with the known queues");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.config.capture.discovery_interval) => {}
                _ = self.rediscover.notified() => {}
            }
        }
        for (_, running) in consumers {
            let _ = running.task.await;
        }
        // A switch under way resumes on another instance (or this one,
        // restarted) at once, not after the lease's TTL.
        self.leases.release(crate::lease::Lease::CaptureSwitch).await;
        self.amqp.close_all().await;
    }

    /// Applies `REDRIVE_CAPTURE_MODE` to the queues whose mode came from
    /// it (see `WatchStore::apply_capture_default`), auditing each switch
    /// it records as the operator's are; `false` to try again next round.
    async fn apply_default(&self) -> bool {
        let default = self.config.capture.capture_mode;
        let switched = match self.store.apply_capture_default(default).await {
            Ok(DefaultApplied::Switched(s)) => s,
            Ok(DefaultApplied::Waiting) => {
                tracing::debug!("REDRIVE_CAPTURE_MODE changed: applied once the switch under way ends");
                return false;
            }
            Err(e) => {
                tracing::warn!(error = %e, "applying REDRIVE_CAPTURE_MODE; trying again next round");
                return false;
            }
        };
        for (vhost, queue, direction) in switched {
            tracing::info!(%vhost, %queue, direction = direction.as_str(), "REDRIVE_CAPTURE_MODE changed: switch recorded");
            let entry = crate::store::NewAudit {
                user: crate::store::DEFAULT_ACTOR.into(),
                source: None,
                action: app::model::AuditAction::WatchChange,
                vhost: Some(vhost),
                object: Some(format!(
                    "queue {queue}: mode {default} (REDRIVE_CAPTURE_MODE changed)"
                )),
                exchange: None,
                routing_key: None,
                result: app::model::AuditResult::Ok,
                detail: None,
            };
            if let Err(e) = self.store.append_audit(&entry).await {
                tracing::error!(error = %e, "could not write an audit entry");
            }
        }
        true
    }

    /// Starts from the stored watched set, before (and without) the
    /// management API. A queue whose tap may still hold copies is left to
    /// discovery, which retires the tap first; a switch to tap under way is
    /// left to the instance that runs switches.
    async fn boot(
        &self,
        consumers: &mut HashMap<QueueKey, Running>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let stored = self.store.watched_queues().await?;
        let modes = self.store.capture_modes().await?;
        let switches = self.store.capture_switches().await?;
        for w in stored {
            if switches.iter().any(|s| s.vhost == w.vhost && s.name == w.name) {
                continue;
            }
            let mode = modes
                .get(&w.vhost)
                .and_then(|m| m.get(&w.name))
                .copied()
                .unwrap_or(self.config.capture.capture_mode);
            let Some(tap) = tap_queue_name(&w.name) else {
                if mode == CaptureMode::Consume {
                    self.start(
                        consumers,
                        Role::Consume(Arc::new(Plan::consume(&w.vhost, &w.name))),
                        &w.reason,
                        shutdown,
                    );
                }
                continue;
            };
            match mode {
                CaptureMode::Consume => {
                    if self.queue_exists(&w.vhost, &tap).await == Some(false) {
                        let plan = Plan::consume(&w.vhost, &w.name);
                        self.start(consumers, Role::Consume(Arc::new(plan)), &w.reason, shutdown);
                    }
                }
                CaptureMode::Tap => {
                    let plan = Plan::tap(&w.vhost, &w.name, &tap);
                    self.start(consumers, Role::Tap(Arc::new(plan)), &w.reason, shutdown);
                }
            }
        }
        Ok(())
    }

    /// `queue`'s ready messages and consumers from a passive declare: exact
    /// and current, where the management API's lists are sampled. `None`
    /// when the broker has no such queue.
    pub(super) async fn declared(&self, vhost: &str, queue: &str) -> anyhow::Result<Option<(u32, u32)>> {
        let channel = self.amqp.channel(vhost).await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        match channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
        {
            Ok(q) => {
                let _ = channel.close(200, "counted".into()).await;
                Ok(Some((q.message_count(), q.consumer_count())))
            }
            // The broker closed the channel: nothing to close.
            Err(e) if e.to_string().contains("NOT_FOUND") => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the broker has `queue`; `None` when it cannot say.
    async fn queue_exists(&self, vhost: &str, queue: &str) -> Option<bool> {
        self.declared(vhost, queue).await.ok().map(|q| q.is_some())
    }

    /// [`Ingest::declared`] of a queue that must exist.
    async fn counts_of(&self, vhost: &str, queue: &str) -> anyhow::Result<(u32, u32)> {
        self.declared(vhost, queue)
            .await?
            .ok_or_else(|| anyhow::anyhow!("{queue} does not exist"))
    }

    /// Starts a consumer for `role` unless one runs on its queue already.
    fn start(
        &self,
        consumers: &mut HashMap<QueueKey, Running>,
        role: Role,
        reason: &str,
        shutdown: &CancellationToken,
    ) {
        let Some(plan) = (match &role {
            Role::Consume(p) | Role::Tap(p) => Some(p.clone()),
            Role::Retire => None,
        }) else {
            return;
        };
        let key = (plan.vhost.clone(), plan.source.clone());
        if consumers.get(&key).is_some_and(|r| !r.task.is_finished()) {
            return;
        }
        tracing::info!(vhost = %plan.vhost, queue = %plan.filed, source = %plan.source, mode = %plan.mode, %reason, "capturing queue");
        let stop = shutdown.child_token();
        let task = tokio::spawn(self.clone().supervise(plan, stop.clone()));
        consumers.insert(key, Running { stop, task, role });
    }

    /// A consumer of `tap` filing under `queue`, outside the map (a
    /// retiring tap owns its own).
    fn spawn_tap_consumer(&self, vhost: &str, queue: &str, tap: &str, stop: &CancellationToken) -> Running {
        let plan = Arc::new(Plan::tap(vhost, queue, tap));
        let stop = stop.child_token();
        let task = tokio::spawn(self.clone().supervise(plan.clone(), stop.clone()));
        Running {
            stop,
            task,
            role: Role::Tap(plan),
        }
    }

    /// Starts retiring `tap`, taking over its consumer if one runs.
    fn retire(
        &self,
        consumers: &mut HashMap<QueueKey, Running>,
        (vhost, queue, tap): (&str, &str, &str),
        shutdown: &CancellationToken,
    ) {
        let key = (vhost.to_owned(), tap.to_owned());
        if consumers
            .get(&key)
            .is_some_and(|r| matches!(r.role, Role::Retire) && !r.task.is_finished())
        {
            return;
        }
        let current = consumers.remove(&key);
        let consumer = current.filter(|r| matches!(r.role, Role::Tap(_)) && !r.task.is_finished());
        tracing::info!(%vhost, %queue, %tap, "retiring the tap: unbinding it, storing what it holds, then deleting it");
        let stop = shutdown.child_token();
        let task = tokio::spawn(self.clone().retire_tap(
            vhost.to_owned(),
            queue.to_owned(),
            tap.to_owned(),
            consumer,
            stop.clone(),
        ));
        consumers.insert(
            key,
            Running {
                stop,
                task,
                role: Role::Retire,
            },
        );
    }
}
