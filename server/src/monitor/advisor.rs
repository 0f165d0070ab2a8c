//! The reliability advisor: checks that find what puts messages at risk, from
//! one snapshot of the broker, the sampled history and what Redrive stores.
//! A pure function, so every check is unit-tested without a broker.

use std::collections::{BTreeMap, HashMap, HashSet};

use app::model::{BrokerVersion, FixAction, PolicyRequest, QueueKind, Severity};
use serde_json::{json, Map, Value};

use super::snapshot::Snapshot;
use crate::broker::QueueStats;
use crate::ingest::decode::service_of;
use crate::store::findings::Observed;
use crate::store::samples::TimedSample;
use crate::topology::Role;
use crate::topology::VhostState;

/// Tunables; defaults come from the configuration.
pub struct Thresholds {
    /// How long a condition must hold ("unacked stuck for N minutes").
    pub window_ms: i64,
    /// Ready messages from which a non-lazy classic queue counts as deep.
    pub deep_queue: i64,
    /// Redeliveries per second from which a queue with no acks is looping.
    pub redeliver_rate: f64,
}

/// What the advisor knows besides the snapshot.
pub struct Facts<'a> {
    pub now: i64,
    /// Samples per `(vhost, queue)`, oldest first, reaching back a little
    /// more than one window.
    pub history: &'a HashMap<(String, String), Vec<TimedSample>>,
    /// Unhandled messages Redrive holds per `(vhost, queue)`, and how many
    /// of those were published transient.
    pub unhandled: &'a HashMap<(String, String), (i64, i64)>,
}

pub fn advise(snapshot: &Snapshot, facts: &Facts, t: &Thresholds) -> Vec<Observed> {
    let mut out = Vec::new();
    for vhost in &snapshot.vhosts {
        VhostAdvisor {
            vhost,
            facts,
            t,
            version: snapshot.version(),
            out: &mut out,
        }
        .run();
    }
    out
}

struct VhostAdvisor<'a, 'o> {
    vhost: &'a VhostState,
    facts: &'a Facts<'a>,
    t: &'a Thresholds,
    version: BrokerVersion,
    out: &'o mut Vec<Observed>,
}

fn is_system(name: &str) -> bool {
    name.is_empty() || name.starts_with("amq.")
}

impl VhostAdvisor<'_, '_> {
    fn run(&mut self) {
        // A copy of the reference: borrows of the vhost outlive `&mut self`.
        let vhost: &VhostState = self.vhost;
        let dead_letter_queues = dead_letter_queues(vhost);
        let is_failure_queue = |name: &str| vhost.verdict(name).is_some_and(|v| v.role != Role::Work);
        let services_with_error_queue: Vec<String> = vhost
            .queues
            .iter()
            .filter(|q| is_failure_queue(&q.name))
            .filter_map(|q| service_of(&q.name))
            .collect();
        for q in &vhost.queues {
            if is_system(&q.name) {
                continue;
            }
            // Failure queues (captured or switched off) hold failures: they
            // never need an error queue or a dead-letter path of their own.
            let watched = is_failure_queue(&q.name);
            let key = (q.vhost.clone(), q.name.clone());
            let history = self.facts.history.get(&key).map(Vec::as_slice).unwrap_or(&[]);
            let (unhandled, transient) = self.facts.unhandled.get(&key).copied().unwrap_or((0, 0));

            self.non_durable_queue(q);
            if watched && vhost.is_tapped(&q.name) {
                self.transient_messages(q, transient);
                self.tapped_without_consumer(q, history, unhandled);
                self.unbound_error_queue(q);
                self.failure_queue_delivery_limit(q);
            } else if watched {
                self.transient_messages(q, transient);
                self.growing_error_queue(q, history, unhandled);
                self.unbound_error_queue(q);
                self.failure_queue_delivery_limit(q);
            } else {
                let has_error_queue = services_with_error_queue.iter().any(|s| belongs_to(&q.name, s));
                if !has_error_queue && !dead_letter_queues.contains(q.name.as_str()) {
                    self.no_dead_letter_path(q);
                }
                self.no_consumers(q);
            }
            self.auto_ack_consumers(q);
            self.unacked_stuck(q, history);
            self.requeue_loop(q);
            self.deep_not_lazy(q);
            self.at_most_once_dead_lettering(q);
        }
        self.non_durable_exchanges();
        self.publishers_without_confirms();
    }

    fn push(&mut self, q: &QueueStats, kind: &'static str, severity: Severity, message: String, fix: String) {
        self.push_with(q, kind, severity, message, fix, None);
    }

    fn push_with(
        &mut self,
        q: &QueueStats,
        kind: &'static str,
        severity: Severity,
        message: String,
        fix: String,
        action: Option<FixAction>,
    ) {
        self.out.push(Observed {
            vhost: self.vhost.name.clone(),
            object_type: "queue",
            object: q.name.clone(),
            kind,
            severity,
            message,
            fix,
            action,
        });
    }

