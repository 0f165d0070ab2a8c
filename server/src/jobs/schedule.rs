//! Scheduled jobs: at its `start_at` a job starts on exactly one instance
//! (the one that holds its lease moves it from `scheduled` to `running` in
//! a statement that checks the state), with the same checks as a job
//! started by hand at that moment: its creator's permissions, read from
//! the broker afresh, for every place its messages come from and go to.
//! A refusal fails the job and says why; a broker that cannot answer
//! leaves it scheduled, to be tried again.

use app::model::{AuditAction, AuditResult, JobState};

use super::checks::require_job;
use super::Jobs;
use crate::lease::Lease;
use crate::store::NewAudit;

/// Why a scheduled job does not start now.
enum NotYet {
    /// It never will: the creator may no longer do this.
    Refused(String),
    /// Try again at the next poll.
    Unavailable(String),
}

/// Starts every scheduled job whose time has come, and cancels those
/// whose wait for approval ran out.
pub async fn start_due(jobs: &Jobs) -> anyhow::Result<()> {
    expire_approvals(jobs).await?;
    for id in jobs.store.due_jobs(crate::store::now_ms()).await? {
        if !jobs.leases.hold(Lease::Job(id)).await {
            continue;
        }
        let result = start(jobs, id).await;
        jobs.leases.release(Lease::Job(id)).await;
        result?;
    }
    Ok(())
}

async fn start(jobs: &Jobs, id: i64) -> anyhow::Result<()> {
    let spec = jobs.store.job_spec(id).await?;
    if spec.state != JobState::Scheduled {
        return Ok(());
    }
    let (result, detail) = match check(jobs, &spec).await {
        Ok(()) => {
            if !jobs
                .store
                .set_job_state(id, &[JobState::Scheduled], JobState::Running, None)
                .await?
            {
                return Ok(());
            }
            tracing::info!(job = id, actor = %spec.actor, "scheduled job started");
            (AuditResult::Ok, None)
        }
        Err(NotYet::Unavailable(why)) => {
            tracing::warn!(job = id, %why, "a scheduled job's start waits for the broker");
            return Ok(());
        }
        Err(NotYet::Refused(why)) => {
            let note = format!("not started at its time: {why}");
            jobs.store
                .set_job_state(id, &[JobState::Scheduled], JobState::Failed, Some(&note))
                .await?;
            tracing::warn!(job = id, %why, "scheduled job refused at its start");
            (AuditResult::Refused, Some(why))
        }
    };
    let entry = NewAudit {
        user: spec.actor.clone(),
        source: Some("scheduler".into()),
        action: AuditAction::JobScheduledStart,
        vhost: None,
        object: Some(format!("job {id}")),
        exchange: spec.target_exchange.clone(),
        routing_key: spec.target_routing_key.clone(),
        result,
        detail,
    };
    jobs.store.append_audit(&entry).await?;
    Ok(())
}

/// One conditional statement cancels them, so each expiry is recorded by
/// exactly one instance.
async fn expire_approvals(jobs: &Jobs) -> anyhow::Result<()> {
    for expired in jobs.store.expire_approvals(crate::store::now_ms()).await? {
        tracing::warn!(job = expired.id, actor = %expired.actor, "a job's approval expired; cancelled");
        let entry = NewAudit {
            user: expired.actor,
            source: Some("scheduler".into()),
            action: AuditAction::JobApprovalExpired,
            vhost: None,
            object: Some(format!("job {}", expired.id)),
            exchange: None,
            routing_key: None,
            result: AuditResult::Failed,
            detail: Some(format!(
                "no second user approved this job of {} messages within REDRIVE_APPROVAL_TTL ({}s); cancelled",
                expired.total,
                jobs.config.replay.approval_ttl.as_secs()
            )),
        };
        jobs.store.append_audit(&entry).await?;
    }
    Ok(())
}

async fn check(jobs: &Jobs, spec: &crate::store::JobSpec) -> Result<(), NotYet> {
    let unavailable = |e: &dyn std::fmt::Display| NotYet::Unavailable(e.to_string());
    let who = match jobs.management.principal(&spec.actor).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(NotYet::Refused(format!(
                "the broker no longer has a user `{}`",
                spec.actor
            )))
        }
        Err(e) => return Err(unavailable(&e)),
    };
    if jobs.config.web.read_only {
        return Err(NotYet::Refused(
            "Redrive runs read-only (REDRIVE_READ_ONLY)".into(),
        ));
    }
    let plan = spec.plan().map_err(|e| unavailable(&e))?;
    let scopes = jobs
        .store
        .job_scopes(spec.id)
        .await
        .map_err(|e| unavailable(&e))?;
    require_job(&who, spec.action, spec.target_exchange.as_deref(), &plan, &scopes)
        .map_err(|d| NotYet::Refused(d.to_string()))
}
