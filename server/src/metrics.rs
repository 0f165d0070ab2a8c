//! `/metrics` in the Prometheus text format (`prometheus-client`).
//!
//! Events are counted where they happen (a committed batch, a replay's
//! verdict, a management API call); states are read when scraped (stored
//! messages by status, running jobs, queue depths from the last broker
//! snapshot, consumer states), so a scrape shows the same truth as the UI.
//! Every name is listed in the README.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub vhost: String,
    pub queue: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum ReplayPath {
    /// An operator's replay of one message (edited or not).
    Single,
    /// A message of a bulk replay job.
    Job,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum ReplayOutcome {
    /// Confirmed by the broker.
    Replayed,
    /// Refused (returned, nacked, not published).
    Failed,
    /// Published, then no confirm: flagged for the operator.
    Unknown,
}

impl From<crate::store::Settlement> for ReplayOutcome {
    fn from(s: crate::store::Settlement) -> Self {
        use crate::store::Settlement;
        match s {
            Settlement::Replayed => Self::Replayed,
            Settlement::Failed => Self::Failed,
            Settlement::Unknown => Self::Unknown,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplayLabels {
    path: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: String,
    action: String,
    state: String,
    items: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConsumerLabels {
    vhost: String,
    queue: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientLabels {
    client: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The counters and gauges of one Redrive instance.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    received: Family<QueueLabels, Counter>,
    stored: Family<QueueLabels, Counter>,
    replays: Family<ReplayLabels, Counter>,
    commit_seconds: Histogram,
    management_seconds: Family<OutcomeLabels, Histogram>,
    // Read at scrape time.
    messages: Family<StatusLabels, Gauge>,
    job_items: Family<JobLabels, Gauge>,
    ready: Family<QueueLabels, Gauge>,
    unacked: Family<QueueLabels, Gauge>,
    consumer: Family<ConsumerLabels, Gauge>,
    reconnects: Family<QueueLabels, Counter>,
    failovers: Family<ClientLabels, Counter>,
    database_up: Gauge,
    database_ping: Gauge<f64, std::sync::atomic::AtomicU64>,
    broker_data_age: Gauge<f64, std::sync::atomic::AtomicU64>,
}

fn seconds() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("redrive");
        let inner = Inner {
            received: Family::default(),
            stored: Family::default(),
            replays: Family::default(),
            commit_seconds: seconds(),
            management_seconds: Family::new_with_constructor(seconds),
            messages: Family::default(),
            job_items: Family::default(),
            ready: Family::default(),
            unacked: Family::default(),
            consumer: Family::default(),
            reconnects: Family::default(),
            failovers: Family::default(),
            database_up: Gauge::default(),
            database_ping: Gauge::default(),
            broker_data_age: Gauge::default(),
            registry: Registry::default(),
        };
        // Name, help, metric: the README's table lists the same.
        macro_rules! register {
            ($($name:literal, $help:literal => $metric:expr;)*) => {
                $(registry.register($name, $help, $metric.clone());)*
            };
        }
        register! {
            "messages_received", "Deliveries taken from a watched queue and committed (copies of stored rows included)" => inner.received;
            "messages_stored", "Rows stored from a watched queue (redelivered copies of stored rows excluded)" => inner.stored;
            "replays", "Replay verdicts, by path (single or job) and outcome (replayed, failed, unknown)" => inner.replays;
            "capture_commit_seconds", "Time to commit one captured batch durably (before its ack)" => inner.commit_seconds;
            "management_request_seconds", "Management API calls, by outcome (ok or error)" => inner.management_seconds;
            "messages", "Stored messages by status" => inner.messages;
            "job_items", "Items of unfinished jobs, by job, action, state and items (done, failed, pending)" => inner.job_items;
            "queue_messages_ready", "Ready messages of each watched queue (waiting to be captured), from the last broker snapshot" => inner.ready;
            "queue_messages_unacked", "Unacknowledged messages of each watched queue, from the last broker snapshot" => inner.unacked;
            "consumer_state", "1 for the state each capture consumer is in (starting, connected, reconnecting)" => inner.consumer;
            "consumer_reconnects", "Times a capture consumer lost its channel or connection and went to reconnect" => inner.reconnects;
            "failovers", "Times a connection went to another cluster node than the last one, by client (amqp, management)" => inner.failovers;
            "database_up", "1 while captured batches commit, 0 during a database outage" => inner.database_up;
            "database_ping_seconds", "Round trip of a trivial query at scrape time: the database's latency as every request sees it" => inner.database_ping;
            "broker_data_age_seconds", "Age of the last successful management API snapshot" => inner.broker_data_age;
        }
        Self(Arc::new(Inner { registry, ..inner }))
    }
}

/// What a scrape reads besides the counters.
pub struct Scraped {
    pub messages_by_status: Vec<(String, i64)>,
    /// (job, action, state, done, failed, pending)
    pub jobs: Vec<(i64, String, String, i64, i64, i64)>,
    /// (vhost, queue, ready, unacked) of watched queues.
    pub queues: Vec<(String, String, i64, i64)>,
    /// (vhost, queue, state)
    pub consumers: Vec<(String, String, String)>,
    pub database_up: bool,
    /// How long `SELECT 1` took during this scrape.
    pub database_ping: Duration,
    pub broker_data_age: Option<Duration>,
}

impl Metrics {
    pub fn captured(&self, vhost: &str, queue: &str, received: usize, stored: usize) {
        let labels = QueueLabels {
            vhost: vhost.to_owned(),
            queue: queue.to_owned(),
        };
        self.0.received.get_or_create(&labels).inc_by(received as u64);
        self.0.stored.get_or_create(&labels).inc_by(stored as u64);
    }

    pub fn reconnecting(&self, vhost: &str, queue: &str) {
        let labels = QueueLabels {
            vhost: vhost.to_owned(),
            queue: queue.to_owned(),
        };
        self.0.reconnects.get_or_create(&labels).inc();
    }

    /// A connection (`amqp`) or management call (`management`) went to
    /// another node than the one that answered last.
    pub fn failed_over(&self, client: &'static str) {
        self.0.failovers.get_or_create(&ClientLabels { client }).inc();
    }

    pub fn committed(&self, took: Duration) {
        self.0.commit_seconds.observe(took.as_secs_f64());
    }

    pub fn replayed(&self, path: ReplayPath, outcome: ReplayOutcome) {
        self.0
            .replays
            .get_or_create(&ReplayLabels {
                path: path.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn management_call(&self, took: Duration, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.0
            .management_seconds
            .get_or_create(&OutcomeLabels { outcome })
            .observe(took.as_secs_f64());
    }

    /// The text exposition, with the scrape-time states set first.
    pub fn render(&self, now: Scraped) -> String {
        let i = &self.0;
        i.messages.clear();
        for (status, n) in now.messages_by_status {
            i.messages.get_or_create(&StatusLabels { status }).set(n);
        }
        i.job_items.clear();
        for (job, action, state, done, failed, pending) in now.jobs {
            for (items, n) in [("done", done), ("failed", failed), ("pending", pending)] {
                let labels = JobLabels {
                    job: job.to_string(),
                    action: action.clone(),
                    state: state.clone(),
                    items: items.to_owned(),
                };
                i.job_items.get_or_create(&labels).set(n);
            }
        }
        i.ready.clear();
        i.unacked.clear();
        for (vhost, queue, ready, unacked) in now.queues {
            let labels = QueueLabels { vhost, queue };
            i.ready.get_or_create(&labels).set(ready);
            i.unacked.get_or_create(&labels).set(unacked);
        }
        i.consumer.clear();
        for (vhost, queue, state) in now.consumers {
            let labels = ConsumerLabels { vhost, queue, state };
            i.consumer.get_or_create(&labels).set(1);
        }
        i.database_up.set(i64::from(now.database_up));
        i.database_ping.set(now.database_ping.as_secs_f64());
        i.broker_data_age
            .set(now.broker_data_age.map_or(f64::NAN, |d| d.as_secs_f64()));
        let mut out = String::new();
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &i.registry);
        out
    }
}