    /// A policy for exactly this queue that keeps what its current policy
    /// sets (policies do not merge: only the winner applies) and adds `extra`.
    /// The current policy's own definition, not the effective one: that also
    /// holds an operator policy's keys, which keep applying by themselves.
    fn policy_fix(&self, q: &QueueStats, prefix: &str, extra: Map<String, Value>) -> FixAction {
        let current = q
            .policy
            .as_ref()
            .and_then(|name| self.vhost.policies.iter().find(|p| &p.name == name));
        let mut definition = current
            .and_then(|p| p.definition.as_object().cloned())
            .unwrap_or_default();
        definition.extend(extra);
        let priority = current.map_or(0, |p| p.priority + 1);
        FixAction::Policy {
            vhost: self.vhost.name.clone(),
            name: format!("{prefix}-{}", q.name),
            policy: PolicyRequest {
                pattern: format!("^{}$", regex::escape(&q.name)),
                apply_to: "queues".into(),
                priority,
                definition: Value::Object(definition),
            },
        }
    }

    fn non_durable_queue(&mut self, q: &QueueStats) {
        if q.durable || q.exclusive || (q.messages == 0 && q.consumers == 0) {
            return;
        }
        self.push(
            q,
            "non_durable_queue",
            Severity::Warning,
            format!(
                "Queue {} is not durable and is in use ({} messages, {} consumers): it and its messages \
                 disappear when the broker restarts.",
                q.name, q.messages, q.consumers
            ),
            "Declare the queue durable (delete and re-declare it, or move its messages to a durable \
             copy); durability cannot be changed by a policy."
                .into(),
        );
    }

    fn transient_messages(&mut self, q: &QueueStats, transient: i64) {
        if transient == 0 {
            return;
        }
        self.push(
            q,
            "transient_messages",
            Severity::Warning,
            format!(
                "{transient} unhandled failure(s) captured from {} were published transient (delivery mode 1): \
                 in a broker queue they would not survive a restart.",
                q.name
            ),
            "Publish with delivery mode 2 (persistent). With Spring AMQP, MessageDeliveryMode.PERSISTENT is \
             the default; check custom MessagePostProcessors and the recoverer."
                .into(),
        );
    }

    fn no_dead_letter_path(&mut self, q: &QueueStats) {
        if q.exclusive || q.auto_delete || q.is_stream() || q.dead_letter_exchange().is_some() {
            return;
        }
        let error_exchange = self.vhost.exchanges.iter().find(|e| e.name == "error.direct");
        let (dlx, note) = match error_exchange {
            Some(e) => (e.name.clone(), ""),
            None => (
                "dlx".to_owned(),
                " (declare the exchange `dlx` and bind a queue to it first)",
            ),
        };
        let mut extra = Map::new();
        extra.insert("dead-letter-exchange".into(), json!(dlx));
        extra.insert("dead-letter-routing-key".into(), json!(q.name));
        let action = self.policy_fix(q, "dlx", extra);
        self.push_with(
            q,
            "no_dead_letter_path",
            Severity::Warning,
            format!(
                "Queue {} has no dead-letter exchange and no error queue for its service: a message that is \
                 rejected, expires or overflows is dropped for good.",
                q.name
            ),
            format!(
                "Set a dead-letter exchange by policy{note}, or give the service an error queue \
                 ({}.error.queue bound to error.direct) and a RepublishMessageRecoverer.",
                q.name
            ),
            Some(action),
        );
    }

    fn no_consumers(&mut self, q: &QueueStats) {
        let delay_queue = q.has_ttl() && q.dead_letter_exchange().is_some();
        if delay_queue || q.messages_ready == 0 || q.consumers > 0 {
            return;
        }
        self.push(
            q,
            "no_consumers",
            Severity::Warning,
            format!(
                "{} messages are waiting in {} and nothing consumes it.",
                q.messages_ready, q.name
            ),
            "Start (or fix the subscription of) the service that should consume this queue; if the queue \
             is obsolete, move its messages and delete it."
                .into(),
        );
    }

    /// A no-ack consumer takes messages off the queue as they are sent: one
    /// that crashes or fails loses them, and they never reach the
    /// dead-letter path or an error queue.
    fn auto_ack_consumers(&mut self, q: &QueueStats) {
        let mut connections: Vec<&str> = self
            .vhost
            .consumers
            .iter()
            .filter(|c| c.queue.name == q.name && !c.ack_required)
            .map(|c| c.channel_details.connection_name.as_str())
            .collect();
        if connections.is_empty() {
            return;
        }
        let count = connections.len();
        connections.sort_unstable();
        connections.dedup();
        self.push(
            q,
            "auto_ack_consumers",
            Severity::Warning,
            format!(
                "{count} consumer(s) of {} use automatic acknowledgement (no-ack), from {}: a message counts as \
                 handled once it is sent, so it is lost if the consumer crashes or fails, and never reaches \
                 the dead-letter path.",
                q.name,
                connections.join(", ")
            ),
            "Consume with manual acknowledgements and ack after processing: in Spring AMQP, \
             acknowledge-mode AUTO (the default) or MANUAL, never NONE; in other clients, no_ack=false."
                .into(),
        );
    }

