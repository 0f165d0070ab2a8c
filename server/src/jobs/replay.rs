//! A bulk replay job through the [`Pipeline`]: claims in batches, a window
//! of unconfirmed publishes, verdicts recorded in batches.
//!
//! Each message keeps every guarantee of a single replay: it is claimed
//! under the replay lease before it is published, `replayed` only after the
//! broker's confirm, a return or nack fails only that message, and a publish
//! whose outcome is unknown is flagged, never retried on its own. Pause and
//! cancel are seen within [`CONTROL_EVERY`]: nothing more is published, what
//! is in flight is settled, and what was claimed but not sent is given back.

use std::collections::VecDeque;
use std::time::Duration;

use app::model::{JobState, ReplayTarget};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::bucket::TokenBucket;
use crate::replay::pipeline::{Pipeline, Verdict};
use crate::replay::{prepare, FailureKind};
use crate::service::Redrive;
use crate::store::{Claimed, JobReplayOutcome, JobSpec, Settlement};

/// Publishes awaiting their confirm at most.
const WINDOW: usize = 512;
/// Messages claimed per transaction at most.
const CLAIM_BATCH: usize = 256;
/// Verdicts recorded per transaction at most, and how long one may wait.
const SETTLE_BATCH: usize = 512;
const SETTLE_EVERY: Duration = Duration::from_millis(100);
/// How often the job's state is read (pause, cancel).
const CONTROL_EVERY: Duration = Duration::from_millis(250);
/// How often the loop check looks for copies that came back.
const LOOP_CHECK_EVERY: Duration = Duration::from_millis(500);
/// Replays needed in the window before the loop check may pause a job.
const LOOP_MIN_SAMPLE: i64 = 5;

/// What a publish in flight stands for.
struct Item {
    message_id: i64,
    vhost: String,
    replay_id: String,
    exchange: String,
    routing_key: String,
    target: String,
}

/// Why a job stops before its last message.
enum Stop {
    /// Paused or cancelled by an operator.
    Control,
    Shutdown,
    /// The loop check paused it, with this note.
    Loop(String),
    /// Nothing could be published (broker unreachable): retried later.
    Broker(String),
}

/// Marks a job completed.
pub(super) async fn complete(r: &Redrive, id: i64) -> anyhow::Result<()> {
    r.store
        .set_job_state(id, &[JobState::Running], JobState::Completed, None)
        .await?;
    tracing::info!(job = id, "job completed");
    Ok(())
}

