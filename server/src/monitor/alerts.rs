//! Alert rules: evaluated on every monitor tick, announced through a durable
//! outbox that the delivery worker drains with retries and backoff, in the
//! rule's format (see `notify`).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use app::model::{AlertCondition, AlertEvent, AlertRule, Finding, QueueInfo, QueueMetric};
use regex::Regex;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::notify::Notifier;
use crate::domain::Mask;
use crate::lease::{Lease, Leases, RENEW_EVERY};
use crate::store::{now_ms, Store};

/// Attempts before a delivery is given up (about an hour of backoff).
pub const MAX_ATTEMPTS: i64 = 12;

/// What fires for a rule now, by key.
pub type Firing = HashMap<String, Fire>;

/// One key's firing: its value, what to say, and the page that shows it
/// (a path; the notifier makes it absolute).
#[derive(Debug, Clone, PartialEq)]
pub struct Fire {
    pub value: f64,
    pub summary: String,
    pub link: String,
}

/// What a path segment keeps as it is: letters, digits and `-._~`.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment as a URL needs it.
fn seg(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

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
                    let link = format!("/queues/{}/{}", seg(&q.vhost), seg(&q.name));
                    firing.insert(format!("{}/{}", q.vhost, q.name), Fire { value, summary, link });
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
                    firing.insert(
                        format!("service:{s}"),
                        Fire {
                            value,
                            summary,
                            link: service_link(s),
                        },
                    );
                }
            }
        }
        AlertCondition::Finding { severity } => {
            for f in findings
                .iter()
                .filter(|f| f.resolved_at.is_none() && f.severity >= *severity)
            {
                let summary = format!("[{}] {}", f.severity.as_str(), f.message);
                let fire = Fire {
                    value: 1.0,
                    summary,
                    link: "/advisor".into(),
                };
                firing.insert(format!("{}/{}/{}", f.vhost, f.object, f.kind), fire);
            }
        }
        // An event, not a state: announced by `announce_new_groups`.
        AlertCondition::NewGroup { .. } => return None,
    }
    Some(firing)
}

/// A service's page; the failed messages for failures of no known service.
fn service_link(service: &str) -> String {
    if service.is_empty() {
        "/?status=failed".into()
    } else {
        format!("/services/{}", seg(service))
    }
}

/// The page a resolved key's notification links to (the firing one's,
/// where the key names it unambiguously).
fn resolved_link(rule: &AlertRule, key: &str) -> String {
    match &rule.condition {
        AlertCondition::ErrorInflow { .. } => service_link(key.strip_prefix("service:").unwrap_or_default()),
        AlertCondition::Finding { .. } => "/advisor".into(),
        _ => "/queues".into(),
    }
}

/// Announces, once each, the failure groups that appeared since a
/// `new_group` rule last looked, narrowed by its service and vhost.
/// Group titles go out masked (`REDRIVE_MASK`'s text rules): a
/// notification leaves Redrive for a channel anyone may read.
pub async fn announce_new_groups(
    store: &Store,
    rule: &AlertRule,
    mask: &Mask,
    now: i64,
) -> anyhow::Result<()> {
    let AlertCondition::NewGroup { service, vhost } = &rule.condition else {
        return Ok(());
    };
    let (groups, through) = store.unannounced_groups(rule.id, 500).await?;
    let complete = groups.len() < 500;
    for g in &groups {
        let wanted = service.as_ref().is_none_or(|s| g.service.as_ref() == Some(s))
            && vhost.as_ref().is_none_or(|v| v == &g.vhost);
        if !wanted {
            continue;
        }
        let key = format!("group:{}", g.group_id);
        let title = g.title.as_deref().unwrap_or("(no exception message)");
        let title = mask.text(title).unwrap_or_else(|| title.to_owned());
        let from = g
            .service
            .as_deref()
            .map_or_else(|| g.queue.clone(), |s| format!("{s} ({})", g.queue));
        let summary = format!("New failure group in {from}, vhost {}: {title}", g.vhost);
        let example = match &g.message_id {
            Some(id) => format!("/m/{}", seg(id)),
            None => format!("/messages/{}", g.id),
        };
        let mut body = payload(rule, AlertEvent::Firing, &key, Some(1.0), &summary, now);
        body["link"] = format!("/?group={}", seg(&g.group_id)).into();
        body["example"] = example.into();
        body["group"] = json!({"id": g.group_id, "vhost": g.vhost, "queue": g.queue, "service": g.service});
        store.announce(rule.id, &key, now, &body).await?;
    }
    // A look cut short by the limit goes on from there next time.
    let seen = if complete {
        through
    } else {
        groups.last().map_or(through, |g| g.id)
    };
    store.seen_through(rule.id, seen).await?;
    Ok(())
}

/// Redrive's own payload (the `json` format), kept in the outbox; `link`
/// is the path of the page that shows what fired (`/alerts` until set).
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
        "link": "/alerts",
    })
}

/// Applies a rule's evaluation: new keys fire, vanished keys resolve.
pub async fn apply(store: &Store, rule: &AlertRule, firing: Firing, now: i64) -> anyhow::Result<()> {
    for (key, fire) in &firing {
        let mut body = payload(
            rule,
            AlertEvent::Firing,
            key,
            Some(fire.value),
            &fire.summary,
            now,
        );
        body["link"] = fire.link.clone().into();
        store.fire_alert(rule.id, key, fire.value, now, &body).await?;
    }
    for (key, since) in store.firing_keys(rule.id).await? {
        if !firing.contains_key(&key) {
            let mut body = payload(
                rule,
                AlertEvent::Resolved,
                &key,
                None,
                &format!("{key}: back to normal"),
                now,
            );
            body["link"] = resolved_link(rule, &key).into();
            body["since"] = since.into();
            store.resolve_alert(rule.id, &key, now, &body).await?;
        }
    }
    Ok(())
}

/// Sends due notifications until `shutdown`.
/// Only the instance holding the outbox's lease sends, so a notification
/// is sent once however many instances run.
pub async fn deliver(store: Store, leases: Leases, notifier: Notifier, shutdown: CancellationToken) {
    loop {
        if let Err(e) = deliver_due(&store, &leases, &notifier).await {
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
/// send (one may take its whole 10 s timeout), so no other instance can
/// be sending the same delivery meanwhile.
async fn deliver_due(store: &Store, leases: &Leases, notifier: &Notifier) -> anyhow::Result<()> {
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
        match notifier.send(d.format, &d.url, &d.email_to, &d.payload).await {
            Ok(()) => store.delivery_succeeded(d.id, now_ms()).await?,
            Err(error) => {
                let attempts = d.attempts + 1;
                let wait = crate::retry::delay(crate::retry::webhook(), (attempts - 1) as usize);
                let retry_at = wait
                    .filter(|_| attempts < MAX_ATTEMPTS)
                    .map(|w| now_ms() + w.as_millis() as i64);
                tracing::warn!(delivery = d.id, attempts, %error, "alert notification failed");
                store.delivery_failed(d.id, &error, retry_at).await?;
            }
        }
    }
    Ok(())
}
