//! Failure groups and filters against the real broker: Spring, MassTransit and
//! broker dead letters land in the right groups, and filters combine.

use crate::common::*;
use lapin::options::BasicNackOptions;
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use serde_json::Value;

const TRACE: &str = "org.springframework.amqp.rabbit.support.ListenerExecutionFailedException: Listener threw exception
\tat org.springframework.amqp.rabbit.listener.AbstractMessageListenerContainer.doInvokeListener(AbstractMessageListenerContainer.java:1661)
Caused by: java.lang.IllegalStateException: Trade NUM rejected
\tat com.acme.trade.TradeService.book(TradeService.java:88)
\tat com.acme.trade.TradeListener.onTrade(TradeListener.java:42)";

fn spring(trade: u32, exception: &str) -> BasicProperties {
    let trace = TRACE
        .replace("NUM", &trade.to_string())
        .replace("IllegalStateException", exception);
    BasicProperties::default().with_headers(headers(&[
        (
            "x-exception-message",
            s(&format!("Listener threw: Trade {trade} rejected")),
        ),
        ("x-exception-stacktrace", s(&trace)),
        ("x-original-exchange", s("trade.x")),
        ("x-original-routingKey", s("trade.created")),
    ]))
}

async fn groups(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/api/v1/groups{query}")).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

#[tokio::test]
async fn spring_masstransit_and_dead_letters_are_grouped() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_exchange("error.direct", ExchangeKind::Direct).await;
    vh.declare_queue("trade.error.queue", FieldTable::default()).await;
    vh.bind("trade.error.queue", "error.direct", "trade").await;
    vh.declare_queue("billing_error", FieldTable::default()).await;
    vh.declare_exchange("orders.x", ExchangeKind::Direct).await;
    vh.declare_exchange("orders.dlx", ExchangeKind::Fanout).await;
    vh.declare_queue(
        "orders.work",
        headers(&[("x-dead-letter-exchange", s("orders.dlx"))]),
    )
    .await;
    vh.bind("orders.work", "orders.x", "placed").await;
    vh.declare_queue("orders.dlq", FieldTable::default()).await;
    vh.bind("orders.dlq", "orders.dlx", "").await;
    let app = TestApp::start(config(&vh, &db, &[])).await;

    for trade in [1, 22, 333] {
        vh.publish(
            "error.direct",
            "trade",
            b"{}",
            spring(trade, "IllegalStateException"),
        )
        .await;
    }
    vh.publish("error.direct", "trade", b"{}", spring(4, "NullPointerException"))
        .await;
    for amount in [10, 20] {
        let props = BasicProperties::default().with_headers(headers(&[
            ("MT-Fault-ExceptionType", s("System.TimeoutException")),
            (
                "MT-Fault-Message",
                s(&format!("Payment of {amount} EUR timed out")),
            ),
            (
                "MT-Fault-StackTrace",
                s("   at Billing.Pay.Consume() in Pay.cs:line 9"),
            ),
        ]));
        vh.publish("", "billing_error", b"{}", props).await;
    }
    vh.publish("orders.x", "placed", b"o1", BasicProperties::default())
        .await;
    vh.publish("orders.x", "placed", b"o2", BasicProperties::default())
        .await;
    for _ in 0..2 {
        let d = vh.next_delivery("orders.work").await;
        d.nack(BasicNackOptions {
            requeue: false,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    app.wait_for_messages("trade.error.queue", 4).await;
    app.wait_for_messages("billing_error", 2).await;
    app.wait_for_messages("orders.dlq", 2).await;

    let all = groups(&app, "").await;
    assert_eq!(all.len(), 4, "{all:#?}");
    let by_reason = |r: &str| {
        all.iter()
            .find(|g| g["reason"] == r)
            .unwrap_or_else(|| panic!("{r}: {all:#?}"))
    };
    let ise = by_reason("IllegalStateException: Listener threw: Trade # rejected");
    assert_eq!(ise["count"], 3);
    assert_eq!(ise["failed"], 3);
    assert_eq!(ise["service"], "trade");
    assert_eq!(ise["exception_type"], "java.lang.IllegalStateException");
    assert_eq!(
        ise["arrivals_24h"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .sum::<i64>(),
        3
    );
    assert_eq!(
        by_reason("NullPointerException: Listener threw: Trade # rejected")["count"],
        1
    );
    let mt = by_reason("TimeoutException: Payment of # EUR timed out");
    assert_eq!(mt["count"], 2);
    assert_eq!(mt["service"], "billing");
    assert_eq!(by_reason("rejected from orders.x / placed")["count"], 2);

    // Drill into a group; filters combine.
    let id = ise["id"].as_str().unwrap();
    let (_, page) = app.get(&format!("/api/v1/messages?group={id}")).await;
    assert_eq!(page["total"], 3);
    assert!(page["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["group_id"] == id));
    let (_, page) = app
        .get(&format!("/api/v1/messages?group={id}&q=Trade%2022"))
        .await;
    assert_eq!(page["total"], 1);
    let (_, page) = app.get("/api/v1/messages?service=billing").await;
    assert_eq!(page["total"], 2);
    let (_, page) = app
        .get("/api/v1/messages?from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(page["total"], 8);
    let (_, page) = app.get("/api/v1/messages?to=2000-01-01T00:00:00Z").await;
    assert_eq!(page["total"], 0);
    let (status, body) = app.get("/api/v1/messages?from=yesterday").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("RFC 3339"));

    // Status changes show in the group's counts.
    let first = page_ids(&app, &format!("/api/v1/messages?group={id}")).await[0];
    app.post(&format!("/api/v1/messages/{first}/discard"), None).await;
    let ise = groups(&app, "?queue=trade.error.queue").await;
    let g = ise.iter().find(|g| g["id"] == id).unwrap();
    assert_eq!(
        (g["failed"].as_i64(), g["discarded"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(groups(&app, "?queue=billing_error").await.len(), 1);
    let (status, _) = app.get("/api/v1/groups?status=bogus").await;
    assert_eq!(status, 400);
    app.stop().await;
}

async fn page_ids(app: &TestApp, path: &str) -> Vec<i64> {
    let (_, page) = app.get(path).await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn notes_and_tags_on_messages_and_groups_are_filterable() {
    let (mut vh, _db, app) = with_queues(&["tagged.error.queue"], &[]).await;
    for (i, reason) in ["Timeout calling pricing", "Timeout calling pricing", "Bad SKU"]
        .iter()
        .enumerate()
    {
        let props = BasicProperties::default()
            .with_message_id(format!("t-{i}").into())
            .with_headers(headers(&[
                ("x-exception-message", s(reason)),
                ("x-original-exchange", s("x")),
            ]));
        vh.publish("", "tagged.error.queue", b"{}", props).await;
    }
    let items = app.wait_for_messages("tagged.error.queue", 3).await;
    let bad_sku = items.iter().find(|m| m["reason"] == "Bad SKU").unwrap()["id"].clone();
    let timeout_group = items.iter().find(|m| m["reason"] != "Bad SKU").unwrap()["group_id"].clone();
    let timeout_group = timeout_group.as_str().unwrap();

    let (status, a) = app
        .post(
            &format!("/api/v1/messages/{bad_sku}/tags"),
            Some(serde_json::json!({"tag": "INC-42"})),
        )
        .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["tags"], serde_json::json!(["INC-42"]));
    app.post(
        &format!("/api/v1/messages/{bad_sku}/tags"),
        Some(serde_json::json!({"tag": " INC-42 "})),
    )
    .await;
    let (_, a) = app
        .post(
            &format!("/api/v1/messages/{bad_sku}/notes"),
            Some(serde_json::json!({"text": "owner: pricing team"})),
        )
        .await;
    assert_eq!(a["tags"].as_array().unwrap().len(), 1, "a tag is set once");
    assert_eq!(a["notes"][0]["text"], "owner: pricing team");
    assert_eq!(a["notes"][0]["actor"], "guest");
    let (_, group_a) = app
        .post(
            &format!("/api/v1/groups/{timeout_group}/tags"),
            Some(serde_json::json!({"tag": "INC-42"})),
        )
        .await;
    assert_eq!(group_a["tags"], serde_json::json!(["INC-42"]));

    let (_, page) = app.get("/api/v1/messages?tag=INC-42").await;
    assert_eq!(page["total"], 3, "tagged directly or through the group");
    let (_, d) = app.get(&format!("/api/v1/messages/{bad_sku}")).await;
    assert_eq!(d["annotations"]["notes"][0]["text"], "owner: pricing team");
    let (_, gs) = app.get("/api/v1/groups").await;
    let g = gs
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == timeout_group)
        .unwrap();
    assert_eq!(g["tags"], serde_json::json!(["INC-42"]));

    let r = app
        .http
        .delete(format!("{}/api/v1/groups/{timeout_group}/tags/INC-42", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, page) = app.get("/api/v1/messages?tag=INC-42").await;
    assert_eq!(page["total"], 1);

    for (path, body, expected) in [
        (
            format!("/api/v1/messages/{bad_sku}/tags"),
            serde_json::json!({"tag": ""}),
            400,
        ),
        (
            format!("/api/v1/messages/{bad_sku}/tags"),
            serde_json::json!({"tag": "x".repeat(65)}),
            400,
        ),
        (
            format!("/api/v1/messages/{bad_sku}/notes"),
            serde_json::json!({"text": "  "}),
            400,
        ),
        (
            format!("/api/v1/messages/{bad_sku}/notes"),
            serde_json::json!({"nope": 1}),
            400,
        ),
        (
            "/api/v1/messages/999999/tags".to_owned(),
            serde_json::json!({"tag": "a"}),
            404,
        ),
        (
            "/api/v1/groups/ffffffffffffffff/notes".to_owned(),
            serde_json::json!({"text": "a"}),
            404,
        ),
    ] {
        let (status, body) = app.post(&path, Some(body)).await;
        assert_eq!(status, expected, "{path}: {body}");
    }
    app.stop().await;
}
