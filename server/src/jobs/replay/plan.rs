//! The run's side of a replay plan: how much to claim, when the canary's
//! phase moves on, what an adaptive job waits for, and the rate in force.

use tokio::time::Instant;

use super::{Run, Stop, CLAIM_BATCH, GIVE_BACK_AFTER};
use crate::jobs::bucket::TokenBucket;
use crate::jobs::gate::Admit;
use crate::jobs::pace::{Step, RETURNED_LISTED};

/// The canary's copies counted at most when judging it.
const RETURNED_COUNTED: i64 = 100_000;

impl Run<'_> {
    /// Messages a claim may take: what the rate lets through in a tenth of
    /// a second, and no more than the phase still allows (a canary claims
    /// only its own messages, a watch nothing, so nothing waits under a
    /// replay lease while the job holds).
    pub(super) fn batch(&self) -> usize {
        self.bucket
            .as_ref()
            .map_or(CLAIM_BATCH, |b| b.burst().clamp(1, CLAIM_BATCH))
    }

    pub(super) fn claim_limit(&self) -> usize {
        let batch = self.batch();
        match self.pace.allowance() {
            Some(n) => usize::try_from(n)
                .unwrap_or(0)
                .saturating_sub(self.ready.len())
                .min(batch),
            None => batch,
        }
    }

    pub(super) fn set_rate(&mut self, rate: Option<f64>) {
        self.bucket = rate.map(|r| TokenBucket::new(r, Instant::now()));
    }

    /// Moves the plan on: the gate asked again when due, the canary's
    /// phases, the ramp's rate. `Some` stops the job (a failed canary).
    pub(super) async fn advance(&mut self) -> anyhow::Result<Option<Stop>> {
        self.recheck_gate().await?;
        let settled = self.step.is_none()
            && self.outcomes.is_empty()
            && self.pipeline.in_flight() == 0
            && self.ready.is_empty();
        match self.pace.tick(settled, self.settled_items) {
            Step::Stay => {}
            Step::Record(record) => {
                self.set_rate(self.pace.rate());
                self.r.store.set_phase(self.id, &record).await?;
            }
            Step::Judge => {
                let since = self.pace.canary_since();
                let returned = self
                    .r
                    .store
                    .returned_copies(self.id, since, RETURNED_COUNTED)
                    .await?;
                match self.pace.judge(returned.len() as i64, self.settled_items) {
                    Ok(record) => {
                        self.set_rate(self.pace.rate());
                        self.r.store.set_phase(self.id, &record).await?;
                    }
                    Err(reason) => {
                        let listed = returned.into_iter().take(RETURNED_LISTED as usize).collect();
                        return Ok(Some(Stop::Canary(reason, listed)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Asks the gate again for the route it stopped on; gives back what was
    /// claimed once the wait grows long.
    async fn recheck_gate(&mut self) -> anyhow::Result<()> {
        let Some((_, route)) = self.waiting.clone() else {
            return Ok(());
        };
        if self.gate_retry.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        let gate = self.gate.as_mut().expect("only an adaptive job waits");
        let (vhost, exchange, key) = &route;
        match gate.admit(vhost, exchange, key).await {
            Admit::Go => {
                self.waiting = None;
                self.waiting_since = None;
                self.gate_retry = None;
            }
            Admit::Wait(why) => {
                self.gate_retry = Some(gate.recheck_at());
                self.waiting = Some((why, route));
                let long = self.waiting_since.is_some_and(|t| t.elapsed() >= GIVE_BACK_AFTER);
                if long && !self.ready.is_empty() {
                    self.give_back().await?;
                }
            }
        }
        Ok(())
    }

    /// Releases what was claimed and not sent, to be claimed again later.
    async fn give_back(&mut self) -> anyhow::Result<()> {
        let ids: Vec<i64> = self.ready.drain(..).map(|c| c.item.message_id).collect();
        if let Some(first) = ids.iter().min() {
            self.after = self.after.min(first - 1);
            self.exhausted = false;
        }
        self.r.store.release_claims(&self.r.instance, &ids).await?;
        Ok(())
    }

    /// Shows on the job what it waits for, when that changes.
    pub(super) async fn report_wait(&mut self) -> anyhow::Result<()> {
        let now = self.waiting.as_ref().map(|(why, _)| why.clone());
        if now != self.reported {
            if let Some(why) = &now {
                tracing::info!(job = self.id, %why, "adaptive job waits");
            }
            self.r.store.set_waiting(self.id, now.as_deref()).await?;
            self.reported = now;
        }
        Ok(())
    }
}
