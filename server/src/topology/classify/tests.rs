use std::collections::HashMap;

use serde_json::{json, Value};

use super::*;
use crate::broker::management::{BindingInfo, ConsumerInfo, NamedRef};
use app::model::Policy;

fn rules() -> WatchRules {
    let c = <crate::config::Config as clap::Parser>::try_parse_from(["redrive"]).unwrap();
    WatchRules::from_config(&c.capture)
}

fn queue(name: &str, args: Value) -> QueueStats {
    QueueStats {
        vhost: "v".into(),
        name: name.into(),
        kind: app::model::QueueKind::Classic,
        durable: true,
        arguments: args.as_object().cloned().unwrap_or_default(),
        ..Default::default()
    }
}

fn with_policy(mut q: QueueStats, policy: &str, def: Value) -> QueueStats {
    q.policy = Some(policy.into());
    q.effective_policy_definition = def.as_object().cloned();
    q
}

fn bind(source: &str, queue: &str, key: &str) -> BindingInfo {
    BindingInfo {
        source: source.into(),
        destination: queue.into(),
        destination_type: "queue".into(),
        routing_key: key.into(),
        arguments: Default::default(),
    }
}

fn consumer(queue: &str, tag: &str) -> ConsumerInfo {
    ConsumerInfo {
        queue: NamedRef { name: queue.into() },
        consumer_tag: tag.into(),
        ack_required: true,
        ..Default::default()
    }
}

fn vhost(queues: Vec<QueueStats>, bindings: Vec<BindingInfo>) -> VhostState {
    VhostState {
        name: "v".into(),
        queues,
        bindings,
        ..Default::default()
    }
}

fn verdict(v: &VhostState, name: &str) -> Verdict {
    classify(v, &rules(), &HashMap::new()).remove(name).unwrap()
}

#[test]
fn spring_error_queue_is_captured_by_name_and_by_binding() {
    let v = vhost(
        vec![queue("error.queue", json!({})), queue("audit", json!({}))],
        vec![
            bind("error.direct", "error.queue", "error"),
            bind("error.direct", "audit", "x"),
        ],
    );
    let plain = verdict(&v, "error.queue");
    assert!(plain.watched);
    assert_eq!(plain.role, Role::Failure);
    assert_eq!(plain.reason.as_deref(), Some("name matches REDRIVE_WATCH"));
    let bound = verdict(&v, "audit");
    assert!(bound.watched);
    assert_eq!(
        bound.reason.as_deref(),
        Some("bound to error exchange error.direct with key x")
    );
}

#[test]
fn a_parking_queue_behind_a_policy_dead_letter_exchange_is_captured() {
    let work = with_policy(
        queue("payments.work", json!({})),
        "payments-dlx",
        json!({"dead-letter-exchange": "payments.dlx"}),
    );
    let mut v = vhost(
        vec![work, queue("parking", json!({}))],
        vec![bind("payments.dlx", "parking", "")],
    );
    v.policies = vec![Policy {
        vhost: "v".into(),
        name: "payments-dlx".into(),
        pattern: "^payments\\.".into(),
        apply_to: "queues".into(),
        priority: 0,
        definition: json!({"dead-letter-exchange": "payments.dlx"}),
    }];
    let p = verdict(&v, "parking");
    assert!(p.watched);
    assert_eq!(
        p.reason.as_deref(),
        Some("dead-letter target of payments.work via policy payments-dlx")
    );
    assert_eq!(verdict(&v, "payments.work"), Verdict::work());
}

#[test]
fn argument_and_operator_policy_and_default_exchange_paths() {
    let by_arg = queue("a.work", json!({"x-dead-letter-exchange": "a.dlx"}));
    let mut by_op = queue("b.work", json!({}));
    by_op.operator_policy = Some("ops".into());
    by_op.effective_policy_definition = json!({"dead-letter-exchange": "b.dlx"}).as_object().cloned();
    let by_default = queue(
        "c.work",
        json!({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "c.parked"}),
    );
    let v = vhost(
        vec![
            by_arg,
            by_op,
            by_default,
            queue("a.parked", json!({})),
            queue("b.parked", json!({})),
            queue("c.parked", json!({})),
        ],
        vec![
            bind("a.dlx", "a.parked", "#"),
            bind("b.dlx", "b.parked", ""),
            // The default exchange's binding to every queue, by its name.
            bind("", "a.parked", "a.parked"),
            bind("", "b.work", "b.work"),
            bind("", "c.parked", "c.parked"),
        ],
    );
    // Only the queue the routing key names is c.work's target.
    assert!(!verdict(&v, "b.work").watched);
    assert_eq!(verdict(&v, "b.work").reason, None);
    assert_eq!(
        verdict(&v, "a.parked").reason.as_deref(),
        Some("dead-letter target of a.work via argument x-dead-letter-exchange")
    );
    assert_eq!(
        verdict(&v, "b.parked").reason.as_deref(),
        Some("dead-letter target of b.work via operator policy ops")
    );
    assert!(verdict(&v, "c.parked").watched);
}

