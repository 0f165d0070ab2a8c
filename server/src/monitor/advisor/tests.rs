use std::collections::HashMap;

use app::model::Policy;
use serde_json::json;

use super::*;
use crate::broker::management::{BindingInfo, ExchangeInfo, MessageStats, OverviewInfo, Rate};
use crate::store::samples::Sample;

fn queue(name: &str) -> QueueStats {
    QueueStats {
        vhost: "v".into(),
        name: name.into(),
        kind: app::model::QueueKind::Classic,
        durable: true,
        ..QueueStats::default()
    }
}

fn snapshot(version: &str, queues: Vec<QueueStats>) -> Snapshot {
    Snapshot {
        overview: OverviewInfo {
            rabbitmq_version: version.into(),
            ..OverviewInfo::default()
        },
        nodes: vec![],
        vhosts: vec![VhostState {
            name: "v".into(),
            queues,
            ..VhostState::default()
        }],
    }
}

fn observe(
    snapshot: &Snapshot,
    history: &HashMap<(String, String), Vec<TimedSample>>,
    now: i64,
) -> Vec<Observed> {
    // Classified as capture classifies them, with the default rules.
    let rules = crate::topology::WatchRules::from_config(
        &<crate::config::Config as clap::Parser>::try_parse_from(["redrive"])
            .unwrap()
            .capture,
    );
    let mut snapshot = snapshot.clone();
    for v in &mut snapshot.vhosts {
        v.verdicts = crate::topology::classify(v, &rules, &v.overrides);
    }
    let snapshot = &snapshot;
    let unhandled = HashMap::new();
    let facts = Facts {
        now,
        history,
        unhandled: &unhandled,
    };
    let t = Thresholds {
        window_ms: 60_000,
        deep_queue: 100,
        redeliver_rate: 1.0,
    };
    advise(snapshot, &facts, &t)
}

fn kinds(
    snapshot: &Snapshot,
    history: &HashMap<(String, String), Vec<TimedSample>>,
    now: i64,
) -> Vec<(String, &'static str)> {
    observe(snapshot, history, now)
        .into_iter()
        .map(|o| (o.object, o.kind))
        .collect()
}

#[test]
fn delay_queue_is_not_a_queue_without_consumers() {
    let mut delay = queue("retry.delay");
    delay.arguments.insert("x-message-ttl".into(), json!(5000));
    delay
        .arguments
        .insert("x-dead-letter-exchange".into(), json!("work"));
    delay.messages_ready = 10;
    let mut stuck = queue("orders");
    stuck.messages_ready = 10;
    let found = kinds(&snapshot("3.10.8", vec![delay, stuck]), &HashMap::new(), 0);
    assert!(found.contains(&("orders".into(), "no_consumers")), "{found:?}");
    assert!(!found.iter().any(|(q, _)| q == "retry.delay"), "{found:?}");
}

#[test]
fn lazy_mode_only_matters_before_3_12() {
    let mut deep = queue("orders");
    deep.messages_ready = 500;
    deep.consumers = 1;
    deep.arguments
        .insert("x-dead-letter-exchange".into(), json!("dlx"));
    let old = kinds(&snapshot("3.11.2", vec![deep.clone()]), &HashMap::new(), 0);
    assert_eq!(old, vec![("orders".to_owned(), "deep_queue_not_lazy")]);
    assert!(kinds(&snapshot("3.12.0", vec![deep.clone()]), &HashMap::new(), 0).is_empty());
    deep.effective_policy_definition = Some(json!({"queue-mode": "lazy"}).as_object().unwrap().clone());
    assert!(kinds(&snapshot("3.11.2", vec![deep]), &HashMap::new(), 0).is_empty());
}

