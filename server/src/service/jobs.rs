//! Creating and controlling bulk jobs: a request checked and turned into
//! the selection it covers (or a dry run of it), and pause, resume, cancel.
//! The runner in `jobs` carries them out.

use app::model::{
    ApiError, DryRun, Job, JobAction, JobCommand, JobCreated, JobRequest, JobState, MessageQuery,
};

use super::plan::{start_at_ms, validate_plan, MAX_RATE};
use super::Redrive;
use crate::domain::access::Principal;
use crate::store::{ApprovalRule, Filter, NewJob, CANCELLABLE, SELECTABLE};

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
    validate_plan(req)?;
    start_at_ms(req.start_at.as_deref(), crate::store::now_ms())?;
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
        // A job selected by a search covers every stored match.
        self.store.searchable(&filter, None).await?;
        if req.dry_run {
            let mut destinations = self.store.destinations(&filter).await?;
            let total = destinations.iter().map(|d| d.count).sum();
            let copies_in_queue = destinations.iter().map(|d| d.copies_in_queue).sum();
            if req.action == JobAction::Discard {
                destinations.clear();
            }
            self.route_destinations(&req, &mut destinations).await;
            let approval_over = self.config.replay.approval_threshold;
            return Ok(JobCreated::DryRun(DryRun {
                dry_run: true,
                action: req.action,
                needs_approval: approval_over.is_some_and(|over| total as u64 > over),
                total,
                copies_in_queue,
                destinations,
            }));
        }
        let now = crate::store::now_ms();
        let start_at = start_at_ms(req.start_at.as_deref(), now)?;
        let approval = self.config.replay.approval_threshold.map(|over| ApprovalRule {
            over,
            expires_at: now + self.config.replay.approval_ttl.as_millis() as i64,
        });
        let selection = serde_json::json!({ "ids": req.ids, "group": req.group, "filter": req.filter });
        let new = NewJob {
            action: req.action,
            actor,
            selection,
            exchange: req.exchange.clone(),
            routing_key: req.routing_key.clone(),
            rate_per_sec: req.rate_per_sec,
            plan: &req.plan,
            start_at,
            approval,
        };
        let id = self
            .store
            .create_job(new, &filter)
            .await?
            .ok_or_else(|| ApiError::BadRequest("no failed message matches this selection".into()))?;
        tracing::info!(job = id, actor, action = req.action.as_str(), "job created");
        Ok(JobCreated::Job(Box::new(self.store.job(id).await?)))
    }

    /// Carries out `command` for `who`.
    pub async fn control_job(&self, id: i64, command: JobCommand, who: &Principal) -> Result<Job, ApiError> {
        let job = self.store.job(id).await?;
        let (from, to): (&[JobState], JobState) = match command {
            // Brought forward: the scheduler starts it within a poll, with
            // the same checks as at its time.
            JobCommand::Start => {
                if !self.store.reschedule(id, crate::store::now_ms()).await? {
                    return Err(ApiError::Conflict(format!(
                        "job {id} is {}; only a scheduled job can be started",
                        job.state.as_str()
                    )));
                }
                return Ok(self.store.job(id).await?);
            }
            JobCommand::Pause => (&[JobState::Running], JobState::Paused),
            JobCommand::Resume => (&[JobState::Paused], JobState::Running),
            JobCommand::Cancel => (&CANCELLABLE, JobState::Cancelled),
            JobCommand::Approve => return self.approve_job(id, who).await,
            JobCommand::Refuse => return self.refuse_job(id, &who.user).await,
        };
        if !self.store.set_job_state(id, from, to, None).await? {
            return Err(ApiError::Conflict(format!(
                "job {id} is {}; cannot {command:?}",
                job.state.as_str()
            )));
        }
        Ok(self.store.job(id).await?)
    }
}

impl Redrive {
    /// A second user's approval: not the creator, and allowed everything
    /// the job does (checked with `approver`'s permissions, as at creation).
    /// The job then runs, or waits for its start time.
    async fn approve_job(&self, id: i64, approver: &Principal) -> Result<Job, ApiError> {
        let job = self.awaiting_approval(id).await?;
        if job.actor == approver.user {
            return Err(ApiError::Forbidden(format!(
                "you asked for job {id}: another user must approve it"
            )));
        }
        let spec = self.store.job_spec(id).await?;
        let scopes = self.store.job_scopes(id).await?;
        crate::jobs::checks::require_job(
            approver,
            spec.action,
            spec.target_exchange.as_deref(),
            &spec.plan()?,
            &scopes,
        )
        .map_err(|denied| ApiError::Forbidden(format!("approving job {id} needs what it does: {denied}")))?;
        let to = match job.start_at {
            Some(_) => JobState::Scheduled,
            None => JobState::Running,
        };
        if !self
            .store
            .approve_job(id, &approver.user, to, crate::store::now_ms())
            .await?
        {
            return Err(self.not_awaiting(id).await);
        }
        tracing::info!(job = id, approver = %approver.user, asked_by = %job.actor, "job approved");
        Ok(self.store.job(id).await?)
    }

    /// Turns a waiting job down: it is cancelled, with who refused it.
    async fn refuse_job(&self, id: i64, user: &str) -> Result<Job, ApiError> {
        self.awaiting_approval(id).await?;
        let note = format!("refused by {user}");
        if !self
            .store
            .set_job_state(
                id,
                &[JobState::AwaitingApproval],
                JobState::Cancelled,
                Some(&note),
            )
            .await?
        {
            return Err(self.not_awaiting(id).await);
        }
        Ok(self.store.job(id).await?)
    }

    async fn awaiting_approval(&self, id: i64) -> Result<Job, ApiError> {
        let job = self.store.job(id).await?;
        if job.state != JobState::AwaitingApproval {
            return Err(self.not_awaiting(id).await);
        }
        Ok(job)
    }

    /// Why a job cannot be approved or refused now (409).
    async fn not_awaiting(&self, id: i64) -> ApiError {
        match self.store.job(id).await {
            Ok(job) if job.state == JobState::AwaitingApproval => {
                ApiError::Conflict(format!("job {id}'s approval expired"))
            }
            Ok(job) => ApiError::Conflict(format!(
                "job {id} is {}; only a job awaiting approval can be approved or refused",
                job.state.as_str()
            )),
            Err(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> JobRequest {
        JobRequest {
            group: Some("g".into()),
            ..JobRequest::new(JobAction::Replay)
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
