//! A bulk replay job through the [`Pipeline`]: a window of unconfirmed
//! publishes on one side, database steps (verdicts recorded, next messages
//! claimed, one transaction each) on the other, running side by side.
//!
//! Each message keeps every guarantee of a single replay: it is claimed
//! under the replay lease before it is published, `replayed` only after the
//! broker's confirm, a return or nack fails only that message, and a publish
//! whose outcome is unknown is flagged, never retried on its own. Pause and
//! cancel are seen within [`CONTROL_EVERY`]: nothing more is published, what
//! is in flight is settled, and what was claimed but not sent is given back.

use std::collections::VecDeque;
use std::time::Duration;

use app::model::{JobState, ReplayPlan, ReplayTarget};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::bucket::TokenBucket;
use super::gate::{Admit, Gate};
use super::loops::{LoopWatch, MIN_SAMPLE};
use super::pace::Pace;
use super::step::{self, Item, Ready, StepInput, Stepped};
use super::Jobs;
use crate::replay::pipeline::{Pipeline, Verdict};
use crate::replay::FailureKind;
use crate::store::{ClaimRequest, JobReplayOutcome, JobSpec, Settlement};

mod plan;

/// Publishes awaiting their confirm at most. 1,024 rather than 512 took
/// the operator's case from 0.96–1.05× the shovel to 1.04–1.07×
/// (BENCHMARKS.md, issue 28); the price is that a connection lost mid-job
/// leaves up to this many replays flagged "outcome unknown".
const WINDOW: usize = 1024;
/// Messages claimed per step at most; another step claims when fewer than
/// that wait to be published, so a batch is ready while the next is
/// claimed (with half, the window ran dry while a step's fsync was slow).
const CLAIM_BATCH: usize = 1024;
/// Verdicts that make a step due at once, and how long one may wait.
const SETTLE_BATCH: usize = 1024;
const SETTLE_EVERY: Duration = Duration::from_millis(100);
/// How often the job's state is read (pause, cancel).
const CONTROL_EVERY: Duration = Duration::from_millis(250);
/// How long a job whose last items' messages another replay holds waits
/// before looking at them again: they settle with that replay, or with the
/// sweep of an instance that died.
const HELD_RETRY: Duration = Duration::from_secs(1);

/// Why a job stops before its last message.
enum Stop {
    /// Paused or cancelled by an operator.
    Control,
    Shutdown,
    /// The loop check paused it, with this note.
    Loop(String),
    /// Its canary's copies came back: the reason, and which came back.
    Canary(String, Vec<i64>),
    /// Nothing could be published (broker unreachable): retried later.
    Broker(String),
}

/// Marks a job completed.
pub(super) async fn complete(r: &Jobs, id: i64) -> anyhow::Result<()> {
    r.store
        .set_job_state(id, &[JobState::Running], JobState::Completed, None)
        .await?;
    tracing::info!(job = id, "job completed");
    Ok(())
}

/// The running step's result; never resolves while no step runs.
async fn step_done(step: &mut Option<JoinHandle<anyhow::Result<Stepped>>>) -> anyhow::Result<Stepped> {
    match step.as_mut() {
        Some(handle) => handle
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("job step: {e}"))),
        None => std::future::pending().await,
    }
}

