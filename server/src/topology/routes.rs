//! Where a publish would go: the queues an exchange and routing key reach,
//! from the broker's bindings as the management API lists them. A dry run
//! shows them (a route that fans out would give services that already
//! succeeded a second copy), and an adaptive job watches them.
//!
//! Follows direct, fanout and topic matching and exchange-to-exchange
//! bindings. A headers exchange routes by each message's headers, which a
//! route alone does not have: its queues are all that could match, and
//! the result says so. Alternate exchanges are not followed (only what
//! nothing else takes goes there).

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::broker::management::{BindingInfo, ExchangeInfo};

/// The queues a route reaches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    pub queues: BTreeSet<String>,
    /// Why `queues` may hold more than one message would reach.
    pub note: Option<String>,
}

/// One vhost's exchanges and bindings, indexed for routing.
#[derive(Debug, Clone, Default)]
pub struct RouteMap {
    kinds: HashMap<String, String>,
    /// source exchange → (destination, is a queue, binding key)
    bindings: HashMap<String, Vec<(String, bool, String)>>,
}

impl RouteMap {
    pub fn new(exchanges: &[ExchangeInfo], bindings: &[BindingInfo]) -> Self {
        let mut map = Self {
            kinds: exchanges
                .iter()
                .map(|e| (e.name.clone(), e.kind.clone()))
                .collect(),
            ..Self::default()
        };
        for b in bindings {
            map.bindings.entry(b.source.clone()).or_default().push((
                b.destination.clone(),
                b.destination_type == "queue",
                b.routing_key.clone(),
            ));
        }
        map
    }

    /// The queues `exchange` delivers a message with `routing_key` to.
    /// The default exchange ("") delivers to the queue of that name.
    pub fn reach(&self, exchange: &str, routing_key: &str) -> Reach {
        let mut reach = Reach::default();
        let mut seen = HashSet::new();
        self.walk(exchange, routing_key, &mut reach, &mut seen);
        reach
    }

    fn walk(&self, exchange: &str, key: &str, reach: &mut Reach, seen: &mut HashSet<String>) {
        if !seen.insert(exchange.to_owned()) {
            return;
        }
        if exchange.is_empty() {
            // Every queue is bound to the default exchange by its name; the
            // listing includes those bindings, but a queue declared since the
            // listing is still reached.
            reach.queues.insert(key.to_owned());
            return;
        }
        let kind = self.kinds.get(exchange).map(String::as_str).unwrap_or("direct");
        for (destination, is_queue, binding_key) in self.bindings.get(exchange).into_iter().flatten() {
            let matched = match kind {
                "fanout" => true,
                "topic" => topic_matches(binding_key, key),
                "headers" => {
                    reach.note = Some(format!(
                        "`{exchange}` is a headers exchange: it routes by each message's headers, so \
                         these are the queues a message could reach"
                    ));
                    true
                }
                "direct" => binding_key == key,
                other => {
                    reach.note = Some(format!(
                        "`{exchange}` is of type `{other}`, which Redrive cannot route: these are all \
                         its queues"
                    ));
                    true
                }
            };
            if !matched {
                continue;
            }
            if *is_queue {
                reach.queues.insert(destination.clone());
            } else {
                self.walk(destination, key, reach, seen);
            }
        }
    }
}

/// AMQP topic matching: words split on `.`, `*` is exactly one word, `#`
/// zero or more.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    };
    matches(&pattern, &key)
}

fn matches(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| matches(rest, &key[skip..])),
        Some((word, rest)) => match key.split_first() {
            Some((k, key_rest)) => (*word == "*" || word == k) && matches(rest, key_rest),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(name: &str, kind: &str) -> ExchangeInfo {
        ExchangeInfo {
            name: name.into(),
            kind: kind.into(),
            ..Default::default()
        }
    }

    fn binding(source: &str, destination: &str, kind: &str, key: &str) -> BindingInfo {
        BindingInfo {
            source: source.into(),
            destination: destination.into(),
            destination_type: kind.into(),
            routing_key: key.into(),
            arguments: Default::default(),
        }
    }

    #[test]
    fn topic_words() {
        assert!(topic_matches("pay.success", "pay.success"));
        assert!(topic_matches("pay.*", "pay.success"));
        assert!(!topic_matches("pay.*", "pay.success.eu"));
        assert!(topic_matches("pay.#", "pay.success.eu"));
        assert!(topic_matches("pay.#", "pay"));
        assert!(topic_matches("#", ""));
        assert!(topic_matches("#.eu", "pay.success.eu"));
        assert!(!topic_matches("*.eu", "pay.success.eu"));
        assert!(!topic_matches("pay.success", "pay.failure"));
    }

    #[test]
    fn a_route_that_fans_out_reaches_every_bound_queue() {
        let map = RouteMap::new(
            &[
                exchange("pay.topic", "topic"),
                exchange("audit.fanout", "fanout"),
                exchange("hdr", "headers"),
            ],
            &[
                binding("pay.topic", "trade.pay.success.queue", "queue", "pay.success"),
                binding("pay.topic", "notify.pay.success.queue", "queue", "pay.*"),
                binding("pay.topic", "refunds.queue", "queue", "pay.refund"),
                binding("pay.topic", "audit.fanout", "exchange", "#"),
                binding("audit.fanout", "audit.queue", "queue", ""),
                binding("audit.fanout", "pay.topic", "exchange", ""),
                binding("hdr", "h.queue", "queue", ""),
            ],
        );
        let reach = map.reach("pay.topic", "pay.success");
        let queues: Vec<&str> = reach.queues.iter().map(String::as_str).collect();
        assert_eq!(
            queues,
            [
                "audit.queue",
                "notify.pay.success.queue",
                "trade.pay.success.queue"
            ]
        );
        assert_eq!(reach.note, None);
        assert!(map
            .reach("pay.topic", "nothing.here")
            .queues
            .contains("audit.queue"));
        assert_eq!(map.reach("", "q1").queues.len(), 1);
        assert!(map.reach("hdr", "x").note.is_some());
        assert!(map.reach("missing", "x").queues.is_empty());
    }
}
