//! Alert rules, what is firing, and the webhook outbox.
//!
//! Firing and resolving are single statements whose row count says whether
//! this call made the change, so an alert is announced once even when several
//! Redrive instances evaluate the same rule.

use crate::store::StoreError;
use app::model::AlertRule;
use app::model::AlertRuleRequest;
use app::model::{AlertDelivery, AlertFormat};
use async_trait::async_trait;

use serde_json::Value;

/// One notification waiting to be sent: Redrive's own payload, and how
/// its rule sends it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: i64,
    pub format: AlertFormat,
    pub url: String,
    pub email_to: Vec<String>,
    pub payload: Value,
    pub attempts: i64,
}

/// A failure group a `new_group` rule has not announced: its first message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NewGroup {
    pub group_id: String,
    /// The first message's id.
    pub id: i64,
    pub vhost: String,
    pub queue: String,
    pub service: Option<String>,
    pub title: Option<String>,
    pub message_id: Option<String>,
}

/// Ids a `new_group` rule looks at again below where its last look ended:
/// on PostgreSQL several instances' ids commit out of order, so a message
/// may appear below ids already seen (announcing is idempotent).
pub const NEW_GROUP_LOOKBACK: i64 = 10_000;

/// Alert rules, their firing state, and the webhook outbox.
#[async_trait]
pub trait AlertStore: Send + Sync {
    async fn create_alert_rule(&self, rule: &AlertRuleRequest, now: i64) -> Result<i64, StoreError>;

    async fn delete_alert_rule(&self, id: i64) -> Result<bool, StoreError>;

    async fn alert_rules(&self) -> Result<Vec<AlertRule>, StoreError>;

    async fn alert_rule(&self, id: i64) -> Result<Option<AlertRule>, StoreError>;

    /// Marks `key` firing; queues the notification only if it was not already.
    async fn fire_alert(
        &self,
        rule_id: i64,
        key: &str,
        value: f64,
        now: i64,
        payload: &Value,
    ) -> Result<bool, StoreError>;

    /// Clears `key`; queues the "resolved" notification only if it was firing.
    async fn resolve_alert(
        &self,
        rule_id: i64,
        key: &str,
        now: i64,
        payload: &Value,
    ) -> Result<bool, StoreError>;

    /// Keys firing for a rule, with since when.
    async fn firing_keys(&self, rule_id: i64) -> Result<Vec<(String, i64)>, StoreError>;

    /// The groups whose first message came after `rule_id` was made and
    /// that it has not announced, looking at messages up to the newest one
    /// (returned, for [`Self::seen_through`]), at most `limit`.
    async fn unannounced_groups(&self, rule_id: i64, limit: i64) -> Result<(Vec<NewGroup>, i64), StoreError>;

    /// Announces `key` for `rule_id` once: records it and queues the
    /// notification, unless it was announced already (another instance).
    async fn announce(&self, rule_id: i64, key: &str, now: i64, payload: &Value) -> Result<bool, StoreError>;

    /// Where a `new_group` rule's last look ended.
    async fn seen_through(&self, rule_id: i64, through: i64) -> Result<(), StoreError>;

    async fn queue_test_delivery(&self, rule_id: i64, payload: &Value, now: i64) -> Result<(), StoreError>;

    async fn due_deliveries(&self, now: i64, limit: i64) -> Result<Vec<DueDelivery>, StoreError>;

    async fn delivery_succeeded(&self, id: i64, now: i64) -> Result<(), StoreError>;

    /// Records a failed attempt; `retry_at` `None` means given up.
    async fn delivery_failed(&self, id: i64, error: &str, retry_at: Option<i64>) -> Result<(), StoreError>;

    /// Latest deliveries, newest first; one rule's when `rule_id` is given.
    async fn alert_deliveries(
        &self,
        rule_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AlertDelivery>, StoreError>;
}
