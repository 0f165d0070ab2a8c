//! The seam between the UI's server functions and the server's storage and
//! broker code. The server puts a [`BackendHandle`] into Leptos context; `app`
//! never depends on `server`.

use std::sync::Arc;

use crate::model::{
    AnnotationChange, AnnotationTarget, Annotations, ApiError, GroupQuery, GroupSummary, Job, JobCommand,
    JobCreated, JobItem, JobRequest, MessageDetail, MessagePage, MessageQuery, QueueInfo, ReplayTarget,
};

#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn list_messages(&self, query: MessageQuery) -> Result<MessagePage, ApiError>;
    async fn message(&self, id: i64) -> Result<MessageDetail, ApiError>;
    async fn replay(&self, id: i64, target: ReplayTarget, actor: &str) -> Result<MessageDetail, ApiError>;
    async fn discard(&self, id: i64, actor: &str) -> Result<MessageDetail, ApiError>;
    async fn restore(&self, id: i64, actor: &str) -> Result<MessageDetail, ApiError>;
    async fn groups(&self, query: GroupQuery) -> Result<Vec<GroupSummary>, ApiError>;
    async fn create_job(&self, request: JobRequest, actor: &str) -> Result<JobCreated, ApiError>;
    async fn job(&self, id: i64) -> Result<Job, ApiError>;
    /// The job's messages that did not go through (failed or skipped), with why.
    async fn job_problems(&self, id: i64) -> Result<Vec<JobItem>, ApiError>;
    async fn jobs(&self) -> Result<Vec<Job>, ApiError>;
    async fn control_job(&self, id: i64, command: JobCommand) -> Result<Job, ApiError>;
    async fn annotations(&self, target: AnnotationTarget) -> Result<Annotations, ApiError>;
    /// Adds a note or tag, or removes a tag; returns the target's annotations.
    async fn annotate(
        &self,
        target: AnnotationTarget,
        change: AnnotationChange,
        actor: &str,
    ) -> Result<Annotations, ApiError>;
    async fn queues(&self) -> Result<Vec<QueueInfo>, ApiError>;
}

pub type BackendHandle = Arc<dyn Backend>;
