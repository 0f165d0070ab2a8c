//! Policies: validation before anything reaches the broker, and the preview
//! of which queues a policy matches and which policy wins for each.

use app::model::{ApiError, Policy, PolicyMatch, PolicyPreview, PolicyRequest, APPLY_TO};
use regex::Regex;

use crate::broker::QueueStats;

/// Checks a policy the way the broker would, before sending it: a broken
/// pattern or definition gets a clear error and nothing is sent.
pub fn validate(name: &str, policy: &PolicyRequest) -> Result<Regex, ApiError> {
    if name.trim().is_empty() || name.len() > 255 {
        return Err(ApiError::BadRequest(
            "policy name must be 1 to 255 characters".into(),
        ));
    }
    let pattern = Regex::new(&policy.pattern).map_err(|e| {
        ApiError::BadRequest(format!(
            "pattern `{}` is not a valid regular expression: {}",
            policy.pattern,
            first_line_of_regex_error(&e)
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

/// The regex crate explains errors over several lines with a caret; the
/// last line says what is wrong.
fn first_line_of_regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .map(|l| l.trim_start_matches("error:").trim().to_owned())
        .unwrap_or(text)
}

fn applies_to(apply_to: &str, queue_kind: &str) -> bool {
    match apply_to {
        "queues" | "all" => true,
        "classic_queues" => queue_kind == "classic",
        "quorum_queues" => queue_kind == "quorum",
        "streams" => queue_kind == "stream",
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
    let others: Vec<(&str, Regex, &str, i64)> = existing
        .iter()
        .filter(|p| p.name != name)
        .filter_map(|p| {
            Some((
                p.name.as_str(),
                Regex::new(&p.pattern).ok()?,
                p.apply_to.as_str(),
                p.priority,
            ))
        })
        .collect();
    let mut matches = Vec::new();
    for q in queues {
        let kind = if q.kind.is_empty() {
            "classic"
        } else {
            q.kind.as_str()
        };
        if !(pattern.is_match(&q.name) && applies_to(&proposed.apply_to, kind)) {
            continue;
        }
        let mut candidates: Vec<(&str, i64)> = others
            .iter()
            .filter(|(_, re, apply_to, _)| re.is_match(&q.name) && applies_to(apply_to, kind))
            .map(|(n, _, _, prio)| (*n, *prio))
            .collect();
        candidates.push((name, proposed.priority));
        let top = candidates.iter().map(|c| c.1).max().unwrap_or(proposed.priority);
        let winners: Vec<&str> = candidates.iter().filter(|c| c.1 == top).map(|c| c.0).collect();
        let mut notes = Vec::new();
        if winners.len() > 1 {
            notes.push(format!(
                "tie at priority {top} between {}: the broker picks one unpredictably; give one a higher priority",
                winners.join(", ")
            ));
        } else if winners[0] != name {
            notes.push(format!(
                "{} has a higher priority ({top}) and stays in force",
                winners[0]
            ));
        }
        if let Some(def) = proposed.definition.as_object() {
            if def.contains_key("queue-mode") {
                if kind != "classic" {
                    notes.push(format!("queue-mode does not apply to {kind} queues"));
                } else if !lazy_mode_matters {
                    notes.push(
                        "RabbitMQ 3.12+ keeps classic queue messages on disk; queue-mode is ignored".into(),
                    );
                }
            }
            for key in def.keys() {
                if q.arguments.contains_key(&format!("x-{key}")) {
                    notes.push(format!(
                        "the queue's own x-{key} argument overrides this policy's {key}"
                    ));
                }
            }
        }
        matches.push(PolicyMatch {
            queue: q.name.clone(),
            kind: kind.to_owned(),
            current: q.policy.clone(),
            winner: (winners.len() == 1).then(|| winners[0].to_owned()),
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        });
    }
    let mut notes = Vec::new();
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
        QueueStats {
            name: name.into(),
            kind: kind.into(),
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
