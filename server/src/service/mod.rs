//! Redrive's operations, shared by the REST API and the UI's server functions.

mod monitoring;

use std::sync::Arc;

use app::backend::Backend;
use app::model::{
    AdvisorReport, AlertDelivery, AlertRule, AlertRuleRequest, AnnotationChange, AnnotationTarget,
    Annotations, ApiError, GroupQuery, GroupSummary, Job, JobCommand, JobCreated, JobItem, JobRequest,
    MessageDetail, MessagePage, MessageQuery, MessageStatus, Overview, Policy, PolicyPreview, PolicyRequest,
    QueueHistory, QueuesView, ReplayTarget, ServiceHistory, WatchSwitch,
};

use crate::broker::Management;
use crate::config::Config;
use crate::monitor::Monitor;
use crate::replay::{prepare, FailureKind, Publisher};
use crate::store::{Event, Settlement, Store};

#[derive(Clone)]
pub struct Redrive {
    pub config: Arc<Config>,
    pub store: Store,
    pub management: Management,
    pub publisher: Publisher,
    pub monitor: Monitor,
    /// What each capture consumer is doing (for `/readyz` and the Queues page).
    pub capture: crate::ingest::CaptureStatus,
    /// This instance's name on the replays it claims (a fresh UUID per start).
    pub instance: Arc<str>,
    /// Crashes of background tasks (for `/healthz`).
    pub tasks: crate::supervise::TaskHealth,
}

impl Redrive {
    /// Replays one message; returns the replay id its copy carries once the
    /// broker confirmed it. Single replays and jobs both come through here.
    pub async fn replay_with_id(
        &self,
        id: i64,
        target: ReplayTarget,
        actor: &str,
    ) -> Result<String, ApiError> {
        let msg = self.store.get(id).await?;
        // A replay whose outcome is unknown may have been delivered: its
        // retry carries the same id, so consumers can drop a second copy.
        let replay_id = match self.store.uncertain_replay_id(id).await? {
            Some(earlier) => earlier,
            None => uuid::Uuid::now_v7().to_string(),
        };
        let out = prepare(&msg, &target, replay_id)?;
        // Claiming first makes concurrent replays of one message impossible.
        // An edit is recorded in the same transaction as the claim: a failed
        // write must not leave a claimed message behind, nor an edit that was
        // never sent.
        let edit = out.edit_diff.as_ref().map(|diff| Event {
            action: "edit",
            actor,
            target: None,
            ok: true,
            detail: Some(diff.clone()),
            replay_id: None,
        });
        self.store
            .claim_replay(id, &self.instance, &out.replay_id, edit)
            .await?;
        let result = self.publisher.publish(msg.vhost(), &out).await;
        let settlement = match &result {
            Ok(()) => Settlement::Replayed,
            Err(e) if e.kind() == FailureKind::Unknown => Settlement::Unknown,
            Err(_) => Settlement::Failed,
        };
        let event = Event {
            action: "replay",
            actor,
            target: Some(out.target()),
            ok: result.is_ok(),
            detail: Some(match &result {
                Ok(()) => format!("replay id {}", out.replay_id),
                Err(e) => format!("{e} (replay id {})", out.replay_id),
            }),
            replay_id: result.is_ok().then(|| out.replay_id.clone()),
        };
        self.settle(id, settlement, &event).await?;
        match result {
            Ok(()) => Ok(out.replay_id),
            Err(e) => match e.kind() {
                FailureKind::Refused => {
                    tracing::info!(id, error = %e, "replay refused by the broker");
                    Err(ApiError::Broker(e.to_string()))
                }
                FailureKind::NotPublished => {
                    tracing::warn!(id, error = %e, "replay not published; the message stays failed");
                    Err(ApiError::Unavailable(format!(
                        "{e}; nothing was sent and the message is still failed, try again"
                    )))
                }
                FailureKind::Unknown => {
                    tracing::warn!(id, error = %e, replay_id = %out.replay_id, "replay outcome unknown; flagged");
                    Err(ApiError::OutcomeUnknown(format!(
                        "{e}; it may or may not have been delivered. The message is flagged; a retry reuses \
                         replay id {} so consumers can recognise a second copy",
                        out.replay_id
                    )))
                }
            },
        }
    }

    /// Writes a replay's verdict, retrying while the database fails: a
    /// confirmed replay must not stay `replaying` because one write failed.
    /// Past `SETTLE_FOR`, the lease sweep settles it (as unknown) instead.
    async fn settle(&self, id: i64, settlement: Settlement, event: &Event<'_>) -> Result<(), ApiError> {
        const SETTLE_FOR: std::time::Duration = std::time::Duration::from_secs(60);
        let started = std::time::Instant::now();
        let mut wait = std::time::Duration::from_millis(50);
        loop {
            match self
                .store
                .settle_replay(id, &self.instance, settlement, event)
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) if started.elapsed() < SETTLE_FOR => {
                    tracing::warn!(id, error = %e, ?settlement, "recording a replay's outcome failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(id, error = %e, ?settlement, "could not record a replay's outcome; the lease sweep will flag it");
                    return Err(e.into());
                }
            }
        }
    }

    /// A status change that needs no broker: recorded with its action in history.
    async fn mark(
        &self,
        id: i64,
        from: MessageStatus,
        to: MessageStatus,
        action: &str,
        actor: &str,
    ) -> Result<MessageDetail, ApiError> {
        let event = Event {
            action,
            actor,
            target: None,
            ok: true,
            detail: None,
            replay_id: None,
        };
        self.store.transition(id, &[from], to, Some(event)).await?;
        Ok(self.store.detail(id).await?)
    }
}

