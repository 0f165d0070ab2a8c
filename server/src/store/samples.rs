//! Sampled queue counters and captured-failure rates over time.

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
