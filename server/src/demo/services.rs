//! The demo's simulated services: a storefront publishing business events,
//! and consumers that fail the way Spring services on RabbitMQ do.
//!
//! Every choice is made from a message's sequence number, not at random, so
//! a run fails the same way each time and the integration test can rely on
//! every kind of failure appearing within seconds.

use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tokio_util::sync::CancellationToken;

use super::failures::{published, recovered, Exception, Origin};
use super::topology::{ERROR_EXCHANGE, EVENTS, ORDERS_DELAY};
use crate::broker::AmqpPool;
use crate::ingest::decode::REPLAY_ID_HEADER;
use crate::replay::publish_confirmed;

const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// What a service does with one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ack,
    /// Retries ran out: Spring's recoverer republishes to the error
    /// exchange with this routing key, then the message is acked.
    Recover(Exception, &'static str),
    /// `AmqpRejectAndDontRequeueException`: dead-lettered as `rejected`.
    Reject,
    /// A listener that throws with `default-requeue-rejected=true`: the
    /// message comes straight back, for ever (a poison message).
    Requeue,
    /// A transient failure: sent to the TTL delay queue, retried later.
    RetryLater,
    /// A hung consumer: never acked while the connection lives.
    Hold,
}

/// A consuming service: its queue, pace and failure rule.
struct Consumer {
    name: &'static str,
    queue: &'static str,
    prefetch: u16,
    /// Time spent on each message.
    pause: Duration,
    decide: fn(u64, &Delivery) -> Outcome,
}

fn has_header(d: &Delivery, name: &str) -> bool {
    d.properties
        .headers()
        .as_ref()
        .is_some_and(|h| h.inner().contains_key(name))
}

fn body_has(d: &Delivery, needle: &str) -> bool {
    d.data.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A message Redrive replayed finds the fix deployed: it succeeds.
fn replayed(d: &Delivery) -> bool {
    has_header(d, REPLAY_ID_HEADER)
}

const CONSUMERS: &[Consumer] = &[
    Consumer {
        name: "trade-service",
        queue: "trade-service.trades",
        prefetch: 10,
        pause: Duration::from_millis(20),
        decide: |n, d| match n % 7 {
            _ if replayed(d) => Outcome::Ack,
            1 | 4 => Outcome::Recover(Exception::NoSettlementAccount, "trade-service"),
            3 => Outcome::Recover(Exception::PricingTimeout, "trade-service"),
            _ => Outcome::Ack,
        },
    },
    Consumer {
        name: "pay-service",
        queue: "pay-service.payments",
        prefetch: 10,
        pause: Duration::from_millis(20),
        decide: |n, d| match n % 9 {
            _ if body_has(d, "\"poison\":true") => Outcome::Requeue,
            _ if replayed(d) => Outcome::Ack,
            2 | 6 => Outcome::Recover(Exception::DuplicatePayment, "pay-service"),
            4 => Outcome::Recover(Exception::PricingTimeout, "pay-service"),
            _ => Outcome::Ack,
        },
    },
    Consumer {
        name: "cart-service",
        queue: "cart-service.carts",
        prefetch: 10,
        pause: Duration::from_millis(20),
        decide: |n, d| match n % 4 {
            _ if replayed(d) => Outcome::Ack,
            0 => Outcome::Recover(Exception::UnreadableCart, "cart-service"),
            _ => Outcome::Ack,
        },
    },
    // Slower than the storefront publishes: its backlog outlives the
    // queue's message TTL and expires to notifications.dlq. Its recoverer
    // uses Spring's default key, so failures land in the plain error.queue.
    Consumer {
        name: "notification-service",
        queue: "notifications.work",
        prefetch: 1,
        pause: Duration::from_millis(1000),
        decide: |n, d| match n % 5 {
            _ if replayed(d) => Outcome::Ack,
            0 => Outcome::Recover(Exception::MailRejected, "error"),
            _ => Outcome::Ack,
        },
    },
    Consumer {
        name: "order-service",
        queue: super::topology::ORDERS_WORK,
        prefetch: 10,
        pause: Duration::from_millis(20),
        decide: |n, d| match n % 6 {
            _ if replayed(d) => Outcome::Ack,
            1 => Outcome::Reject,
            // A first attempt only: a retried order carries `x-death`.
            4 if !has_header(d, "x-death") => Outcome::RetryLater,
            _ => Outcome::Ack,
        },
    },
    Consumer {
        name: "inventory-service",
        queue: "inventory.updates",
        prefetch: 1,
        pause: Duration::from_millis(150),
        decide: |_, _| Outcome::Requeue,
    },
    Consumer {
        name: "shipping-service",
        queue: "shipping.requests",
        prefetch: 5,
        pause: Duration::ZERO,
        decide: |_, _| Outcome::Hold,
    },
];

/// Runs every service until `stop` fires; the first to fail ends the demo.
pub async fn run(pool: &AmqpPool, vhost: &str, stop: CancellationToken) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut connections = Vec::new();
    for c in CONSUMERS {
        let conn = connect(pool, vhost, c.name).await?;
        let channel = conn.create_channel().await?;
        connections.push(conn);
        tasks.spawn(consume(c, channel, stop.clone()));
    }
    let storefront = connect(pool, vhost, "storefront").await?;
    let channel = storefront.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    connections.push(storefront);
    tasks.spawn(storefront_events(channel, stop.clone()));
    // A legacy publisher that never turned on confirms (an advisor finding).
    let legacy = connect(pool, vhost, "legacy-billing").await?;
    let channel = legacy.create_channel().await?;
    connections.push(legacy);
    tasks.spawn(legacy_billing(channel, stop.clone()));

    let mut outcome = Ok(());
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done.context("a demo service panicked").and_then(|r| r) {
            outcome = Err(e);
            stop.cancel();
        }
    }
    // Closing returns what the hung shipping-service holds to its queue.
    for conn in connections {
        let _ = conn.close(200, "redrive demo stopping".into()).await;
    }
    outcome
}

