//! SQL for `store::alerts`, compiled once per backend (see `store`).

use crate::store::backend::SqlBackend;
use super::{Conn, Engine};
use crate::store::alerts::{DueDelivery, NewGroup, NEW_GROUP_LOOKBACK};
use crate::store::*;
use crate::store::StoreError;
use app::model::{Addresses, AlertCondition, AlertDelivery, AlertEvent, AlertFormat, AlertRule, AlertRuleRequest};
use async_trait::async_trait;
use serde_json::Value;

/// `id, name, condition, webhook_url, created_at, format, email_to`.
type RuleRow = (i64, String, String, String, i64, String, String);

/// Addresses kept one per line.
fn lines(text: &str) -> Vec<String> {
    text.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

type DeliveryRow = (
    i64,
    i64,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

#[async_trait]
impl AlertStore for Engine {
    async fn create_alert_rule(&self, rule: &AlertRuleRequest, now: i64) -> Result<i64, StoreError> {
        let condition = serde_json::to_string(&rule.condition).unwrap_or_default();
        let email_to = rule.email_to.clone().map(Addresses::into_vec).unwrap_or_default();
        // A new_group rule announces groups that appear from now on.
        let id = sqlx::query_scalar(
            "INSERT INTO alert_rules (name, condition, webhook_url, created_at, format, email_to,
                 created_through, seen_through)
             SELECT $1, $2, $3, $4, $5, $6, m.top, m.top FROM (SELECT COALESCE(MAX(id), 0) AS top FROM messages) m
             RETURNING id",
        )
        .bind(&rule.name)
        .bind(condition)
        .bind(&rule.webhook_url)
        .bind(now)
        .bind(rule.format.as_str())
        .bind(email_to.join("\n"))
        .fetch_one(self.pool())
        .await?;
        Ok(id)
    }

    async fn delete_alert_rule(&self, id: i64) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM alert_rules WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    async fn alert_rules(&self) -> Result<Vec<AlertRule>, StoreError> {
        let rows: Vec<RuleRow> = sqlx::query_as(
            "SELECT id, name, condition, webhook_url, created_at, format, email_to FROM alert_rules ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        let firing: Vec<(i64, String)> = sqlx::query_as("SELECT rule_id, key FROM alert_firing ORDER BY key")
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, name, condition, webhook_url, created_at, format, email_to)| {
                // A condition or format this version cannot read is skipped, not fatal.
                let condition: AlertCondition = serde_json::from_str(&condition).ok()?;
                Some(AlertRule {
                    id,
                    name,
                    condition,
                    format: AlertFormat::try_from(format).ok()?,
                    webhook_url,
                    email_to: lines(&email_to),
                    created_at,
                    firing: firing
                        .iter()
                        .filter(|(r, _)| *r == id)
                        .map(|(_, k)| k.clone())
                        .collect(),
                })
            })
            .collect())
    }

    async fn alert_rule(&self, id: i64) -> Result<Option<AlertRule>, StoreError> {
        Ok(self.alert_rules().await?.into_iter().find(|r| r.id == id))
    }

    async fn fire_alert(
        &self,
        rule_id: i64,
        key: &str,
        value: f64,
        now: i64,
        payload: &Value,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let new = sqlx::query(
            "INSERT INTO alert_firing (rule_id, key, since, value) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(rule_id)
        .bind(key)
        .bind(now)
        .bind(value)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if new {
            enqueue(&mut tx, rule_id, AlertEvent::Firing, key, payload, now).await?;
        }
        tx.commit().await?;
        Ok(new)
    }

    async fn resolve_alert(
        &self,
        rule_id: i64,
        key: &str,
        now: i64,
        payload: &Value,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let was = sqlx::query("DELETE FROM alert_firing WHERE rule_id = $1 AND key = $2")
            .bind(rule_id)
            .bind(key)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if was {
            enqueue(&mut tx, rule_id, AlertEvent::Resolved, key, payload, now).await?;
        }
        tx.commit().await?;
        Ok(was)
    }

    async fn firing_keys(&self, rule_id: i64) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT key, since FROM alert_firing WHERE rule_id = $1")
                .bind(rule_id)
                .fetch_all(self.pool())
                .await?,
        )
    }

    async fn unannounced_groups(&self, rule_id: i64, limit: i64) -> Result<(Vec<NewGroup>, i64), StoreError> {
        let (created, seen, top): (i64, i64, i64) = sqlx::query_as(
            "SELECT created_through, seen_through, (SELECT COALESCE(MAX(id), 0) FROM messages)
             FROM alert_rules WHERE id = $1",
        )
        .bind(rule_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::Missing(format!("alert rule {rule_id}")))?;
        let from = created.max(seen - NEW_GROUP_LOOKBACK);
        // Each message looked at costs one probe of (group_id, id) for its
        // group's first message.
        let groups = sqlx::query_as(
            "SELECT m.group_id, m.id, m.vhost, m.queue, m.service, m.group_title AS title, m.message_id
             FROM messages m
             WHERE m.id > $1 AND m.id <= $2
               AND m.id = (SELECT MIN(o.id) FROM messages o WHERE o.group_id = m.group_id)
               AND NOT EXISTS (SELECT 1 FROM alert_announced a WHERE a.rule_id = $3 AND a.key = 'group:' || m.group_id)
             ORDER BY m.id LIMIT $4",
        )
        .bind(from)
        .bind(top)
        .bind(rule_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok((groups, top))
    }

    async fn announce(&self, rule_id: i64, key: &str, now: i64, payload: &Value) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let new = sqlx::query("INSERT INTO alert_announced (rule_id, key, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(rule_id)
            .bind(key)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if new {
            enqueue(&mut tx, rule_id, AlertEvent::Firing, key, payload, now).await?;
        }
        tx.commit().await?;
        Ok(new)
    }

    async fn seen_through(&self, rule_id: i64, through: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE alert_rules SET seen_through = $1 WHERE id = $2 AND seen_through < $1")
            .bind(through)
            .bind(rule_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn queue_test_delivery(&self, rule_id: i64, payload: &Value, now: i64) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        enqueue(&mut tx, rule_id, AlertEvent::Test, "test", payload, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn due_deliveries(&self, now: i64, limit: i64) -> Result<Vec<DueDelivery>, StoreError> {
        let rows: Vec<(i64, String, String, String, String, i64)> = sqlx::query_as(
            "SELECT d.id, r.format, r.webhook_url, r.email_to, d.payload, d.attempts FROM alert_deliveries d
             JOIN alert_rules r ON r.id = d.rule_id
             WHERE d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= $1 ORDER BY d.id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(id, format, url, email_to, payload, attempts)| {
                Ok(DueDelivery {
                    id,
                    format: AlertFormat::try_from(format)
                        .map_err(|e| StoreError::from(sqlx::Error::Decode(Box::new(e))))?,
                    url,
                    email_to: lines(&email_to),
                    payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
                    attempts,
                })
            })
            .collect()
    }

    async fn delivery_succeeded(&self, id: i64, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE alert_deliveries SET attempts = attempts + 1, delivered_at = $1, next_attempt_at = NULL,
                last_error = NULL WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn delivery_failed(&self, id: i64, error: &str, retry_at: Option<i64>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE alert_deliveries SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 WHERE id = $3",
        )
        .bind(error)
        .bind(retry_at)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn alert_deliveries(
        &self,
        rule_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AlertDelivery>, StoreError> {
        let rows: Vec<DeliveryRow> = sqlx::query_as(
            "SELECT id, rule_id, event, key, payload, attempts, created_at, delivered_at, next_attempt_at,
                last_error
             FROM alert_deliveries WHERE $1 IS NULL OR rule_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(rule_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(
                |(
                    id,
                    rule_id,
                    event,
                    key,
                    payload,
                    attempts,
                    created_at,
                    delivered_at,
                    next_attempt_at,
                    last_error,
                )| {
                    let event = AlertEvent::try_from(event)
                        .map_err(|e| StoreError::from(sqlx::Error::Decode(Box::new(e))))?;
                    Ok(AlertDelivery {
                        id,
                        rule_id,
                        event,
                        key,
                        payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
                        attempts,
                        created_at,
                        delivered_at,
                        next_attempt_at,
                        last_error,
                    })
                },
            )
            .collect()
    }
}

async fn enqueue(
    tx: &mut Conn,
    rule_id: i64,
    event: AlertEvent,
    key: &str,
    payload: &Value,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO alert_deliveries (rule_id, event, key, payload, created_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(rule_id)
    .bind(event.as_str())
    .bind(key)
    .bind(payload.to_string())
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
