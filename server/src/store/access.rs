//! What authorisation needs to know about stored things: which vhosts,
//! queues and exchanges a selection, a job, a group or a finding touches.

use crate::store::Filter;
use crate::store::StoreError;
use async_trait::async_trait;

/// A distinct place the messages of a selection come from.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Scope {
    pub vhost: String,
    pub queue: String,
    /// The exchange a replay goes back to when none is given.
    pub exchange: Option<String>,
}

/// The vhosts a selection, job, group or finding touches: what a
/// user's permissions are checked against.
#[async_trait]
pub trait VhostAccess: Send + Sync {
    /// Every (vhost, queue, original exchange) the messages matching `filter` have.
    async fn scopes(&self, filter: &Filter) -> Result<Vec<Scope>, StoreError>;

    /// The vhosts of a job's messages, as recorded when it was created.
    async fn job_vhosts(&self, job_id: i64) -> Result<Vec<String>, StoreError>;

    /// The vhosts a failure group's messages are in.
    async fn group_vhosts(&self, group_id: &str) -> Result<Vec<String>, StoreError>;

    /// The vhost of an advisor finding; `None` when there is no such finding.
    async fn finding_vhost(&self, id: i64) -> Result<Option<String>, StoreError>;
}
