//! The owner and hold of one message against the real broker: a held
//! failed message leaves the overview's waiting count and the inflow
//! alerts until its hold ends (by hand, by time, or when its replay is
//! delivered), without being counted twice under a held group; owners are
//! broker users; the message's queue permission decides, every change is
//! audited, bad input is a 4xx, and the claim goes with its message.

use std::time::Duration;

use crate::common::*;
use crate::holds::{end_hold, in_future, refused, two_groups};
use fantoccini::Locator;
use lapin::types::FieldTable;
use serde_json::{json, Value};

/// The overview's waiting count, the orders service's inflow, and the
/// held groups and messages it says it leaves out.
async fn counts(app: &TestApp) -> (i64, Option<i64>, i64, i64) {
    let (status, o) = app.get("/api/v1/overview").await;
    assert_eq!(status, 200, "{o}");
    let inflow = o["error_inflow"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "orders")
        .map(|s| s["last_hour"].as_i64().unwrap());
    let number = |k: &str| o[k].as_i64().unwrap_or_else(|| panic!("{k}: {o}"));
    (
        number("waiting"),
        inflow,
        number("held_groups"),
        number("held_messages"),
    )
}

/// The stored orders messages' ids, oldest first.
async fn orders(app: &TestApp) -> Vec<i64> {
    let mut ids: Vec<i64> = app
        .wait_for_messages("orders.error.queue", 3)
        .await
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

/// A message's claim as its page (`GET /api/v1/messages/{id}`) reads it.
async fn claim(app: &TestApp, id: i64) -> (Value, Value) {
    let (status, m) = app.get(&format!("/api/v1/messages/{id}")).await;
    assert_eq!(status, 200, "{m}");
    (m["owner"].clone(), m["hold"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_message_leaves_the_counts_and_alerts_until_its_hold_ends_by_hand_or_by_its_replay() {
    let receiver = Receiver::start(0).await;
    let (mut vh, _db, app, group) = two_groups(&["--sample-interval=1"]).await;
    vh.declare_queue("orders.retry", FieldTable::default()).await;
    let rule = json!({
        "name": "orders failing",
        "condition": {"kind": "error_inflow", "service": "orders", "per_minute": 0},
        "webhook_url": receiver.url,
    });
    let (status, created) = app.post("/api/v1/alerts", Some(rule)).await;
    assert_eq!(status, 201, "{created}");
    wait_until(Duration::from_secs(30), || async { receiver.events().len() == 1 }).await;
    assert_eq!(counts(&app).await, (5, Some(3), 0, 0));
    let ids = orders(&app).await;
    let hold = |id: i64| format!("/api/v1/messages/{id}/hold");

    // One held: out of the waiting count and the inflow, on its page.
    let body = json!({"until": in_future(3600), "note": "poison: customer 42, see PAY-9"});
    let (status, c) = app.post(&hold(ids[0]), Some(body)).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["message_id"], ids[0]);
    assert_eq!(
        (&c["hold"]["by"], &c["hold"]["note"], &c["hold"]["until_replayed"]),
        (
            &json!("guest"),
            &json!("poison: customer 42, see PAY-9"),
            &json!(false)
        )
    );
    assert!(c["hold"].get("arrived_since").is_none(), "a group's only: {c}");
    assert_eq!(claim(&app, ids[0]).await.1, c["hold"]);
    assert_eq!(counts(&app).await, (4, Some(2), 0, 1));

    // All three held: the service is quiet, and its alert resolves.
    for id in &ids[1..] {
        let (status, _) = app
            .post(&hold(*id), Some(json!({"until": in_future(3600)})))
            .await;
        assert_eq!(status, 200);
    }
    assert_eq!(counts(&app).await, (2, None, 0, 3));
    wait_until(Duration::from_secs(30), || async { receiver.events().len() == 2 }).await;
    assert_eq!(receiver.events()[1].0, "resolved");

    // Their group held too: each is left out once, with the group.
    let group_hold = format!("/api/v1/groups/{group}/hold");
    let (status, _) = app
        .post(&group_hold, Some(json!({"until": in_future(3600)})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(counts(&app).await, (2, None, 1, 0));
    assert_eq!(end_hold(&app, &group_hold).await, 200);
    assert_eq!(counts(&app).await, (2, None, 0, 3));

    // One released by hand: counted again, and the alert fires again.
    assert_eq!(end_hold(&app, &hold(ids[2])).await, 200);
    assert_eq!(claim(&app, ids[2]).await.1, Value::Null);
    assert_eq!(end_hold(&app, &hold(ids[2])).await, 409, "not on hold");
    assert_eq!(counts(&app).await, (3, Some(1), 0, 2));
    wait_until(Duration::from_secs(30), || async { receiver.events().len() == 3 }).await;
    assert_eq!(receiver.events()[2].0, "firing");

    // Held until it is replayed: a refused replay leaves the hold, a
    // delivered one (the broker confirmed it) ends it.
    let (status, c) = app
        .post(&hold(ids[2]), Some(json!({"until_replayed": true})))
        .await;
    assert_eq!((status, &c["hold"]["until_replayed"]), (200, &json!(true)), "{c}");
    let replay = format!("/api/v1/messages/{}/replay", ids[2]);
    let (status, refused) = app
        .post(&replay, Some(json!({"to_queue": "no.such.queue"})))
        .await;
    assert!(status >= 400, "unroutable: {refused}");
    assert_eq!(claim(&app, ids[2]).await.1["until_replayed"], true);
    let (status, replayed) = app.post(&replay, Some(json!({"to_queue": "orders.retry"}))).await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(claim(&app, ids[2]).await.1, Value::Null, "ended by its replay");
    assert_eq!(vh.depth("orders.retry").await, 1);
    // Only a failed message waits for someone: a replayed one is not held.
    let (status, answer) = app
        .post(&hold(ids[2]), Some(json!({"until": in_future(60)})))
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(claim(&app, ids[2]).await.1, Value::Null);
    // The other two stay held (the replayed one still arrived within the
    // hour), and their failures stay stored.
    assert_eq!(counts(&app).await, (2, Some(1), 0, 2));
    let (_, page) = app.get("/api/v1/messages?queue=orders.error.queue").await;
    assert_eq!(page["total"], 3);

    let (_, audit) = app.get("/api/v1/audit?action=message_hold").await;
    let items = audit["items"].as_array().unwrap();
    let results: Vec<&str> = items.iter().map(|e| e["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["failed", "ok", "ok", "ok", "ok"], "{audit}");
    assert!(items.iter().all(|e| e["vhost"] == json!(vh.name)), "{audit}");
    assert!(
        audit.to_string().contains("hold until a fix is replayed"),
        "{audit}"
    );
    let (_, audit) = app.get("/api/v1/audit?action=message_release").await;
    let results: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["result"])
        .collect();
    assert_eq!(results, vec![&json!("failed"), &json!("ok")], "{audit}");
    app.stop().await;
}

#[tokio::test]
async fn a_message_owner_is_a_broker_user_its_queue_permission_decides_and_bad_input_changes_nothing() {
    let (vh, _db, app, _group) = two_groups(&[]).await;
    let id = orders(&app).await[0];
    let owner = format!("/api/v1/messages/{id}/owner");
    let hold = format!("/api/v1/messages/{id}/hold");
    let bob = BrokerUser::create("management", &[(&vh.name, "", ".*", ".*")]).await;
    let (status, c) = app.post(&owner, Some(json!({"user": bob.name}))).await;
    assert_eq!(
        (status, &c["owner"], &c["hold"]),
        (200, &json!(bob.name), &Value::Null),
        "{c}"
    );
    assert_eq!(claim(&app, id).await, (json!(bob.name), Value::Null));

    // Each refusal is a 4xx and changes nothing.
    let mut cases = refused(&owner, &hold);
    cases.extend([
        (
            "/api/v1/messages/abc/hold".into(),
            json!({"until": in_future(60)}),
            400,
        ),
        ("/api/v1/messages/abc/owner".into(), json!({"user": null}), 400),
        (
            "/api/v1/messages/999999999/hold".into(),
            json!({"until": in_future(60)}),
            404,
        ),
        (
            "/api/v1/messages/999999999/owner".into(),
            json!({"user": null}),
            404,
        ),
    ]);
    for (path, body, want) in cases {
        let (status, answer) = app.post(&path, Some(body.clone())).await;
        assert_eq!(status, want, "{path} {body}: {answer}");
        assert!(answer["error"].is_string(), "says why: {answer}");
    }
    let r = app
        .http
        .post(format!("{}{hold}", app.base))
        .header("content-type", "application/json")
        .body("{\"until\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "malformed JSON");
    assert_eq!(end_hold(&app, "/api/v1/messages/abc/hold").await, 400);
    assert_eq!(end_hold(&app, &hold).await, 409);
    assert_eq!(claim(&app, id).await, (json!(bob.name), Value::Null));

    // Reading the vhost is not enough to claim a message of it: writing to
    // its queue is (as a discard asks). Not seeing the vhost is not found.
    let reader = BrokerUser::create("management", &[(&vh.name, "", "", ".*")]).await;
    let monitor = BrokerUser::create("monitoring", &[(&vh.name, ".*", ".*", ".*")]).await;
    let stranger = BrokerUser::create("management", &[]).await;
    let body = json!({"until": in_future(3600)});
    for (user, want) in [(&reader, 403), (&monitor, 403), (&stranger, 404)] {
        let as_user = app.as_user(user.creds());
        let (status, answer) = as_user.post(&hold, Some(body.clone())).await;
        assert_eq!(status, want, "{}: {answer}", user.name);
        let (status, _) = as_user.post(&owner, Some(json!({"user": null}))).await;
        assert_eq!(status, want, "{}", user.name);
    }
    // Bob, who may write to it, takes it over.
    let (status, c) = app
        .as_user(bob.creds())
        .post(&hold, Some(json!({"until": in_future(3600), "note": "mine now"})))
        .await;
    assert_eq!((status, &c["hold"]["by"]), (200, &json!(bob.name)), "{c}");
    let (status, c) = app.post(&owner, Some(json!({"user": null}))).await;
    assert_eq!((status, &c["owner"]), (200, &Value::Null));

    let (_, audit) = app.get("/api/v1/audit?action=message_owner").await;
    let results: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["result"].as_str().unwrap())
        .collect();
    assert_eq!(results.iter().filter(|r| **r == "ok").count(), 2, "{results:?}");
    assert_eq!(
        results.iter().filter(|r| **r == "refused").count(),
        2,
        "{results:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_claim_goes_with_its_message_when_retention_purges_it() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_queue("old.dlq", FieldTable::default()).await;
    // 0.00002 days is about 1.7 s.
    let extra = ["--retention-days=0.00002", "--purge-interval=0.2"];
    let app = TestApp::start(config(&vh, &db, &extra)).await;
    for i in 0..2 {
        let (body, props) = testkit::spring::failure(i);
        vh.publish("", "old.dlq", &body, props).await;
    }
    let items = app.wait_for_messages("old.dlq", 2).await;
    let ids: Vec<i64> = items.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    for id in &ids {
        let path = format!("/api/v1/messages/{id}/hold");
        let (status, _) = app.post(&path, Some(json!({"until": in_future(3600)}))).await;
        assert_eq!(status, 200);
    }
    let (status, _) = app
        .post(&format!("/api/v1/messages/{}/discard", ids[0]), None)
        .await;
    assert_eq!(status, 200);
    wait_until(Duration::from_secs(15), || async {
        app.get(&format!("/api/v1/messages/{}", ids[0])).await.0 == 404
    })
    .await;
    let mut conn = db.raw_connection().await;
    let left: Vec<(i64,)> = sqlx::query_as("SELECT message_id FROM message_claims ORDER BY message_id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        left,
        vec![(ids[1],)],
        "the purged message's claim is gone, the other kept"
    );
    app.stop().await;
}

/// The message page: take a message, hold it for 4 hours with a note, see
/// it on the page and the overview, end the hold; with screenshots.
#[tokio::test]
async fn message_owner_and_hold_ui() {
    require_site();
    let (_vh, _db, app, _group) = two_groups(&[]).await;
    let id = orders(&app).await[0];
    let browser = Browser::start().await;
    let c = &browser.client;
    let result = async {
        let wait = || c.wait().at_most(Duration::from_secs(20));
        browser.sign_in(&app.base, &format!("/messages/{id}")).await?;
        wait()
            .for_element(Locator::Css(r#".facts .claim button[data-action="take"]"#))
            .await?
            .click()
            .await?;
        wait()
            .for_element(Locator::Css(
                r#".facts .claim[data-owner="guest"] button[data-action="drop"]"#,
            ))
            .await?;
        c.find(Locator::Css(".facts .hold-form summary"))
            .await?
            .click()
            .await?;
        c.find(Locator::Css(".facts .hold-form input"))
            .await?
            .send_keys("poison: customer 42")
            .await?;
        browser
            .screenshot(".facts .claim", &shot("message-hold-form"))
            .await?;
        c.find(Locator::Css(r#".facts button[data-hold-hours="4"]"#))
            .await?
            .click()
            .await?;
        let hold = wait()
            .for_element(Locator::Css(".facts .claim .hold"))
            .await?
            .text()
            .await?;
        assert!(
            hold.contains("by guest") && hold.contains("poison: customer 42") && !hold.contains("arrived"),
            "{hold}"
        );
        browser.screenshot(".facts", &shot("message-held")).await?;
        assert_eq!(claim(&app, id).await.0, json!("guest"));

        c.goto(&format!("{}/overview", app.base)).await?;
        let note = wait()
            .for_element(Locator::Css(r#"[data-held-messages="1"]"#))
            .await?
            .text()
            .await?;
        assert_eq!(note, "of 5 stored; 1 message on hold not counted");
        browser
            .screenshot(".cards", &shot("overview-held-message"))
            .await?;

        c.goto(&format!("{}/messages/{id}", app.base)).await?;
        wait()
            .for_element(Locator::Css(r#".facts button[data-action="release"]"#))
            .await?
            .click()
            .await?;
        wait()
            .for_element(Locator::Css(".facts .hold-form summary"))
            .await?;
        assert_eq!(claim(&app, id).await.1, Value::Null);
        assert_eq!(browser.console_errors().await?, Vec::<String>::new());
        Ok(())
    }
    .await;
    browser.finish(result).await;
    app.stop().await;
}
