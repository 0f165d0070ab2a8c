//! Tap mode in the hydrated UI: an operator taps a queue from the Queues
//! page, sees what waits on each side, and a copy's page says where its
//! original is and asks before replaying it. Screenshots go to
//! `target/screenshots/` (or `REDRIVE_SCREENSHOTS_DIR`).

use std::time::Duration;

use crate::common::*;
use fantoccini::Locator;
use lapin::types::FieldTable;
use lapin::ExchangeKind;

const QUEUE: &str = "trade-service.error.queue";

#[tokio::test]
async fn an_operator_taps_a_queue_and_replays_a_copy_after_a_warning() {
    require_site();
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_exchange("error.direct", ExchangeKind::Direct).await;
    vh.declare_queue(QUEUE, FieldTable::default()).await;
    vh.bind(QUEUE, "error.direct", "trade-service").await;
    // Where the failures were first published, for the replay.
    vh.declare_exchange(testkit::spring::EXCHANGE, ExchangeKind::Direct)
        .await;
    vh.declare_queue("orders.work", FieldTable::default()).await;
    vh.bind(
        "orders.work",
        testkit::spring::EXCHANGE,
        testkit::spring::ROUTING_KEY,
    )
    .await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    assert_eq!(app.queue_row(&vh.name, QUEUE).await["capture_mode"], "consume");

    let browser = Browser::start().await;
    let c = &browser.client;
    let result = async {
        let wait = || c.wait().at_most(Duration::from_secs(20));
        browser.sign_in(&app.base, "/queues").await?;
        wait()
            .for_element(Locator::Css(r#"[data-hydrated="true"]"#))
            .await?;
        let row = format!(r#"tr[data-queue="{QUEUE}"]"#);
        wait()
            .for_element(Locator::Css(&format!("{row} button.switch-mode")))
            .await?
            .click()
            .await?;
        wait()
            .for_element(Locator::Css(&format!("{row} .tap-state")))
            .await?;
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    if result.is_err() {
        browser.finish(result).await;
        panic!("tapping from the Queues page failed");
    }
    // The tap is bound before failures arrive.
    wait_until(Duration::from_secs(15), || async {
        let (_, b) = vh
            .mgmt(&format!("queues/{}/redrive.tap.{QUEUE}/bindings", enc(&vh.name)))
            .await;
        b.as_array()
            .is_some_and(|b| b.iter().any(|b| b["source"] == "error.direct"))
    })
    .await;
    // And the switch from consume has passed its marker: until then
    // Redrive still takes what reaches the queue.
    wait_until(Duration::from_secs(30), || async {
        crate::tap::switches_recorded(&db, None).await == 0
    })
    .await;
    for i in 0..3 {
        let (body, props) = testkit::spring::failure(i);
        vh.publish("error.direct", "trade-service", &body, props).await;
    }
    let items = app.wait_for_messages(QUEUE, 3).await;
    let first = items[0]["id"].clone();
    let result = async {
        let wait = || c.wait().at_most(Duration::from_secs(20));
        // The page shows the broker's sampled view: it is read again until
        // the tap is declared there (the originals are counted exactly below).
        let row = format!(r#"tr[data-queue="{QUEUE}"]"#);
        let started = std::time::Instant::now();
        loop {
            c.goto(&format!("{}/queues", app.base)).await?;
            wait()
                .for_element(Locator::Css(r#"[data-hydrated="true"]"#))
                .await?;
            let cell = wait()
                .for_element(Locator::Css(&format!("{row} td.capture")))
                .await?
                .text()
                .await?;
            if cell.contains("held by Redrive") && !cell.contains("not declared") {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{cell}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let badge = wait()
            .for_element(Locator::Css(&format!("{row} .capture-mode")))
            .await?;
        assert_eq!(badge.text().await?.to_lowercase(), "tap");
        let state = c
            .find(Locator::Css(&format!("{row} .tap-state")))
            .await?
            .text()
            .await?;
        assert!(state.contains("held by Redrive"), "{state}");
        let cell = format!("{row} td.capture");
        let element = c.find(Locator::Css(&cell)).await?;
        c.execute(
            "arguments[0].scrollIntoView({block: 'center', inline: 'center'})",
            vec![serde_json::to_value(&element).unwrap()],
        )
        .await?;
        browser.screenshot(&cell, &shot("queues-tapped")).await?;

        // A bulk replay names the copies before it starts.
        c.goto(&format!("{}/?queue={QUEUE}", app.base)).await?;
        wait()
            .for_element(Locator::Css(r#"[data-hydrated="true"]"#))
            .await?;
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
        let warning = wait()
            .for_element(Locator::Css(r#".dry-run [data-tap-copies="3"]"#))
            .await?
            .text()
            .await?;
        assert!(warning.contains("second copy"), "{warning}");
        browser
            .screenshot(".dry-run", &shot("bulk-dry-run-tapped-copies"))
            .await?;

        c.goto(&format!("{}/messages/{first}", app.base)).await?;
        wait()
            .for_element(Locator::Css(r#"[data-hydrated="true"]"#))
            .await?;
        let note = wait()
            .for_element(Locator::Css(r#".tap-note[data-tap="in_queue"]"#))
            .await?
            .text()
            .await?;
        assert!(
            note.contains("stays there") && note.contains("Redrive's copy only"),
            "{note}"
        );
        wait()
            .for_element(Locator::Css(r#"button[data-action="replay"]"#))
            .await?
            .click()
            .await?;
        wait()
            .for_element(Locator::Css(r#"[data-confirm="tap-replay"]"#))
            .await?;
        browser
            .screenshot("main", &shot("message-tapped-replay-warning"))
            .await?;
        c.find(Locator::Css(r#"button[data-action="replay-anyway"]"#))
            .await?
            .click()
            .await?;
        wait()
            .for_element(Locator::Css(r#"h1 .badge[data-status="replayed"]"#))
            .await?;
        let errors = browser.console_errors().await?;
        assert!(errors.is_empty(), "the pages logged: {errors:?}");
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    browser.finish(result).await;
    // The replayed copy reached the original route; the originals stayed.
    assert_eq!(vh.depth("orders.work").await, 1);
    assert_eq!(vh.depth(QUEUE).await, 3);
    app.stop().await;
}