async fn connect(pool: &AmqpPool, vhost: &str, service: &str) -> anyhow::Result<Connection> {
    pool.dedicated(vhost, service)
        .await
        .with_context(|| format!("connecting {service} to vhost {vhost}"))
}

async fn consume(c: &'static Consumer, channel: Channel, stop: CancellationToken) -> anyhow::Result<()> {
    channel.basic_qos(c.prefetch, BasicQosOptions::default()).await?;
    // Failures go to the error exchange with confirms, as Spring does.
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut deliveries = channel
        .basic_consume(
            c.queue.into(),
            c.name.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("{} consuming {}", c.name, c.queue))?;
    let mut n = 0u64;
    loop {
        let delivery = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            next = deliveries.next() => match next {
                Some(d) => d?,
                None => return Ok(()),
            },
        };
        n += 1;
        tokio::time::sleep(c.pause).await;
        handle(c, &channel, (c.decide)(n, &delivery), delivery).await?;
    }
}

async fn handle(c: &Consumer, channel: &Channel, outcome: Outcome, d: Delivery) -> anyhow::Result<()> {
    let requeue = |requeue| BasicNackOptions {
        requeue,
        ..Default::default()
    };
    match outcome {
        Outcome::Ack => {
            d.ack(BasicAckOptions::default()).await?;
        }
        Outcome::Recover(exception, key) => {
            let message_id = d.properties.message_id().as_ref().map(|m| m.to_string());
            let business_key = message_id.as_deref().unwrap_or("?");
            let origin = Origin {
                exchange: d.exchange.as_str(),
                routing_key: d.routing_key.as_str(),
            };
            let properties = recovered(&d.properties, exception, c.name, business_key, origin);
            publish_confirmed(
                channel,
                (ERROR_EXCHANGE, key),
                &d.data,
                properties,
                CONFIRM_TIMEOUT,
            )
            .await
            .with_context(|| format!("{} republishing a failure to {ERROR_EXCHANGE}", c.name))?;
            d.ack(BasicAckOptions::default()).await?;
        }
        Outcome::Reject => {
            d.nack(requeue(false)).await?;
        }
        Outcome::Requeue => {
            d.nack(requeue(true)).await?;
        }
        Outcome::RetryLater => {
            publish_confirmed(
                channel,
                ("", ORDERS_DELAY),
                &d.data,
                d.properties.clone(),
                CONFIRM_TIMEOUT,
            )
            .await
            .with_context(|| format!("{} sending a retry to {ORDERS_DELAY}", c.name))?;
            d.ack(BasicAckOptions::default()).await?;
        }
        // Dropping a delivery neither acks nor rejects it: the broker
        // keeps it unacked until the connection closes.
        Outcome::Hold => drop(d),
    }
    Ok(())
}

