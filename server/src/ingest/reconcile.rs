//! One discovery round: which queues to capture and how, and making the
//! running consumers, taps and switches match.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use app::model::{tap_queue_name, CaptureMode, ConsumerState, TAP_PREFIX};
use tokio_util::sync::CancellationToken;

use super::plan::Plan;
use super::{Ingest, QueueKey, Role, Running};
use crate::lease::Lease;
use crate::store::{CaptureSwitch, SwitchDirection};
use crate::topology::{classify, VhostState, WatchRules, CONSUMER_TAG_PREFIX};

/// How long a resumed switch waits for an empty tap before it publishes its
/// marker again.
const REPUBLISH_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// A watched queue: why, and how it is captured.
type Watched = HashMap<String, (String, CaptureMode)>;

/// What a round knows about switches to tap.
struct Switches {
    pending: Vec<CaptureSwitch>,
    /// Whether this instance holds the switching lease this round.
    mine: bool,
}

impl Switches {
    fn of(&self, vhost: &str, queue: &str) -> Option<&CaptureSwitch> {
        self.pending.iter().find(|s| s.vhost == vhost && s.name == queue)
    }

    /// Whether `queue` is switching under another instance: this one then
    /// runs nothing on the queue or its tap.
    fn elsewhere(&self, vhost: &str, queue: &str) -> bool {
        !self.mine && self.of(vhost, queue).is_some()
    }
}

impl Ingest {
    /// One discovery round. A vhost that fails keeps its current consumers
    /// and does not stop the others.
    pub(super) async fn discover(
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
        let modes = self.store.capture_modes().await?;
        let pending = self.store.capture_switches().await?;
        // The lease is taken only when there is switching to do, and renewed
        // every round (it outlives a slow round: a holder that dies hands it
        // on after `lease::TTL`).
        let wants_switch = !pending.is_empty()
            || consumers
                .values()
                .any(|r| matches!(&r.role, Role::Consume(p) if self.mode_in(&modes, p) == CaptureMode::Tap));
        let mine = wants_switch && self.leases.hold(Lease::CaptureSwitch).await;
        let switches = Switches { pending, mine };
        let mut failed = Vec::new();
        for vhost in &vhosts {
            let result = async {
                let mut state = VhostState::fetch_for_capture(&self.management, vhost).await?;
                state.overrides = self.store.watch_overrides(vhost).await?;
                state.modes = modes.get(vhost).cloned().unwrap_or_default();
                state.default_mode = rules.default_mode;
                let watched: Watched = classify(&state, &rules, &state.overrides)
                    .into_iter()
                    .filter(|(_, v)| v.watched)
                    .map(|(name, v)| {
                        let mode = state.mode_of(&name);
                        (name, (v.reason.unwrap_or_default(), mode))
                    })
                    .collect();
                let reasons = watched.iter().map(|(q, (r, _))| (q.clone(), r.clone())).collect();
                self.store
                    .sync_watched(vhost, &reasons, rules.default_mode)
                    .await?;
                self.reconcile(&state, &watched, &switches, consumers, shutdown)
                    .await;
                anyhow::Ok(())
            }
            .await;
            if let Err(e) = result {
                failed.push(format!("{vhost}: {e:#}"));
            }
        }
        if !failed.is_empty() {
            anyhow::bail!("{}", failed.join("; "));
        }
        Ok(())
    }

    fn mode_in(&self, modes: &crate::topology::Modes, plan: &Plan) -> CaptureMode {
        modes
            .get(&plan.vhost)
            .and_then(|m| m.get(&plan.filed))
            .copied()
            .unwrap_or(self.config.capture.capture_mode)
    }

