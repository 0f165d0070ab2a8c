//! Notifications where people already look: Redrive's own payload (kept in
//! the outbox as it was when the rule fired) rendered for Slack, Teams,
//! Alertmanager or e-mail when it is sent. Everything in a notification
//! that a publisher controls (queue names, exception messages) is sent as
//! text: escaped where the format reads markup.

use std::time::Duration;

use anyhow::Context;
use app::model::AlertFormat;
use lettre::message::{header::ContentType, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::config::NotifyConfig;

/// How this instance sends what the outbox holds.
#[derive(Clone)]
pub struct Notifier {
    http: reqwest::Client,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    /// Where links point: `REDRIVE_PUBLIC_URL`, else the listening address.
    base_url: String,
}

/// One notification as its format sends it.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    Post(Value),
    Email { subject: String, text: String },
}

impl Notifier {
    /// `listening` is the address the HTTP server is bound to.
    pub fn new(config: &NotifyConfig, listening: std::net::SocketAddr) -> anyhow::Result<Self> {
        let smtp = match &config.smtp_url {
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    // Without the URL: it may hold the SMTP password.
                    .map_err(|e| anyhow::anyhow!("REDRIVE_SMTP_URL is not an SMTP URL: {e}"))?
                    .timeout(Some(Duration::from_secs(10)))
                    .build(),
            ),
            None => None,
        };
        let from = config
            .smtp_from
            .parse()
            .with_context(|| format!("REDRIVE_SMTP_FROM `{}` is not a mailbox", config.smtp_from))?;
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("static reqwest configuration is valid"),
            smtp,
            from,
            base_url: config
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{listening}")),
        })
    }

    /// Whether e-mail rules can be sent at all.
    pub fn can_email(&self) -> bool {
        self.smtp.is_some()
    }

    /// Sends one notification; the error is fit to show (no URL, no password).
    pub async fn send(
        &self,
        format: AlertFormat,
        url: &str,
        to: &[String],
        payload: &Value,
    ) -> Result<(), String> {
        match render(format, payload, &self.base_url) {
            Rendered::Post(body) => match self.http.post(url).json(&body).send().await {
                Ok(res) if res.status().is_success() => Ok(()),
                Ok(res) => Err(format!("webhook answered {}", res.status())),
                // Without its URL: the URL can be the secret.
                Err(e) => Err(format!("webhook unreachable: {}", e.without_url())),
            },
            Rendered::Email { subject, text } => self.email(to, subject, text).await,
        }
    }

    async fn email(&self, to: &[String], subject: String, text: String) -> Result<(), String> {
        let smtp = self
            .smtp
            .as_ref()
            .ok_or("REDRIVE_SMTP_URL is not set: e-mail cannot be sent")?;
        let mut message = lettre::Message::builder()
            .from(self.from.clone())
            .subject(subject);
        for address in to {
            let mailbox: Mailbox = address.parse().map_err(|e| format!("address `{address}`: {e}"))?;
            message = message.to(mailbox);
        }
        let message = message
            .header(ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|e| format!("e-mail not built: {e}"))?;
        smtp.send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP server refused or unreachable: {e}"))
    }
}

/// The text of `payload`'s field, or "".
fn field<'a>(payload: &'a Value, name: &str) -> &'a str {
    payload[name].as_str().unwrap_or_default()
}

/// `payload` (Redrive's own: `event`, `rule`, `key`, `summary`, `at`,
/// `link`) as `format` sends it; links are made absolute with `base_url`.
pub fn render(format: AlertFormat, payload: &Value, base_url: &str) -> Rendered {
    let event = field(payload, "event");
    let rule = payload["rule"]["name"].as_str().unwrap_or_default();
    let summary = field(payload, "summary");
    let key = field(payload, "key");
    let link = format!("{base_url}{}", field(payload, "link"));
    // A new group's first message, by its message id where it has one.
    let example = payload["example"]
        .as_str()
        .map(|path| format!("{base_url}{path}"));
    let at = payload["at"].as_i64().unwrap_or_default();
    let when = crate::store::rfc3339(at);
    let title = format!("{}: {rule}", event_title(event));
    match format {
        AlertFormat::Json => Rendered::Post(with_urls(payload, &link, example.as_deref())),
        AlertFormat::Slack => Rendered::Post(json!({
            "text": format!("{title}: {}", slack_escape(summary)),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": clip(&title, 150)}},
                {"type": "section", "text": {"type": "mrkdwn", "text": clip(&slack_escape(summary), 3000)}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
                    "{} · {when} · <{}|Open in Redrive>{}", slack_escape(key), slack_escape(&link),
                    example.as_ref().map(|e| format!(" · <{}|First message>", slack_escape(e))).unwrap_or_default()
                )}]},
            ],
        })),
        AlertFormat::Teams => Rendered::Post(json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": true,
                         "color": if event == "resolved" { "Good" } else { "Attention" }},
                        {"type": "TextBlock", "text": summary, "wrap": true},
                        {"type": "FactSet", "facts": [
                            {"title": "Key", "value": key},
                            {"title": "At", "value": when},
                        ]},
                    ],
                    "actions": [{"type": "Action.OpenUrl", "title": "Open in Redrive", "url": link}],
                },
            }],
        })),
        AlertFormat::Alertmanager => Rendered::Post(alertmanager(payload, &link, base_url)),
        AlertFormat::Email => Rendered::Email {
            subject: clip(
                &format!("[Redrive] {title}: {summary}").replace(['\r', '\n'], " "),
                200,
            ),
            text: format!(
                "{title}\n\n{summary}\n\nKey: {key}\nAt: {when}\n\nOpen in Redrive: {link}\n{}",
                example
                    .as_ref()
                    .map(|e| format!("First message: {e}\n"))
                    .unwrap_or_default()
            ),
        },
    }
}

