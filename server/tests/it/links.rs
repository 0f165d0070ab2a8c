//! Links that last: `/m/{message_id}` and
//! `GET /api/v1/messages/by-message-id/{message_id}` find stored messages by
//! the AMQP message id their publisher gave them, within what the user may
//! see. One match redirects to its page, several are listed, none says so.

use std::time::Duration;

use crate::common::*;
use fantoccini::Locator;
use lapin::types::FieldTable;
use serde_json::Value;

/// Failures with message ids `ord-1` (once) and `re/used id` (twice, as a
/// publisher that reuses ids sends them), and Redrive capturing them.
async fn captured() -> (TestVhost, TestDb, TestApp) {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_queue("orders.error.queue", FieldTable::default())
        .await;
    for (i, mid) in ["ord-1", "re/used id", "re/used id"].into_iter().enumerate() {
        let (body, props) = testkit::spring::failure(i);
        vh.publish("", "orders.error.queue", &body, props.with_message_id(mid.into()))
            .await;
    }
    let app = TestApp::start(config(&vh, &db, &[])).await;
    app.wait_for_messages("orders.error.queue", 3).await;
    (vh, db, app)
}

/// A page asked for as a browser asks (it accepts HTML, so a redirect is a 302).
async fn as_browser(http: &reqwest::Client, url: &str) -> reqwest::Response {
    http.get(url).header("accept", "text/html").send().await.unwrap()
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_message_id_finds_its_messages_within_what_the_user_may_see() {
    let (vh, _db, app) = captured().await;
    let api = |mid: &str| format!("/api/v1/messages/by-message-id/{}", enc(mid));
    let (status, one) = app.get(&api("ord-1")).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(ids(&one).len(), 1);
    assert_eq!(one[0]["queue"], "orders.error.queue");
    let (_, two) = app.get(&api("re/used id")).await;
    let two = ids(&two);
    assert!(two.len() == 2 && two[0] > two[1], "newest first: {two:?}");
    let (status, none) = app.get(&api("ORD-1")).await;
    assert_eq!(
        (status, ids(&none).len()),
        (200, 0),
        "matched exactly, case included"
    );
    let (status, body) = app.get(&api(&"x".repeat(256))).await;
    assert_eq!(status, 400, "{body}");

    // Someone who cannot see the vhost finds nothing there.
    let outsider = BrokerUser::create("management", &[]).await;
    let (status, hidden) = app.as_user(outsider.creds()).get(&api("ord-1")).await;
    assert_eq!((status, ids(&hidden).len()), (200, 0), "{hidden}");

    // The page: one match redirects to it, several are listed, none says so.
    let page = |mid: &str| format!("{}/m/{}", app.base, enc(mid));
    let r = as_browser(&app.http, &page("ord-1")).await;
    assert!(r.status().is_redirection(), "{}", r.status());
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, format!("/messages/{}", one[0]["id"]));
    let listed = app.html(&format!("/m/{}", enc("re/used id"))).await;
    assert!(listed.contains(r#"data-message-id-matches="2""#), "{listed}");
    for id in &two {
        assert!(listed.contains(&format!(r#"href="/messages/{id}""#)), "{listed}");
    }
    let missing = app.html("/m/nothing-here").await;
    assert!(
        missing.contains("No stored message has this message id"),
        "{missing}"
    );
    // Signed out, it asks for sign-in first.
    let r = as_browser(&app.as_user(None).http, &page("ord-1")).await;
    assert!(r.status().is_redirection(), "{}", r.status());
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/login"));
    drop(vh);
    app.stop().await;
}

/// In the hydrated UI, with screenshots of the list and the empty answer.
#[tokio::test]
async fn message_id_links_ui() {
    require_site();
    let (_vh, _db, app) = captured().await;
    let (_, one) = app.get("/api/v1/messages/by-message-id/ord-1").await;
    let browser = Browser::start().await;
    let c = &browser.client;
    let result = async {
        let wait = || c.wait().at_most(Duration::from_secs(20));
        browser.sign_in(&app.base, "/m/re%2Fused%20id").await?;
        wait()
            .for_element(Locator::Css(r#"[data-message-id-matches="2"]"#))
            .await?;
        browser.screenshot("main", &shot("message-id-several")).await?;
        c.goto(&format!("{}/m/nothing-here", app.base)).await?;
        wait()
            .for_element(Locator::Css(r#"[data-message-id-matches="0"]"#))
            .await?;
        browser.screenshot("main", &shot("message-id-none")).await?;
        c.goto(&format!("{}/m/ord-1", app.base)).await?;
        wait()
            .for_element(Locator::Css(r#"[data-hydrated="true"]"#))
            .await?;
        let path = c.current_url().await?.path().to_owned();
        assert_eq!(path, format!("/messages/{}", one[0]["id"]));
        assert_eq!(browser.console_errors().await?, Vec::<String>::new());
        Ok(())
    }
    .await;
    browser.finish(result).await;
    app.stop().await;
}
