//! Redrive's operations, shared by the REST API and the UI's server functions.

mod alert_rules;
mod errors;
mod health;
mod jobs;
mod metrics;
mod monitoring;
pub(crate) mod plan;
mod routes;
mod scoped;

pub use plan::validate_target;
pub use scoped::{handle, UserBackend};

use std::sync::Arc;

use backon::Retryable;

use app::model::{
    AlertRule, AnnotationChange, AnnotationTarget, Annotations, ApiError, AuditPage, HistoryAction, Job,
    JobItem, MessageDetail, MessageStatus, ReplayTarget,
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
    /// This instance's name on the replays it claims and the leases it
    /// holds (a fresh UUID per start).
    pub instance: Arc<str>,
    pub leases: crate::lease::Leases,
    /// Crashes of background tasks (for `/healthz`).
    pub tasks: crate::supervise::TaskHealth,
    /// Told when bulk jobs write, so search indexing gives way to them.
    pub indexer: crate::ingest::indexer::IndexerWake,
    pub metrics: crate::metrics::Metrics,
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
        let out = prepare(&msg, &target, replay_id, &self.config.mask.mask)?;
        // Claiming first makes concurrent replays of one message impossible.
        // An edit is recorded in the same transaction as the claim: a failed
        // write must not leave a claimed message behind, nor an edit that was
        // never sent.
        let edit = out.edit_diff.as_ref().map(|diff| Event {
            action: HistoryAction::Edit,
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
            action: HistoryAction::Replay,
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
        self.metrics
            .replayed(crate::metrics::ReplayPath::Single, settlement.into());
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
    /// Past the policy's minute, the lease sweep settles it (as unknown).
    async fn settle(&self, id: i64, settlement: Settlement, event: &Event<'_>) -> Result<(), ApiError> {
        (|| self.store.settle_replay(id, &self.instance, settlement, event))
            .retry(crate::retry::recorded_write())
            .notify(|e, wait| {
                tracing::warn!(id, error = %e, ?settlement, retry_in = ?wait, "recording a replay's outcome failed; retrying");
            })
            .await
            .map_err(|e| {
                tracing::error!(id, error = %e, ?settlement, "could not record a replay's outcome; the lease sweep will flag it");
                e.into()
            })
    }

    /// A status change that needs no broker: recorded with its action in history.
    async fn mark(
        &self,
        id: i64,
        from: MessageStatus,
        to: MessageStatus,
        action: HistoryAction,
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

/// The operations without a user: [`UserBackend`] calls these after its checks.
impl Redrive {
    pub async fn message(&self, id: i64) -> Result<MessageDetail, ApiError> {
        Ok(self.store.detail(id).await?)
    }

    #[tracing::instrument(name = "replay", skip(self, target, actor), fields(message = id))]
    pub async fn replay(
        &self,
        id: i64,
        target: ReplayTarget,
        actor: &str,
    ) -> Result<MessageDetail, ApiError> {
        self.replay_with_id(id, target, actor).await?;
        Ok(self.store.detail(id).await?)
    }

    pub async fn discard(&self, id: i64, actor: &str) -> Result<MessageDetail, ApiError> {
        self.mark(
            id,
            MessageStatus::Failed,
            MessageStatus::Discarded,
            HistoryAction::Discard,
            actor,
        )
        .await
    }

    pub async fn restore(&self, id: i64, actor: &str) -> Result<MessageDetail, ApiError> {
        self.mark(
            id,
            MessageStatus::Discarded,
            MessageStatus::Failed,
            HistoryAction::Restore,
            actor,
        )
        .await
    }

    pub async fn job_problems(&self, id: i64) -> Result<Vec<JobItem>, ApiError> {
        self.store.job(id).await?;
        Ok(self.store.job_problems(id, 500).await?)
    }

    pub async fn jobs(&self) -> Result<Vec<Job>, ApiError> {
        Ok(self.store.jobs(50).await?)
    }

    pub async fn annotations(&self, target: AnnotationTarget) -> Result<Annotations, ApiError> {
        Ok(self.store.annotations(&target).await?)
    }

    pub async fn annotate(
        &self,
        target: AnnotationTarget,
        change: AnnotationChange,
        actor: &str,
    ) -> Result<Annotations, ApiError> {
        self.store.annotate(&target, &change, actor).await?;
        Ok(self.store.annotations(&target).await?)
    }

    /// Alert rules, their webhook URLs masked (see [`crate::config::mask_webhook`]).
    pub async fn alert_rules(&self) -> Result<Vec<AlertRule>, ApiError> {
        let mut rules = self.store.alert_rules().await?;
        for r in &mut rules {
            r.webhook_url = crate::config::mask_webhook(&r.webhook_url);
        }
        Ok(rules)
    }

    pub async fn audit_page(&self, filter: &crate::store::AuditFilter) -> Result<AuditPage, ApiError> {
        let (items, more) = self.store.audit(filter).await?;
        let next_cursor = if more {
            items.last().map(|e| e.id.to_string())
        } else {
            None
        };
        Ok(AuditPage { items, next_cursor })
    }
}