/// Runs a replay job until it is done, stopped, or cannot go on.
#[tracing::instrument(name = "replay_job", skip_all, fields(job = spec.id))]
pub(super) async fn run(
    r: &Jobs,
    spec: &JobSpec,
    shutdown: &CancellationToken,
    mut retrying: bool,
) -> anyhow::Result<()> {
    let plan = spec.plan()?;
    let (pace, phase) = Pace::begin(spec, plan.clone());
    r.store.set_phase(spec.id, &phase).await?;
    let mut job = Run::new(r, spec, &plan, pace);
    let mut stop: Option<Stop> = None;
    let mut next_control = Instant::now() + CONTROL_EVERY;
    loop {
        if stop.is_none() && shutdown.is_cancelled() {
            stop = Some(Stop::Shutdown);
        }
        if stop.is_none() && Instant::now() >= next_control {
            next_control = Instant::now() + CONTROL_EVERY;
            if r.store.job_spec(spec.id).await?.state != JobState::Running {
                stop = Some(Stop::Control);
            }
        }
        if stop.is_none() {
            if let Some(s) = job.advance().await? {
                stop = Some(s);
            }
        }
        job.start_step(stop.is_some());
        if stop.is_none() {
            job.publish().await;
            job.report_wait().await?;
        }
        if job.idle(stop.is_some()) {
            job.finish().await?;
            return match stop {
                None => complete(r, spec.id).await,
                Some(Stop::Control | Stop::Shutdown) => Ok(()),
                Some(Stop::Loop(note)) => {
                    tracing::warn!(job = spec.id, %note, "job paused itself");
                    r.store.pause_for(spec.id, &note, &[]).await?;
                    Ok(())
                }
                Some(Stop::Canary(reason, returned)) => {
                    tracing::warn!(job = spec.id, %reason, "job paused after its canary");
                    r.store.pause_for(spec.id, &reason, &returned).await?;
                    Ok(())
                }
                Some(Stop::Broker(e)) => Err(anyhow::anyhow!(e)),
            };
        }
        let mut wake = next_control;
        if let Some(t) = job.oldest_outcome {
            wake = wake.min(t + SETTLE_EVERY);
        }
        if let Some(t) = job.rescan_at {
            wake = wake.min(t);
        }
        if stop.is_none() {
            let due = [
                job.token_due(),
                job.pace.watch_ends(),
                job.pace.next_doubling(),
                job.gate_retry,
            ];
            wake = due.into_iter().flatten().fold(wake, Instant::min);
        }
        let in_flight = job.pipeline.in_flight() > 0;
        tokio::select! {
            verdicts = job.pipeline.verdicts(), if in_flight => {
                if let Some(e) = job.take(verdicts) {
                    stop.get_or_insert(Stop::Broker(e));
                }
            }
            stepped = step_done(&mut job.step) => {
                job.step = None;
                r.indexer.foreground_commit();
                let stepped = match stepped {
                    Ok(s) => s,
                    Err(e) => {
                        // Never sent: give them back (best effort; the lease
                        // sweep flags whatever stays claimed).
                        let _ = job.finish().await;
                        return Err(e);
                    }
                };
                job.stepped(stepped);
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
            _ = tokio::time::sleep_until(wake) => {}
            _ = shutdown.cancelled(), if stop.is_none() => stop = Some(Stop::Shutdown),
        }
    }
}

/// One run of a replay job: what is claimed, in flight and to record.
struct Run<'a> {
    r: &'a Jobs,
    id: i64,
    user: &'a str,
    target: ReplayTarget,
    pipeline: Pipeline<Item>,
    bucket: Option<TokenBucket>,
    step: Option<JoinHandle<anyhow::Result<Stepped>>>,
    /// Claimed and prepared, not yet published.
    ready: VecDeque<Ready>,
    /// Claimed, then not published because the broker could not be reached.
    unsent: Vec<i64>,
    after: i64,
    exhausted: bool,
    /// Whether this pass over the job left items pending (another replay
    /// holds their message), and when to go over them again.
    held: bool,
    rescan_at: Option<Instant>,
    outcomes: Vec<JobReplayOutcome>,
    oldest_outcome: Option<Instant>,
    loops: LoopWatch,
    pace: Pace,
    /// Copies back that the ramp has already reacted to.
    copies_seen: i64,
    /// Items settled, counted from the job's figure when this run began.
    settled_items: i64,
    /// An adaptive job's gate, what it waits for (and on which route), and
    /// when to ask again; `reported` is what the job's page shows.
    gate: Option<Gate>,
    waiting: Option<(String, Route)>,
    waiting_since: Option<Instant>,
    gate_retry: Option<Instant>,
    reported: Option<String>,
}

/// Where a copy goes: vhost, exchange, routing key.
type Route = (String, String, String);

/// How long claimed messages may wait on an adaptive job's gate before
/// they are given back (a claim is under a lease; a long wait must not
/// look like an abandoned replay).
const GIVE_BACK_AFTER: Duration = Duration::from_secs(3);

impl<'a> Run<'a> {
    fn new(r: &'a Jobs, spec: &'a JobSpec, plan: &ReplayPlan, pace: Pace) -> Self {
        let bucket = pace.rate().map(|rate| TokenBucket::new(rate, Instant::now()));
        let gate = plan.adaptive.then(|| {
            Gate::new(
                r.management.clone(),
                r.publisher.amqp().clone(),
                plan.max_backlog(),
            )
        });
        Self {
            r,
            id: spec.id,
            user: &spec.actor,
            target: ReplayTarget {
                exchange: spec.target_exchange.clone(),
                routing_key: spec.target_routing_key.clone(),
                edit: None,
                to_queue: plan.to_queue.clone(),
                to_original_queue: plan.to_original_queue,
            },
            pipeline: r.publisher.pipeline(),
            bucket,
            step: None,
            ready: VecDeque::new(),
            unsent: Vec::new(),
            after: 0,
            exhausted: false,
            held: false,
            rescan_at: None,
            outcomes: Vec::new(),
            oldest_outcome: None,
            loops: LoopWatch::new(r.config.replay.loop_window, r.config.replay.loop_threshold),
            pace,
            copies_seen: 0,
            settled_items: spec.settled,
            gate,
            waiting: None,
            waiting_since: None,
            gate_retry: None,
            reported: None,
        }
    }

