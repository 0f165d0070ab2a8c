//! Headless Chromium drives the hydrated UI: open a message, click Replay, see
//! the status change to replayed.

use std::time::Duration;

use crate::common::*;
use app::model::BrokerVersion;
use fantoccini::Locator;
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use serde_json::json;

#[tokio::test]
async fn replay_button_replays_after_hydration() {
    require_site();
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_exchange("error.direct", ExchangeKind::Direct).await;
    vh.declare_exchange("shop.x", ExchangeKind::Direct).await;
    vh.declare_queue("shop.error.queue", FieldTable::default()).await;
    vh.bind("shop.error.queue", "error.direct", "shop").await;
    vh.declare_queue("shop.orders", FieldTable::default()).await;
    vh.bind("shop.orders", "shop.x", "order").await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    // The wasm travels as the brotli copy scripts/build-site made (quality
    // 11), not recompressed per response.
    let wasm = app
        .http
        .get(format!("{}/pkg/redrive.wasm", app.base))
        .header(reqwest::header::ACCEPT_ENCODING, "br, gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(wasm.headers()[reqwest::header::CONTENT_ENCODING], "br");
    let served = wasm.bytes().await.unwrap().len() as u64;
    assert_eq!(
        served,
        std::fs::metadata(site_root().join("pkg/redrive.wasm.br"))
            .unwrap()
            .len()
    );
    let props = BasicProperties::default().with_headers(headers(&[
        ("x-exception-message", s("Order could not be priced")),
        ("x-original-exchange", s("shop.x")),
        ("x-original-routingKey", s("order")),
    ]));
    vh.publish("error.direct", "shop", br#"{"order":1}"#, props).await;
    let id = app.wait_for_messages("shop.error.queue", 1).await[0]["id"].clone();

    let browser = Browser::start().await;
    let c = &browser.client;

    let result = async {
        browser.sign_in(&app.base, &format!("/messages/{id}")).await?;
        let wait = || c.wait().at_most(Duration::from_secs(20));
        wait()
            .for_element(Locator::Css(r#"[data-hydrated="true"]"#))
            .await?;
        let badge = wait().for_element(Locator::Css("h1 .badge")).await?;
        assert_eq!(badge.attr("data-status").await?.as_deref(), Some("failed"));
        wait()
            .for_element(Locator::Css(r#"button[data-action="replay"]"#))
            .await?
            .click()
            .await?;
        wait()
            .for_element(Locator::Css(r#"h1 .badge[data-status="replayed"]"#))
            .await?;
        let history = c.find(Locator::Css("table.history")).await?.text().await?;
        assert!(
            history.contains("replay") && history.contains("shop.x / order"),
            "{history}"
        );
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    browser.finish(result).await;

    let (_, d) = app.get(&format!("/api/v1/messages/{id}")).await;
    assert_eq!(d["status"], "replayed");
    assert_eq!(d["history"][0]["actor"], "guest");
    assert_eq!(vh.depth("shop.orders").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn groups_to_bulk_replay_job_reaches_one_hundred_percent() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_exchange("error.direct", ExchangeKind::Direct).await;
    vh.declare_exchange("stock.x", ExchangeKind::Direct).await;
    vh.declare_queue("stock.error.queue", FieldTable::default()).await;
    vh.bind("stock.error.queue", "error.direct", "stock").await;
    vh.declare_queue("stock.updates", FieldTable::default()).await;
    vh.bind("stock.updates", "stock.x", "update").await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    for i in 0..30 {
        let props = BasicProperties::default().with_headers(headers(&[
            ("x-exception-message", s(&format!("SKU {i} is locked"))),
            ("x-original-exchange", s("stock.x")),
            ("x-original-routingKey", s("update")),
        ]));
        vh.publish("error.direct", "stock", format!("{i}").as_bytes(), props)
            .await;
    }
    app.wait_for_messages("stock.error.queue", 30).await;

    let browser = Browser::start().await;
    let c = &browser.client;
    let result = async {
        let wait = || c.wait().at_most(Duration::from_secs(30));
        browser.sign_in(&app.base, "/groups").await?;
        wait()
            .for_element(Locator::Css(r#"[data-hydrated="true"]"#))
            .await?;
        wait()
            .for_element(Locator::Css("tr[data-group] td.reason a"))
            .await?
            .click()
            .await?;
        wait().for_element(Locator::Css(r#"[data-total="30"]"#)).await?;
        wait()
            .for_element(Locator::Css(r#"input[data-action="select-page"]"#))
            .await?
            .click()
            .await?;
        wait()
            .for_element(Locator::Css(r#"button[data-action="bulk-replay"]"#))
            .await?
            .click()
            .await?;
        wait()
            .for_element(Locator::Css(r#".dry-run[data-total="30"]"#))
            .await?;
        wait()
            .for_element(Locator::Css(r#"button[data-action="confirm-job"]"#))
            .await?
            .click()
            .await?;
        wait()
            .for_element(Locator::Css(r#".big-progress[data-percent="100"]"#))
            .await?;
        wait()
            .for_element(Locator::Css(r#"h1 [data-state="completed"]"#))
            .await?;
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    browser.finish(result).await;

    let (_, jobs) = app.get("/api/v1/jobs").await;
    assert_eq!(jobs[0]["done"], 30, "{jobs}");
    assert_eq!(jobs[0]["actor"], "guest");
    assert_eq!(vh.depth("stock.updates").await, 30);
    app.stop().await;
}

#[tokio::test]
async fn keyboard_moves_selects_and_asks_for_a_dry_run() {
    let (mut vh, _db, app) = with_queues(&["keys.dlq"], &[]).await;
    for i in 0..3 {
        vh.publish(
            "",
            "keys.dlq",
            format!("{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    let items = app.wait_for_messages("keys.dlq", 3).await;
    let second = items[1]["id"].clone();

    let browser = Browser::start().await;
    let c = &browser.client;
    let result = async {
        let wait = || c.wait().at_most(Duration::from_secs(20));
        browser.sign_in(&app.base, "/?queue=keys.dlq").await?;
        wait()
            .for_element(Locator::Css(r#"[data-hydrated="true"]"#))
            .await?;
        wait().for_element(Locator::Css("tr.cursor")).await?;
        let body = c.find(Locator::Css("body")).await?;
        body.send_keys("jx").await?;
        let checked = c
            .find(Locator::Css(&format!(r#"input[data-select="{second}"]"#)))
            .await?
            .prop("checked")
            .await?;
        assert_eq!(
            checked.as_deref(),
            Some("true"),
            "x selects the row under the cursor"
        );
        body.send_keys("r").await?;
        wait()
            .for_element(Locator::Css(r#".dry-run[data-total="1"]"#))
            .await?;
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    browser.finish(result).await;
    assert_eq!(
        app.get("/api/v1/jobs").await.1,
        serde_json::json!([]),
        "a dry run starts nothing"
    );
    app.stop().await;
}

/// Sets an input's value the way typing does, so `bind:value` sees it.
async fn type_into(
    c: &fantoccini::Client,
    css: &str,
    value: &str,
) -> Result<(), fantoccini::error::CmdError> {
    c.execute(
        "const e = document.querySelector(arguments[0]); e.value = arguments[1];
         e.dispatchEvent(new Event('input', { bubbles: true }));",
        vec![json!(css), json!(value)],
    )
    .await
    .map(|_| ())
}

#[tokio::test]
async fn lazy_policy_set_from_the_ui_applies_to_the_matched_queue() {
    let (vh, _db, app) = with_queues(&["reports.daily", "reports.weekly", "billing"], &[]).await;
    let (_, overview) = vh.mgmt("overview").await;
    let version = BrokerVersion::parse(overview["rabbitmq_version"].as_str().unwrap());
    let browser = Browser::start().await;
    let c = &browser.client;
    let result = async {
        browser.sign_in(&app.base, "/policies").await?;
        let wait = || c.wait().at_most(Duration::from_secs(20));
        wait()
            .for_element(Locator::Css(r#"[data-hydrated="true"]"#))
            .await?;
        // The form follows the broker's version: the templates and apply-to
        // values it offers are the ones this broker takes.
        wait()
            .for_element(Locator::Css(r#"button[data-template="delivery-limit"]"#))
            .await?;
        wait()
            .for_element(Locator::Css(
                r#"select[name="apply_to"] option[value="exchanges"]"#,
            ))
            .await?;
        let offers = |css: &'static str| async move { c.find(Locator::Css(css)).await.is_ok() };
        assert_eq!(
            offers(r#"button[data-template="lazy-queues"]"#).await,
            version.lazy_mode_matters()
        );
        assert_eq!(
            offers(r#"select[name="apply_to"] option[value="quorum_queues"]"#).await,
            version.queue_type_apply_to()
        );
        let option = format!(r#"select[name="vhost"] option[value="{}"]"#, vh.name);
        wait().for_element(Locator::Css(&option)).await?;
        type_into(c, r#"input[name="name"]"#, "lazy-reports").await?;
        type_into(c, r#"input[name="pattern"]"#, r"^reports\.").await?;
        // Typed, not the default: on 3.12+ the form starts from another template.
        type_into(c, r#"textarea[name="definition"]"#, r#"{"queue-mode": "lazy"}"#).await?;
        // The live preview lists the matched queues before anything is saved.
        wait()
            .for_element(Locator::Css(r#"tr[data-preview="reports.daily"]"#))
            .await?;
        wait()
            .for_element(Locator::Css(r#"tr[data-preview="reports.weekly"]"#))
            .await?;
        assert!(c
            .find(Locator::Css(r#"tr[data-preview="billing"]"#))
            .await
            .is_err());
        c.find(Locator::Css("form.policy-form button[type=submit]"))
            .await?
            .click()
            .await?;
        let saved = wait().for_element(Locator::Css("p.ok")).await?.text().await?;
        assert!(saved.contains("lazy-reports"), "{saved}");
        wait()
            .for_element(Locator::Css(r#"tr[data-policy="lazy-reports"]"#))
            .await?;
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    browser.finish(result).await;

    let (_, policy) = vh.mgmt(&format!("policies/{}/lazy-reports", enc(&vh.name))).await;
    assert_eq!(policy["definition"]["queue-mode"], "lazy", "{policy}");
    assert_eq!(policy["pattern"], r"^reports\.");
    wait_until(Duration::from_secs(15), || async {
        let q = vh.queue_info("reports.daily").await;
        q["policy"] == "lazy-reports" && q["effective_policy_definition"]["queue-mode"] == "lazy"
    })
    .await;
    assert!(vh.queue_info("billing").await["policy"].is_null());
    app.stop().await;
}

/// Publisher-controlled text stays text once the page is hydrated: a payload
/// in the body, every failure header, a header name and the queue name runs
/// no script, on the message page and in the list; the raw body is a
/// download, never a page on Redrive's origin.
#[tokio::test]
async fn publisher_payloads_never_run_in_the_browser() {
    const XSS: &str = "<img src=x onerror=\"document.body.dataset.pwned='yes'\">";
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    let queue = format!("{XSS}.dlq");
    vh.declare_queue(&queue, FieldTable::default()).await;
    vh.declare_queue("xss.target", FieldTable::default()).await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    let props = BasicProperties::default()
        .with_content_type("text/html".into())
        .with_headers(headers(&[
            ("x-exception-message", s(XSS)),
            (
                "x-exception-stacktrace",
                s(&format!("java.lang.Exception: {XSS}\n\tat a.b(C.java:1)")),
            ),
            // Replayable through the default exchange; the payloads are elsewhere.
            ("x-original-exchange", s("")),
            ("x-original-routingKey", s("xss.target")),
            (XSS, s(XSS)),
        ]));
    vh.publish("", &queue, XSS.as_bytes(), props).await;
    let id = app.wait_for_messages(&queue, 1).await[0]["id"].clone();

    let browser = Browser::start().await;
    let c = &browser.client;
    let result = async {
        browser.sign_in(&app.base, &format!("/messages/{id}")).await?;
        let pwned = || async move {
            c.execute("return document.body.dataset.pwned || null;", vec![])
                .await
                .map(|v| v.is_null())
        };
        let page = c.source().await?;
        assert!(page.contains("onerror"), "the payload is on the page, as text");
        assert!(pwned().await?, "a payload ran on the message page");
        c.goto(&format!("{}/?queue={}", app.base, enc(&queue))).await?;
        c.wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(r#"[data-hydrated="true"]"#))
            .await?;
        assert!(pwned().await?, "a payload ran on the list");
        // Replay it from its page, still with nothing running.
        c.goto(&format!("{}/messages/{id}", app.base)).await?;
        let wait = || c.wait().at_most(Duration::from_secs(20));
        wait()
            .for_element(Locator::Css(r#"[data-hydrated="true"]"#))
            .await?;
        wait()
            .for_element(Locator::Css(r#"button[data-action="replay"]"#))
            .await?
            .click()
            .await?;
        wait()
            .for_element(Locator::Css(r#"h1 .badge[data-status="replayed"]"#))
            .await?;
        assert!(pwned().await?, "a payload ran after the replay");
        // Sign out, and the page is gone: back to the sign-in form.
        c.find(Locator::Css(r#"button[data-action="sign-out"]"#))
            .await?
            .click()
            .await?;
        wait().for_element(Locator::Css("form[action='/login']")).await?;
        c.goto(&format!("{}/messages/{id}", app.base)).await?;
        wait().for_element(Locator::Css("form[action='/login']")).await?;
        assert_eq!(c.current_url().await?.path(), "/login");
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    browser.finish(result).await;
    assert_eq!(vh.depth("xss.target").await, 1);
    let (_, audit) = app.get("/api/v1/audit?user=guest").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in ["sign_in", "replay", "sign_out"] {
        assert!(actions.contains(&expected), "{expected} not audited: {actions:?}");
    }
    app.stop().await;
}
