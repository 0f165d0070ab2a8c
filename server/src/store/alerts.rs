//! Alert rules, what is firing, and the webhook outbox.
//!
//! Firing and resolving are single statements whose row count says whether
//! this call made the change, so an alert is announced once even when several
//! Redrive instances evaluate the same rule.

use serde_json::Value;

/// One webhook POST waiting to be sent.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: i64,
    pub url: String,
    pub payload: Value,
    pub attempts: i64,
}
