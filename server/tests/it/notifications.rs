//! Notifications where people already look, against the real broker: a
//! queue rule reaches a local HTTP receiver as Slack and as Alertmanager
//! expect, and a local SMTP server as e-mail, when it fires and when it
//! resolves, each linking to the queue's page; a `new_group` rule fires
//! once per failure group that appears, never for groups it found.

use std::time::Duration;

use crate::common::*;
use fantoccini::Locator;
use lapin::types::FieldTable;
use lapin::BasicProperties;
use serde_json::{json, Value};
use testkit::spring;

const PUBLIC: &str = "--public-url=https://redrive.example.com/";

/// Creates `rule` (as guest), asserting it is taken.
async fn create(app: &TestApp, rule: Value) -> Value {
    let (status, created) = app.post("/api/v1/alerts", Some(rule)).await;
    assert_eq!(status, 201, "{created}");
    created
}

/// Every body `receiver` took, in order.
fn bodies(receiver: &Receiver) -> Vec<Value> {
    receiver.got.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_reaches_slack_alertmanager_and_email_when_it_fires_and_resolves() {
    let (slack, alertmanager) = (Receiver::start(0).await, Receiver::start(0).await);
    let smtp = SmtpSink::start().await;
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_queue("orders", FieldTable::default()).await;
    let smtp_url = format!("--smtp-url={}", smtp.url);
    let app = TestApp::start(config(&vh, &db, &["--sample-interval=1", PUBLIC, &smtp_url])).await;
    let condition = json!({"kind": "queue", "queue": "^orders$", "metric": "ready", "threshold": 2});
    for (name, format, to) in [
        (
            "orders backlog (slack)",
            "slack",
            json!({"webhook_url": slack.url}),
        ),
        (
            "orders backlog (am)",
            "alertmanager",
            json!({"webhook_url": alertmanager.url}),
        ),
        (
            "orders backlog (mail)",
            "email",
            json!({"email_to": "oncall@example.com"}),
        ),
    ] {
        let mut rule = json!({"name": name, "condition": condition, "format": format});
        rule.as_object_mut()
            .unwrap()
            .extend(to.as_object().unwrap().clone());
        let created = create(&app, rule).await;
        assert_eq!(created["format"], format);
    }
    for _ in 0..3 {
        vh.publish("", "orders", b"{}", BasicProperties::default()).await;
    }
    wait_until(Duration::from_secs(30), || async {
        !bodies(&slack).is_empty() && !bodies(&alertmanager).is_empty() && !smtp.taken().is_empty()
    })
    .await;
    vh.drain("orders", 3).await;
    wait_until(Duration::from_secs(30), || async {
        bodies(&slack).len() == 2 && bodies(&alertmanager).len() == 2 && smtp.taken().len() == 2
    })
    .await;
    // Letters, digits and `-._~` stay as they are in a link.
    let page = format!("https://redrive.example.com/queues/{}/orders", vh.name);

    // Slack: an incoming-webhook message with blocks, the queue page linked.
    let s = bodies(&slack);
    assert_eq!(
        s[0]["blocks"][0]["text"]["text"],
        "Firing: orders backlog (slack)"
    );
    assert_eq!(
        s[1]["blocks"][0]["text"]["text"],
        "Resolved: orders backlog (slack)"
    );
    assert!(s[0]["text"].as_str().unwrap().contains("ready is 3"), "{}", s[0]);
    let context = s[0]["blocks"][2]["elements"][0]["text"].as_str().unwrap();
    assert!(
        context.contains(&format!("<{page}|Open in Redrive>")),
        "{context}"
    );

    // Alertmanager: the webhook receiver's payload, firing then resolved.
    let a = bodies(&alertmanager);
    assert_eq!(
        (a[0]["version"].as_str(), a[0]["status"].as_str()),
        (Some("4"), Some("firing"))
    );
    assert_eq!(a[1]["status"], "resolved");
    let (fired, resolved) = (&a[0]["alerts"][0], &a[1]["alerts"][0]);
    assert_eq!(fired["labels"]["alertname"], "orders backlog (am)");
    assert_eq!(fired["labels"]["key"], format!("{}/orders", vh.name));
    assert_eq!(fired["labels"], resolved["labels"]);
    assert_eq!(fired["generatorURL"], page);
    assert_eq!(fired["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(resolved["startsAt"], fired["startsAt"]);
    assert_ne!(resolved["endsAt"], "0001-01-01T00:00:00Z");

    // E-mail: one to the address each time, with the link.
    let mails = smtp.taken();
    assert!(
        mails.iter().all(|m| m.to == ["<oncall@example.com>"]),
        "{mails:?}"
    );
    let (fired, resolved) = (readable(&mails[0]), readable(&mails[1]));
    assert!(
        fired.contains("Subject: [Redrive] Firing: orders backlog (mail)"),
        "{fired}"
    );
    assert!(
        resolved.contains("Subject: [Redrive] Resolved: orders backlog (mail)"),
        "{resolved}"
    );
    assert!(fired.contains(&format!("Open in Redrive: {page}")), "{fired}");

    // The deliveries say so, and a rule shows where it sends (the webhook hidden).
    wait_until(Duration::from_secs(10), || async {
        let (_, deliveries) = app.get("/api/v1/alerts/deliveries").await;
        let rows = deliveries.as_array().cloned().unwrap_or_default();
        rows.len() == 6 && rows.iter().all(|d| !d["delivered_at"].is_null())
    })
    .await;
    let (_, rules) = app.get("/api/v1/alerts").await;
    assert_eq!(rules[2]["email_to"], json!(["oncall@example.com"]));
    assert!(!rules.to_string().contains("/hook"), "{rules}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_destinations_are_refused() {
    let (_vh, _db, app) = with_queues(&[], &[]).await;
    let condition = json!({"kind": "new_group"});
    for (rule, says) in [
        (
            json!({"format": "email", "email_to": ["a@example.com"]}),
            "REDRIVE_SMTP_URL",
        ),
        (
            json!({"format": "slack", "webhook_url": "not a url"}),
            "not an http(s) URL",
        ),
        (
            json!({"format": "pager", "webhook_url": "http://x/h"}),
            "unknown variant",
        ),
        (
            json!({"format": "slack", "webhook_url": "http://x/h", "email_to": "a@b.c"}),
            "`email_to` is for",
        ),
    ] {
        let mut body = json!({"name": "r", "condition": condition});
        body.as_object_mut()
            .unwrap()
            .extend(rule.as_object().unwrap().clone());
        let (status, err) = app.post("/api/v1/alerts", Some(body)).await;
        assert!((400..500).contains(&status), "{status} {err}");
        assert!(err.to_string().contains(says), "{says}: {err}");
    }
    let (_, rules) = app.get("/api/v1/alerts").await;
    assert_eq!(rules, json!([]));
    app.stop().await;
}

/// A Spring failure published to `queue`, with message id `id`: the usual
/// constraint violation from orders, a gateway timeout (another failure
/// group) from payments.
async fn fail(vh: &mut TestVhost, queue: &str, seq: u64, id: &str) {
    let (body, props) = spring::Failure::numbered(seq).build();
    let props = if queue.starts_with("payments") {
        let cause = format!("Payment gateway timed out after 30000 ms for payment {seq}");
        let trace = format!(
            "java.util.concurrent.TimeoutException: {cause}\n\tat com.example.payments.Gateway.charge(Gateway.java:88)\n"
        );
        props.with_headers(headers(&[
            ("x-exception-message", s(&cause)),
            ("x-exception-stacktrace", s(&trace)),
            ("x-original-exchange", s("payments")),
            ("x-original-routingKey", s("payment.requested")),
        ]))
    } else {
        props
    };
    vh.publish("", queue, &body, props.with_message_id(id.into()))
        .await;
}

/// A mail's text as read: headers unfolded, quoted-printable soft breaks
/// and `=` undone (enough for the ASCII checked here).
fn readable(mail: &Mail) -> String {
    mail.data
        .replace("=\n", "")
        .replace("\n ", " ")
        .replace("=3D", "=")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_failure_group_fires_its_rule_once() {
    let receiver = Receiver::start(0).await;
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    for q in ["orders.error.queue", "payments.error.queue"] {
        vh.declare_queue(q, FieldTable::default()).await;
    }
    fail(&mut vh, "orders.error.queue", 1, "o-1").await;
    let app = TestApp::start(config(&vh, &db, &["--sample-interval=1", PUBLIC])).await;
    app.wait_for_messages("orders.error.queue", 1).await;
    let rule = json!({
        "name": "new failures", "condition": {"kind": "new_group", "vhost": vh.name},
        "webhook_url": receiver.url,
    });
    create(&app, rule).await;
    // A second rule for another service hears nothing.
    let other = Receiver::start(0).await;
    create(
        &app,
        json!({"name": "billing", "condition": {"kind": "new_group", "service": "billing", "vhost": vh.name},
               "webhook_url": other.url}),
    )
    .await;

    // More of a group that existed before the rule: nothing.
    fail(&mut vh, "orders.error.queue", 2, "o-2").await;
    // A group that appears: once, however many of it follow.
    fail(&mut vh, "payments.error.queue", 3, "p-3").await;
    app.wait_for_messages("payments.error.queue", 1).await;
    for seq in 4..7 {
        fail(&mut vh, "payments.error.queue", seq, &format!("p-{seq}")).await;
    }
    app.wait_for_messages("payments.error.queue", 4).await;
    wait_until(Duration::from_secs(30), || async {
        !bodies(&receiver).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = bodies(&receiver);
    assert_eq!(got.len(), 1, "{got:?}");
    let (_, page) = app
        .get("/api/v1/messages?queue=payments.error.queue&limit=10")
        .await;
    let group = page["items"][0]["group_id"].as_str().unwrap().to_owned();
    assert_eq!(got[0]["event"], "firing");
    assert_eq!(got[0]["key"], format!("group:{group}"));
    assert_eq!(
        got[0]["url"],
        format!("https://redrive.example.com/?group={group}")
    );
    assert_eq!(got[0]["example_url"], "https://redrive.example.com/m/p-3");
    assert!(
        got[0]["summary"]
            .as_str()
            .unwrap()
            .contains("payments.error.queue"),
        "{}",
        got[0]
    );
    assert!(bodies(&other).is_empty());
    // The link it carries reaches the message.
    let (status, found) = app.get("/api/v1/messages/by-message-id/p-3").await;
    assert_eq!(status, 200);
    assert_eq!(found[0]["group_id"], group.as_str());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_ui() {
    require_site();
    let receiver = Receiver::start(0).await;
    let (vh, _db, app) = with_queues(&[], &[PUBLIC]).await;
    let browser = Browser::start().await;
    let c = &browser.client;
    let result = async {
        let wait = || c.wait().at_most(Duration::from_secs(20));
        browser.sign_in(&app.base, "/alerts").await?;
        let field = |css: &'static str| c.find(Locator::Css(css));
        field("form.policy-form label:first-of-type input")
            .await?
            .send_keys("new failures")
            .await?;
        field("form.policy-form select")
            .await?
            .select_by_value("new_group")
            .await?;
        let inputs = c
            .find_all(Locator::Css("form.policy-form input[type=text]"))
            .await?;
        inputs[1].send_keys(&vh.name).await?;
        field(r#"select[data-field="format"]"#)
            .await?
            .select_by_value("slack")
            .await?;
        field(r#"input[data-field="to"]"#)
            .await?
            .send_keys(&receiver.url)
            .await?;
        field("form.policy-form button[type=submit]")
            .await?
            .click()
            .await?;
        let sends = wait()
            .for_element(Locator::Css(r#"td[data-format="slack"]"#))
            .await?
            .text()
            .await?;
        assert!(sends.starts_with("slack → http://127.0.0.1:"), "{sends}");
        assert!(!sends.contains("/hook"), "the webhook's path is hidden: {sends}");
        let page = field("main").await?.text().await?;
        assert!(
            page.contains(&format!("a new failure group appears in vhost {}", vh.name)),
            "{page}"
        );
        browser
            .screenshot("main", &shot("alerts-new-group-slack"))
            .await?;
        assert_eq!(browser.console_errors().await?, Vec::<String>::new());
        Ok(())
    }
    .await;
    browser.finish(result).await;
    let (_, rules) = app.get("/api/v1/alerts").await;
    assert_eq!(
        rules[0]["condition"],
        json!({"kind": "new_group", "service": null, "vhost": vh.name})
    );
    assert_eq!(rules[0]["format"], "slack");
    app.stop().await;
}
