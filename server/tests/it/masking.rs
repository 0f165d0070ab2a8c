//! Masking (`REDRIVE_MASK`) against the real broker: a user without the
//! unmask tag reads masked values everywhere (message, body download,
//! export, search results) and cannot find them by searching; a user with
//! the tag reads them as they are, audited; replays, edited or not, send the
//! real bytes; and the index follows the rules when they change.

use std::time::Duration;

use crate::common::*;
use base64::Engine;
use fantoccini::Locator;
use lapin::types::ShortString;
use lapin::BasicProperties;
use serde_json::{json, Value};
use testkit::spring;

const MASK: &str = r"--mask=$.card.number,$..email,header:x-user-email,re:\b\d{13,19}\b";
const CARD: &str = "4111111111111111";
const EMAIL: &str = "ann.lee@example.com";

/// A Spring failure carrying card numbers and an e-mail address,
/// pretty-printed as some services publish.
fn body(seq: u32) -> String {
    format!(
        "{{\n  \"orderId\": \"ord-{seq}\",\n  \"card\": {{\"number\": \"{CARD}\", \"exp\": \"12/29\"}},\n  \
         \"customer\": {{\"email\": \"{EMAIL}\", \"name\": \"Ann\"}},\n  \"note\": \"cards {CARD} and 5500005555555559\"\n}}"
    )
}

/// [`body`] as a reader without the unmask tag sees it.
fn masked_body(seq: u32) -> String {
    format!(
        "{{\n  \"orderId\": \"ord-{seq}\",\n  \"card\": {{\"number\": \"••••\", \"exp\": \"12/29\"}},\n  \
         \"customer\": {{\"email\": \"••••\", \"name\": \"Ann\"}},\n  \"note\": \"cards •••• and ••••\"\n}}"
    )
}

fn properties(seq: u32) -> BasicProperties {
    let cause = format!("Card {CARD} declined for order ord-{seq}");
    BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_message_id(ShortString::from(format!("ord-{seq}")))
        .with_headers(headers(&[
            ("x-exception-message", s(&cause)),
            ("x-exception-stacktrace", s(&spring::stack_trace(&cause))),
            ("x-original-exchange", s(spring::EXCHANGE)),
            ("x-original-routingKey", s(spring::ROUTING_KEY)),
            ("x-user-email", s(EMAIL)),
        ]))
}

/// Two such failures stored from `orders.error.queue`, their original
/// route (`orders` → `orders.in`) declared, Redrive started with `args`.
async fn stored(args: &[&str]) -> (TestVhost, TestDb, TestApp, Vec<i64>) {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_spring_route().await;
    for seq in [1, 2] {
        vh.publish("", "orders.error.queue", body(seq).as_bytes(), properties(seq))
            .await;
    }
    let app = TestApp::start(config(&vh, &db, args)).await;
    let mut ids: Vec<i64> = app
        .wait_for_messages("orders.error.queue", 2)
        .await
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    (vh, db, app, ids)
}

async fn raw(client: &TestClient, path: &str) -> (u16, String) {
    let r = client
        .http
        .get(format!("{}{path}", client.base))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn decoded(b64: &Value) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.as_str().unwrap())
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