    /// Makes one vhost's consumers match `watched`.
    async fn reconcile(
        &self,
        state: &VhostState,
        watched: &Watched,
        switches: &Switches,
        consumers: &mut HashMap<QueueKey, Running>,
        shutdown: &CancellationToken,
    ) {
        let vhost = state.name.as_str();
        let wanted = |queue: &str, mode: CaptureMode| watched.get(queue).is_some_and(|(_, m)| *m == mode);
        // What runs and is no longer wanted: stopped, or (a tap) retired.
        let keys: Vec<QueueKey> = consumers.keys().filter(|(v, _)| v == vhost).cloned().collect();
        for key in keys {
            let Some(r) = consumers.get(&key) else { continue };
            if r.task.is_finished() {
                consumers.remove(&key);
                continue;
            }
            match &r.role {
                Role::Consume(p) => {
                    // A switching queue is the lease holder's alone: it
                    // consumes to the marker (see `tap`), or pairs the
                    // originals (see `switch`); other instances stop theirs.
                    let keep = watched.contains_key(&p.filed)
                        && match switches.of(vhost, &p.filed) {
                            Some(_) => switches.mine,
                            None => {
                                wanted(&p.filed, CaptureMode::Consume)
                                    || (wanted(&p.filed, CaptureMode::Tap) && switches.mine)
                            }
                        };
                    if !keep {
                        tracing::info!(%vhost, queue = %p.filed, "no longer consuming queue");
                        r.stop.cancel();
                        if !wanted(&p.filed, CaptureMode::Tap) {
                            self.status.remove(vhost, &p.filed);
                        }
                        consumers.remove(&key);
                    }
                }
                Role::Tap(p) => {
                    let blocked = switches.elsewhere(vhost, &p.filed);
                    if !wanted(&p.filed, CaptureMode::Tap) || blocked {
                        let (queue, tap) = (p.filed.clone(), p.source.clone());
                        if blocked {
                            r.stop.cancel();
                            consumers.remove(&key);
                        } else {
                            self.retire(consumers, (vhost, &queue, &tap), shutdown);
                        }
                    }
                }
                Role::Retire => {}
            }
        }
        for (queue, (reason, mode)) in watched {
            let tap = tap_queue_name(queue);
            match (mode, tap) {
                (CaptureMode::Consume, Some(tap))
                    if state.queues.iter().any(|q| q.name == tap)
                        || consumers.contains_key(&(vhost.to_owned(), tap.clone())) =>
                {
                    // The tap is retired first; the queue is consumed once it is gone.
                    if !consumers.contains_key(&(vhost.to_owned(), tap.clone()))
                        && !switches.elsewhere(vhost, queue)
                    {
                        self.retire(consumers, (vhost, queue, &tap), shutdown);
                    }
                }
                (CaptureMode::Consume, _) => match switches.of(vhost, queue) {
                    None => self.start(
                        consumers,
                        Role::Consume(Arc::new(Plan::consume(vhost, queue))),
                        reason,
                        shutdown,
                    ),
                    // Back from tap, one instance pairs the originals with
                    // their copies; the others consume once it is done.
                    Some(s) if s.direction == SwitchDirection::ToConsume && switches.mine => {
                        if let Err(e) = self.take_back(queue, reason, s, consumers, shutdown).await {
                            let error = format!("{e:#}");
                            tracing::warn!(%vhost, %queue, %error, "taking the queue back from its tap");
                            self.status
                                .set(vhost, queue, ConsumerState::Reconnecting, Some(error));
                        }
                    }
                    Some(_) => {}
                },
                (CaptureMode::Tap, None) => {
                    self.status.set(vhost, queue, ConsumerState::Reconnecting, Some(format!(
                        "cannot tap {queue}: {TAP_PREFIX}{queue} would be longer than a queue name may be (255 bytes)"
                    )));
                }
                (CaptureMode::Tap, Some(tap)) => {
                    if let Err(e) = self
                        .tap(state, queue, &tap, reason, switches, consumers, shutdown)
                        .await
                    {
                        let error = format!("{e:#}");
                        tracing::warn!(%vhost, %queue, %error, "tapping the queue");
                        self.status
                            .set(vhost, queue, ConsumerState::Reconnecting, Some(error));
                    }
                }
            }
        }
        // Switches of queues no longer captured (or gone) end with them.
        for s in switches
            .pending
            .iter()
            .filter(|s| s.vhost == vhost && !watched.contains_key(&s.name))
        {
            if let Err(e) = self.store.forget_capture_switch(vhost, &s.name, None).await {
                tracing::warn!(%vhost, queue = %s.name, error = %e, "forgetting the switch of a queue no longer captured");
            }
        }
        // Taps whose queue is gone or no longer tapped.
        for q in state.queues.iter().filter(|q| q.name.starts_with(TAP_PREFIX)) {
            let queue = &q.name[TAP_PREFIX.len()..];
            let key = (vhost.to_owned(), q.name.clone());
            if !wanted(queue, CaptureMode::Tap)
                && !consumers.contains_key(&key)
                && !switches.elsewhere(vhost, queue)
            {
                self.retire(consumers, (vhost, queue, &q.name), shutdown);
            }
        }
    }

