//! Bulk replay/discard jobs: creation (with dry run), control, and the runner
//! that works through a job's messages at a capped rate.
//!
//! Every message goes through the same path as a single replay or discard
//! ([`Redrive::replay_with_id`]), so confirms, `mandatory` and history apply per message.
//! A message's status is the source of truth: after a restart, a message the
//! broker already confirmed is `replayed`, so the job skips it.

use std::collections::HashMap;
use std::time::Duration;

use app::model::{
    ApiError, DryRun, Job, JobAction, JobCommand, JobCreated, JobRequest, JobState, MessageQuery,
    ReplayTarget,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::service::Redrive;
use crate::store::{Filter, NewJob, SELECTABLE};

/// How often the runner looks for jobs to start or resume.
const POLL: Duration = Duration::from_millis(250);
/// How often replays abandoned by a dead instance are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// How long a claimed replay may go without its owner settling it before
/// it counts as abandoned: well past the longest wait for a confirm.
pub fn replay_lease(config: &crate::config::Config) -> Duration {
    Duration::from_secs(30) + config.confirm_timeout * 2
}
/// Replays needed in the window before the loop check may pause a job.
const LOOP_MIN_SAMPLE: i64 = 5;
/// The highest rate cap accepted; above it "unlimited" is the honest setting.
const MAX_RATE: f64 = 10_000.0;

/// Validates a request into the filter that selects its messages.
/// The messages a job request selects (failed ones only).
pub(crate) fn selection(req: &JobRequest) -> Result<Filter, ApiError> {
    let mut filter = match (&req.ids, &req.group, &req.filter) {
        (Some(ids), None, None) => {
            if ids.is_empty() || ids.len() > 100_000 {
                return Err(ApiError::BadRequest(
                    "`ids` must list 1 to 100000 message ids".into(),
                ));
            }
            Filter {
                ids: Some(ids.clone()),
                ..Default::default()
            }
        }
        (None, Some(group), None) => Filter::try_from(&MessageQuery {
            group: Some(group.clone()),
            ..Default::default()
        })?,
        (None, None, Some(q)) => Filter::try_from(q)?,
        _ => {
            return Err(ApiError::BadRequest(
                "select messages with exactly one of `ids`, `group` or `filter`".into(),
            ))
        }
    };
    // Only failed messages can be replayed or discarded.
    filter.status = Some(SELECTABLE);
    Ok(filter)
}

pub(crate) fn validate(req: &JobRequest) -> Result<(), ApiError> {
    if let Some(rate) = req.rate_per_sec {
        if !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE) {
            return Err(ApiError::BadRequest(format!(
                "`rate_per_sec` must be above 0 and at most {MAX_RATE}"
            )));
        }
    }
    if req.action == JobAction::Discard && (req.exchange.is_some() || req.routing_key.is_some()) {
        return Err(ApiError::BadRequest(
            "a discard job takes no `exchange` or `routing_key`".into(),
        ));
    }
    Ok(())
}

impl Redrive {
    /// Creates (or previews) a job over `filter`, which the caller built
    /// with [`selection`] and narrowed to what the user may touch.
    pub async fn create_job_over(
        &self,
        req: JobRequest,
        actor: &str,
        filter: Filter,
    ) -> Result<JobCreated, ApiError> {
        validate(&req)?;
        if req.dry_run {
            let mut destinations = self.store.destinations(&filter).await?;
            let total = destinations.iter().map(|d| d.count).sum();
            if req.action == JobAction::Replay && (req.exchange.is_some() || req.routing_key.is_some()) {
                for d in &mut destinations {
                    d.exchange = req.exchange.clone().or(d.exchange.take());
                    d.routing_key = req.routing_key.clone().or(d.routing_key.take());
                }
            }
            if req.action == JobAction::Discard {
                destinations.clear();
            }
            return Ok(JobCreated::DryRun(DryRun {
                dry_run: true,
                action: req.action,
                total,
                destinations,
            }));
        }
        let selection = serde_json::json!({ "ids": req.ids, "group": req.group, "filter": req.filter });
        let new = NewJob {
            action: req.action,
            actor,
            selection,
            exchange: req.exchange.clone(),
            routing_key: req.routing_key.clone(),
            rate_per_sec: req.rate_per_sec,
        };
        let id = self
            .store
            .create_job(new, &filter)
            .await?
            .ok_or_else(|| ApiError::BadRequest("no failed message matches this selection".into()))?;
        tracing::info!(job = id, actor, action = req.action.as_str(), "job created");
        Ok(JobCreated::Job(Box::new(self.store.job(id).await?)))
    }

