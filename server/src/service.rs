//! Redrive's operations, shared by the REST API and the UI's server functions.

use std::sync::Arc;

use app::backend::Backend;
use app::model::{
    AnnotationChange, AnnotationTarget, Annotations, ApiError, GroupQuery, GroupSummary, Job, JobCommand,
    JobCreated, JobItem, JobRequest, MessageDetail, MessagePage, MessageQuery, MessageStatus, QueueInfo,
    ReplayTarget,
};

use crate::broker::Management;
use crate::config::Config;
use crate::replay::{prepare, Publisher};
use crate::store::{Event, Store};

#[derive(Clone)]
pub struct Redrive {
    pub config: Arc<Config>,
    pub store: Store,
    pub management: Management,
    pub publisher: Publisher,
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
        let out = prepare(&msg, &target, uuid::Uuid::now_v7().to_string())?;
        // Claiming first makes concurrent replays of one message impossible.
        self.store
            .transition(id, &[MessageStatus::Failed], MessageStatus::Replaying, None)
            .await?;
        if let Some(diff) = &out.edit_diff {
            let edit = Event {
                action: "edit",
                actor,
                target: None,
                ok: true,
                detail: Some(diff.clone()),
                replay_id: None,
            };
            self.store.record(id, edit).await?;
        }
        let result = self.publisher.publish(msg.vhost(), &out).await;
        let event = Event {
            action: "replay",
            actor,
            target: Some(out.target()),
            ok: result.is_ok(),
            detail: Some(match &result {
                Ok(()) => format!("replay id {}", out.replay_id),
                Err(e) => e.to_string(),
            }),
            replay_id: result.is_ok().then(|| out.replay_id.clone()),
        };
        let to = if result.is_ok() {
            MessageStatus::Replayed
        } else {
            MessageStatus::Failed
        };
        self.store
            .transition(id, &[MessageStatus::Replaying], to, Some(event))
            .await?;
        if let Err(e) = result {
            tracing::info!(id, error = %e, "replay refused by the broker");
            return Err(ApiError::Broker(e.to_string()));
        }
        Ok(out.replay_id)
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

    async fn queues(&self) -> Result<Vec<QueueInfo>, ApiError> {
        let mut all = Vec::new();
        let vhosts = self
            .management
            .vhost_names(self.config.explicit_vhosts())
            .await
            .map_err(unavailable)?;
        for vhost in vhosts {
            let queues = self.management.queues(&vhost).await.map_err(unavailable)?;
            all.extend(queues.into_iter().map(|q| QueueInfo {
                watched: self.config.watch.is_match(&q.name),
                vhost: q.vhost,
                name: q.name,
                kind: q.kind,
                durable: q.durable,
                messages_ready: q.messages_ready,
                messages_unacknowledged: q.messages_unacknowledged,
                consumers: q.consumers,
            }));
        }
        all.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
        Ok(all)
    }
}
