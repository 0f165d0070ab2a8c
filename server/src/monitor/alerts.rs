//! Alert rules: evaluated on every monitor tick, announced through a durable
//! webhook outbox that the delivery worker drains with retries and backoff.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use app::model::{AlertCondition, AlertEvent, AlertRule, Finding, QueueInfo, QueueMetric};
use regex::Regex;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::lease::{Lease, Leases, RENEW_EVERY};
use crate::store::{now_ms, Store};

/// Attempts before a delivery is given up (about an hour of backoff).
pub const MAX_ATTEMPTS: i64 = 12;

/// What fires for a rule now: key → (value, summary).
pub type Firing = HashMap<String, (f64, String)>;

/// The keys a rule fires for, given the current state. `queues` is `None`
/// when broker data is stale: queue rules are then left as they are.
pub fn evaluate(
    rule: &AlertRule,
    queues: Option<&[QueueInfo]>,
    inflow_last_minute: &[(String, i64)],
    findings: &[Finding],
) -> Option<Firing> {
    let mut firing = Firing::new();
    match &rule.condition {
        AlertCondition::Queue {
            vhost,
            queue,
            metric,
            op,
            threshold,
        } => {
            let pattern = Regex::new(queue).ok()?;
            for q in queues? {
                if vhost.as_ref().is_some_and(|v| v != &q.vhost) || !pattern.is_match(&q.name) {
                    continue;
                }
                let (value, label) = match metric {
                    QueueMetric::Ready => (q.messages_ready, "ready"),
                    QueueMetric::Unacked => (q.messages_unacknowledged, "unacked"),
                    QueueMetric::Consumers => (q.consumers, "consumers"),
                };
                let value = value as f64;
                let hit = if op == "below" {
                    value < *threshold
                } else {
                    value > *threshold
                };
                if hit {
                    let summary = format!("{}/{}: {label} is {value} ({op} {threshold})", q.vhost, q.name);
                    firing.insert(format!("{}/{}", q.vhost, q.name), (value, summary));
                }
            }
        }
        AlertCondition::ErrorInflow { service, per_minute } => {
            for (s, n) in inflow_last_minute {
                if service.as_ref().is_some_and(|want| want != s) {
                    continue;
                }
                let value = *n as f64;
                if value > *per_minute {
                    let shown = if s.is_empty() { "(unknown service)" } else { s };
                    let summary = format!("{shown}: {n} failures in the last minute (above {per_minute})");
                    firing.insert(format!("service:{s}"), (value, summary));
                }
            }
        }
        AlertCondition::Finding { severity } => {
            for f in findings
                .iter()
                .filter(|f| f.resolved_at.is_none() && f.severity >= *severity)
            {
                let summary = format!("[{}] {}", f.severity.as_str(), f.message);
                firing.insert(format!("{}/{}/{}", f.vhost, f.object, f.kind), (1.0, summary));
            }
        }
    }
    Some(firing)
}

pub fn payload(
    rule: &AlertRule,
    event: AlertEvent,
    key: &str,
    value: Option<f64>,
    summary: &str,
    at: i64,
) -> Value {
    json!({
        "source": "redrive",
        "event": event,
        "rule": { "id": rule.id, "name": rule.name, "condition": rule.condition },
        "key": key,
        "value": value,
        "summary": summary,
        "at": at,
    })
}

/// Applies a rule's evaluation: new keys fire, vanished keys resolve.
pub async fn apply(store: &Store, rule: &AlertRule, firing: Firing, now: i64) -> anyhow::Result<()> {
    for (key, (value, summary)) in &firing {
        let body = payload(rule, AlertEvent::Firing, key, Some(*value), summary, now);
        store.fire_alert(rule.id, key, *value, now, &body).await?;
    }
    for (key, _) in store.firing_keys(rule.id).await? {
        if !firing.contains_key(&key) {
            let body = payload(
                rule,
                AlertEvent::Resolved,
                &key,
                None,
                &format!("{key}: back to normal"),
                now,
            );
            store.resolve_alert(rule.id, &key, now, &body).await?;
        }
    }
    Ok(())
}

/// Sends due webhook deliveries until `shutdown`.
/// Only the instance holding the outbox's lease sends, so a webhook is
/// posted once however many instances run.
pub async fn deliver(store: Store, leases: Leases, shutdown: CancellationToken) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("static reqwest configuration is valid");
    loop {
        if let Err(e) = deliver_due(&store, &leases, &http).await {
            tracing::warn!(error = %format!("{e:#}"), "alert delivery pass failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// Longer than a renewal gap plus one post's 10 s timeout.
const OUTBOX_TTL: Duration = Duration::from_secs(30);

/// The lease is taken before anything is read and renewed before each
/// post (a post may take its whole 10 s timeout), so no other instance can
/// be sending the same delivery meanwhile.
async fn deliver_due(store: &Store, leases: &Leases, http: &reqwest::Client) -> anyhow::Result<()> {
    if !leases.hold_for(Lease::AlertOutbox, OUTBOX_TTL).await {
        return Ok(());
    }
    let mut held_since = tokio::time::Instant::now();
    for d in store
        .due_deliveries(now_ms(), 50)
        .await
        .context("reading due deliveries")?
    {
        if held_since.elapsed() >= RENEW_EVERY {
            if !leases.hold_for(Lease::AlertOutbox, OUTBOX_TTL).await {
                return Ok(());
            }
            held_since = tokio::time::Instant::now();
        }
        let result = http.post(&d.url).json(&d.payload).send().await;
        let error = match result {
            Ok(res) if res.status().is_success() => None,
            Ok(res) => Some(format!("webhook answered {}", res.status())),
            // Without its URL: the URL can be the secret.
            Err(e) => Some(format!("webhook unreachable: {}", e.without_url())),
        };
        match error {
            None => store.delivery_succeeded(d.id, now_ms()).await?,
            Some(error) => {
                let attempts = d.attempts + 1;
                let wait = crate::retry::delay(crate::retry::webhook(), (attempts - 1) as usize);
                let retry_at = wait
                    .filter(|_| attempts < MAX_ATTEMPTS)
                    .map(|w| now_ms() + w.as_millis() as i64);
                tracing::warn!(delivery = d.id, attempts, %error, "alert webhook failed");
                store.delivery_failed(d.id, &error, retry_at).await?;
            }
        }
    }
    Ok(())
}
