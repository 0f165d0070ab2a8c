//! Sampled queue counters and captured-failure rates over time.

use crate::store::StoreError;
use app::model::HistoryPoint;
use app::model::InflowPoint;
use async_trait::async_trait;
use std::collections::HashMap;

/// One queue's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub vhost: String,
    pub queue: String,
    pub ready: f64,
    pub unacked: f64,
    pub consumers: f64,
    pub publish_rate: f64,
    pub deliver_rate: f64,
    pub redeliver_rate: f64,
    pub ack_rate: f64,
    pub backlog: f64,
}

/// A sample as read back for the advisor's "for N minutes" checks.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedSample {
    pub at: i64,
    pub sample: Sample,
}

/// Ages after which samples are averaged into coarser buckets: older than an
/// hour → 1 minute, older than a day → 10 minutes. Charts over 24 h and 7 d
/// need no finer points, and a week of 10 s samples of many queues is large.
pub const DOWNSAMPLING: [(i64, i64); 2] = [(3_600, 60), (86_400, 600)];

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
