//! Owners and holds of failure groups against the real broker: a held
//! group leaves the overview's counts, the default group list and the
//! inflow alerts until its hold ends, while its new failures are still
//! stored and counted as arrived since; owners are broker users, "mine"
//! lists them; every change is audited and bad input is a 4xx.

use std::time::Duration;

use crate::common::*;
use fantoccini::Locator;
use lapin::types::FieldTable;
use serde_json::{json, Value};

/// `n` Spring failures of the orders service (one failure group), from `from`.
pub(crate) async fn orders_fail(vh: &mut TestVhost, from: usize, n: usize) {
    for i in from..from + n {
        let (body, props) = testkit::spring::failure(i);
        vh.publish("", "orders.error.queue", &body, props).await;
    }
}

/// A vhost with 3 orders failures and 2 of billing (another group), captured.
pub(crate) async fn two_groups(extra: &[&str]) -> (TestVhost, TestDb, TestApp, String) {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    for q in ["orders.error.queue", "billing.error.queue"] {
        vh.declare_queue(q, FieldTable::default()).await;
    }
    orders_fail(&mut vh, 0, 3).await;
    for i in 0..2 {
        let (body, props) = testkit::spring::failure(100 + i);
        let mut h = props.headers().clone().unwrap_or_default();
        h.insert("x-exception-message".into(), s("Invoice could not be rendered"));
        h.insert("x-exception-stacktrace".into(), s("java.lang.IllegalStateException: Invoice could not be rendered\n\tat com.acme.billing.Render.run(Render.java:12)"));
        vh.publish("", "billing.error.queue", &body, props.with_headers(h))
            .await;
    }
    let app = TestApp::start(config(&vh, &db, extra)).await;
    app.wait_for_messages("orders.error.queue", 3).await;
    app.wait_for_messages("billing.error.queue", 2).await;
    let (_, groups) = app.get("/api/v1/groups").await;
    assert_eq!(groups.as_array().unwrap().len(), 2, "{groups}");
    let orders = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["service"] == "orders")
        .expect("the orders group")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (vh, db, app, orders)
}

pub(crate) fn in_future(seconds: i64) -> String {
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds);
    at.format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// The group `id` as the default list shows it.
async fn listed_row(app: &TestApp, id: &str) -> Value {
    let (_, listed) = app.get("/api/v1/groups").await;
    let row = listed.as_array().unwrap().iter().find(|g| g["id"] == id);
    row.unwrap_or_else(|| panic!("{id} is listed: {listed}")).clone()
}

/// Requests every owner and hold route (of a group or a message, at
/// `owner` and `hold`) refuses with a 400, changing nothing.
pub(crate) fn refused(owner: &str, hold: &str) -> Vec<(String, Value, u16)> {
    let (owner, hold) = (owner.to_owned(), hold.to_owned());
    vec![
        (owner.clone(), json!({"user": "nobody-such-user-xyz"}), 400),
        (owner.clone(), json!({"user": 7}), 400),
        (owner, json!({"user": "a\u{7}b"}), 400),
        (hold.clone(), json!({"until": "2020-01-01T00:00:00Z"}), 400),
        (hold.clone(), json!({"until": "tomorrow"}), 400),
        (hold.clone(), json!({"note": "until what?"}), 400),
        (hold.clone(), json!({"until_replayed": "yes"}), 400),
        (hold.clone(), json!([1, 2]), 400),
        (
            hold,
            json!({"until": in_future(3600), "note": "x".repeat(1001)}),
            400,
        ),
    ]
}

/// `DELETE` of a group's hold; its status.
pub(crate) async fn end_hold(app: &TestApp, path: &str) -> u16 {
    let r = app.http.delete(format!("{}{path}", app.base)).send().await;
    r.unwrap().status().as_u16()
}