    fn unacked_stuck(&mut self, q: &QueueStats, history: &[TimedSample]) {
        let now_stuck = q.messages_unacknowledged > 0 && q.message_stats.ack_details.rate == 0.0;
        let held = held_for(history, self.facts.now, self.t.window_ms, |s| {
            s.unacked > 0.0 && s.ack_rate == 0.0
        });
        if !(now_stuck && held) {
            return;
        }
        self.push(
            q,
            "unacked_stuck",
            Severity::Critical,
            format!(
                "{} messages in {} are delivered but unacknowledged and nothing has been acked for {} s: a \
                 consumer is hung or forgot to ack.",
                q.messages_unacknowledged,
                q.name,
                self.t.window_ms / 1000
            ),
            "Find the consumer holding them (Connections/Channels in the management UI), fix or restart \
             it; its unacked messages go back to the queue when its channel closes. Set consumer_timeout \
             so the broker closes such channels."
                .into(),
        );
    }

    fn deep_not_lazy(&mut self, q: &QueueStats) {
        let classic = q.kind == QueueKind::Classic;
        if !self.version.lazy_mode_matters()
            || !classic
            || q.mode() == "lazy"
            || q.messages_ready < self.t.deep_queue
        {
            return;
        }
        let mut extra = Map::new();
        extra.insert("queue-mode".into(), json!("lazy"));
        let action = self.policy_fix(q, "lazy", extra);
        self.push_with(
            q,
            "deep_queue_not_lazy",
            Severity::Warning,
            format!(
                "Classic queue {} holds {} ready messages in memory (not lazy): memory alarms block every \
                 publisher when it grows further.",
                q.name, q.messages_ready
            ),
            "Apply a policy with queue-mode: lazy so messages go straight to disk.".into(),
            Some(action),
        );
    }

    fn growing_error_queue(&mut self, q: &QueueStats, history: &[TimedSample], unhandled: i64) {
        let backlog = (q.messages_ready + unhandled) as f64;
        let Some(start) = anchor(history, self.facts.now, self.t.window_ms) else {
            return;
        };
        if backlog <= start.sample.backlog {
            return;
        }
        self.push(
            q,
            "growing_error_queue",
            Severity::Warning,
            format!(
                "Error queue {} is growing: {} unhandled now, {} {} s ago.",
                q.name,
                backlog,
                start.sample.backlog,
                (self.facts.now - start.at) / 1000
            ),
            "Look at the failure groups for this service: a new failure is arriving faster than it is \
             handled."
                .into(),
        );
    }

    /// A tapped queue keeps its originals for the service's own consumers:
    /// Redrive holds safe copies, but when nobody consumes the queue and it
    /// grows, the originals are not being handled.
    fn tapped_without_consumer(&mut self, q: &QueueStats, history: &[TimedSample], unhandled: i64) {
        if q.consumers > 0 || q.messages_ready == 0 {
            return;
        }
        let backlog = (q.messages_ready + unhandled) as f64;
        let growing = anchor(history, self.facts.now, self.t.window_ms)
            .is_none_or(|start| backlog > start.sample.backlog);
        if !growing {
            return;
        }
        self.push(
            q,
            "tapped_queue_unconsumed",
            Severity::Warning,
            format!(
                "Tapped queue {} holds {} message(s) and nobody consumes it: Redrive has a copy of each one \
                 that arrived since the tap, but the originals are not being handled.",
                q.name, q.messages_ready
            ),
            "Start the service's consumer of this queue, or switch the queue to consume so Redrive takes \
             the originals (a stored copy answers for each one it already holds)."
                .into(),
        );
    }

    /// Spring's RepublishMessageRecoverer sends `<service>`-keyed messages to
    /// the error exchange; an error queue without that binding receives
    /// nothing and the failures are dropped as unroutable.
    fn unbound_error_queue(&mut self, q: &QueueStats) {
        let Some(service) = q.name.strip_suffix(".error.queue") else {
            return;
        };
        let Some(exchange) = self.vhost.exchanges.iter().find(|e| e.name == "error.direct") else {
            return;
        };
        let bound = self.vhost.bindings.iter().any(|b| {
            b.source == exchange.name
                && b.destination_type == "queue"
                && b.destination == q.name
                && (exchange.kind != "direct" || b.routing_key == service)
        });
        if bound {
            return;
        }
        let action = FixAction::Binding {
            vhost: self.vhost.name.clone(),
            exchange: exchange.name.clone(),
            queue: q.name.clone(),
            routing_key: service.to_owned(),
        };
        self.push_with(
            q,
            "unbound_error_queue",
            Severity::Critical,
            format!(
                "{} is not bound to {} with routing key {service}: failures the recoverer republishes \
                 there are unroutable and dropped.",
                q.name, exchange.name
            ),
            format!("Bind {} to {} with routing key {service}.", q.name, exchange.name),
            Some(action),
        );
    }