#[test]
fn a_policy_fix_keeps_the_current_policy_but_not_operator_keys() {
    let mut deep = queue("orders");
    deep.messages_ready = 500;
    deep.consumers = 1;
    deep.policy = Some("dlx-all".into());
    deep.operator_policy = Some("ops".into());
    let effective = json!({"dead-letter-exchange": "dlx", "expires": 60000});
    deep.effective_policy_definition = effective.as_object().cloned();
    let mut snap = snapshot("3.11.2", vec![deep]);
    snap.vhosts[0].policies = vec![Policy {
        vhost: "v".into(),
        name: "dlx-all".into(),
        pattern: ".*".into(),
        apply_to: "queues".into(),
        priority: 3,
        definition: json!({"dead-letter-exchange": "dlx"}),
    }];
    let found = observe(&snap, &HashMap::new(), 0);
    let Some(FixAction::Policy { name, policy, .. }) = &found[0].action else {
        panic!("{found:?}");
    };
    assert_eq!(name, "lazy-orders");
    assert_eq!(policy.pattern, "^orders$");
    assert_eq!(policy.priority, 4, "wins over the current policy");
    assert_eq!(
        policy.definition,
        json!({"dead-letter-exchange": "dlx", "queue-mode": "lazy"})
    );
}

#[test]
fn an_error_queue_of_the_service_counts_as_a_dead_letter_path() {
    let work = queue("orders.queue");
    let error = queue("orders.error.queue");
    let other = queue("billing");
    let found = kinds(&snapshot("3.10.8", vec![work, error, other]), &HashMap::new(), 0);
    assert_eq!(found, vec![("billing".to_owned(), "no_dead_letter_path")]);
}

#[test]
fn requeue_loop_needs_redeliveries_without_acks() {
    let mut q = queue("orders");
    q.arguments.insert("x-dead-letter-exchange".into(), json!("dlx"));
    q.consumers = 1;
    q.message_stats = MessageStats {
        redeliver_details: Rate { rate: 250.0 },
        ack_details: Rate { rate: 0.0 },
        ..MessageStats::default()
    };
    let found = kinds(&snapshot("3.10.8", vec![q.clone()]), &HashMap::new(), 0);
    assert_eq!(found, vec![("orders".to_owned(), "requeue_loop")]);
    q.message_stats.ack_details.rate = 200.0;
    assert!(kinds(&snapshot("3.10.8", vec![q]), &HashMap::new(), 0).is_empty());
}

#[test]
fn unacked_must_be_stuck_for_the_whole_window() {
    let mut q = queue("orders");
    q.arguments.insert("x-dead-letter-exchange".into(), json!("dlx"));
    q.consumers = 1;
    q.messages_unacknowledged = 3;
    let sample = |at: i64, unacked: f64| TimedSample {
        at,
        sample: Sample {
            unacked,
            ..Sample::default()
        },
    };
    let key = ("v".to_owned(), "orders".to_owned());
    let snap = snapshot("3.10.8", vec![q]);
    // Only 30 s of history: too short to call it stuck.
    let short = HashMap::from([(key.clone(), vec![sample(70_000, 3.0), sample(100_000, 3.0)])]);
    assert!(kinds(&snap, &short, 100_000).is_empty());
    let long = HashMap::from([(key.clone(), vec![sample(30_000, 3.0), sample(100_000, 3.0)])]);
    assert_eq!(
        kinds(&snap, &long, 100_000),
        vec![("orders".to_owned(), "unacked_stuck")]
    );
    let acked_between = HashMap::from([(
        key,
        vec![sample(30_000, 3.0), sample(60_000, 0.0), sample(100_000, 3.0)],
    )]);
    assert!(kinds(&snap, &acked_between, 100_000).is_empty());
}

#[test]
fn error_queue_must_be_bound_with_the_service_key() {
    let error = queue("orders.error.queue");
    let mut snap = snapshot("3.10.8", vec![error]);
    let v = &mut snap.vhosts[0];
    v.exchanges.push(ExchangeInfo {
        name: "error.direct".into(),
        kind: "direct".into(),
        durable: true,
        internal: false,
    });
    v.bindings.push(BindingInfo {
        source: "error.direct".into(),
        destination: "orders.error.queue".into(),
        destination_type: "queue".into(),
        routing_key: "orders.error".into(),
        arguments: Default::default(),
    });
    assert_eq!(
        kinds(&snap, &HashMap::new(), 0),
        vec![("orders.error.queue".to_owned(), "unbound_error_queue")]
    );
    snap.vhosts[0].bindings[0].routing_key = "orders".into();
    assert!(kinds(&snap, &HashMap::new(), 0).is_empty());
}

