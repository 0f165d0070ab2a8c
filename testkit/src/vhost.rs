//! A vhost of one run's own on the local broker, with `guest` granted
//! everything in it: declare, publish with confirms, read exact depths.

use anyhow::{bail, Context};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::json;

use crate::{amqp_url, enc, random_name, Mgmt};

/// A scratch vhost. [`Vhost::remove`] deletes it (and everything in it);
/// a test harness may instead delete it on drop with
/// [`Mgmt::delete_blocking`].
pub struct Vhost {
    pub name: String,
    pub mgmt: Mgmt,
    conn: Option<Connection>,
}

impl Vhost {
    /// A new vhost named `prefix-<random>`.
    pub async fn create(prefix: &str) -> anyhow::Result<Self> {
        Self::named(random_name(prefix)).await
    }

    /// A new vhost under `name`, which must be unique.
    pub async fn named(name: String) -> anyhow::Result<Self> {
        let mgmt = Mgmt::default();
        mgmt.put(&format!("vhosts/{}", enc(&name)), json!({}))
            .await
            .context("creating the vhost")?;
        mgmt.put(
            &format!("permissions/{}/guest", enc(&name)),
            json!({"configure": ".*", "write": ".*", "read": ".*"}),
        )
        .await
        .context("granting guest the vhost")?;
        Ok(Self {
            name,
            mgmt,
            conn: None,
        })
    }

    pub fn amqp_url(&self) -> String {
        amqp_url(&self.name)
    }

    /// The vhost's connection, reconnecting when the last one was closed
    /// (by a fault, say).
    pub async fn connection(&mut self) -> anyhow::Result<&Connection> {
        if self.conn.as_ref().is_none_or(|c| !c.status().connected()) {
            let conn = Connection::connect(&self.amqp_url(), ConnectionProperties::default())
                .await
                .context("connecting to the broker")?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_ref().expect("connected above"))
    }

    /// A new channel on the vhost's connection.
    pub async fn channel(&mut self) -> anyhow::Result<Channel> {
        Ok(self.connection().await?.create_channel().await?)
    }

    /// A new channel in confirm mode.
    pub async fn confirming_channel(&mut self) -> anyhow::Result<Channel> {
        let ch = self.channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(ch)
    }

    /// Declares a durable exchange.
    pub async fn declare_exchange(&mut self, name: &str, kind: ExchangeKind) -> anyhow::Result<()> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let ch = self.channel().await?;
        ch.exchange_declare(name.into(), kind, durable, FieldTable::default())
            .await?;
        Ok(())
    }

    /// Declares a durable queue with `args`.
    pub async fn declare_queue(&mut self, name: &str, args: FieldTable) -> anyhow::Result<()> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let ch = self.channel().await?;
        ch.queue_declare(name.into(), durable, args).await?;
        Ok(())
    }

    pub async fn bind(&mut self, queue: &str, exchange: &str, key: &str) -> anyhow::Result<()> {
        let ch = self.channel().await?;
        ch.queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        Ok(())
    }

    /// Declares a direct exchange, a durable queue and the binding between
    /// them: the shape of Spring's error topology and of a service's queue.
    pub async fn declare_route(&mut self, exchange: &str, queue: &str, key: &str) -> anyhow::Result<()> {
        self.declare_exchange(exchange, ExchangeKind::Direct).await?;
        self.declare_queue(queue, FieldTable::default()).await?;
        self.bind(queue, exchange, key).await
    }

    /// Publishes one message, `mandatory` and confirmed: on return it is in
    /// a queue, or this is an error.
    pub async fn publish(
        &mut self,
        exchange: &str,
        key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> anyhow::Result<()> {
        let ch = self.confirming_channel().await?;
        let mandatory = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirm = ch
            .basic_publish(exchange.into(), key.into(), mandatory, body, props)
            .await?
            .await?;
        let _ = ch.close(200, "published".into()).await;
        if !confirm.is_ack() || confirm.take_message().is_some() {
            bail!("a test publish to {exchange:?} with key {key:?} was not routed");
        }
        Ok(())
    }

    /// [`publish_all`] on a new confirming channel.
    pub async fn publish_all(
        &mut self,
        exchange: &str,
        key: &str,
        messages: impl IntoIterator<Item = (Vec<u8>, BasicProperties)>,
    ) -> anyhow::Result<()> {
        let ch = self.confirming_channel().await?;
        publish_all(&ch, exchange, key, messages).await?;
        let _ = ch.close(200, "published".into()).await;
        Ok(())
    }

    /// [`depth`] on a new channel.
    pub async fn depth(&mut self, queue: &str) -> anyhow::Result<u32> {
        let ch = self.channel().await?;
        let n = depth(&ch, queue)
            .await
            .with_context(|| format!("in vhost {}", self.name))?;
        let _ = ch.close(200, "depth".into()).await;
        Ok(n)
    }

    /// Takes up to `n` messages off `queue`, auto-acked, in queue order
    /// (fewer when it runs out).
    pub async fn take(&mut self, queue: &str, n: usize) -> anyhow::Result<Vec<lapin::message::Delivery>> {
        let ch = self.channel().await?;
        let mut out = Vec::new();
        while out.len() < n {
            match ch
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await?
            {
                Some(got) => out.push(got.delivery),
                None => break,
            }
        }
        let _ = ch.close(200, "taken".into()).await;
        Ok(out)
    }

    /// Management API `GET` of `queues/{vhost}/{queue}`.
    pub async fn queue_info(&self, queue: &str) -> anyhow::Result<serde_json::Value> {
        Ok(self
            .mgmt
            .get(&format!("queues/{}/{}", enc(&self.name), enc(queue)))
            .await?
            .1)
    }

    /// Closes the connection and deletes the vhost.
    pub async fn remove(mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close(200, "done".into()).await;
        }
        let _ = self.mgmt.delete(&format!("vhosts/{}", enc(&self.name))).await;
    }
}

/// Publishes every message `messages` yields on `ch` (in confirm mode),
/// waiting for the broker's confirms every 500 and at the end: fast
/// enough for a benchmark's fill, and an error if any was refused.
pub async fn publish_all(
    ch: &Channel,
    exchange: &str,
    key: &str,
    messages: impl IntoIterator<Item = (Vec<u8>, BasicProperties)>,
) -> anyhow::Result<()> {
    for (i, (body, props)) in messages.into_iter().enumerate() {
        ch.basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            &body,
            props,
        )
        .await?;
        if i % 500 == 499 && !ch.wait_for_confirms().await?.is_empty() {
            bail!("a test publish was returned");
        }
    }
    if !ch.wait_for_confirms().await?.is_empty() {
        bail!("a test publish was returned");
    }
    Ok(())
}

/// Messages in `queue` (ready and unacked) as the broker counts them, read
/// by passive declare so it is exact, not a sampled statistic.
pub async fn depth(ch: &Channel, queue: &str) -> anyhow::Result<u32> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let q = ch
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .with_context(|| format!("queue {queue}"))?;
    Ok(q.message_count())
}