    pub async fn control_job(&self, id: i64, command: JobCommand) -> Result<Job, ApiError> {
        let job = self.store.job(id).await?;
        let (from, to): (&[JobState], JobState) = match command {
            JobCommand::Pause => (&[JobState::Running], JobState::Paused),
            JobCommand::Resume => (&[JobState::Paused], JobState::Running),
            JobCommand::Cancel => (&[JobState::Running, JobState::Paused], JobState::Cancelled),
        };
        if !self.store.set_job_state(id, from, to, None).await? {
            return Err(ApiError::Conflict(format!(
                "job {id} is {}; cannot {command:?}",
                job.state.as_str()
            )));
        }
        self.store.job(id).await
    }
}

/// Runs jobs in the background: one task per running job.
///
/// A job that stops on an error (database or broker unreachable) keeps its
/// place: its current message stays pending and the job is retried with
/// backoff, its note telling the operator what it waits for.
pub async fn run(redrive: Redrive, shutdown: CancellationToken) {
    let mut tasks: HashMap<i64, JoinHandle<anyhow::Result<()>>> = HashMap::new();
    let mut backoff: HashMap<i64, (u32, Instant)> = HashMap::new();
    let mut last_sweep = Instant::now();
    loop {
        if last_sweep.elapsed() >= SWEEP_EVERY {
            last_sweep = Instant::now();
            let stale = crate::store::now_ms() - replay_lease(&redrive.config).as_millis() as i64;
            match redrive.store.sweep_abandoned_replays(stale).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(settled = n, "abandoned replays flagged: outcome unknown"),
                Err(e) => tracing::warn!(error = %e, "sweeping abandoned replays failed"),
            }
        }
        for (id, task) in tasks.extract_if(|_, t| t.is_finished()) {
            match task.await {
                Ok(Ok(())) => {
                    backoff.remove(&id);
                }
                Ok(Err(e)) => {
                    let attempts = backoff.get(&id).map_or(0, |b| b.0) + 1;
                    let wait = retry_delay(attempts);
                    tracing::warn!(job = id, error = ?e, retry_in = ?wait, "job interrupted; it resumes on its own");
                    let note = format!("waiting: {e:#}; retrying in {}s", wait.as_secs());
                    if let Err(e) = redrive.store.set_job_note(id, Some(&note)).await {
                        tracing::warn!(job = id, error = %e, "recording why the job waits failed");
                    }
                    backoff.insert(id, (attempts, Instant::now() + wait));
                }
                Err(e) => tracing::error!(job = id, error = %e, "job task panicked"),
            }
        }
        match redrive.store.running_jobs().await {
            Ok(ids) => {
                for id in ids {
                    let waiting = backoff.get(&id).is_some_and(|b| b.1 > Instant::now());
                    if tasks.contains_key(&id) || waiting {
                        continue;
                    }
                    let (r, token, retry) = (redrive.clone(), shutdown.clone(), backoff.contains_key(&id));
                    tasks.insert(
                        id,
                        tokio::spawn(async move { drive(&r, id, &token, retry).await }),
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing running jobs failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    for (_, t) in tasks {
        let _ = t.await;
    }
}

/// 1 s, 2 s, 4 s … capped at 30 s.
fn retry_delay(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

/// Works through one job until it is done, paused, cancelled or Redrive stops.
async fn drive(r: &Redrive, id: i64, shutdown: &CancellationToken, mut retrying: bool) -> anyhow::Result<()> {
    let spec = r.store.job_spec(id).await?;
    let action = if spec.action == "discard" {
        JobAction::Discard
    } else {
        JobAction::Replay
    };
    let actor = format!("{} (job {id})", spec.actor);
    let interval = spec.rate_per_sec.map(|rate| Duration::from_secs_f64(1.0 / rate));
    let mut next_at = Instant::now();
    loop {
        // Pause and cancel take effect between two messages.
        if shutdown.is_cancelled() || r.store.job_spec(id).await?.state != JobState::Running.as_str() {
            return Ok(());
        }
        let Some(message_id) = r.store.next_job_item(id).await? else {
            r.store
                .set_job_state(id, &[JobState::Running], JobState::Completed, None)
                .await?;
            tracing::info!(job = id, "job completed");
            return Ok(());
        };
        if let Some(interval) = interval {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep_until(next_at) => {}
            }
            next_at = next_at.max(Instant::now() - interval) + interval;
        }
        let result = match action {
            JobAction::Replay => {
                let target = ReplayTarget {
                    exchange: spec.target_exchange.clone(),
                    routing_key: spec.target_routing_key.clone(),
                    edit: None,
                };
                r.replay_with_id(message_id, target, &actor).await.map(Some)
            }
            JobAction::Discard => r.discard(message_id, &actor).await.map(|_| None),
        };
        let mut replay_id = None;
        let (state, error) = match result {
            Ok(rid) => {
                replay_id = rid;
                ("done", None)
            }
            // No longer failed (replayed or discarded meanwhile): never send it twice.
            Err(ApiError::Conflict(e)) | Err(ApiError::NotFound(e)) => ("skipped", Some(e)),
            // Refused, invalid, or published without a confirm: an unknown
            // outcome is never retried on its own (it may have been delivered).
            Err(e @ (ApiError::Broker(_) | ApiError::BadRequest(_) | ApiError::OutcomeUnknown(_))) => {
                ("failed", Some(e.to_string()))
            }
            // Database or broker trouble: leave the item pending and retry later.
            Err(e) => anyhow::bail!("message {message_id}: {e}"),
        };
        r.store
            .finish_job_item(id, message_id, state, error.as_deref(), replay_id.as_deref())
            .await?;
        if std::mem::take(&mut retrying) {
            // Progress again: the "waiting" note no longer holds.
            r.store.set_job_note(id, None).await?;
        }
        if action == JobAction::Replay {
            if let Some(note) = replay_loop(r, id).await? {
                tracing::warn!(job = id, %note, "job paused itself");
                r.store
                    .set_job_state(id, &[JobState::Running], JobState::Paused, Some(&note))
                    .await?;
                return Ok(());
            }
        }
    }
}

/// Replays that come straight back mean the cause is not fixed: replaying
/// more only grows the error queue. Returns why the job should pause.
async fn replay_loop(r: &Redrive, id: i64) -> anyhow::Result<Option<String>> {
    let window = r.config.loop_window;
    let since = crate::store::now_ms() - window.as_millis() as i64;
    let (replayed, back) = r.store.job_returns(id, since).await?;
    if replayed < LOOP_MIN_SAMPLE || (back as f64) <= r.config.loop_threshold * replayed as f64 {
        return Ok(None);
    }
    Ok(Some(format!(
        "paused: {back} of the last {replayed} replayed messages ({:.0}%) failed again within {}s; \
         a replay loop? Fix the consumer, then resume.",
        100.0 * back as f64 / replayed as f64,
        window.as_secs()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> JobRequest {
        JobRequest {
            action: JobAction::Replay,
            ids: None,
            group: Some("g".into()),
            filter: None,
            rate_per_sec: None,
            dry_run: false,
            exchange: None,
            routing_key: None,
        }
    }

    #[test]
    fn exactly_one_selection() {
        assert!(selection(&req()).is_ok());
        assert!(selection(&JobRequest { group: None, ..req() }).is_err());
        assert!(selection(&JobRequest {
            ids: Some(vec![1]),
            ..req()
        })
        .is_err());
        assert!(selection(&JobRequest {
            group: None,
            ids: Some(vec![]),
            ..req()
        })
        .is_err());
        let f = selection(&req()).unwrap();
        assert_eq!(f.status, Some(SELECTABLE));
        assert_eq!(f.group.as_deref(), Some("g"));
    }

    #[test]
    fn retries_back_off_to_half_a_minute() {
        let delays: Vec<u64> = (1..=8).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn rates_and_targets_are_checked() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e9] {
            assert!(
                validate(&JobRequest {
                    rate_per_sec: Some(bad),
                    ..req()
                })
                .is_err(),
                "{bad}"
            );
        }
        assert!(validate(&JobRequest {
            rate_per_sec: Some(50.0),
            ..req()
        })
        .is_ok());
        let discard = JobRequest {
            action: JobAction::Discard,
            exchange: Some("x".into()),
            ..req()
        };
        assert!(validate(&discard).is_err());
    }
}