fn unavailable(e: crate::broker::ManagementError) -> ApiError {
    tracing::warn!(error = %e, "management API call failed");
    ApiError::Unavailable(e.to_string())
}

#[async_trait::async_trait]
impl Backend for Redrive {
    async fn list_messages(&self, query: MessageQuery) -> Result<MessagePage, ApiError> {
        self.store.list(&query).await
    }

    async fn message(&self, id: i64) -> Result<MessageDetail, ApiError> {
        Ok(self.store.detail(id).await?)
    }

    async fn replay(&self, id: i64, target: ReplayTarget, actor: &str) -> Result<MessageDetail, ApiError> {
        self.replay_with_id(id, target, actor).await?;
        Ok(self.store.detail(id).await?)
    }

    async fn discard(&self, id: i64, actor: &str) -> Result<MessageDetail, ApiError> {
        self.mark(
            id,
            MessageStatus::Failed,
            MessageStatus::Discarded,
            "discard",
            actor,
        )
        .await
    }

    async fn restore(&self, id: i64, actor: &str) -> Result<MessageDetail, ApiError> {
        self.mark(
            id,
            MessageStatus::Discarded,
            MessageStatus::Failed,
            "restore",
            actor,
        )
        .await
    }

    async fn groups(&self, query: GroupQuery) -> Result<Vec<GroupSummary>, ApiError> {
        self.store.groups(&query).await
    }

    async fn create_job(&self, request: JobRequest, actor: &str) -> Result<JobCreated, ApiError> {
        Redrive::create_job(self, request, actor).await
    }

    async fn job(&self, id: i64) -> Result<Job, ApiError> {
        self.store.job(id).await
    }

    async fn job_problems(&self, id: i64) -> Result<Vec<JobItem>, ApiError> {
        self.store.job(id).await?;
        Ok(self.store.job_problems(id, 500).await?)
    }

    async fn jobs(&self) -> Result<Vec<Job>, ApiError> {
        Ok(self.store.jobs(50).await?)
    }

    async fn control_job(&self, id: i64, command: JobCommand) -> Result<Job, ApiError> {
        Redrive::control_job(self, id, command).await
    }

    async fn annotations(&self, target: AnnotationTarget) -> Result<Annotations, ApiError> {
        Ok(self.store.annotations(&target).await?)
    }

    async fn annotate(
        &self,
        target: AnnotationTarget,
        change: AnnotationChange,
        actor: &str,
    ) -> Result<Annotations, ApiError> {
        self.store.annotate(&target, &change, actor).await?;
        Ok(self.store.annotations(&target).await?)
    }

    async fn queues(&self) -> Result<QueuesView, ApiError> {
        self.queues_view().await
    }

    async fn set_watch(
        &self,
        vhost: &str,
        queue: &str,
        switch: WatchSwitch,
        actor: &str,
    ) -> Result<(), ApiError> {
        self.switch_watch(vhost, queue, switch, actor).await
    }

    async fn overview(&self) -> Result<Overview, ApiError> {
        self.overview_view().await
    }

    async fn queue_history(&self, vhost: &str, queue: &str, window: &str) -> Result<QueueHistory, ApiError> {
        self.queue_history_view(vhost, queue, window).await
    }

    async fn service_history(&self, service: &str, window: &str) -> Result<ServiceHistory, ApiError> {
        self.service_history_view(service, window).await
    }

    async fn vhosts(&self) -> Result<Vec<String>, ApiError> {
        self.vhost_list().await
    }

    async fn policies(&self, vhost: Option<String>) -> Result<Vec<Policy>, ApiError> {
        self.policy_list(vhost).await
    }

    async fn put_policy(&self, vhost: &str, name: &str, policy: PolicyRequest) -> Result<Policy, ApiError> {
        self.save_policy(vhost, name, policy).await
    }

    async fn delete_policy(&self, vhost: &str, name: &str) -> Result<(), ApiError> {
        self.remove_policy(vhost, name).await
    }

    async fn preview_policy(
        &self,
        vhost: &str,
        name: &str,
        policy: PolicyRequest,
    ) -> Result<PolicyPreview, ApiError> {
        self.policy_preview(vhost, name, policy).await
    }

    async fn advisor(&self) -> Result<AdvisorReport, ApiError> {
        self.advisor_report().await
    }

    async fn apply_fix(&self, finding_id: i64) -> Result<(), ApiError> {
        self.apply_finding_fix(finding_id).await
    }

    async fn alert_rules(&self) -> Result<Vec<AlertRule>, ApiError> {
        Ok(self.store.alert_rules().await?)
    }

    async fn create_alert_rule(&self, rule: AlertRuleRequest) -> Result<AlertRule, ApiError> {
        self.add_alert_rule(rule).await
    }

    async fn delete_alert_rule(&self, id: i64) -> Result<(), ApiError> {
        self.remove_alert_rule(id).await
    }

    async fn test_alert_rule(&self, id: i64) -> Result<(), ApiError> {
        self.send_test_alert(id).await
    }

    async fn alert_deliveries(&self, rule_id: Option<i64>) -> Result<Vec<AlertDelivery>, ApiError> {
        self.deliveries(rule_id).await
    }
}
