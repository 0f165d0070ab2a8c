//! Two-person approval (`REDRIVE_APPROVAL_THRESHOLD`) against the real
//! broker: a large job sends nothing until a second user with the same
//! permissions approves it; its creator's approval, a user without the
//! permissions, a refusal and an expiry each end as they should, audited.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::*;
use fantoccini::Locator;
use serde_json::{json, Value};
use testkit::spring;

const STORED: usize = 150;

/// A vhost with `STORED` Spring failures captured from `orders.error.queue`
/// and their original route (`orders` → `orders.in`), and Redrive running
/// with a threshold of 100 and `extra`.
async fn stored_failures(extra: &[&str]) -> (TestVhost, TestDb, TestApp) {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_spring_route().await;
    for i in 0..STORED {
        let (body, props) = spring::failure(i);
        vh.publish("", "orders.error.queue", &body, props).await;
    }
    let mut args = vec!["--approval-threshold=100"];
    args.extend_from_slice(extra);
    let app = TestApp::start(config(&vh, &db, &args)).await;
    wait_until(Duration::from_secs(60), || async {
        app.get("/api/v1/messages?queue=orders.error.queue&limit=1")
            .await
            .1["total"]
            == STORED
    })
    .await;
    (vh, db, app)
}

/// Users who may replay to `orders` in `vhost`.
async fn operator(vhost: &str) -> BrokerUser {
    BrokerUser::create("management", &[(vhost, "", ".*", ".*")]).await
}

fn replay_all() -> Value {
    json!({"action": "replay", "filter": {"queue": "orders.error.queue"}})
}

async fn job_of(client: &TestClient, id: &Value) -> Value {
    let (status, job) = client.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(status, 200, "{job}");
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_job_waits_for_a_second_person_and_then_runs_once() {
    let (mut vh, _db, app) = stored_failures(&[]).await;
    let (alice, bob) = (operator(&vh.name).await, operator(&vh.name).await);
    // Carol may read everything but publish to nothing.
    let carol = BrokerUser::create("management", &[(&vh.name, "", "^nothing$", ".*")]).await;
    let (as_alice, as_bob, as_carol) = (
        app.as_user(alice.creds()),
        app.as_user(bob.creds()),
        app.as_user(carol.creds()),
    );

    // The dry run says so before anything is created.
    let mut preview = replay_all();
    preview["dry_run"] = json!(true);
    let (status, dry) = as_alice.post("/api/v1/jobs", Some(preview)).await;
    assert_eq!(
        (status, &dry["total"], &dry["needs_approval"]),
        (200, &json!(STORED), &json!(true)),
        "{dry}"
    );

    let (status, job) = as_alice.post("/api/v1/jobs", Some(replay_all())).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].clone();
    assert_eq!(job["state"], "awaiting_approval", "{job}");
    assert!(job["approval_expires_at"].is_string(), "{job}");
    assert_eq!(job["approved_by"], Value::Null);

    // It sends nothing while it waits.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(vh.depth("orders.in").await, 0);
    let waiting = job_of(&as_alice, &id).await;
    assert_eq!(
        (&waiting["state"], &waiting["done"]),
        (&json!("awaiting_approval"), &json!(0))
    );

    // Its creator cannot approve it; nor can someone without its permissions.
    let approve = format!("/api/v1/jobs/{id}/approve");
    let (status, body) = as_alice.post(&approve, None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("another user"), "{body}");
    let (status, body) = as_carol.post(&approve, None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("write"), "{body}");
    assert_eq!(job_of(&as_alice, &id).await["state"], "awaiting_approval");

    // Bob's approval starts it; it completes once.
    let (status, approved) = as_bob.post(&approve, None).await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["approved_by"], json!(bob.name));
    let done = wait_for(Duration::from_secs(60), || async {
        let j = job_of(&as_alice, &id).await;
        (j["state"] != "running").then_some(j)
    })
    .await;
    assert_eq!(
        (&done["state"], &done["done"], &done["failed"]),
        (&json!("completed"), &json!(STORED), &json!(0)),
        "{done}"
    );
    assert!(done["approved_at"].is_string(), "{done}");
    let copies = vh.drain("orders.in", STORED).await;
    let ids: HashSet<String> = copies
        .iter()
        .map(|d| d.properties.message_id().as_ref().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), STORED, "each message replayed once");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(vh.depth("orders.in").await, 0, "nothing more");

    // A second approval has nothing to approve.
    let (status, body) = as_bob.post(&approve, None).await;
    assert_eq!(status, 409, "{body}");

    let approvals = app.audited("job_approve").await;
    let by = |user: &str, result: &str| {
        approvals
            .iter()
            .filter(|(u, r, _)| u == user && r == result)
            .count()
    };
    assert_eq!(
        (
            by(&alice.name, "refused"),
            by(&carol.name, "refused"),
            by(&bob.name, "ok")
        ),
        (1, 1, 1),
        "{approvals:?}"
    );
    assert_eq!(
        by(&bob.name, "failed"),
        1,
        "the late approval is recorded: {approvals:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_or_expired_job_sends_nothing_and_a_small_one_needs_no_second_person() {
    let (mut vh, _db, app) = stored_failures(&["--approval-ttl=2"]).await;
    let (alice, bob) = (operator(&vh.name).await, operator(&vh.name).await);
    let (as_alice, as_bob) = (app.as_user(alice.creds()), app.as_user(bob.creds()));

    // Refused by a second person: cancelled, with who refused it.
    let (status, job) = as_alice.post("/api/v1/jobs", Some(replay_all())).await;
    assert_eq!(
        (status, &job["state"]),
        (201, &json!("awaiting_approval")),
        "{job}"
    );
    let (status, refused) = as_bob
        .post(&format!("/api/v1/jobs/{}/refuse", job["id"]), None)
        .await;
    assert_eq!(status, 200, "{refused}");
    assert_eq!(refused["state"], "cancelled");
    assert!(
        refused["note"]
            .as_str()
            .unwrap()
            .contains(&format!("refused by {}", bob.name)),
        "{refused}"
    );
    assert_eq!(app.audited("job_refuse").await.len(), 1);

    // Nobody approves the next: it expires and is cancelled, audited.
    let (status, job) = as_alice.post("/api/v1/jobs", Some(replay_all())).await;
    assert_eq!(status, 201, "{job}");
    let expired = wait_for(Duration::from_secs(30), || async {
        let j = job_of(&as_alice, &job["id"]).await;
        (j["state"] != "awaiting_approval").then_some(j)
    })
    .await;
    assert_eq!(expired["state"], "cancelled", "{expired}");
    assert!(
        expired["note"].as_str().unwrap().contains("approval expired"),
        "{expired}"
    );
    let (status, body) = as_bob
        .post(&format!("/api/v1/jobs/{}/approve", job["id"]), None)
        .await;
    assert_eq!(status, 409, "{body}");
    let expiries = app.audited("job_approval_expired").await;
    assert_eq!(expiries.len(), 1, "{expiries:?}");
    assert_eq!(expiries[0].0, alice.name);
    assert!(expiries[0].2.contains("150 messages"), "{expiries:?}");

    // Nothing was sent, and every message is still failed.
    assert_eq!(vh.depth("orders.in").await, 0);
    let (_, failed) = app.get("/api/v1/messages?status=failed&limit=1").await;
    assert_eq!(failed["total"], STORED);

    // At or under the threshold, a job runs at once.
    let (_, page) = app
        .get("/api/v1/messages?queue=orders.error.queue&limit=100")
        .await;
    let ids: Vec<Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids.len(), 100);
    let (status, small) = as_alice
        .post("/api/v1/jobs", Some(json!({"action": "replay", "ids": ids})))
        .await;
    assert_eq!(status, 201, "{small}");
    assert_ne!(small["state"], "awaiting_approval", "{small}");
    wait_until(Duration::from_secs(60), || async {
        job_of(&as_alice, &small["id"]).await["state"] == "completed"
    })
    .await;
    assert_eq!(vh.depth("orders.in").await, 100);
    app.stop().await;
}

