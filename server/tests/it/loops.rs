//! Replay-loop detection: a replayed copy that fails again links back to its
//! record, and a bulk job whose replays keep coming back pauses itself.

use std::time::Duration;

use crate::common::*;
use lapin::BasicProperties;
use serde_json::{json, Value};

const QUEUE: &str = "loop.error.queue";

/// Messages whose "original route" is the error queue itself: every replayed
/// copy fails again at once, as with a consumer whose bug is not fixed.
async fn setup(n: usize) -> (TestVhost, TestDb, TestApp) {
    let (mut vh, db, app) = with_queues(&[QUEUE], &[]).await;
    for i in 0..n {
        let props = BasicProperties::default()
            .with_message_id(format!("l-{i}").into())
            .with_headers(headers(&[
                ("x-exception-message", s("Boom")),
                ("x-original-exchange", s("")),
                ("x-original-routingKey", s(QUEUE)),
            ]));
        vh.publish("", QUEUE, b"{}", props).await;
    }
    app.wait_for_messages(QUEUE, n).await;
    (vh, db, app)
}

async fn detail(app: &TestApp, id: &Value) -> Value {
    app.get(&format!("/api/v1/messages/{id}")).await.1
}

async fn newest(app: &TestApp) -> Value {
    app.get("/api/v1/messages?limit=1").await.1["items"][0].clone()
}

#[tokio::test]
async fn a_copy_that_fails_again_links_back_through_the_whole_chain() {
    let (_vh, _db, app) = setup(1).await;
    let first = newest(&app).await["id"].clone();
    let (status, _) = app.post(&format!("/api/v1/messages/{first}/replay"), None).await;
    assert_eq!(status, 200);
    let second = wait_for(Duration::from_secs(10), || async {
        Some(newest(&app).await["id"].clone()).filter(|id| *id != first)
    })
    .await;
    let d = detail(&app, &second).await;
    assert_eq!(d["replayed_from"], first);
    assert_eq!(d["failed_again_after_replay"], 1);
    assert_eq!(detail(&app, &first).await["came_back_as"], json!([second]));

    app.post(&format!("/api/v1/messages/{second}/replay"), None).await;
    let third = wait_for(Duration::from_secs(10), || async {
        Some(newest(&app).await["id"].clone()).filter(|id| *id != second)
    })
    .await;
    let d = detail(&app, &third).await;
    assert_eq!(d["replayed_from"], second);
    assert_eq!(
        d["failed_again_after_replay"], 2,
        "failed again twice after replay"
    );
    let (_, groups) = app.get("/api/v1/groups").await;
    assert_eq!(groups[0]["came_back"], 2, "{groups}");
    app.stop().await;
}

#[tokio::test]
async fn a_job_whose_replays_come_back_pauses_itself() {
    let (_vh, _db, app) = setup(60).await;
    let request = json!({"action": "replay", "filter": {"queue": QUEUE}, "rate_per_sec": 20});
    let (status, job) = app.post("/api/v1/jobs", Some(request)).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].clone();
    let paused = wait_for(Duration::from_secs(30), || async {
        Some(app.get(&format!("/api/v1/jobs/{id}")).await.1).filter(|j| j["state"] == "paused")
    })
    .await;
    assert!(
        paused["note"].as_str().unwrap().contains("failed again"),
        "{paused}"
    );
    assert!(
        paused["done"].as_i64().unwrap() < 60,
        "paused before the end: {paused}"
    );

    let (status, resumed) = app.post(&format!("/api/v1/jobs/{id}/resume"), None).await;
    assert_eq!(status, 200);
    assert_eq!(resumed["state"], "running");
    assert!(resumed["note"].is_null(), "resuming clears the note");
    app.post(&format!("/api/v1/jobs/{id}/cancel"), None).await;
    app.stop().await;
}
