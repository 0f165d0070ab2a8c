//! The replay plans in the hydrated UI: a message whose original route fans
//! out says so and replays to one queue only; a job page shows a waiting
//! adaptive job's phase and reason; the Jobs page lists a scheduled job
//! with its time and starts it on request. Screenshots go to
//! `target/screenshots/` (or `REDRIVE_SCREENSHOTS_DIR`).

use std::time::Duration;

use crate::common::*;
use fantoccini::Locator;
use lapin::types::FieldTable;
use lapin::ExchangeKind;
use serde_json::json;

#[tokio::test]
async fn a_fanned_out_route_is_shown_and_replays_to_one_queue_and_jobs_show_their_plan() {
    require_site();
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_exchange("error.direct", ExchangeKind::Direct).await;
    vh.declare_queue("trade.error.queue", FieldTable::default()).await;
    vh.bind("trade.error.queue", "error.direct", "trade").await;
    vh.declare_exchange("pay.topic", ExchangeKind::Topic).await;
    for q in ["trade.pay.success.queue", "notify.pay.success.queue"] {
        vh.declare_queue(q, FieldTable::default()).await;
        vh.bind(q, "pay.topic", "pay.success").await;
    }
    for i in 0..4 {
        let (body, props) = testkit::spring::failure(i);
        let mut h = props.headers().clone().unwrap_or_default();
        h.insert("x-original-exchange".into(), s("pay.topic"));
        h.insert("x-original-routingKey".into(), s("pay.success"));
        vh.publish("error.direct", "trade", &body, props.with_headers(h))
            .await;
    }
    let app = TestApp::start(config(&vh, &db, &[])).await;
    let items = app.wait_for_messages("trade.error.queue", 4).await;
    let first = items[0]["id"].clone();
    let adaptive = app
        .post(
            "/api/v1/jobs",
            Some(
                json!({"action": "replay", "ids": [items[1]["id"], items[2]["id"]], "adaptive": true,
                        "to_queue": "trade.pay.success.queue",
                        "canary": {"count": 1, "watch_seconds": 30, "max_failed_again": 0}}),
            ),
        )
        .await
        .1["id"]
        .clone();
    let at = time::OffsetDateTime::now_utc() + time::Duration::hours(2);
    let start_at = at.format(&time::format_description::well_known::Rfc3339).unwrap();
    let scheduled = app
        .post(
            "/api/v1/jobs",
            Some(json!({"action": "replay", "ids": [items[3]["id"]], "start_at": start_at})),
        )
        .await
        .1["id"]
        .clone();
    wait_until(Duration::from_secs(20), || async {
        app.get(&format!("/api/v1/jobs/{adaptive}")).await.1["waiting"].is_string()
    })
    .await;

    // The list the bulk dialog starts from renders whole on the server
    // (a stalled page would otherwise show only as the browser's timeout).
    let list = tokio::time::timeout(Duration::from_secs(60), app.html("/?status=failed"))
        .await
        .expect("the failed messages' page renders within 60 s");
    assert!(list.contains("data-select="), "the list renders its rows");

    let browser = Browser::start().await;
    let c = &browser.client;
    let result = async {
        let wait = || c.wait().at_most(Duration::from_secs(20));
        browser.sign_in(&app.base, &format!("/messages/{first}")).await?;
        wait()
            .for_element(Locator::Css(r#"[data-hydrated="true"]"#))
            .await?;
        let warning = wait().for_element(Locator::Css(r#"div[data-fans-out]"#)).await?;
        let text = warning.text().await?;
        assert!(
            text.contains("2 queues") && text.contains("second copy"),
            "{text}"
        );
        c.execute(
            "document.querySelector('.route-reach').scrollIntoView({block: 'center'})",
            vec![],
        )
        .await?;
        browser
            .screenshot(".route-reach", &shot("message-fans-out"))
            .await?;
        wait()
            .for_element(Locator::Css(
                r#"button[data-only-queue="trade.pay.success.queue"]"#,
            ))
            .await?
            .click()
            .await?;
        wait()
            .for_element(Locator::Css(r#"h1 .badge[data-status="replayed"]"#))
            .await?;

        // The bulk dialog's dry run says the same before a job starts.
        c.goto(&format!("{}/?status=failed", app.base)).await?;
        wait()
            .for_element(Locator::Css(r#"[data-hydrated="true"]"#))
            .await?;
        wait().for_element(Locator::Css("tr.cursor")).await?;
        c.find(Locator::Css("body")).await?.send_keys("xr").await?;
        let dry = wait()
            .for_element(Locator::Css(r#".dry-run[data-fans-out="true"]"#))
            .await?;
        assert!(dry.text().await?.contains("Only to trade.pay.success.queue"));
        c.execute(
            "document.querySelector('.dry-run').scrollIntoView({block: 'center'})",
            vec![],
        )
        .await?;
        browser
            .screenshot(".dry-run", &shot("bulk-dry-run-fans-out"))
            .await?;
        c.execute("window.scrollTo(0, 0)", vec![]).await?;
        browser.screenshot(".bulkbar", &shot("bulk-bar-options")).await?;

        c.goto(&format!("{}/jobs/{adaptive}", app.base)).await?;
        wait()
            .for_element(Locator::Css(r#"[data-hydrated="true"]"#))
            .await?;
        let waiting = wait()
            .for_element(Locator::Css("[data-waiting]"))
            .await?
            .text()
            .await?;
        assert_eq!(waiting, "waiting: trade.pay.success.queue has no consumers");
        let phase = c.find(Locator::Css("[data-phase]")).await?;
        assert_eq!(phase.attr("data-phase").await?.as_deref(), Some("canary"));
        browser.screenshot("main", &shot("job-adaptive-canary")).await?;

        c.goto(&format!("{}/jobs", app.base)).await?;
        wait()
            .for_element(Locator::Css(r#"[data-hydrated="true"]"#))
            .await?;
        wait().for_element(Locator::Css(".badge.job-scheduled")).await?;
        browser.screenshot("main", &shot("jobs-scheduled")).await?;
        c.goto(&format!("{}/jobs/{scheduled}", app.base)).await?;
        wait()
            .for_element(Locator::Css(r#"[data-hydrated="true"]"#))
            .await?;
        wait()
            .for_element(Locator::Css(r#"button[data-action="start"]"#))
            .await?
            .click()
            .await?;
        let errors = browser.console_errors().await?;
        assert!(errors.is_empty(), "the pages logged: {errors:?}");
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    browser.finish(result).await;
    wait_until(Duration::from_secs(20), || async {
        app.get(&format!("/api/v1/jobs/{scheduled}")).await.1["state"] == "completed"
    })
    .await;
    assert_eq!(
        vh.depth("notify.pay.success.queue").await,
        1,
        "only the scheduled job's copy"
    );
    // The single replay went to the trade queue only; the scheduled job's
    // copy took the original route (both queues).
    assert_eq!(vh.depth("trade.pay.success.queue").await, 2);
}
