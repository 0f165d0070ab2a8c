//! The background runner: one task per running job, restarted with backoff
//! when it stops on an error (database or broker unreachable).

use std::collections::HashMap;
use std::time::Duration;

use app::model::{JobAction, JobState};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::replay_lease;
use crate::service::Redrive;

/// How often the runner looks for jobs to start or resume.
const POLL: Duration = Duration::from_millis(250);
/// How often replays abandoned by a dead instance are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// Messages discarded per transaction.
const DISCARD_BATCH: usize = 500;

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
pub(super) fn retry_delay(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

/// Works through one job until it is done, paused, cancelled or Redrive stops.
async fn drive(r: &Redrive, id: i64, shutdown: &CancellationToken, retrying: bool) -> anyhow::Result<()> {
    let spec = r.store.job_spec(id).await?;
    if spec.action == JobAction::Discard {
        return discard(r, id, &spec.actor, shutdown, retrying).await;
    }
    super::replay::run(r, &spec, shutdown, retrying).await
}

/// A discard job: batches of transitions, checking for pause and cancel
/// between them.
async fn discard(
    r: &Redrive,
    id: i64,
    user: &str,
    shutdown: &CancellationToken,
    mut retrying: bool,
) -> anyhow::Result<()> {
    loop {
        if shutdown.is_cancelled() || r.store.job_spec(id).await?.state != JobState::Running {
            return Ok(());
        }
        let discarded = r.store.discard_job_batch(id, user, DISCARD_BATCH).await?;
        r.indexer.foreground_commit();
        if discarded == 0 {
            super::replay::complete(r, id).await?;
            return Ok(());
        }
        if std::mem::take(&mut retrying) {
            // Progress again: the "waiting" note no longer holds.
            r.store.set_job_note(id, None).await?;
        }
    }
}
