//! What makes an alert rule acceptable: a condition that can be evaluated
//! and a destination its format can reach.

use app::model::{Addresses, AlertCondition, AlertFormat, AlertRuleRequest, ApiError};

use crate::policy;

/// The most addresses one e-mail rule sends to.
const MAX_ADDRESSES: usize = 20;

/// Refuses a rule that could never fire or never be sent, with one line
/// that says why. `can_email`: `REDRIVE_SMTP_URL` is set.
pub(super) fn validate(rule: &AlertRuleRequest, can_email: bool) -> Result<(), ApiError> {
    if rule.name.trim().is_empty() {
        return Err(ApiError::BadRequest("an alert rule needs a name".into()));
    }
    destination(rule, can_email)?;
    match &rule.condition {
        AlertCondition::Queue {
            queue, op, threshold, ..
        } => {
            regex::Regex::new(queue).map_err(|e| {
                ApiError::BadRequest(format!(
                    "queue pattern `{queue}` is not a valid regular expression: {}",
                    policy::regex_error_reason(&e.to_string())
                ))
            })?;
            if op != "above" && op != "below" {
                return Err(ApiError::BadRequest(format!(
                    "op must be `above` or `below`, not `{op}`"
                )));
            }
            if !threshold.is_finite() {
                return Err(ApiError::BadRequest("threshold must be a number".into()));
            }
        }
        AlertCondition::ErrorInflow { per_minute, .. } if !per_minute.is_finite() || *per_minute < 0.0 => {
            return Err(ApiError::BadRequest("per_minute must be a number ≥ 0".into()));
        }
        _ => {}
    }
    Ok(())
}

/// E-mail rules name their addresses (and need an SMTP server); every
/// other format posts to an http(s) webhook.
fn destination(rule: &AlertRuleRequest, can_email: bool) -> Result<(), ApiError> {
    let bad = |why: String| Err(ApiError::BadRequest(why));
    let to = rule.email_to.clone().map(Addresses::into_vec).unwrap_or_default();
    if rule.format != AlertFormat::Email {
        if !to.is_empty() {
            return bad("`email_to` is for rules with \"format\": \"email\"".into());
        }
        let url = rule.webhook_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) || reqwest::Url::parse(url).is_err() {
            return bad(format!("webhook URL `{url}` is not an http(s) URL"));
        }
        return Ok(());
    }
    if !rule.webhook_url.trim().is_empty() {
        return bad("an e-mail rule takes `email_to`, not `webhook_url`".into());
    }
    if !can_email {
        return bad("e-mail rules need an SMTP server: set REDRIVE_SMTP_URL".into());
    }
    if to.is_empty() || to.len() > MAX_ADDRESSES {
        return bad(format!(
            "an e-mail rule needs 1 to {MAX_ADDRESSES} addresses in `email_to`"
        ));
    }
    for address in &to {
        if let Err(e) = address.parse::<lettre::Address>() {
            return bad(format!("`{address}` is not an e-mail address: {e}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use app::model::QueueMetric;

    use super::*;

    fn rule(queue: &str, url: &str) -> AlertRuleRequest {
        AlertRuleRequest {
            name: "deep".into(),
            condition: AlertCondition::Queue {
                vhost: None,
                queue: queue.into(),
                metric: QueueMetric::Ready,
                op: "above".into(),
                threshold: 10.0,
            },
            format: AlertFormat::Json,
            webhook_url: url.into(),
            email_to: None,
        }
    }

    #[test]
    fn alert_rules_are_checked_with_one_line_errors() {
        assert!(validate(&rule(r"\.error\.queue$", "http://127.0.0.1:9/hook"), false).is_ok());
        let e = validate(&rule("(", "http://127.0.0.1:9/hook"), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("is not a valid regular expression: unclosed group"),
            "{e}"
        );
        let e = validate(&rule("a", "ftp://x"), false).unwrap_err().to_string();
        assert!(e.contains("not an http(s) URL"), "{e}");
    }

    #[test]
    fn an_email_rule_names_valid_addresses_and_needs_smtp() {
        let email = |to: &[&str]| AlertRuleRequest {
            format: AlertFormat::Email,
            webhook_url: String::new(),
            email_to: Some(Addresses::Many(to.iter().map(|a| (*a).to_owned()).collect())),
            ..rule("a", "")
        };
        assert!(validate(&email(&["oncall@example.com"]), true).is_ok());
        for (rule, says) in [
            (email(&["oncall@example.com"]), "REDRIVE_SMTP_URL"),
            (email(&[]), "1 to 20 addresses"),
            (email(&["not an address"]), "is not an e-mail address"),
            (
                AlertRuleRequest {
                    webhook_url: "http://x/h".into(),
                    ..email(&["a@b.c"])
                },
                "not `webhook_url`",
            ),
            (
                AlertRuleRequest {
                    format: AlertFormat::Slack,
                    ..email(&["a@b.c"])
                },
                "`email_to` is for",
            ),
        ] {
            let can_email = !says.contains("SMTP");
            let e = validate(&rule, can_email).unwrap_err().to_string();
            assert!(e.contains(says), "{says}: {e}");
        }
    }
}
