//! Policies: validation before anything reaches the broker, and the preview
//! of which queues a policy matches and which policy wins for each.

use app::model::{ApiError, Policy, PolicyMatch, PolicyPreview, PolicyRequest, QueueKind, APPLY_TO};
use fancy_regex::Regex;

use crate::broker::QueueStats;

/// Compiles a policy pattern. The broker matches patterns with Erlang's `re`
/// (PCRE), and policies commonly use lookahead (`^(?!amq\.).*`), which the
/// `regex` crate refuses; fancy-regex accepts PCRE's lookaround and
/// backreferences, so a pattern the broker takes is not refused here.
fn compile(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| regex_error_reason(&e.to_string()))
}

/// Whether a policy pattern matches a queue name. A match that exhausts the
/// backtracking limit (only a pathological pattern can) counts as no match.
fn pattern_matches(pattern: &Regex, name: &str) -> bool {
    pattern.is_match(name).unwrap_or(false)
}

/// Checks a policy the way the broker would, before sending it: a broken
/// pattern or definition gets a clear error and nothing is sent.
pub fn validate(name: &str, policy: &PolicyRequest) -> Result<Regex, ApiError> {
    if name.trim().is_empty() || name.len() > 255 {
        return Err(ApiError::BadRequest(
            "policy name must be 1 to 255 characters".into(),
        ));
    }
    let pattern = compile(&policy.pattern).map_err(|e| {
        ApiError::BadRequest(format!(
            "pattern `{}` is not a valid regular expression: {e}",
            policy.pattern
        ))
    })?;
    if !APPLY_TO.contains(&policy.apply_to.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "apply-to must be one of {}, not `{}`",
            APPLY_TO.join(", "),
            policy.apply_to
        )));
    }
    match policy.definition.as_object() {
        Some(d) if !d.is_empty() => Ok(pattern),
        _ => Err(ApiError::BadRequest(
            "definition must be a JSON object with at least one key, e.g. {\"queue-mode\": \"lazy\"}".into(),
        )),
    }
}

/// Regex errors span several lines with a caret under the pattern; the
/// line starting `error:` says what is wrong, and fits in one message.
pub fn regex_error_reason(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| l.trim_start().starts_with("error:"))
        .map(|l| l.trim_start().trim_start_matches("error:").trim().to_owned())
        .unwrap_or_else(|| text.trim().to_owned())
}

/// Limits for which the broker applies the lowest of the policy's, the
/// operator policy's and the queue argument's values instead of letting one
/// override the others.
const LOWER_WINS: [&str; 5] = [
    "message-ttl",
    "max-length",
    "max-length-bytes",
    "expires",
    "delivery-limit",
];

fn applies_to(apply_to: &str, queue_kind: QueueKind) -> bool {
    match apply_to {
        "queues" | "all" => true,
        "classic_queues" => queue_kind == QueueKind::Classic,
        "quorum_queues" => queue_kind == QueueKind::Quorum,
        "streams" => queue_kind == QueueKind::Stream,
        _ => false,
    }
}

