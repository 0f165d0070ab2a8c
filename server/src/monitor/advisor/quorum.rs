//! Checks that only quorum queues need: a poison message requeued for ever,
//! dead-lettering that can drop, and a delivery-limit that drops failures.

use app::model::{QueueKind, Severity};
use serde_json::{json, Map, Value};

use super::VhostAdvisor;
use crate::broker::QueueStats;

impl VhostAdvisor<'_, '_> {
    pub(super) fn requeue_loop(&mut self, q: &QueueStats) {
        let stats = q.message_stats;
        let redeliver = stats.redeliver_details.rate;
        if redeliver < self.t.redeliver_rate || stats.ack_details.rate > redeliver * 0.05 {
            return;
        }
        let action = (q.kind == QueueKind::Quorum).then(|| {
            let mut extra = Map::new();
            extra.insert("delivery-limit".into(), json!(20));
            self.policy_fix(q, "delivery-limit", extra)
        });
        self.push_with(
            q,
            "requeue_loop",
            Severity::Critical,
            format!(
                "{} redelivers {redeliver:.1} messages/s while almost nothing is acked: a poison message is \
                 being rejected with requeue=true over and over.",
                q.name
            ),
            if q.kind == QueueKind::Quorum {
                "Set a delivery-limit so the message is dead-lettered after N attempts, and reject without \
                 requeue (AmqpRejectAndDontRequeueException) in the consumer."
                    .into()
            } else {
                "Reject without requeue (requeue=false, AmqpRejectAndDontRequeueException, or Spring's \
                 default-requeue-rejected=false) so the message goes to the dead-letter exchange; quorum \
                 queues can also cap it with a delivery-limit."
                    .into()
            },
            action,
        );
    }

    /// A quorum queue counts every delivery that goes back to it; past its
    /// `delivery-limit` the message is dead-lettered, or dropped when there
    /// is nowhere to dead-letter it. On a queue of failures waiting for a
    /// human, each consumer that dies or disconnects holding them (Redrive
    /// restarting mid-batch, a colleague's script) spends one of those
    /// deliveries, so a limit there drops failures for no fault of theirs.
    pub(super) fn failure_queue_delivery_limit(&mut self, q: &QueueStats) {
        let limit = q.setting("delivery-limit").and_then(Value::as_i64);
        let Some(limit) = limit.filter(|l| *l >= 0) else {
            return;
        };
        if q.kind != QueueKind::Quorum || q.dead_letter_exchange().is_some() {
            return;
        }
        let from_policy = !q.arguments.contains_key("x-delivery-limit");
        self.push(
            q,
            "failure_queue_delivery_limit",
            Severity::Warning,
            format!(
                "Failure queue {} is a quorum queue with delivery-limit {limit} and no dead-letter exchange: \
                 after {limit} returns to the queue (each consumer that stops while holding a message, Redrive \
                 included) the broker drops the failure for good.",
                q.name
            ),
            if from_policy {
                "Leave delivery-limit out of the policy that applies to this queue (a policy for work queues \
                 should not match error queues), or give the queue a dead-letter exchange."
                    .into()
            } else {
                "Redeclare the queue without x-delivery-limit (it is an argument, so a policy cannot remove \
                 it), or give it a dead-letter exchange so a message past the limit is kept."
                    .into()
            },
        );
    }

    /// Quorum queues dead-letter at-most-once by default: a message is
    /// removed before the dead-letter target has it, so it is lost when the
    /// exchange is missing, routes nowhere or the target rejects it.
    pub(super) fn at_most_once_dead_lettering(&mut self, q: &QueueStats) {
        let at_least_once =
            q.setting("dead-letter-strategy").and_then(Value::as_str) == Some("at-least-once");
        let reject_publish = q.setting("overflow").and_then(Value::as_str) == Some("reject-publish");
        if q.kind != QueueKind::Quorum
            || q.dead_letter_exchange().is_none()
            || !self.version.at_least_once_dead_lettering()
            || (at_least_once && reject_publish)
        {
            return;
        }
        let mut extra = Map::new();
        extra.insert("dead-letter-strategy".into(), json!("at-least-once"));
        // at-least-once silently falls back to at-most-once with drop-head.
        extra.insert("overflow".into(), json!("reject-publish"));
        let action = self.policy_fix(q, "at-least-once", extra);
        self.push_with(
            q,
            "at_most_once_dead_lettering",
            Severity::Info,
            format!(
                "Quorum queue {} dead-letters at-most-once{}: a rejected or expired message is dropped if its \
                 dead-letter exchange is missing, routes nowhere or the target refuses it.",
                q.name,
                if at_least_once {
                    " (at-least-once is set, but needs overflow reject-publish)"
                } else {
                    ""
                }
            ),
            "Set dead-letter-strategy at-least-once with overflow reject-publish (RabbitMQ 3.10+): the \
             message leaves the queue only once the dead-letter target confirms it."
                .into(),
            Some(action),
        );
    }
}