fn event_title(event: &str) -> &'static str {
    match event {
        "firing" => "Firing",
        "resolved" => "Resolved",
        _ => "Test",
    }
}

/// Redrive's payload with its links made absolute (`url`, `example_url`).
fn with_urls(payload: &Value, link: &str, example: Option<&str>) -> Value {
    let mut out = payload.clone();
    out["url"] = link.into();
    if let Some(example) = example {
        out["example_url"] = example.into();
    }
    out
}

/// Alertmanager's webhook payload (version 4): one alert per notification,
/// labelled by rule and key, so its routing, grouping and silences apply.
fn alertmanager(payload: &Value, link: &str, base_url: &str) -> Value {
    let event = field(payload, "event");
    let status = if event == "resolved" { "resolved" } else { "firing" };
    let at = payload["at"].as_i64().unwrap_or_default();
    let labels = json!({
        "alertname": payload["rule"]["name"],
        "rule_id": payload["rule"]["id"].to_string(),
        "key": field(payload, "key"),
        "source": "redrive",
    });
    let annotations = json!({"summary": field(payload, "summary")});
    let time = |ms: i64| crate::store::rfc3339(ms);
    let (starts, ends) = match status {
        "resolved" => (payload["since"].as_i64().map_or_else(|| time(at), time), time(at)),
        _ => (time(at), "0001-01-01T00:00:00Z".to_owned()),
    };
    let fingerprint = blake3::hash(labels.to_string().as_bytes()).to_hex()[..16].to_owned();
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname={:?}}}", field(&labels, "alertname")),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "redrive",
        "groupLabels": {"alertname": labels["alertname"]},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": base_url,
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": starts,
            "endsAt": ends,
            "generatorURL": link,
            "fingerprint": fingerprint,
        }],
    })
}

/// Slack's mrkdwn reads `&`, `<` and `>` as markup: escaped, a publisher's
/// text cannot make a link or a mention.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters (Slack refuses longer block texts).
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
    }

    fn payload(event: &str) -> Value {
        json!({
            "source": "redrive", "event": event,
            "rule": {"id": 7, "name": "orders errors", "condition": {"kind": "new_group"}},
            "key": "group:ab12", "value": 1.0, "at": 1_700_000_000_000_i64, "since": 1_699_999_000_000_i64,
            "summary": "New failure group <@channel> & co", "link": "/?group=ab12",
        })
    }

    #[test]
    fn slack_escapes_what_publishers_wrote_and_links_to_the_page() {
        let Rendered::Post(body) = render(AlertFormat::Slack, &payload("firing"), "https://r.example") else {
            panic!("a post")
        };
        let text = body.to_string();
        assert!(text.contains("&lt;@channel&gt; &amp; co"), "{text}");
        assert!(!text.contains("<@channel>"), "{text}");
        assert!(
            text.contains("<https://r.example/?group=ab12|Open in Redrive>"),
            "{text}"
        );
        assert_eq!(body["blocks"][0]["text"]["text"], "Firing: orders errors");
    }

    #[test]
    fn alertmanager_says_firing_then_resolved_with_stable_labels() {
        let Rendered::Post(firing) = render(AlertFormat::Alertmanager, &payload("firing"), "http://r") else {
            panic!("a post")
        };
        let Rendered::Post(resolved) = render(AlertFormat::Alertmanager, &payload("resolved"), "http://r")
        else {
            panic!("a post")
        };
        assert_eq!(firing["version"], "4");
        assert_eq!(
            (firing["status"].as_str(), resolved["status"].as_str()),
            (Some("firing"), Some("resolved"))
        );
        assert_eq!(firing["alerts"][0]["labels"], resolved["alerts"][0]["labels"]);
        assert_eq!(
            firing["alerts"][0]["fingerprint"],
            resolved["alerts"][0]["fingerprint"]
        );
        assert_eq!(firing["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        assert!(parse_time(resolved["alerts"][0]["endsAt"].as_str().unwrap()).is_some());
        assert_eq!(firing["alerts"][0]["generatorURL"], "http://r/?group=ab12");
    }

    #[test]
    fn teams_gets_an_adaptive_card_with_the_link() {
        let Rendered::Post(body) = render(AlertFormat::Teams, &payload("resolved"), "http://r") else {
            panic!("a post")
        };
        let card = &body["attachments"][0];
        assert_eq!(card["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert_eq!(card["content"]["body"][0]["text"], "Resolved: orders errors");
        assert_eq!(card["content"]["actions"][0]["url"], "http://r/?group=ab12");
    }

    #[test]
    fn an_email_subject_is_one_line() {
        let mut p = payload("firing");
        p["summary"] = "line one\r\nBcc: x@evil".into();
        let Rendered::Email { subject, text } = render(AlertFormat::Email, &p, "http://r") else {
            panic!("an e-mail")
        };
        assert!(!subject.contains('\n') && !subject.contains('\r'), "{subject}");
        assert!(text.contains("Open in Redrive: http://r/?group=ab12"), "{text}");
    }
}