/// How many stored messages a search for `text` finds, as `client`.
async fn found(client: &TestClient, text: &str) -> u64 {
    let (status, page) = client
        .get(&format!("/api/v1/messages?q={}&exact=true", enc(text)))
        .await;
    assert_eq!(status, 200, "{page}");
    page["total"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masked_values_are_hidden_everywhere_a_reader_looks_and_replays_send_the_real_bytes() {
    let (mut vh, db, app, ids) = stored(&[MASK]).await;
    let (first, second) = (ids[0], ids[1]);
    let perms = [(vh.name.as_str(), "", ".*", ".*")];
    let reader = BrokerUser::create("management", &perms).await;
    let unmasker = BrokerUser::create("management,redrive-unmask", &perms).await;
    let (r, u) = (app.as_user(reader.creds()), app.as_user(unmasker.creds()));

    // The message as the reader sees it: masked in place, the JSON as published otherwise.
    let (status, m) = r.get(&format!("/api/v1/messages/{first}")).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["masked"], true);
    assert_eq!(m["body_text"], masked_body(1));
    let shown: Value = serde_json::from_str(m["body_text"].as_str().unwrap()).unwrap();
    assert_eq!(shown["card"]["number"], "••••");
    assert_eq!(shown["customer"]["name"], "Ann");
    assert_eq!(m["headers"]["x-user-email"]["value"], "••••");
    assert_eq!(m["reason"], "Card •••• declined for order ord-1");
    let everything = m.to_string();
    assert!(!everything.contains(CARD), "{everything}");
    assert!(!everything.contains(EMAIL), "{everything}");
    assert!(decoded(&m["body_base64"]).contains("\"number\": \"••••\""));

    // The body download, the list and the exports.
    let (status, download) = raw(&r, &format!("/api/v1/messages/{first}/body")).await;
    assert_eq!(status, 200);
    assert_eq!(download, m["body_text"].as_str().unwrap());
    let (_, page) = r.get("/api/v1/messages?queue=orders.error.queue").await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| !i["reason"].to_string().contains(CARD)),
        "{page}"
    );
    let (status, jsonl) = raw(&r, "/api/v1/messages/export?format=jsonl").await;
    assert_eq!(status, 200);
    assert_eq!(jsonl.lines().count(), 2);
    for line in jsonl.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        assert!(!decoded(&record["body_base64"]).contains(CARD));
        assert!(!line.contains(CARD) && !line.contains(EMAIL), "{line}");
    }
    let (_, csv) = raw(&r, "/api/v1/messages/export?format=csv").await;
    assert!(csv.contains("Card •••• declined") && !csv.contains(CARD), "{csv}");

    // Search cannot find a masked value, for anyone; other words still find.
    for who in [&r, &u] {
        assert_eq!(found(who, CARD).await, 0);
        assert_eq!(found(who, EMAIL).await, 0);
        assert_eq!(found(who, "declined").await, 2);
    }
    let (_, hits) = r.get("/api/v1/messages?q=declined").await;
    assert_eq!(
        hits["items"][0]["reason"]
            .as_str()
            .unwrap()
            .matches("••••")
            .count(),
        1,
        "{hits}"
    );

    // The unmasker reads the real values; each view and export is audited.
    assert!(app.audited("unmasked_view").await.is_empty());
    let (_, real) = u.get(&format!("/api/v1/messages/{first}")).await;
    assert_eq!(real["masked"], false);
    assert_eq!(real["body_text"], body(1));
    assert_eq!(real["headers"]["x-user-email"]["value"], EMAIL);
    let (_, download) = raw(&u, &format!("/api/v1/messages/{first}/body")).await;
    assert_eq!(download, body(1));
    let (_, jsonl) = raw(&u, "/api/v1/messages/export?format=jsonl").await;
    assert!(jsonl.contains(EMAIL));
    let views = app.audited("unmasked_view").await;
    assert_eq!(views.len(), 2, "{views:?}");
    assert!(views
        .iter()
        .all(|(user, result, _)| *user == unmasker.name && result == "ok"));
    assert_eq!(app.audited("unmasked_export").await.len(), 1);
    assert!(app
        .audited("unmasked_view")
        .await
        .iter()
        .all(|(user, ..)| *user != reader.name));

    // An edit that keeps half of one value's masked parts is refused; nothing is sent.
    let ambiguous = masked_body(1).replace("cards •••• and ••••", "cards •••• and 1234");
    let (status, err) = r
        .post(
            &format!("/api/v1/messages/{first}/replay"),
            Some(json!({"edit": {"body": ambiguous}})),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(err.to_string().contains("held 2 masked value(s)"), "{err}");
    assert_eq!(vh.depth("orders.in").await, 0);

    // An edit of another field: the masked values it left go out as stored.
    let renamed = masked_body(1).replace("\"name\": \"Ann\"", "\"name\": \"Anna\"");
    let (status, after) = r
        .post(
            &format!("/api/v1/messages/{first}/replay"),
            Some(json!({"edit": {"body": renamed}})),
        )
        .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["status"], "replayed");
    let history = after["history"].to_string();
    assert!(!history.contains(CARD) && !history.contains(EMAIL), "{history}");
    let delivered = vh.drain("orders.in", 1).await.remove(0);
    assert_eq!(
        String::from_utf8(delivered.data).unwrap(),
        body(1).replace("\"name\": \"Ann\"", "\"name\": \"Anna\"")
    );

    // A plain replay sends the stored bytes.
    let (status, _) = r.post(&format!("/api/v1/messages/{second}/replay"), None).await;
    assert_eq!(status, 200);
    let delivered = vh.drain("orders.in", 1).await.remove(0);
    assert_eq!(delivered.data, body(2).into_bytes());

    // Without the rules the index is built again, and the values are found.
    app.stop().await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    let guest = app.as_user(Some(("guest", "guest")));
    wait_until(Duration::from_secs(30), || async {
        found(&guest, CARD).await == 2
    })
    .await;
    let (_, m) = guest.get(&format!("/api/v1/messages/{second}")).await;
    assert_eq!(m["masked"], false);
    assert_eq!(m["body_text"], body(2));
    app.stop().await;
    // With them again, they are gone from it once more.
    let app = TestApp::start(config(&vh, &db, &[MASK])).await;
    let guest = app.as_user(Some(("guest", "guest")));
    assert_eq!(found(&guest, CARD).await, 0);
    assert_eq!(found(&guest, "declined").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_masking_rule_stops_the_start_with_the_rule_named() {
    for (arg, says) in [
        ("--mask=card.number", "a rule is a JSON path"),
        ("--mask=$.[", "not a JSON path"),
        ("--mask=re:(", "not a regular expression"),
    ] {
        let err = <server::config::Config as clap::Parser>::try_parse_from(["redrive", arg]).unwrap_err();
        assert!(err.to_string().contains(says), "{arg}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masking_ui() {
    require_site();
    let (_vh, _db, app, ids) = stored(&[MASK]).await;
    let browser = Browser::start().await;
    let c = &browser.client;
    let result = async {
        let wait = || c.wait().at_most(Duration::from_secs(20));
        // guest holds no unmask tag: the page is masked, and says so.
        browser
            .sign_in(&app.base, &format!("/messages/{}", ids[0]))
            .await?;
        wait()
            .for_element(Locator::Css(r#"[data-masked="true"]"#))
            .await?;
        browser
            .screenshot(r#"[data-masked="true"]"#, &shot("message-masked-note"))
            .await?;
        let page = c.find(Locator::Css("main")).await?.text().await?;
        assert!(page.contains("\"number\": \"••••\""), "{page}");
        assert!(page.contains("Card •••• declined"), "{page}");
        assert!(!page.contains(CARD) && !page.contains(EMAIL), "{page}");
        c.find(Locator::Css("details.edit-replay summary"))
            .await?
            .click()
            .await?;
        let editing = c
            .find(Locator::Css(r#"textarea[data-edit="body"]"#))
            .await?
            .prop("value")
            .await?;
        assert_eq!(editing.as_deref(), Some(masked_body(1).as_str()));
        browser
            .screenshot(r#"textarea[data-edit="body"]"#, &shot("message-masked-edit"))
            .await?;
        assert_eq!(browser.console_errors().await?, Vec::<String>::new());
        Ok(())
    }
    .await;
    browser.finish(result).await;
    app.stop().await;
}
