//! Degraded mode: with the management API gone, pages keep the last known
//! data and say how old it is, while capture and replay carry on.

use crate::common;
use std::time::Duration;

use crate::common::*;
use lapin::BasicProperties;
use serde_json::json;

#[tokio::test]
async fn last_known_data_while_the_management_api_is_down() {
    let proxy = MgmtProxy::start().await;
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_queue("orders.error.queue", Default::default()).await;
    vh.declare_queue("orders", Default::default()).await;
    let mgmt = format!("--management-url={}", proxy.url);
    let app = TestApp::start(config(
        &vh,
        &db,
        &[&mgmt, "--sample-interval=1", "--management-timeout=2"],
    ))
    .await;
    let (status, before) = app.get("/api/v1/queues").await;
    assert_eq!(status, 200, "{before}");
    assert!(before["freshness"]["error"].is_null());
    // Let ingest discover the error queue before the API goes away.
    wait_until(Duration::from_secs(15), || async {
        let (_, q) = app.get("/api/v1/queues").await;
        q["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "orders.error.queue" && q["consumers"] == 1)
    })
    .await;

    proxy.cut();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (status, after) = app.get("/api/v1/queues").await;
    assert_eq!(status, 200, "{after}");
    assert!(after["freshness"]["error"].is_string(), "{after}");
    assert!(after["freshness"]["fetched_at"].is_i64());
    assert_eq!(after["queues"].as_array().unwrap().len(), 2);
    let html = app.html("/queues").await;
    assert!(html.contains("Management API unavailable"), "no banner: {html}");

    // Capture and replay do not need the management API.
    let headers = common::headers(&[
        ("x-original-exchange", s("")),
        ("x-original-routingKey", s("orders")),
    ]);
    vh.publish(
        "",
        "orders.error.queue",
        b"{\"id\":1}",
        BasicProperties::default().with_headers(headers),
    )
    .await;
    let stored = app.wait_for_messages("orders.error.queue", 1).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/messages/{}/replay", stored[0]["id"]),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(vh.drain("orders", 1).await[0].data, b"{\"id\":1}");
    app.stop().await;
}

/// A fresh broker without the management plugin: nothing listens on its
/// port. Sign-in (checked by the broker) and the API say what to run instead
/// of "try again".
#[tokio::test]
async fn a_missing_management_plugin_is_named_with_its_fix() {
    let vh = TestVhost::new().await;
    let db = TestDb::new();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let mgmt = format!("--management-url=http://127.0.0.1:{port}");
    let app = TestApp::start(config(&vh, &db, &[&mgmt, "--management-timeout=2"])).await;
    let fix = "rabbitmq-plugins enable rabbitmq_management";

    let (status, body) = app.get("/api/v1/queues").await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains(fix), "{body}");
    assert!(
        !body.to_string().contains(&port.to_string()),
        "internal address leaked: {body}"
    );

    let page = reqwest::Client::new()
        .post(format!("{}/login", app.base))
        .header(reqwest::header::ORIGIN, &app.base)
        .form(&[("user", "guest"), ("password", "guest"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 503);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(fix),
        "the sign-in page does not name the fix: {html}"
    );
    app.stop().await;
}