/// The Jobs pages in the hydrated UI: a waiting job says why and whose it
/// is; another user (guest, signed in through the form) approves it there,
/// and both pages then show who asked and who approved.
#[tokio::test]
async fn approval_ui() {
    require_site();
    let (vh, _db, app) = stored_failures(&[]).await;
    let alice = operator(&vh.name).await;
    let (status, job) = app
        .as_user(alice.creds())
        .post(
            "/api/v1/jobs",
            Some(json!({"action": "replay", "filter": {"queue": "orders.error.queue"}, "rate_per_sec": 50})),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].clone();

    let browser = Browser::start().await;
    let c = &browser.client;
    let result = async {
        let wait = || c.wait().at_most(Duration::from_secs(20));
        browser.sign_in(&app.base, &format!("/jobs/{id}")).await?;
        let why = wait()
            .for_element(Locator::Css("[data-awaiting-approval]"))
            .await?
            .text()
            .await?;
        assert!(why.contains(&alice.name) && why.contains("150 messages"), "{why}");
        browser.screenshot("main", &shot("job-awaiting-approval")).await?;
        wait()
            .for_element(Locator::Css(r#"button[data-action="approve"]"#))
            .await?
            .click()
            .await?;
        let approved = wait().for_element(Locator::Css("[data-approved-by]")).await?;
        assert_eq!(approved.attr("data-approved-by").await?.as_deref(), Some("guest"));
        browser.screenshot("main", &shot("job-approved")).await?;
        c.goto(&format!("{}/jobs", app.base)).await?;
        wait()
            .for_element(Locator::Css(r#"[data-hydrated="true"]"#))
            .await?;
        let row = wait()
            .for_element(Locator::Css("table.grid tbody tr"))
            .await?
            .text()
            .await?;
        assert!(row.contains(&alice.name) && row.contains("guest"), "{row}");
        browser
            .screenshot("main", &shot("jobs-asked-and-approved"))
            .await?;
        assert_eq!(browser.console_errors().await?, Vec::<String>::new());
        Ok(())
    }
    .await;
    browser.finish(result).await;
    app.stop().await;
}