#[test]
fn service_membership() {
    assert!(belongs_to("orders", "orders"));
    assert!(belongs_to("orders.queue", "orders"));
    assert!(!belongs_to("ordersx", "orders"));
}

#[test]
fn quorum_dead_lettering_must_be_at_least_once_with_reject_publish() {
    let quorum = |args: serde_json::Value| {
        let mut q = queue("ledger");
        q.kind = app::model::QueueKind::Quorum;
        q.arguments = args.as_object().cloned().unwrap();
        q
    };
    let finding = |q: QueueStats, version: &str| {
        kinds(&snapshot(version, vec![q]), &HashMap::new(), 0)
            .contains(&("ledger".into(), "at_most_once_dead_lettering"))
    };
    assert!(finding(
        quorum(json!({"x-dead-letter-exchange": "dlx"})),
        "3.10.8"
    ));
    let half = json!({"x-dead-letter-exchange": "dlx", "x-dead-letter-strategy": "at-least-once"});
    assert!(
        finding(quorum(half), "3.10.8"),
        "at-least-once needs reject-publish"
    );
    let safe = json!({"x-dead-letter-exchange": "dlx", "x-dead-letter-strategy": "at-least-once",
                      "x-overflow": "reject-publish"});
    assert!(!finding(quorum(safe), "3.10.8"));
    assert!(
        !finding(quorum(json!({})), "3.10.8"),
        "no dead-lettering at all is another finding"
    );
    assert!(
        !finding(quorum(json!({"x-dead-letter-exchange": "dlx"})), "3.9.13"),
        "not available before 3.10"
    );
}

#[test]
fn no_ack_consumers_are_reported_per_queue() {
    use crate::broker::management::{ChannelRef, ConsumerInfo, NamedRef};
    let consumer = |queue: &str, ack_required: bool, connection: &str| ConsumerInfo {
        queue: NamedRef { name: queue.into() },
        consumer_tag: "amq.ctag-1".into(),
        ack_required,
        channel_details: ChannelRef {
            connection_name: connection.into(),
        },
    };
    let mut snap = snapshot("3.13.0", vec![queue("audit"), queue("orders")]);
    for q in &mut snap.vhosts[0].queues {
        q.arguments.insert("x-dead-letter-exchange".into(), json!("dlx"));
    }
    snap.vhosts[0].consumers = vec![
        consumer("audit", false, "app-1"),
        consumer("audit", false, "app-1"),
        consumer("orders", true, "app-2"),
    ];
    let found = observe(&snap, &HashMap::new(), 0);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].object.as_str(), found[0].kind),
        ("audit", "auto_ack_consumers")
    );
    assert!(
        found[0].message.starts_with("2 consumer(s) of audit"),
        "{}",
        found[0].message
    );
    assert!(found[0].message.contains("from app-1:"), "{}", found[0].message);
}

