//! Which queues hold failures, and why: the one classification that capture,
//! the Queues page and the advisor share.
//!
//! A queue holds failures when its name says so (`REDRIVE_WATCH`), when it is
//! bound to an error exchange (Spring's RepublishMessageRecoverer target), or
//! when it is a dead-letter queue: bound to an exchange that some queue
//! dead-letters into, whether the `x-dead-letter-exchange` comes from an
//! argument, a policy or an operator policy. Dead-letter targets that are
//! really work queues (retry delay queues, targets of a delay queue, queues
//! consumed by someone else) are left alone, with the reason shown.
//!
//! Pure, so every rule is unit-tested without a broker.

use std::collections::HashMap;

use app::model::{CaptureMode, TAP_PREFIX};
use regex::Regex;

use super::VhostState;
use crate::broker::QueueStats;
use crate::config::{CaptureConfig, OptionalRegex};

/// Consumer tags Redrive gives its own consumers; any other consumer on a
/// dead-letter target makes it a work queue.
pub const CONSUMER_TAG_PREFIX: &str = "redrive-";

/// The configured rules.
#[derive(Debug, Clone)]
pub struct WatchRules {
    pub watch: Regex,
    pub ignore: OptionalRegex,
    pub error_exchanges: Vec<String>,
    /// How a watched queue is captured unless an operator chose.
    pub default_mode: CaptureMode,
}

impl WatchRules {
    pub fn from_config(c: &CaptureConfig) -> Self {
        Self {
            watch: c.watch.clone(),
            ignore: c.ignore.clone(),
            error_exchanges: c.error_exchange_names().map(str::to_owned).collect(),
            default_mode: c.capture_mode,
        }
    }
}

/// What a queue is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Holds failed messages waiting for a human: never advised to get an
    /// error queue of its own, whether Redrive captures it or not.
    Failure,
    /// Anything else: work queues, retry delay queues, system queues.
    Work,
    /// Redrive's own tap of a queue (`redrive.tap.<queue>`): never captured
    /// as itself (its copies are filed under the queue it taps), never
    /// advised.
    Tap,
}

/// One queue's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub role: Role,
    pub watched: bool,
    /// Why it is captured, or why a failure-looking queue is not; `None` for
    /// an ordinary work queue.
    pub reason: Option<String>,
}

impl Verdict {
    fn work() -> Self {
        Self {
            role: Role::Work,
            watched: false,
            reason: None,
        }
    }
}

/// Where a queue's dead-letter exchange is set.
fn dead_letter_source(q: &QueueStats, v: &VhostState) -> Option<(String, String)> {
    if let Some(dlx) = q.arguments.get("x-dead-letter-exchange").and_then(|x| x.as_str()) {
        return Some((dlx.to_owned(), "argument x-dead-letter-exchange".into()));
    }
    let dlx = q
        .effective_policy_definition
        .as_ref()?
        .get("dead-letter-exchange")?
        .as_str()?
        .to_owned();
    let from_policy = q.policy.as_deref().filter(|name| {
        v.policies
            .iter()
            .any(|p| &p.name == name && p.definition.get("dead-letter-exchange").is_some())
    });
    let how = match (from_policy, q.operator_policy.as_deref()) {
        (Some(p), _) => format!("policy {p}"),
        (None, Some(op)) => format!("operator policy {op}"),
        (None, None) => "policy".into(),
    };
    Some((dlx, how))
}

/// A queue whose messages expire back to work (message-ttl + dead-letter
/// exchange, nobody consuming): the delay stage of a retry loop.
fn is_delay_queue(q: &QueueStats, foreign_consumers: usize) -> bool {
    q.has_ttl() && q.dead_letter_exchange().is_some() && foreign_consumers == 0
}

