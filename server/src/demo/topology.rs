//! The demo's broker objects, as data: the topology Spring services on
//! RabbitMQ use, so every kind of failure Redrive handles happens in it.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

/// Spring's `RepublishMessageRecoverer` target.
pub const ERROR_EXCHANGE: &str = "error.direct";
/// Where the storefront publishes every business event.
pub const EVENTS: &str = "shop.events";
/// The order service's retry stage: messages wait here, then expire back to
/// `orders.work` through the default exchange.
pub const ORDERS_DELAY: &str = "orders.retry.delay";
/// The TTL delay queue's target: a work queue Redrive must leave alone.
pub const ORDERS_WORK: &str = "orders.work";

pub const EXCHANGES: &[(&str, Kind)] = &[
    (ERROR_EXCHANGE, Kind::Direct),
    (EVENTS, Kind::Topic),
    ("payments.dlx", Kind::Fanout),
    ("orders.dlx", Kind::Fanout),
    ("notifications.dlx", Kind::Fanout),
    ("audit.dlx", Kind::Fanout),
];

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Direct,
    Topic,
    Fanout,
}

/// A queue argument's value.
#[derive(Debug, Clone, Copy)]
pub enum Arg {
    Text(&'static str),
    Int(i64),
}

pub struct Queue {
    pub name: &'static str,
    pub args: &'static [(&'static str, Arg)],
    /// `(exchange, routing key)`.
    pub bindings: &'static [(&'static str, &'static str)],
}

const fn queue(
    name: &'static str,
    args: &'static [(&'static str, Arg)],
    bindings: &'static [(&'static str, &'static str)],
) -> Queue {
    Queue { name, args, bindings }
}

pub const QUEUES: &[Queue] = &[
    // Spring error queues: the plain one and one per service.
    queue("error.queue", &[], &[(ERROR_EXCHANGE, "error")]),
    queue(
        "trade-service.error.queue",
        &[],
        &[(ERROR_EXCHANGE, "trade-service")],
    ),
    queue("pay-service.error.queue", &[], &[(ERROR_EXCHANGE, "pay-service")]),
    queue(
        "cart-service.error.queue",
        &[],
        &[(ERROR_EXCHANGE, "cart-service")],
    ),
    // Work queues.
    queue("trade-service.trades", &[], &[(EVENTS, "trade.#")]),
    queue(
        "pay-service.payments",
        &[
            ("x-queue-type", Arg::Text("quorum")),
            ("x-delivery-limit", Arg::Int(5)),
            ("x-dead-letter-exchange", Arg::Text("payments.dlx")),
        ],
        &[(EVENTS, "payment.#")],
    ),
    queue(
        "cart-service.carts",
        &[("x-queue-mode", Arg::Text("lazy"))],
        &[(EVENTS, "cart.#")],
    ),
    // Its dead-letter exchange comes from a policy (see POLICIES).
    queue(ORDERS_WORK, &[], &[(EVENTS, "order.#")]),
    queue(
        ORDERS_DELAY,
        &[
            ("x-message-ttl", Arg::Int(5_000)),
            ("x-dead-letter-exchange", Arg::Text("")),
            ("x-dead-letter-routing-key", Arg::Text(ORDERS_WORK)),
        ],
        &[],
    ),
    queue(
        "notifications.work",
        &[
            ("x-message-ttl", Arg::Int(8_000)),
            ("x-dead-letter-exchange", Arg::Text("notifications.dlx")),
        ],
        &[(EVENTS, "notification.#")],
    ),
    queue(
        "audit.events",
        &[
            ("x-max-length", Arg::Int(20)),
            ("x-dead-letter-exchange", Arg::Text("audit.dlx")),
        ],
        &[(EVENTS, "order.#")],
    ),
    queue("inventory.updates", &[], &[(EVENTS, "inventory.#")]),
    queue("shipping.requests", &[], &[(EVENTS, "shipping.#")]),
    // Dead-letter queues.
    queue("payments.dlq", &[], &[("payments.dlx", "")]),
    queue("orders.dlq", &[], &[("orders.dlx", "")]),
    queue("notifications.dlq", &[], &[("notifications.dlx", "")]),
    queue("audit.dlq", &[], &[("audit.dlx", "")]),
];

/// `(name, pattern, definition)`: operators often set dead-lettering by
/// policy rather than by queue argument.
pub const POLICIES: &[(&str, &str, &str)] = &[(
    "redrive-demo-orders-dlx",
    r"^orders\.work$",
    r#"{"dead-letter-exchange": "orders.dlx"}"#,
)];

/// Whether the demo declares an object of this name (of any kind).
pub fn owns_queue(name: &str) -> bool {
    QUEUES.iter().any(|q| q.name == name)
}

pub fn owns_exchange(name: &str) -> bool {
    // The default exchange and `amq.*` come with every vhost.
    name.is_empty() || name.starts_with("amq.") || EXCHANGES.iter().any(|(e, _)| *e == name)
}

pub fn owns_policy(name: &str) -> bool {
    POLICIES.iter().any(|(p, ..)| *p == name)
}