    /// Channels that have published without confirms (or a transaction),
    /// grouped by the publishing application: its client-given connection
    /// name, else user@host, so a reconnect does not make a new finding.
    fn publishers_without_confirms(&mut self) {
        let mut publishers: BTreeMap<String, (usize, i64)> = BTreeMap::new();
        for c in &self.vhost.channels {
            if c.confirm || c.transactional || c.message_stats.publish == 0 {
                continue;
            }
            // Channels and connections are two reads: a channel whose
            // connection is no longer listed has just closed (its stats
            // outlive it). Naming it user@host would open a second, ghost
            // finding for a publisher that is already gone.
            let Some(conn) = self
                .vhost
                .connections
                .iter()
                .find(|conn| conn.name == c.connection_details.name)
            else {
                continue;
            };
            let who = conn
                .client_properties
                .connection_name
                .clone()
                .unwrap_or_else(|| format!("{}@{}", c.user, c.connection_details.peer_host));
            let entry = publishers.entry(who).or_default();
            entry.0 += 1;
            entry.1 += c.message_stats.publish;
        }
        for (who, (channels, published)) in publishers {
            self.out.push(Observed {
                vhost: self.vhost.name.clone(),
                object_type: "publisher",
                object: who.clone(),
                kind: "publisher_without_confirms",
                severity: Severity::Warning,
                message: format!(
                    "{who} publishes without publisher confirms on {channels} channel(s) ({published} messages \
                     so far): a message lost on the way (connection drop, broker restart, memory alarm) is \
                     never reported back, so nothing retries it."
                ),
                fix: "Enable publisher confirms and retry what is nacked or never confirmed; publish with \
                      mandatory to hear about unroutable messages. Spring: publisher-confirm-type=correlated, \
                      publisher-returns=true, template.mandatory=true."
                    .into(),
                action: None,
            });
        }
    }

    fn non_durable_exchanges(&mut self) {
        for e in &self.vhost.exchanges {
            if e.durable || is_system(&e.name) {
                continue;
            }
            let bound = self.vhost.bindings.iter().filter(|b| b.source == e.name).count();
            if bound == 0 {
                continue;
            }
            self.out.push(Observed {
                vhost: self.vhost.name.clone(),
                object_type: "exchange",
                object: e.name.clone(),
                kind: "non_durable_exchange",
                severity: Severity::Warning,
                message: format!(
                    "Exchange {} is not durable but routes to {bound} binding(s): after a broker restart it \
                     is gone and publishes to it fail.",
                    e.name
                ),
                fix: "Declare the exchange durable (delete and re-declare it with its bindings).".into(),
                action: None,
            });
        }
    }
}

/// Queues bound to an exchange some queue dead-letters into: they are
/// dead-letter queues themselves and need no dead-letter path.
fn dead_letter_queues(vhost: &VhostState) -> HashSet<&str> {
    let dlx: HashSet<&str> = vhost
        .queues
        .iter()
        .filter_map(|q| q.dead_letter_exchange())
        .collect();
    vhost
        .bindings
        .iter()
        .filter(|b| b.destination_type == "queue" && dlx.contains(b.source.as_str()))
        .map(|b| b.destination.as_str())
        .collect()
}

/// `orders` belongs to service `orders`, as do `orders.queue` and `orders-events`.
fn belongs_to(queue: &str, service: &str) -> bool {
    queue
        .strip_prefix(service)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '-', '_']))
}

/// The last sample at or before `now - window`: the start of the window.
fn anchor(history: &[TimedSample], now: i64, window_ms: i64) -> Option<&TimedSample> {
    history.iter().rev().find(|s| s.at <= now - window_ms)
}

/// Whether `pred` held in every sample over the whole window, including the
/// sample that opens it (so a condition seen for a moment does not count).
fn held_for(
    history: &[TimedSample],
    now: i64,
    window_ms: i64,
    pred: impl Fn(&crate::store::samples::Sample) -> bool,
) -> bool {
    let Some(start) = anchor(history, now, window_ms) else {
        return false;
    };
    history
        .iter()
        .filter(|s| s.at >= start.at)
        .all(|s| pred(&s.sample))
}

mod quorum;
#[cfg(test)]
mod tests;
