//! Alert rules, what is firing, and the webhook outbox.
//!
//! Firing and resolving are single statements whose row count says whether
//! this call made the change, so an alert is announced once even when several
//! Redrive instances evaluate the same rule.

use crate::store::StoreError;
use app::model::AlertDelivery;
use app::model::AlertRule;
use app::model::AlertRuleRequest;
use async_trait::async_trait;

use serde_json::Value;

/// One webhook POST waiting to be sent.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: i64,
    pub url: String,
    pub payload: Value,
    pub attempts: i64,
}

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
