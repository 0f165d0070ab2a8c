//! The seam between the UI's server functions and the server's storage and
//! broker code. The server puts a [`BackendHandle`] into Leptos context for
//! each request, bound to the signed-in user: it sees what that user may
//! see, refuses what they may not do, and records what they did under their
//! name. `app` never depends on `server`.

use std::sync::Arc;

use crate::model::{
    AdvisorReport, AlertDelivery, AlertRule, AlertRuleRequest, AnnotationChange, AnnotationTarget,
    Annotations, ApiError, AuditPage, AuditQuery, GroupClaim, GroupQuery, GroupSummary, HoldRequest, Job,
    JobCommand, JobCreated, JobItem, JobRequest, Me, MessageClaim, MessageDetail, MessagePage, MessageQuery,
    MessageSummary, Overview, OwnerRequest, Policy, PolicyPreview, PolicyRequest, QueueHistory, QueuesView,
    ReplayTarget, ServiceHistory, WatchSwitch,
};

#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The signed-in user and what they may do.
    async fn me(&self) -> Result<Me, ApiError>;
    async fn list_messages(&self, query: MessageQuery) -> Result<MessagePage, ApiError>;
    async fn message(&self, id: i64) -> Result<MessageDetail, ApiError>;
    /// The stored messages whose AMQP `message_id` is this (newest first,
    /// at most [`crate::model::MESSAGE_ID_MATCHES`]), for links built from it.
    async fn with_message_id(&self, message_id: String) -> Result<Vec<MessageSummary>, ApiError>;
    async fn replay(&self, id: i64, target: ReplayTarget) -> Result<MessageDetail, ApiError>;
    async fn discard(&self, id: i64) -> Result<MessageDetail, ApiError>;
    async fn restore(&self, id: i64) -> Result<MessageDetail, ApiError>;
    async fn groups(&self, query: GroupQuery) -> Result<Vec<GroupSummary>, ApiError>;
    /// Sets or clears who is on a failure group.
    async fn set_group_owner(&self, id: String, request: OwnerRequest) -> Result<GroupClaim, ApiError>;
    /// Puts a failure group on hold (out of the counts and alerts) until a time.
    async fn hold_group(&self, id: String, request: HoldRequest) -> Result<GroupClaim, ApiError>;
    /// Ends a group's hold now.
    async fn release_group(&self, id: String) -> Result<GroupClaim, ApiError>;
    /// Sets or clears who is on one message.
    async fn set_message_owner(&self, id: i64, request: OwnerRequest) -> Result<MessageClaim, ApiError>;
    /// Puts one message on hold (out of the counts and alerts).
    async fn hold_message(&self, id: i64, request: HoldRequest) -> Result<MessageClaim, ApiError>;
    /// Ends a message's hold now.
    async fn release_message(&self, id: i64) -> Result<MessageClaim, ApiError>;
    async fn create_job(&self, request: JobRequest) -> Result<JobCreated, ApiError>;
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
    ) -> Result<Annotations, ApiError>;
    /// Every queue with its statistics; the last known ones (with their age)
    /// when the management API is down.
    async fn queues(&self) -> Result<QueuesView, ApiError>;
    /// An operator's switch for one queue: capture it, leave it alone, or
    /// (`None`) follow the rules again. Persisted; capture follows within a
    /// discovery interval.
    async fn set_watch(&self, vhost: &str, queue: &str, switch: WatchSwitch) -> Result<(), ApiError>;
    async fn overview(&self) -> Result<Overview, ApiError>;
    async fn queue_history(&self, vhost: &str, queue: &str, window: &str) -> Result<QueueHistory, ApiError>;
    /// Failures captured per minute for a service (`""`: all services).
    async fn service_history(&self, service: &str, window: &str) -> Result<ServiceHistory, ApiError>;
    async fn vhosts(&self) -> Result<Vec<String>, ApiError>;
    async fn policies(&self, vhost: Option<String>) -> Result<Vec<Policy>, ApiError>;
    /// Validates, then creates or replaces the policy through the management API.
    async fn put_policy(&self, vhost: &str, name: &str, policy: PolicyRequest) -> Result<Policy, ApiError>;
    async fn delete_policy(&self, vhost: &str, name: &str) -> Result<(), ApiError>;
    /// Which queues the policy would match and which policy would win for each.
    async fn preview_policy(
        &self,
        vhost: &str,
        name: &str,
        policy: PolicyRequest,
    ) -> Result<PolicyPreview, ApiError>;
    /// Open findings, and those resolved in the last day.
    async fn advisor(&self) -> Result<AdvisorReport, ApiError>;
    /// Applies a finding's one-click fix (a policy or a binding).
    async fn apply_fix(&self, finding_id: i64) -> Result<(), ApiError>;
    async fn alert_rules(&self) -> Result<Vec<AlertRule>, ApiError>;
    async fn create_alert_rule(&self, rule: AlertRuleRequest) -> Result<AlertRule, ApiError>;
    async fn delete_alert_rule(&self, id: i64) -> Result<(), ApiError>;
    /// Queues a test notification to the rule's webhook.
    async fn test_alert_rule(&self, id: i64) -> Result<(), ApiError>;
    async fn alert_deliveries(&self, rule_id: Option<i64>) -> Result<Vec<AlertDelivery>, ApiError>;
    /// Audit entries, newest first: all of them for administrators, one's
    /// own for everyone else.
    async fn audit(&self, query: AuditQuery) -> Result<AuditPage, ApiError>;
}

pub type BackendHandle = Arc<dyn Backend>;