fn table(args: &[(&str, Arg)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in args {
        let value = match v {
            Arg::Text(s) => AMQPValue::LongString(LongString::from(s.as_bytes().to_vec())),
            Arg::Int(n) => AMQPValue::LongLongInt(*n),
        };
        t.insert(ShortString::from(*k), value);
    }
    t
}

/// Declares every exchange, queue and binding (durable). A queue that
/// exists with other arguments is an error naming it, never changed.
pub async fn declare(channel: &Channel) -> anyhow::Result<()> {
    use anyhow::Context;
    for (name, kind) in EXCHANGES {
        let kind = match kind {
            Kind::Direct => ExchangeKind::Direct,
            Kind::Topic => ExchangeKind::Topic,
            Kind::Fanout => ExchangeKind::Fanout,
        };
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .exchange_declare((*name).into(), kind, durable, FieldTable::default())
            .await
            .with_context(|| format!("declaring exchange {name}"))?;
    }
    for q in QUEUES {
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .queue_declare(q.name.into(), durable, table(q.args))
            .await
            .with_context(|| format!("declaring queue {} (does it exist with other arguments?)", q.name))?;
        for (exchange, key) in q.bindings {
            channel
                .queue_bind(
                    q.name.into(),
                    (*exchange).into(),
                    (*key).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .with_context(|| format!("binding {} to {exchange}", q.name))?;
        }
    }
    Ok(())
}

/// Deletes every queue and exchange [`declare`] makes (messages included),
/// and nothing else. Objects already gone are skipped.
pub async fn delete(channel: &Channel) -> anyhow::Result<()> {
    use anyhow::Context;
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    for q in QUEUES {
        channel
            .queue_delete(q.name.into(), QueueDeleteOptions::default())
            .await
            .with_context(|| format!("deleting queue {}", q.name))?;
    }
    for (name, _) in EXCHANGES {
        channel
            .exchange_delete((*name).into(), ExchangeDeleteOptions::default())
            .await
            .with_context(|| format!("deleting exchange {name}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::management::BindingInfo;
    use crate::broker::QueueStats;
    use crate::topology::VhostState;
    use crate::topology::{classify, WatchRules};
    use app::model::Policy;

    /// The demo's vhost as the management API would describe it: every
    /// queue also bound to the default exchange by its name.
    fn as_listed() -> VhostState {
        let queues = QUEUES
            .iter()
            .map(|q| {
                let arguments = q
                    .args
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Arg::Text(s) => serde_json::json!(s),
                            Arg::Int(n) => serde_json::json!(n),
                        };
                        ((*k).to_owned(), v)
                    })
                    .collect();
                let policy = POLICIES
                    .iter()
                    .find(|(_, pattern, _)| regex::Regex::new(pattern).unwrap().is_match(q.name));
                QueueStats {
                    vhost: "demo".into(),
                    name: q.name.into(),
                    kind: app::model::QueueKind::Classic,
                    durable: true,
                    arguments,
                    policy: policy.map(|(name, ..)| (*name).into()),
                    effective_policy_definition: policy.map(|(_, _, def)| serde_json::from_str(def).unwrap()),
                    ..Default::default()
                }
            })
            .collect();
        let binding = |source: &str, destination: &str, key: &str| BindingInfo {
            source: source.into(),
            destination: destination.into(),
            destination_type: "queue".into(),
            routing_key: key.into(),
            arguments: Default::default(),
        };
        let bindings = QUEUES
            .iter()
            .flat_map(|q| {
                q.bindings
                    .iter()
                    .map(|(e, k)| binding(e, q.name, k))
                    .chain([binding("", q.name, q.name)])
            })
            .collect();
        let policies = POLICIES
            .iter()
            .map(|(name, pattern, def)| Policy {
                vhost: "demo".into(),
                name: (*name).into(),
                pattern: (*pattern).into(),
                apply_to: "queues".into(),
                priority: 0,
                definition: serde_json::from_str(def).unwrap(),
            })
            .collect();
        VhostState {
            name: "demo".into(),
            queues,
            bindings,
            policies,
            ..Default::default()
        }
    }

    #[test]
    fn redrive_captures_the_demos_failure_queues_and_leaves_its_work_queues() {
        let config = <crate::config::Config as clap::Parser>::try_parse_from(["redrive"]).unwrap();
        let verdicts = classify(
            &as_listed(),
            &WatchRules::from_config(&config.capture),
            &Default::default(),
        );
        let captured: Vec<&str> = QUEUES
            .iter()
            .map(|q| q.name)
            .filter(|name| verdicts[*name].watched)
            .collect();
        assert_eq!(
            captured,
            [
                "error.queue",
                "trade-service.error.queue",
                "pay-service.error.queue",
                "cart-service.error.queue",
                "payments.dlq",
                "orders.dlq",
                "notifications.dlq",
                "audit.dlq",
            ]
        );
        let target = verdicts[ORDERS_WORK].reason.as_deref().unwrap_or_default();
        assert!(target.contains("TTL delay queue orders.retry.delay"), "{target}");
    }

    #[test]
    fn every_binding_and_dead_letter_exchange_is_declared() {
        for q in QUEUES {
            for (exchange, _) in q.bindings {
                assert!(owns_exchange(exchange), "{}: {exchange}", q.name);
            }
            for (k, v) in q.args {
                if let (&"x-dead-letter-exchange", Arg::Text(e)) = (k, v) {
                    assert!(owns_exchange(e), "{}: {e}", q.name);
                }
            }
        }
    }
}