/// Classifies every queue of a vhost. `overrides` are the operator's
/// switches by queue name (`true`: capture), which win over every rule.
pub fn classify(
    v: &VhostState,
    rules: &WatchRules,
    overrides: &HashMap<String, bool>,
) -> HashMap<String, Verdict> {
    let mut foreign: HashMap<&str, usize> = HashMap::new();
    for c in &v.consumers {
        if !c.consumer_tag.starts_with(CONSUMER_TAG_PREFIX) {
            *foreign.entry(c.queue.name.as_str()).or_default() += 1;
        }
    }
    let foreign_of = |name: &str| foreign.get(name).copied().unwrap_or(0);
    let by_name: HashMap<&str, &QueueStats> = v.queues.iter().map(|q| (q.name.as_str(), q)).collect();

    // Dead-letter exchange → the queues that dead-letter into it, and how.
    let mut dead_lettering: HashMap<String, Vec<(&QueueStats, String)>> = HashMap::new();
    for q in &v.queues {
        if let Some((dlx, how)) = dead_letter_source(q, v) {
            dead_lettering.entry(dlx).or_default().push((q, how));
        }
    }
    // Queue → (source queue, how) for every dead-letter path that reaches it.
    let mut sources: HashMap<&str, Vec<(&QueueStats, &str)>> = HashMap::new();
    // The default exchange is bound to every queue (the management API
    // lists those bindings too) but routes by name: it is handled below.
    for b in v
        .bindings
        .iter()
        .filter(|b| b.destination_type == "queue" && !b.source.is_empty())
    {
        if let Some(from) = dead_lettering.get(&b.source) {
            for (q, how) in from {
                sources.entry(b.destination.as_str()).or_default().push((q, how));
            }
        }
    }
    // The default exchange routes by queue name: a dead-letter routing key names the target.
    if let Some(from) = dead_lettering.get("") {
        for (q, how) in from {
            let key = q.setting("dead-letter-routing-key").and_then(|k| k.as_str());
            if let Some(target) = key.filter(|k| by_name.contains_key(k)) {
                sources.entry(target).or_default().push((q, how));
            }
        }
    }

    let mut out = HashMap::new();
    for q in &v.queues {
        let name = q.name.as_str();
        if name.starts_with("amq.") || q.exclusive {
            out.insert(q.name.clone(), Verdict::work());
            continue;
        }
        if let Some(tapped) = name.strip_prefix(TAP_PREFIX) {
            out.insert(
                q.name.clone(),
                Verdict {
                    role: Role::Tap,
                    watched: false,
                    reason: Some(format!(
                        "Redrive's tap of {tapped}: what it copies is filed under {tapped}"
                    )),
                },
            );
            continue;
        }
        let mut verdict = rule_verdict(q, v, rules, sources.get(name), foreign_of(name), &foreign_of);
        if verdict.watched && rules.ignore.is_match(name) {
            verdict.watched = false;
            verdict.reason = Some(format!(
                "not captured: matches REDRIVE_IGNORE (would be: {})",
                verdict.reason.unwrap_or_default()
            ));
        }
        if q.is_stream() {
            out.insert(q.name.clone(), stream_verdict(verdict));
            continue;
        }
        match overrides.get(name) {
            Some(true) if !verdict.watched => {
                verdict.watched = true;
                verdict.reason = Some("switched on by an operator".into());
            }
            Some(false) if verdict.watched || verdict.role == Role::Failure => {
                verdict.watched = false;
                verdict.reason = Some("not captured: switched off by an operator".into());
            }
            _ => {}
        }
        out.insert(q.name.clone(), verdict);
    }
    out
}

/// Streams are listed, never consumed, whatever the rules or an operator
/// say: a stream keeps every message for all its readers, so consuming one
/// would not take a failure off it, and it needs offsets Redrive does not
/// keep.
fn stream_verdict(rules: Verdict) -> Verdict {
    Verdict {
        role: rules.role,
        watched: false,
        reason: Some(
            "not captured: a stream keeps its messages for every reader; read it with a stream client".into(),
        ),
    }
}

fn rule_verdict(
    q: &QueueStats,
    v: &VhostState,
    rules: &WatchRules,
    sources: Option<&Vec<(&QueueStats, &str)>>,
    foreign: usize,
    foreign_of: &dyn Fn(&str) -> usize,
) -> Verdict {
    let failure = |watched: bool, reason: String| Verdict {
        role: Role::Failure,
        watched,
        reason: Some(reason),
    };
    if rules.watch.is_match(&q.name) {
        return failure(true, "name matches REDRIVE_WATCH".into());
    }
    let error_binding = v.bindings.iter().find(|b| {
        b.destination_type == "queue"
            && b.destination == q.name
            && rules.error_exchanges.iter().any(|e| e == &b.source)
    });
    if let Some(b) = error_binding {
        return failure(
            true,
            format!(
                "bound to error exchange {} with key {}",
                b.source,
                shown_key(&b.routing_key)
            ),
        );
    }
    let Some(sources) = sources.filter(|s| !s.is_empty()) else {
        return Verdict::work();
    };
    let work = |reason: String| Verdict {
        role: Role::Work,
        watched: false,
        reason: Some(reason),
    };
    let (first, _) = sources[0];
    if is_delay_queue(q, foreign) {
        return work(format!(
            "not captured: dead-letter target of {} but a retry delay queue (its messages expire back to work)",
            first.name
        ));
    }
    let real: Vec<&(&QueueStats, &str)> = sources
        .iter()
        .filter(|(s, _)| !is_delay_queue(s, foreign_of(&s.name)))
        .collect();
    let Some((source, how)) = real.first() else {
        return work(format!(
            "not captured: target of the TTL delay queue {}, so a work queue",
            first.name
        ));
    };
    if foreign > 0 {
        return work(format!(
            "not captured: dead-letter target of {} but consumed by {foreign} consumer(s) of its own, so a work queue",
            source.name
        ));
    }
    let more = match real.len() {
        1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    failure(
        true,
        format!("dead-letter target of {}{more} via {how}", source.name),
    )
}

fn shown_key(key: &str) -> &str {
    if key.is_empty() {
        "(empty)"
    } else {
        key
    }
}

#[cfg(test)]
mod tests;