/// Runs a replay job until it is done, stopped, or cannot go on.
pub(super) async fn run(
    r: &Redrive,
    spec: &JobSpec,
    shutdown: &CancellationToken,
    mut retrying: bool,
) -> anyhow::Result<()> {
    let mut job = Run::new(r, spec);
    let mut stop: Option<Stop> = None;
    let mut next_control = Instant::now() + CONTROL_EVERY;
    loop {
        if stop.is_none() && shutdown.is_cancelled() {
            stop = Some(Stop::Shutdown);
        }
        if stop.is_none() && Instant::now() >= next_control {
            next_control = Instant::now() + CONTROL_EVERY;
            if r.store.job_spec(spec.id).await?.state != JobState::Running.as_str() {
                stop = Some(Stop::Control);
            }
        }
        if stop.is_none() {
            job.claim().await?;
            job.publish().await;
        }
        if job.idle(stop.is_some()) {
            job.finish().await?;
            return match stop {
                None => complete(r, spec.id).await,
                Some(Stop::Control | Stop::Shutdown) => Ok(()),
                Some(Stop::Loop(note)) => {
                    tracing::warn!(job = spec.id, %note, "job paused itself");
                    r.store
                        .set_job_state(spec.id, &[JobState::Running], JobState::Paused, Some(&note))
                        .await?;
                    Ok(())
                }
                Some(Stop::Broker(e)) => Err(anyhow::anyhow!(e)),
            };
        }
        if stop.is_none() && job.can_claim() {
            // Only skipped items were claimed: claim again without waiting.
            continue;
        }
        let mut wake = next_control;
        if let Some(t) = job.settle_due() {
            wake = wake.min(t);
        }
        if stop.is_none() {
            if let Some(t) = job.token_due() {
                wake = wake.min(t);
            }
        }
        tokio::select! {
            verdicts = job.pipeline.verdicts(), if job.pipeline.in_flight() > 0 => {
                if let Some(e) = job.take(verdicts) {
                    stop.get_or_insert(Stop::Broker(e));
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
            _ = shutdown.cancelled(), if stop.is_none() => stop = Some(Stop::Shutdown),
        }
        if job.settle_due().is_some_and(|t| t <= Instant::now()) || job.outcomes.len() >= SETTLE_BATCH {
            job.settle().await?;
            if std::mem::take(&mut retrying) {
                // Progress again: the "waiting" note no longer holds.
                r.store.set_job_note(spec.id, None).await?;
            }
            if stop.is_none() {
                if let Some(note) = job.loop_note().await? {
                    stop = Some(Stop::Loop(note));
                }
            }
        }
    }
}

/// One run of a replay job: what is claimed, in flight and to record.
struct Run<'a> {
    r: &'a Redrive,
    id: i64,
    user: &'a str,
    target: ReplayTarget,
    pipeline: Pipeline<Item>,
    bucket: Option<TokenBucket>,
    claim_size: usize,
    /// Claimed, not yet published.
    claimed: VecDeque<Claimed>,
    /// Claimed, then not published because the broker could not be reached.
    unsent: Vec<i64>,
    after: i64,
    exhausted: bool,
    outcomes: Vec<JobReplayOutcome>,
    oldest_outcome: Option<Instant>,
    loops: LoopWatch,
}

impl<'a> Run<'a> {
    fn new(r: &'a Redrive, spec: &'a JobSpec) -> Self {
        let bucket = spec
            .rate_per_sec
            .map(|rate| TokenBucket::new(rate, Instant::now()));
        Self {
            r,
            id: spec.id,
            user: &spec.actor,
            target: ReplayTarget {
                exchange: spec.target_exchange.clone(),
                routing_key: spec.target_routing_key.clone(),
                edit: None,
            },
            pipeline: r.publisher.pipeline(),
            claim_size: bucket
                .as_ref()
                .map_or(CLAIM_BATCH, |b| b.burst().clamp(1, CLAIM_BATCH)),
            bucket,
            claimed: VecDeque::new(),
            unsent: Vec::new(),
            after: 0,
            exhausted: false,
            outcomes: Vec::new(),
            oldest_outcome: None,
            loops: LoopWatch::new(r.config.loop_window, r.config.loop_threshold),
        }
    }

    fn can_claim(&self) -> bool {
        self.claimed.is_empty() && !self.exhausted && self.pipeline.in_flight() < WINDOW
    }

    async fn claim(&mut self) -> anyhow::Result<()> {
        if !self.can_claim() {
            return Ok(());
        }
        let limit = self.claim_size.min(WINDOW - self.pipeline.in_flight());
        let owner = &*self.r.instance;
        let batch = self
            .r
            .store
            .claim_job_replays(self.id, owner, self.after, limit, || {
                uuid::Uuid::now_v7().to_string()
            })
            .await?;
        match batch.last {
            Some(last) => self.after = last,
            None => self.exhausted = true,
        }
        self.claimed.extend(batch.claimed);
        Ok(())
    }

    /// Publishes claimed messages while the window and the rate cap allow.
    async fn publish(&mut self) {
        while self.pipeline.in_flight() < WINDOW && !self.claimed.is_empty() {
            if let Some(b) = self.bucket.as_mut() {
                if !b.try_take(Instant::now()) {
                    return;
                }
            }
            let Some(c) = self.claimed.pop_front() else { return };
            let m = &c.message;
            match prepare(m, &self.target, c.replay_id.clone()) {
                Ok(out) => {
                    let item = Item {
                        message_id: m.id(),
                        vhost: m.vhost().to_owned(),
                        replay_id: c.replay_id,
                        exchange: out.exchange.clone(),
                        routing_key: out.routing_key.clone(),
                        target: out.target(),
                    };
                    self.pipeline.publish(m.vhost(), &out, item).await;
                }
                Err(e) => {
                    let exchange = self.target.exchange.as_deref().or(m.original_exchange());
                    let item = Item {
                        message_id: m.id(),
                        vhost: m.vhost().to_owned(),
                        replay_id: c.replay_id,
                        exchange: exchange.unwrap_or_default().to_owned(),
                        routing_key: String::new(),
                        target: String::new(),
                    };
                    self.record(item, Settlement::Failed, Some(e.to_string()));
                }
            }
        }
    }

    fn record(&mut self, item: Item, settlement: Settlement, error: Option<String>) {
        self.oldest_outcome.get_or_insert_with(Instant::now);
        self.outcomes.push(JobReplayOutcome {
            message_id: item.message_id,
            vhost: item.vhost,
            replay_id: item.replay_id,
            exchange: item.exchange,
            routing_key: item.routing_key,
            target: item.target,
            settlement,
            error,
        });
    }

    /// Sorts verdicts into outcomes; returns why publishing should stop
    /// when nothing could be sent at all.
    fn take(&mut self, verdicts: Vec<Verdict<Item>>) -> Option<String> {
        let mut unreachable = None;
        for Verdict { tag, result } in verdicts {
            match result {
                Ok(()) => self.record(tag, Settlement::Replayed, None),
                Err(e) => match e.kind() {
                    FailureKind::Refused => self.record(tag, Settlement::Failed, Some(e.to_string())),
                    FailureKind::Unknown => {
                        tracing::warn!(job = self.id, message = tag.message_id, replay_id = %tag.replay_id, error = %e, "replay outcome unknown; flagged");
                        let why = format!(
                            "{e}; it may or may not have been delivered. The message is flagged; a retry reuses \
                             replay id {}",
                            tag.replay_id
                        );
                        self.record(tag, Settlement::Unknown, Some(why));
                    }
                    FailureKind::NotPublished => {
                        // Nothing was sent: the message goes back to failed
                        // and its item stays pending for the retry.
                        self.unsent.push(tag.message_id);
                        unreachable = Some(e.to_string());
                    }
                },
            }
        }
        unreachable
    }

    fn settle_due(&self) -> Option<Instant> {
        self.oldest_outcome.map(|t| t + SETTLE_EVERY)
    }

    fn token_due(&self) -> Option<Instant> {
        let waiting = !self.claimed.is_empty() && self.pipeline.in_flight() < WINDOW;
        self.bucket.as_ref().filter(|_| waiting).map(TokenBucket::next_at)
    }

    /// Records the outcomes so far, retrying while the database fails: a
    /// confirmed replay must not stay `replaying` because one write failed.
    async fn settle(&mut self) -> anyhow::Result<()> {
        const SETTLE_FOR: Duration = Duration::from_secs(60);
        if self.outcomes.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let mut wait = Duration::from_millis(50);
        let owner = &*self.r.instance;
        loop {
            match self
                .r
                .store
                .settle_job_replays(self.id, owner, self.user, &self.outcomes)
                .await
            {
                Ok(()) => break,
                Err(e) if started.elapsed() < SETTLE_FOR => {
                    tracing::warn!(job = self.id, error = %e, "recording replay outcomes failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                // The lease sweep flags what stays unrecorded.
                Err(e) => return Err(e.into()),
            }
        }
        let replayed = self
            .outcomes
            .iter()
            .filter(|o| o.settlement == Settlement::Replayed)
            .count();
        self.loops.settled(replayed as i64);
        self.outcomes.clear();
        self.oldest_outcome = None;
        Ok(())
    }

    /// Whether the run has nothing left to wait for.
    fn idle(&self, stopping: bool) -> bool {
        self.pipeline.in_flight() == 0 && (stopping || (self.claimed.is_empty() && self.exhausted))
    }

    /// Records what is left and gives back what was never sent.
    async fn finish(&mut self) -> anyhow::Result<()> {
        self.settle().await?;
        let mut unsent = std::mem::take(&mut self.unsent);
        unsent.extend(self.claimed.drain(..).map(|c| c.message.id()));
        self.r.store.release_claims(&self.r.instance, &unsent).await?;
        self.pipeline.close().await;
        Ok(())
    }

    async fn loop_note(&mut self) -> anyhow::Result<Option<String>> {
        if !self.loops.due() {
            return Ok(None);
        }
        let (replayed, since) = self.loops.window();
        if replayed < LOOP_MIN_SAMPLE {
            return Ok(None);
        }
        let back = self.r.store.job_copies_back(self.id, since).await?;
        Ok(self.loops.verdict(replayed, back))
    }
}

/// Replays that come straight back mean the cause is not fixed: replaying
/// more only grows the error queue. Counts this run's confirmed replays per
/// settlement in memory, so a check costs one look at the (few) copies
/// that came back, never a rescan of the job.
struct LoopWatch {
    window: Duration,
    threshold: f64,
    started_ms: i64,
    /// (settled at, replays confirmed), oldest first.
    settled: VecDeque<(i64, i64)>,
    next_check: Instant,
}

impl LoopWatch {
    fn new(window: Duration, threshold: f64) -> Self {
        Self {
            window,
            threshold,
            started_ms: crate::store::now_ms(),
            settled: VecDeque::new(),
            next_check: Instant::now(),
        }
    }

    fn settled(&mut self, replayed: i64) {
        if replayed > 0 {
            self.settled.push_back((crate::store::now_ms(), replayed));
        }
    }

    fn due(&mut self) -> bool {
        if Instant::now() < self.next_check {
            return false;
        }
        self.next_check = Instant::now() + LOOP_CHECK_EVERY;
        true
    }

    /// Replays confirmed within the window (this run only), and its start.
    fn window(&mut self) -> (i64, i64) {
        let since = (crate::store::now_ms() - self.window.as_millis() as i64).max(self.started_ms);
        while self.settled.front().is_some_and(|(at, _)| *at < since) {
            self.settled.pop_front();
        }
        (self.settled.iter().map(|(_, n)| n).sum(), since)
    }

    fn verdict(&self, replayed: i64, back: i64) -> Option<String> {
        if (back as f64) <= self.threshold * replayed as f64 {
            return None;
        }
        Some(format!(
            "paused: {back} of the last {replayed} replayed messages ({:.0}%) failed again within {}s; \
             a replay loop? Fix the consumer, then resume.",
            100.0 * back as f64 / replayed as f64,
            self.window.as_secs()
        ))
    }
}