fn ids(groups: &Value) -> Vec<String> {
    groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The overview's waiting count and the orders service's inflow (and
/// that it says how many groups it leaves out).
async fn overview(app: &TestApp) -> (i64, Option<i64>) {
    let (status, o) = app.get("/api/v1/overview").await;
    assert_eq!(status, 200, "{o}");
    let inflow = o["error_inflow"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "orders")
        .map(|s| s["last_hour"].as_i64().unwrap());
    let held = o["held_groups"].as_i64().unwrap();
    assert_eq!(held, i64::from(inflow.is_none()), "{o}");
    (o["waiting"].as_i64().unwrap(), inflow)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_group_leaves_the_counts_and_alerts_until_its_hold_ends() {
    let receiver = Receiver::start(0).await;
    let (mut vh, _db, app, orders) = two_groups(&["--sample-interval=1"]).await;
    let rule = json!({
        "name": "orders failing",
        "condition": {"kind": "error_inflow", "service": "orders", "per_minute": 0},
        "webhook_url": receiver.url,
    });
    let (status, created) = app.post("/api/v1/alerts", Some(rule)).await;
    assert_eq!(status, 201, "{created}");
    wait_until(Duration::from_secs(30), || async { receiver.events().len() == 1 }).await;
    assert_eq!(receiver.events()[0].0, "firing");
    assert_eq!(overview(&app).await, (5, Some(3)));

    // On hold for a few seconds: out of the counts, the list and the alert.
    let hold = json!({"until": in_future(12), "note": "fix in PAY-123"});
    let (status, claim) = app
        .post(&format!("/api/v1/groups/{orders}/hold"), Some(hold))
        .await;
    assert_eq!(status, 200, "{claim}");
    assert_eq!(
        (&claim["hold"]["by"], &claim["hold"]["note"]),
        (&json!("guest"), &json!("fix in PAY-123"))
    );
    assert_eq!(overview(&app).await, (2, None));
    let (_, listed) = app.get("/api/v1/groups").await;
    assert!(!ids(&listed).contains(&orders), "{listed}");
    wait_until(Duration::from_secs(30), || async { receiver.events().len() == 2 }).await;
    assert_eq!(receiver.events()[1].0, "resolved");

    // Its new failures are stored, and counted as arrived since.
    orders_fail(&mut vh, 3, 2).await;
    app.wait_for_messages("orders.error.queue", 5).await;
    let (_, held) = app.get("/api/v1/groups?held=true").await;
    assert_eq!(ids(&held), vec![orders.clone()], "{held}");
    assert_eq!(held[0]["hold"]["arrived_since"], 2);
    assert_eq!(held[0]["count"], 5);
    assert_eq!(overview(&app).await, (2, None));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        receiver.events().len(),
        2,
        "silent while held: {:?}",
        receiver.events()
    );

    // When the hold ends, everything counts again and the alert fires.
    wait_until(Duration::from_secs(30), || async { receiver.events().len() == 3 }).await;
    assert_eq!(receiver.events()[2].0, "firing");
    assert_eq!(overview(&app).await, (7, Some(5)));
    let (_, listed) = app.get("/api/v1/groups").await;
    assert!(ids(&listed).contains(&orders), "{listed}");
    let (_, held) = app.get("/api/v1/groups?held=true").await;
    assert_eq!(ids(&held).len(), 0);
    let (_, audit) = app.get("/api/v1/audit?action=group_hold").await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
    app.stop().await;
}

#[tokio::test]
async fn owners_are_broker_users_mine_lists_them_and_bad_input_changes_nothing() {
    let (vh, _db, app, orders) = two_groups(&[]).await;
    let bob = BrokerUser::create("management", &[(&vh.name, "", ".*", ".*")]).await;
    let owner = format!("/api/v1/groups/{orders}/owner");
    let (status, claim) = app.post(&owner, Some(json!({"user": bob.name}))).await;
    assert_eq!((status, &claim["owner"]), (200, &json!(bob.name)), "{claim}");
    let (_, mine) = app.as_user(bob.creds()).get("/api/v1/groups?owner=me").await;
    assert_eq!(ids(&mine), vec![orders.clone()]);
    let row = listed_row(&app, &orders).await;
    assert_eq!(row["owner"], json!(bob.name), "owned groups stay in the list");
    let (_, guests) = app.get("/api/v1/groups?owner=me").await;
    assert_eq!(ids(&guests).len(), 0);

    // Each refusal is a 4xx and changes nothing.
    let hold = format!("/api/v1/groups/{orders}/hold");
    let mut cases = refused(&owner, &hold);
    cases.extend([
        (
            "/api/v1/groups/no-such-group/hold".to_owned(),
            json!({"until": in_future(3600)}),
            404,
        ),
        (
            "/api/v1/groups/no-such-group/owner".to_owned(),
            json!({"user": null}),
            404,
        ),
    ]);
    for (path, body, want) in cases {
        let (status, answer) = app.post(&path, Some(body.clone())).await;
        assert_eq!(status, want, "{path} {body}: {answer}");
    }
    assert_eq!(end_hold(&app, &hold).await, 409, "not on hold");
    let row = listed_row(&app, &orders).await;
    assert_eq!((&row["owner"], &row["hold"]), (&json!(bob.name), &Value::Null));

    // A hold ended early by hand; the owner cleared.
    let (status, _) = app.post(&hold, Some(json!({"until": in_future(3600)}))).await;
    assert_eq!(status, 200);
    assert_eq!(end_hold(&app, &hold).await, 200);
    let (status, claim) = app.post(&owner, Some(json!({"user": null}))).await;
    assert_eq!(
        (status, &claim["owner"], &claim["hold"]),
        (200, &Value::Null, &Value::Null)
    );
    let (_, listed) = app.get("/api/v1/groups").await;
    assert!(ids(&listed).contains(&orders));

    // A reader who may not change state is refused, audited.
    let monitor = BrokerUser::create("monitoring", &[(&vh.name, ".*", ".*", ".*")]).await;
    let (status, _) = app
        .as_user(monitor.creds())
        .post(&owner, Some(json!({"user": bob.name})))
        .await;
    assert_eq!(status, 403);
    let (_, audit) = app.get("/api/v1/audit?action=group_owner").await;
    let results: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["result"].as_str().unwrap())
        .collect();
    assert_eq!(results.iter().filter(|r| **r == "ok").count(), 2, "{results:?}");
    assert!(results.contains(&"refused"), "{results:?}");
    app.stop().await;
}

/// The held groups' ids.
async fn held(app: &TestApp) -> Vec<String> {
    ids(&app.get("/api/v1/groups?held=true").await.1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_until_a_fix_is_replayed_ends_with_the_first_delivered_replay_single_or_batched() {
    let (mut vh, _db, app, orders) = two_groups(&[]).await;
    vh.declare_queue("orders.retry", FieldTable::default()).await;
    let hold = format!("/api/v1/groups/{orders}/hold");
    let until_fixed = json!({"until_replayed": true, "note": "fix in PAY-7"});
    let (status, claim) = app.post(&hold, Some(until_fixed.clone())).await;
    assert_eq!(status, 200, "{claim}");
    assert_eq!(claim["hold"]["until_replayed"], true);
    // At the latest in 30 days: a fix that never ships hides nothing for good.
    let until = time::OffsetDateTime::parse(
        claim["hold"]["until"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let days = (until - time::OffsetDateTime::now_utc()).whole_hours() as f64 / 24.0;
    assert!((29.9..=30.0).contains(&days), "{claim}");
    assert_eq!(overview(&app).await, (2, None));
    let (_, audit) = app.get("/api/v1/audit?action=group_hold").await;
    assert!(audit.to_string().contains("until a fix is replayed"), "{audit}");

    // Neither another group's replay nor a refused one ends it.
    let billing = app.wait_for_messages("billing.error.queue", 2).await;
    let (status, _) = app
        .post(
            &format!("/api/v1/messages/{}/replay", billing[0]["id"]),
            Some(json!({"to_queue": "orders.retry"})),
        )
        .await;
    assert_eq!(status, 200);
    let listed = app.wait_for_messages("orders.error.queue", 3).await;
    let (status, refused) = app
        .post(
            &format!("/api/v1/messages/{}/replay", listed[0]["id"]),
            Some(json!({"to_queue": "no.such.queue"})),
        )
        .await;
    assert!(status >= 400, "unroutable: {refused}");
    assert_eq!(held(&app).await, vec![orders.clone()]);

    // One of its messages delivered (the broker confirmed it): over.
    let (status, body) = app
        .post(
            &format!("/api/v1/messages/{}/replay", listed[1]["id"]),
            Some(json!({"to_queue": "orders.retry"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(held(&app).await.is_empty());
    assert_eq!(overview(&app).await.1, Some(3), "counted again");

    // The same through a bulk job, with a time as well.
    let both = json!({"until": in_future(3600), "until_replayed": true});
    let (status, _) = app.post(&hold, Some(both)).await;
    assert_eq!(status, 200);
    assert_eq!(held(&app).await, vec![orders.clone()]);
    let job = json!({"action": "replay", "group": orders, "to_queue": "orders.retry"});
    let (status, created) = app.post("/api/v1/jobs", Some(job)).await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/api/v1/jobs/{}", created["id"]);
    wait_until(Duration::from_secs(30), || async {
        app.get(&path).await.1["state"] == "completed"
    })
    .await;
    assert!(held(&app).await.is_empty());
    assert_eq!(
        vh.depth("orders.retry").await,
        4,
        "1 billing, 1 single, 2 by the job"
    );
    app.stop().await;
}

/// The Groups page: take a group, hold it for a day with a note, find it
/// under "On hold" and "Mine", with screenshots.
#[tokio::test]
async fn groups_owner_and_hold_ui() {
    require_site();
    let (_vh, _db, app, orders) = two_groups(&[]).await;
    let browser = Browser::start().await;
    let c = &browser.client;
    let result = async {
        let wait = || c.wait().at_most(Duration::from_secs(20));
        browser.sign_in(&app.base, "/groups").await?;
        let row = format!(r#"tr[data-group="{orders}"]"#);
        wait()
            .for_element(Locator::Css(&format!(r#"{row} button[data-action="take"]"#)))
            .await?
            .click()
            .await?;
        wait()
            .for_element(Locator::Css(&format!(
                r#"{row} .claim[data-owner="guest"] button[data-action="drop"]"#
            )))
            .await?;
        c.find(Locator::Css(&format!("{row} .hold-form summary")))
            .await?
            .click()
            .await?;
        c.find(Locator::Css(&format!("{row} .hold-form input")))
            .await?
            .send_keys("fix in PAY-123")
            .await?;
        browser.screenshot("main", &shot("groups-take-and-hold")).await?;
        c.find(Locator::Css(&format!(r#"{row} button[data-hold-hours="24"]"#)))
            .await?
            .click()
            .await?;
        // Held: gone from the list that needs someone.
        let start = std::time::Instant::now();
        while !c.find_all(Locator::Css(&row)).await?.is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the held group stays listed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        c.goto(&format!("{}/groups?held=true", app.base)).await?;
        let hold = wait()
            .for_element(Locator::Css(&format!("{row} .hold")))
            .await?
            .text()
            .await?;
        assert!(
            hold.contains("by guest") && hold.contains("fix in PAY-123"),
            "{hold}"
        );
        browser
            .screenshot(&format!("{row} .claim"), &shot("groups-on-hold"))
            .await?;
        // The overview says it leaves the held group out.
        c.goto(&format!("{}/overview", app.base)).await?;
        let note = wait()
            .for_element(Locator::Css(r#"[data-held-groups="1"]"#))
            .await?
            .text()
            .await?;
        assert_eq!(note, "of 5 stored; 1 group on hold not counted");
        browser.screenshot(".cards", &shot("overview-held-group")).await?;
        c.goto(&format!("{}/groups?owner=me", app.base)).await?;
        wait().for_element(Locator::Css(&row)).await?;
        // Held again, this time until a fix is replayed.
        c.find(Locator::Css(&format!(r#"{row} button[data-action="release"]"#)))
            .await?
            .click()
            .await?;
        wait()
            .for_element(Locator::Css(&format!("{row} .hold-form summary")))
            .await?
            .click()
            .await?;
        c.find(Locator::Css(&format!("{row} button[data-hold-until-replayed]")))
            .await?
            .click()
            .await?;
        let hold = wait()
            .for_element(Locator::Css(&format!("{row} .hold")))
            .await?
            .text()
            .await?;
        assert!(hold.contains("until a fix is replayed, by guest"), "{hold}");
        browser
            .screenshot(&format!("{row} .claim"), &shot("groups-hold-until-replayed"))
            .await?;
        browser.screenshot("main", &shot("groups-mine-held")).await?;
        assert_eq!(browser.console_errors().await?, Vec::<String>::new());
        Ok(())
    }
    .await;
    browser.finish(result).await;
    app.stop().await;
}