#[test]
fn publishers_without_confirms_are_grouped_by_application() {
    use crate::broker::management::{
        ChannelInfo, ChannelStats, ClientProperties, ConnectionInfo, ConnectionRef,
    };
    let channel = |connection: &str, confirm: bool, publish: i64| ChannelInfo {
        user: "svc".into(),
        confirm,
        transactional: false,
        connection_details: ConnectionRef {
            name: connection.into(),
            peer_host: "10.0.0.7".into(),
        },
        message_stats: ChannelStats { publish },
    };
    let mut snap = snapshot("3.13.0", vec![]);
    let connection = |name: &str, given: Option<&str>| ConnectionInfo {
        name: name.into(),
        client_properties: ClientProperties {
            connection_name: given.map(Into::into),
        },
    };
    snap.vhosts[0].connections = vec![connection("c1", Some("orders-api")), connection("c3", None)];
    snap.vhosts[0].channels = vec![
        channel("c1", false, 5),
        channel("c1", false, 7),
        channel("c1", true, 100), // confirms: fine
        channel("c2", false, 0),  // never published: fine
        channel("c3", false, 1),  // unnamed connection
        channel("c4", false, 3),  // its connection closed between the two reads
    ];
    let found = observe(&snap, &HashMap::new(), 0);
    let who: Vec<_> = found.iter().map(|o| (o.object.as_str(), o.object_type)).collect();
    assert_eq!(who, [("orders-api", "publisher"), ("svc@10.0.0.7", "publisher")]);
    assert!(
        found[0].message.contains("on 2 channel(s) (12 messages so far)"),
        "{}",
        found[0].message
    );
}

#[test]
fn a_delivery_limit_on_a_quorum_failure_queue_without_dead_lettering_is_reported() {
    let error_queue = |args: serde_json::Value| {
        let mut q = queue("orders.error.queue");
        q.kind = app::model::QueueKind::Quorum;
        q.arguments = args.as_object().cloned().unwrap();
        q
    };
    let found = |q: QueueStats| {
        kinds(&snapshot("3.10.8", vec![q]), &HashMap::new(), 0)
            .contains(&("orders.error.queue".into(), "failure_queue_delivery_limit"))
    };
    assert!(found(error_queue(
        json!({"x-queue-type": "quorum", "x-delivery-limit": 3})
    )));
    assert!(!found(error_queue(json!({"x-queue-type": "quorum"}))), "no limit");
    assert!(
        !found(error_queue(
            json!({"x-delivery-limit": 3, "x-dead-letter-exchange": "parking"})
        )),
        "past the limit it is dead-lettered, not dropped"
    );
    let mut from_policy = error_queue(json!({}));
    from_policy.effective_policy_definition = json!({"delivery-limit": 5}).as_object().cloned();
    assert!(found(from_policy), "a policy's limit counts too");
    let mut work = queue("orders");
    work.kind = app::model::QueueKind::Quorum;
    work.arguments = json!({"x-delivery-limit": 3}).as_object().cloned().unwrap();
    let on_work = kinds(&snapshot("3.10.8", vec![work]), &HashMap::new(), 0);
    assert!(
        !on_work.iter().any(|(_, k)| *k == "failure_queue_delivery_limit"),
        "on a work queue the limit is what stops a poison loop"
    );
}

#[test]
fn a_tapped_queue_nobody_consumes_is_reported_and_its_tap_is_never_advised() {
    let mut tapped = queue("orders.error.queue");
    tapped.messages_ready = 12;
    tapped.messages = 12;
    // Redrive's tap: no consumer of the service's own, no dead-letter path,
    // holding copies: none of that is advice.
    let mut tap = queue("redrive.tap.orders.error.queue");
    tap.messages_ready = 3;
    tap.messages = 3;
    let mut snap = snapshot("3.10.8", vec![tapped, tap]);
    snap.vhosts[0].default_mode = app::model::CaptureMode::Tap;
    assert_eq!(
        kinds(&snap, &HashMap::new(), 0),
        vec![("orders.error.queue".to_owned(), "tapped_queue_unconsumed")]
    );
    let message = &observe(&snap, &HashMap::new(), 0)[0].message;
    assert!(message.contains("originals are not being handled"), "{message}");
    // With the service's consumer back, nothing to say.
    snap.vhosts[0].queues[0].consumers = 1;
    assert!(kinds(&snap, &HashMap::new(), 0).is_empty());
    // In consume mode the same queue is an ordinary error queue.
    snap.vhosts[0].queues[0].consumers = 0;
    snap.vhosts[0].default_mode = app::model::CaptureMode::Consume;
    assert!(!kinds(&snap, &HashMap::new(), 0)
        .iter()
        .any(|(_, k)| *k == "tapped_queue_unconsumed"));
}