/// What saving `proposed` as `name` would do to the queues of one vhost.
pub fn preview(
    name: &str,
    proposed: &PolicyRequest,
    existing: &[Policy],
    queues: &[QueueStats],
    lazy_mode_matters: bool,
) -> Result<PolicyPreview, ApiError> {
    let pattern = validate(name, proposed)?;
    let mut notes = Vec::new();
    let mut others: Vec<(&str, Regex, &str, i64)> = Vec::new();
    for p in existing.iter().filter(|p| p.name != name) {
        match compile(&p.pattern) {
            Ok(re) => others.push((p.name.as_str(), re, p.apply_to.as_str(), p.priority)),
            // The broker took it, so it is PCRE this engine lacks: say the
            // preview leaves it out rather than silently misreport winners.
            Err(e) => notes.push(format!(
                "policy {} (pattern `{}`) cannot be evaluated here ({e}); the preview leaves it out",
                p.name, p.pattern
            )),
        }
    }
    let mut matches = Vec::new();
    for q in queues {
        let kind = q.kind;
        if !(pattern_matches(&pattern, &q.name) && applies_to(&proposed.apply_to, kind)) {
            continue;
        }
        let mut candidates: Vec<(&str, i64)> = others
            .iter()
            .filter(|(_, re, apply_to, _)| pattern_matches(re, &q.name) && applies_to(apply_to, kind))
            .map(|(n, _, _, prio)| (*n, *prio))
            .collect();
        candidates.push((name, proposed.priority));
        let top = candidates.iter().map(|c| c.1).max().unwrap_or(proposed.priority);
        let winners: Vec<&str> = candidates.iter().filter(|c| c.1 == top).map(|c| c.0).collect();
        let mut queue_notes = Vec::new();
        if winners.len() > 1 {
            queue_notes.push(format!(
                "tie at priority {top} between {}: the broker picks one unpredictably; give one a higher priority",
                winners.join(", ")
            ));
        } else if winners[0] != name {
            queue_notes.push(format!(
                "{} has a higher priority ({top}) and stays in force",
                winners[0]
            ));
        }
        if let Some(def) = proposed.definition.as_object() {
            if def.contains_key("queue-mode") {
                if kind != QueueKind::Classic {
                    queue_notes.push(format!("queue-mode does not apply to {kind} queues"));
                } else if !lazy_mode_matters {
                    queue_notes.push(
                        "RabbitMQ 3.12+ keeps classic queue messages on disk; queue-mode is ignored".into(),
                    );
                }
            }
            for key in def.keys() {
                if !q.arguments.contains_key(&format!("x-{key}")) {
                    continue;
                }
                queue_notes.push(if LOWER_WINS.contains(&key.as_str()) {
                    format!("the lower of the queue's x-{key} argument and this policy's {key} applies")
                } else {
                    format!("the queue's own x-{key} argument overrides this policy's {key}")
                });
            }
        }
        if let Some(operator) = &q.operator_policy {
            queue_notes.push(format!(
                "operator policy {operator} applies too: where it sets the same limit ({}), the lower value wins",
                LOWER_WINS.join(", ")
            ));
        }
        matches.push(PolicyMatch {
            queue: q.name.clone(),
            kind: kind.to_owned(),
            current: q.policy.clone(),
            winner: (winners.len() == 1).then(|| winners[0].to_owned()),
            note: (!queue_notes.is_empty()).then(|| queue_notes.join("; ")),
        });
    }
    if !lazy_mode_matters {
        notes.push(
            "This broker is RabbitMQ 3.12 or later: classic queues always store messages on disk and \
             queue-mode is ignored. Policies that still matter: dead-letter-exchange, message-ttl, \
             max-length with overflow, delivery-limit (quorum)."
                .into(),
        );
    }
    Ok(PolicyPreview { matches, notes })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(pattern: &str, priority: i64) -> PolicyRequest {
        PolicyRequest {
            pattern: pattern.into(),
            apply_to: "queues".into(),
            priority,
            definition: json!({"queue-mode": "lazy"}),
        }
    }

    fn queue(name: &str, kind: &str) -> QueueStats {
        let kind = QueueKind::parse(kind).unwrap();
        QueueStats {
            name: name.into(),
            kind,
            ..QueueStats::default()
        }
    }

    #[test]
    fn bad_patterns_and_definitions_are_refused() {
        let e = validate("p", &request("orders(", 0)).unwrap_err();
        assert!(e.to_string().contains("not a valid regular expression"), "{e}");
        let mut empty = request("x", 0);
        empty.definition = json!({});
        assert!(validate("p", &empty).is_err());
        assert!(validate("", &request("x", 0)).is_err());
        let mut apply = request("x", 0);
        apply.apply_to = "topics".into();
        assert!(validate("p", &apply).is_err());
    }

    #[test]
    fn pcre_lookahead_is_accepted_and_evaluated_like_the_broker() {
        // The idiom from RabbitMQ's own docs: every queue but the amq.* ones.
        let all_but_amq = request(r"^(?!amq\.).*", 0);
        assert!(validate("p", &all_but_amq).is_ok());
        let queues = vec![queue("orders", "classic"), queue("amq.gen-1", "classic")];
        let p = preview("lazy", &all_but_amq, &[], &queues, true).unwrap();
        let matched: Vec<_> = p.matches.iter().map(|m| m.queue.as_str()).collect();
        assert_eq!(matched, ["orders"]);
        let e = validate("p", &request(r"^(?!amq\.", 0)).unwrap_err();
        assert!(e.to_string().contains("not a valid regular expression"), "{e}");
    }

    #[test]
    fn an_existing_pattern_that_cannot_be_evaluated_is_named_not_ignored() {
        // PCRE recursion: the broker accepts it, this engine cannot run it.
        let existing = vec![Policy {
            vhost: "v".into(),
            name: "recursive".into(),
            pattern: r"^(a(?R)?b)$".into(),
            apply_to: "queues".into(),
            priority: 9,
            definition: json!({"max-length": 10}),
        }];
        let p = preview(
            "lazy",
            &request("^orders$", 1),
            &existing,
            &[queue("orders", "classic")],
            true,
        )
        .unwrap();
        assert_eq!(p.matches[0].winner.as_deref(), Some("lazy"));
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("recursive") && n.contains("leaves it out")),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn priority_decides_the_winner() {
        let existing = vec![Policy {
            vhost: "v".into(),
            name: "ha".into(),
            pattern: "^orders".into(),
            apply_to: "queues".into(),
            priority: 5,
            definition: json!({"max-length": 10}),
        }];
        let queues = vec![
            queue("orders", "classic"),
            queue("billing", "classic"),
            queue("orders.q", "quorum"),
        ];
        let low = preview("lazy", &request("^(orders|billing)", 1), &existing, &queues, true).unwrap();
        let winners: Vec<_> = low
            .matches
            .iter()
            .map(|m| (m.queue.as_str(), m.winner.as_deref()))
            .collect();
        assert_eq!(
            winners,
            vec![
                ("orders", Some("ha")),
                ("billing", Some("lazy")),
                ("orders.q", Some("ha"))
            ]
        );
        assert!(low.matches[2].note.as_deref().unwrap().contains("quorum"));
        let tie = preview("lazy", &request("^orders$", 5), &existing, &queues, true).unwrap();
        assert_eq!(tie.matches[0].winner, None);
        assert!(tie.matches[0].note.as_deref().unwrap().contains("tie"));
        let newer = preview("lazy", &request("^orders$", 1), &existing, &queues, false).unwrap();
        assert!(newer.notes[0].contains("3.12"));
    }
}