/// `(routing key, message id prefix, body)` of the storefront's event `n`.
fn event(n: u64) -> (&'static str, String, String) {
    let id = |prefix: &str| format!("{prefix}-{n:06}");
    match n % 6 {
        0 => (
            "trade.executed",
            id("T"),
            format!(
                r#"{{"tradeId":"{}","isin":"CH0012005267","qty":{},"currency":"CHF"}}"#,
                id("T"),
                n % 90 + 10
            ),
        ),
        1 => {
            // Every 25th payment is one the pay-service can never process.
            let poison = n % 25 == 1;
            (
                "payment.requested",
                id("P"),
                format!(
                    r#"{{"paymentId":"{}","amount":"{}.50","poison":{poison}}}"#,
                    id("P"),
                    n % 300
                ),
            )
        }
        2 => (
            "cart.checked-out",
            id("C"),
            format!(
                r#"{{"cartId":"{}","items":{},"couponCode":"WINTER"}}"#,
                id("C"),
                n % 7 + 1
            ),
        ),
        3 => (
            "order.created",
            id("O"),
            format!(
                r#"{{"orderId":"{}","customerId":"cust-{}","total":"{}.90"}}"#,
                id("O"),
                n % 97,
                n % 500
            ),
        ),
        4 => (
            "notification.requested",
            id("N"),
            format!(
                r#"{{"notificationId":"{}","template":"order-shipped","to":"customer-{}@example.com"}}"#,
                id("N"),
                n % 97
            ),
        ),
        _ => (
            "order.created",
            id("O"),
            format!(
                r#"{{"orderId":"{}","customerId":"cust-{}","total":"{}.90"}}"#,
                id("O"),
                n % 89,
                n % 700
            ),
        ),
    }
}

/// About ten events a second, with confirms; one poison inventory
/// update first, which inventory-service requeues for ever.
async fn storefront_events(channel: Channel, stop: CancellationToken) -> anyhow::Result<()> {
    let poison = br#"{"sku":"SKU-0042","delta":"minus-three"}"#;
    publish_confirmed(
        &channel,
        (EVENTS, "inventory.adjusted"),
        poison,
        published("storefront", "I-000001".into()),
        CONFIRM_TIMEOUT,
    )
    .await?;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for n in 1.. {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let (key, id, body) = event(n);
        publish_confirmed(
            &channel,
            (EVENTS, key),
            body.as_bytes(),
            published("storefront", id),
            CONFIRM_TIMEOUT,
        )
        .await
        .with_context(|| format!("storefront publishing {key}"))?;
    }
    Ok(())
}

/// One shipping request a second, fire and forget (no confirms).
async fn legacy_billing(channel: Channel, stop: CancellationToken) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for n in 1u64.. {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let body = format!(r#"{{"shipmentId":"S-{n:06}","carrier":"dhl"}}"#);
        let _unconfirmed = channel
            .basic_publish(
                EVENTS.into(),
                "shipping.requested".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                published("legacy-billing", format!("S-{n:06}")),
            )
            .await?;
    }
    Ok(())
}
