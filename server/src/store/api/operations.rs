//! What Redrive keeps about the broker and its own use: samples,
//! findings, the watched set, alerts, the audit log, sessions.

use std::collections::HashMap;

use app::model::{
    AlertDelivery, AlertRule, AlertRuleRequest, AuditEntry, Finding, HistoryPoint, InflowPoint,
    SeverityCounts,
};
use async_trait::async_trait;
use serde_json::Value;

use crate::store::alerts::DueDelivery;
use crate::store::findings::Observed;
use crate::store::samples::{Sample, TimedSample};
use crate::store::{AuditFilter, NewAudit, Session, StoreError, WatchedQueue};

/// Queue counters sampled from the broker, compacted with age, and the
/// histories read from them.
#[async_trait]
pub trait SampleStore: Send + Sync {
    async fn insert_samples(
        &self,
        at: i64,
        resolution_secs: i64,
        samples: &[Sample],
    ) -> Result<(), StoreError>;

    /// Averages aged samples into coarser buckets and drops those older than
    /// `retention_ms`. Cut-offs are aligned to bucket starts so every bucket
    /// is compacted once, from all its samples.
    async fn compact_samples(&self, now: i64, retention_ms: i64) -> Result<(), StoreError>;

    /// A queue's ready/unacked/consumers averaged per bucket since `since`.
    async fn queue_history(
        &self,
        vhost: &str,
        queue: &str,
        since: i64,
        bucket_ms: i64,
    ) -> Result<Vec<HistoryPoint>, StoreError>;

    /// Failures captured for `service` (all services when `None`) per
    /// minute, per bucket since `since`.
    async fn service_inflow(
        &self,
        service: Option<&str>,
        since: i64,
        bucket_ms: i64,
        visible: Option<&[String]>,
    ) -> Result<Vec<InflowPoint>, StoreError>;

    /// Failures captured since `since` in `visible` vhosts (all when
    /// `None`), per service (`""` when unknown).
    async fn inflow_by_service(
        &self,
        since: i64,
        visible: Option<&[String]>,
    ) -> Result<Vec<(String, i64)>, StoreError>;

    /// Every queue's samples since `since`, oldest first.
    async fn samples_since(
        &self,
        since: i64,
    ) -> Result<HashMap<(String, String), Vec<TimedSample>>, StoreError>;

    /// Messages stored in `visible` vhosts (all when `None`): `(all of
    /// them, those still failed)`. From the kept counts, never a scan.
    async fn stored_counts(&self, visible: Option<&[String]>) -> Result<(i64, i64), StoreError>;

    /// Unhandled (failed) messages per `(vhost, queue)`, and how many of them
    /// were published transient (delivery mode other than 2).
    async fn unhandled_counts(&self) -> Result<HashMap<(String, String), (i64, i64)>, StoreError>;
}

/// The advisor's findings, opened and resolved as conditions come and go.
#[async_trait]
pub trait FindingStore: Send + Sync {
    /// Records what the advisor sees now in `vhosts`: new findings open,
    /// present ones are refreshed, open ones no longer seen are resolved.
    /// Findings in other vhosts are left alone (another Redrive may own them).
    async fn sync_findings(
        &self,
        now: i64,
        vhosts: &[String],
        observed: &[Observed],
    ) -> Result<(), StoreError>;

    /// Open findings, most severe first, then those resolved since `resolved_since`.
    async fn findings(&self, resolved_since: i64) -> Result<Vec<Finding>, StoreError>;

    async fn open_finding_counts(&self) -> Result<SeverityCounts, StoreError>;
}

/// The watched set capture starts from at boot, and operators' switches.
#[async_trait]
pub trait WatchStore: Send + Sync {
    async fn watched_queues(&self) -> Result<Vec<WatchedQueue>, StoreError>;

    /// Makes the stored watched set of `vhost` exactly `queues` (name →
    /// reason), keeping `since` of queues that stay.
    async fn sync_watched(&self, vhost: &str, queues: &HashMap<String, String>) -> Result<(), StoreError>;

    /// Forgets the watched queues of vhosts that no longer exist.
    async fn forget_watched_vhosts_except(&self, vhosts: &[String]) -> Result<(), StoreError>;

    /// The operator's switches of `vhost`, by queue name (`true`: capture).
    async fn watch_overrides(&self, vhost: &str) -> Result<HashMap<String, bool>, StoreError>;

    /// Every operator switch: vhost → queue → capture.
    async fn all_watch_overrides(&self) -> Result<HashMap<String, HashMap<String, bool>>, StoreError>;

    /// Sets (`Some`) or clears (`None`, back to the rules) an operator's switch.
    async fn set_watch_override(
        &self,
        vhost: &str,
        name: &str,
        watch: Option<bool>,
        actor: &str,
    ) -> Result<(), StoreError>;
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

/// The append-only audit log.
#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn append_audit(&self, entry: &NewAudit) -> Result<(), StoreError>;

    /// A page of entries, newest first, and whether more follow.
    async fn audit(&self, f: &AuditFilter) -> Result<(Vec<AuditEntry>, bool), StoreError>;

    /// Deletes entries older than `before_ms` (the retention setting); returns how many.
    async fn purge_audit(&self, before_ms: i64) -> Result<u64, StoreError>;
}

/// UI sign-in sessions, shared by every instance on the database.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(
        &self,
        token: &str,
        user: &str,
        csrf: &str,
        source: Option<&str>,
    ) -> Result<(), StoreError>;

    /// The session for `token` when it was used within `idle_ms`; marks it
    /// used. An expired session is deleted.
    async fn touch_session(&self, token: &str, idle_ms: i64) -> Result<Option<Session>, StoreError>;

    async fn delete_session(&self, token: &str) -> Result<(), StoreError>;

    /// Deletes sessions idle for longer than `idle_ms`; returns how many.
    async fn expire_sessions(&self, idle_ms: i64) -> Result<u64, StoreError>;
}

/// Named leases: work that one instance of a cluster does at a time. A
/// lease is held until it expires; its holder renews it well before.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes `name` for `holder` for `ttl_ms`, or renews it when `holder`
    /// has it. `false` (and nothing changed) while another holder's lease
    /// is live.
    async fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool, StoreError>;

    /// Gives `name` up at once, when `holder` has it (a stopping instance,
    /// so another takes over without waiting for the expiry).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    /// Ends every lease `holder` does not hold; returns how many. Only for
    /// a database no other instance can be using (SQLite, behind the
    /// instance lock), where every other holder is a process that died.
    async fn clear_leases_except(&self, holder: &str) -> Result<u64, StoreError>;
}