    /// Keeps `queue` tapped: its tap declared and bound like it, a consumer
    /// on the tap, and a switch from consume carried out (see `switch`).
    #[allow(clippy::too_many_arguments)]
    async fn tap(
        &self,
        state: &VhostState,
        queue: &str,
        tap: &str,
        reason: &str,
        switches: &Switches,
        consumers: &mut HashMap<QueueKey, Running>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let vhost = state.name.as_str();
        let tap_key = (vhost.to_owned(), tap.to_owned());
        if consumers
            .get(&tap_key)
            .is_some_and(|r| matches!(r.role, Role::Retire))
        {
            return Ok(()); // back to tap once the old tap is gone
        }
        let Some(stats) = state.queues.iter().find(|q| q.name == queue) else {
            return Ok(());
        };
        self.ensure_tap(state, stats, tap).await?;
        let source_key = (vhost.to_owned(), queue.to_owned());
        let source = consumers
            .get(&source_key)
            .filter(|r| matches!(r.role, Role::Consume(_)) && !r.task.is_finished())
            .and_then(|r| r.plan().cloned());
        let pending = switches.of(vhost, queue);
        if pending.is_some_and(|s| s.direction != SwitchDirection::ToTap) {
            return Ok(()); // a switch back not yet ended: see `reconcile`
        }
        // Redrive consumers of the queue itself, this instance's or
        // another's (stopping, or yet to see the new mode): while there are
        // any, copies may be captured twice, so no plain tap consumer starts.
        let on_queue = state
            .consumers
            .iter()
            .filter(|c| c.queue.name == queue && c.consumer_tag.starts_with(CONSUMER_TAG_PREFIX))
            .count();
        if pending.is_none() && source.is_none() && on_queue == 0 {
            // A fresh tap, or a switch long done: capture the copies.
            self.start(
                consumers,
                Role::Tap(Arc::new(Plan::tap(vhost, queue, tap))),
                reason,
                shutdown,
            );
            return Ok(());
        }
        if !switches.mine {
            // Another instance switches this queue: neither side runs here.
            if let Some(r) = consumers.remove(&source_key) {
                r.stop.cancel();
            }
            return Ok(());
        }
        let switch = match pending {
            Some(s) => s.clone(),
            None => {
                let marker = uuid::Uuid::new_v4().to_string();
                self.store.begin_capture_switch(vhost, queue, &marker).await?;
                tracing::info!(%vhost, %queue, %marker, "switching from consume to tap");
                CaptureSwitch {
                    vhost: vhost.to_owned(),
                    name: queue.to_owned(),
                    direction: SwitchDirection::ToTap,
                    marker,
                    marker_sent: false,
                    source_done: false,
                    tap_done: false,
                }
            }
        };
        let tap_was_running = consumers.contains_key(&tap_key);
        if !switch.tap_done && !tap_was_running {
            let plan = Plan::tap(vhost, queue, tap);
            plan.skip_until(&switch.marker);
            self.start(consumers, Role::Tap(Arc::new(plan)), reason, shutdown);
        }
        if switch.source_done {
            return Ok(());
        }
        let source = match source {
            Some(p) => p,
            None => {
                // Resumed (after a restart, or from another instance): its
                // cut is the recorded marker, set before it can meet it.
                let plan = Arc::new(Plan::consume(vhost, queue));
                plan.stop_at(&switch.marker);
                self.start(consumers, Role::Consume(plan.clone()), reason, shutdown);
                return Ok(()); // listed on the broker by the next round
            }
        };
        // The marker goes out once this instance's consumer is the queue's
        // only Redrive consumer, so the cut is one queue order. The
        // management API lists consumers late, so the broker's own count
        // (exact, from a passive declare) must agree: all of them but the
        // service's own are this one.
        let foreign = state
            .consumers
            .iter()
            .filter(|c| c.queue.name == queue && !c.consumer_tag.starts_with(CONSUMER_TAG_PREFIX))
            .count();
        let (_, consuming) = self.counts_of(vhost, queue).await?;
        let on_queue = on_queue.max((consuming as usize).saturating_sub(foreign));
        if on_queue > 1 {
            tracing::info!(%vhost, %queue, on_queue, "waiting for the other instances to stop consuming before the cut");
            return Ok(());
        }
        source.stop_at(&switch.marker);
        if switch.tap_done {
            source.marker_sent(); // the tap met it: it is out
        }
        if source.marker_unsent() {
            // A switch whose marker may be out already (recorded as sent,
            // then a restart): if so it is in the tap too (one routing
            // decision put it in both), where the skipping consumer meets
            // it. It is published again only once that consumer has run a
            // round and the tap holds nothing, so the queue does not get a
            // second marker. Under a flow that never lets the tap empty,
            // after `REPUBLISH_AFTER`: a second marker at worst, which
            // Redrive drops wherever it meets it.
            if switch.marker_sent {
                if !tap_was_running {
                    return Ok(());
                }
                if source.since.elapsed() < REPUBLISH_AFTER && self.counts_of(vhost, tap).await?.0 > 0 {
                    return Ok(());
                }
            }
            self.store
                .capture_marker_sending(vhost, queue, &switch.marker)
                .await?;
            super::switch::publish_marker(&self.amqp, vhost, queue, Some(tap), &switch.marker).await?;
            source.marker_sent();
            tracing::info!(%vhost, %queue, marker = %switch.marker, "published the capture-mode marker");
        }
        Ok(())
    }
}