    /// Starts a database step when none runs and one is due: messages to
    /// claim, or verdicts to record.
    fn start_step(&mut self, stopping: bool) {
        if self.step.is_some() {
            return;
        }
        if self.rescan_at.is_some_and(|t| Instant::now() >= t) {
            self.rescan_at = None;
        }
        let limit = self.claim_limit();
        let claim = (!stopping
            && !self.exhausted
            && self.rescan_at.is_none()
            && self.waiting.is_none()
            && limit > 0
            && self.ready.len() < self.batch())
        .then_some(ClaimRequest {
            after: self.after,
            limit,
        });
        let settle_due = !self.outcomes.is_empty()
            && (stopping
                || self.outcomes.len() >= SETTLE_BATCH
                || self.oldest_outcome.is_some_and(|t| t.elapsed() >= SETTLE_EVERY));
        if claim.is_none() && !settle_due {
            return;
        }
        self.oldest_outcome = None;
        self.step = Some(step::spawn(StepInput {
            store: self.r.store.clone(),
            job_id: self.id,
            owner: self.r.instance.clone(),
            user: self.user.to_owned(),
            target: self.target.clone(),
            outcomes: std::mem::take(&mut self.outcomes),
            claim,
        }));
    }

    fn stepped(&mut self, stepped: Stepped) {
        if stepped.claimed_any {
            self.held |= stepped.held > 0;
            match stepped.last {
                Some(last) => self.after = last,
                // Held items left: another pass once their holder is done.
                None if self.held => {
                    self.held = false;
                    self.after = 0;
                    self.rescan_at = Some(Instant::now() + HELD_RETRY);
                }
                None => self.exhausted = true,
            }
        }
        self.ready.extend(stepped.claimed);
        self.loops.settled(stepped.replayed);
    }

    /// Publishes ready messages while the window and the rate cap allow.
    async fn publish(&mut self) {
        if self.waiting.is_some() {
            return;
        }
        while self.pipeline.in_flight() < WINDOW && !self.ready.is_empty() {
            if self.pace.allowance() == Some(0) {
                return;
            }
            // The rate before the gate: an admission takes from the target
            // queues' budgets, so it must be followed by the publish.
            if let Some(b) = self.bucket.as_mut() {
                if !b.try_take(Instant::now()) {
                    return;
                }
            }
            if let Some(front) = self.ready.front().filter(|r| r.out.is_ok()) {
                if let Some(gate) = self.gate.as_mut() {
                    let i = &front.item;
                    if let Admit::Wait(why) = gate.admit(&i.vhost, &i.exchange, &i.routing_key).await {
                        let route = (i.vhost.clone(), i.exchange.clone(), i.routing_key.clone());
                        self.waiting = Some((why, route));
                        self.waiting_since.get_or_insert_with(Instant::now);
                        self.gate_retry = Some(gate.recheck_at());
                        return;
                    }
                }
            }
            let Some(Ready { item, out }) = self.ready.pop_front() else {
                return;
            };
            self.pace.sent();
            match out {
                Ok(out) => {
                    let vhost = item.vhost.clone();
                    self.pipeline.publish(&vhost, out, item).await;
                }
                Err(e) => self.record(item, Settlement::Failed, Some(e)),
            }
        }
    }

    fn record(&mut self, item: Item, settlement: Settlement, error: Option<String>) {
        self.oldest_outcome.get_or_insert_with(Instant::now);
        self.settled_items += 1;
        self.r
            .metrics
            .replayed(crate::metrics::ReplayPath::Job, settlement.into());
        self.outcomes.push(JobReplayOutcome {
            replay: item,
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

    fn token_due(&self) -> Option<Instant> {
        let waiting = !self.ready.is_empty() && self.pipeline.in_flight() < WINDOW;
        self.bucket.as_ref().filter(|_| waiting).map(TokenBucket::next_at)
    }

    /// Whether the run has nothing left to wait for.
    fn idle(&self, stopping: bool) -> bool {
        self.step.is_none()
            && self.outcomes.is_empty()
            && self.pipeline.in_flight() == 0
            && (stopping || (self.ready.is_empty() && self.exhausted))
    }

    /// Gives back what was claimed and never sent.
    async fn finish(&mut self) -> anyhow::Result<()> {
        let mut unsent = std::mem::take(&mut self.unsent);
        unsent.extend(self.ready.drain(..).map(|c| c.item.message_id));
        self.r.store.release_claims(&self.r.instance, &unsent).await?;
        self.pipeline.close().await;
        if let Some(gate) = self.gate.as_mut() {
            gate.close().await;
        }
        Ok(())
    }

    async fn loop_note(&mut self) -> anyhow::Result<Option<String>> {
        if self.pace.in_canary() || !self.loops.due() {
            return Ok(None);
        }
        let (replayed, since) = self.loops.window();
        if replayed < MIN_SAMPLE {
            return Ok(None);
        }
        let back = self.r.store.job_copies_back(self.id, since).await?;
        if back > self.copies_seen {
            let fresh = back - self.copies_seen;
            if let Some(record) = self.pace.copies_back(fresh, self.settled_items) {
                self.set_rate(self.pace.rate());
                self.r.store.set_phase(self.id, &record).await?;
            }
        }
        self.copies_seen = back;
        Ok(self.loops.verdict(replayed, back))
    }
}