#[test]
fn retry_loops_and_consumed_targets_are_work_queues() {
    // work → retry.dlx → delay (ttl, dead-letters back) → work.x → work
    let work = queue("orders.work", json!({"x-dead-letter-exchange": "retry.dlx"}));
    let delay = queue(
        "orders.delay",
        json!({"x-message-ttl": 5000, "x-dead-letter-exchange": "work.x"}),
    );
    // A dead-letter target somebody else consumes.
    let src = queue("mail.work", json!({"x-dead-letter-exchange": "mail.dlx"}));
    let handled = queue("mail.fallback", json!({}));
    let mut v = vhost(
        vec![work, delay, src, handled],
        vec![
            bind("retry.dlx", "orders.delay", ""),
            bind("work.x", "orders.work", ""),
            bind("mail.dlx", "mail.fallback", ""),
        ],
    );
    v.consumers = vec![
        consumer("orders.work", "amq.ctag-1"),
        consumer("mail.fallback", "amq.ctag-2"),
    ];
    let d = verdict(&v, "orders.delay");
    assert!(!d.watched);
    assert_eq!(d.role, Role::Work);
    assert!(d.reason.unwrap().contains("retry delay queue"));
    let w = verdict(&v, "orders.work");
    assert!(!w.watched);
    assert!(
        w.reason.unwrap().contains("TTL delay queue orders.delay"),
        "work queue behind the delay"
    );
    let f = verdict(&v, "mail.fallback");
    assert!(!f.watched);
    assert!(f.reason.unwrap().contains("1 consumer(s) of its own"));

    // Redrive's own consumer does not make a dead-letter queue a work queue.
    v.consumers = vec![consumer("mail.fallback", "redrive-123")];
    assert!(verdict(&v, "mail.fallback").watched);
}

#[test]
fn ignore_and_operator_switches_win() {
    let v = vhost(
        vec![
            queue("a.error.queue", json!({})),
            queue("plain", json!({})),
            queue("b.dlq", json!({})),
        ],
        vec![],
    );
    let mut r = rules();
    r.ignore = OptionalRegex(Some(Regex::new("^a\\.").unwrap()));
    let overrides = HashMap::from([("plain".to_owned(), true), ("b.dlq".to_owned(), false)]);
    let all = classify(&v, &r, &overrides);
    assert!(!all["a.error.queue"].watched);
    assert!(all["a.error.queue"]
        .reason
        .as_deref()
        .unwrap()
        .contains("REDRIVE_IGNORE"));
    assert_eq!(all["a.error.queue"].role, Role::Failure);
    assert!(all["plain"].watched);
    assert_eq!(all["plain"].reason.as_deref(), Some("switched on by an operator"));
    assert!(!all["b.dlq"].watched);
    assert_eq!(
        all["b.dlq"].role,
        Role::Failure,
        "still a failure queue for the advisor"
    );
}

#[test]
fn system_and_exclusive_queues_are_never_captured() {
    let mut excl = queue("x.dlq", json!({}));
    excl.exclusive = true;
    let v = vhost(vec![excl, queue("amq.gen-1.dlq", json!({}))], vec![]);
    assert!(!verdict(&v, "x.dlq").watched);
    assert!(!verdict(&v, "amq.gen-1.dlq").watched);
}

#[test]
fn streams_are_listed_never_consumed_even_when_switched_on() {
    let mut stream = queue("audit.error.queue", json!({"x-queue-type": "stream"}));
    stream.kind = app::model::QueueKind::Stream;
    let mut quorum = queue("orders.error.queue", json!({"x-queue-type": "quorum"}));
    quorum.kind = app::model::QueueKind::Quorum;
    let v = vhost(
        vec![stream, quorum],
        vec![bind("error.direct", "audit.error.queue", "audit")],
    );

    let s = verdict(&v, "audit.error.queue");
    assert_eq!(
        s.role,
        Role::Failure,
        "it still holds failures, so it is not advised an error queue"
    );
    assert!(!s.watched);
    assert!(s.reason.unwrap().contains("stream"));
    let forced = classify(
        &v,
        &rules(),
        &HashMap::from([("audit.error.queue".to_owned(), true)]),
    );
    assert!(
        !forced["audit.error.queue"].watched,
        "an operator switch cannot consume a stream"
    );

    assert!(
        verdict(&v, "orders.error.queue").watched,
        "quorum error queues are captured"
    );
}
