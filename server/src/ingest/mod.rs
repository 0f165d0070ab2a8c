//! Capture: discover watched queues, consume them, store, then ack.
//!
//! The invariant: a delivery is acked only after the transaction holding its
//! row has committed. Anything that goes wrong before the commit leaves the
//! delivery unacked, so the broker redelivers it.

pub mod decode;
pub mod fingerprint;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::broker::{AmqpPool, Management};
use crate::config::Config;
use crate::store::Store;
use decode::{decode, Incoming, NewMessage};

/// How long a partial batch may wait for more deliveries before it is committed.
const LINGER: Duration = Duration::from_millis(25);
/// Pause before a failed consumer is started again by discovery.
const RETRY_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Ingest {
    pub config: Arc<Config>,
    pub store: Store,
    pub management: Management,
    pub amqp: AmqpPool,
}

type QueueKey = (String, String);

impl Ingest {
    async fn watched_queues(&self) -> anyhow::Result<Vec<QueueKey>> {
        let mut found = Vec::new();
        for vhost in self.management.vhost_names(self.config.explicit_vhosts()).await? {
            let queues = self
                .management
                .queues(&vhost)
                .await
                .with_context(|| format!("listing queues of vhost {vhost}"))?;
            found.extend(
                queues
                    .into_iter()
                    .filter(|q| self.config.watch.is_match(&q.name))
                    .map(|q| (q.vhost, q.name)),
            );
        }
        Ok(found)
    }

    /// Runs until `shutdown`: re-discovers watched queues every interval and
    /// keeps one consumer per queue alive. Consumers that ended (queue deleted,
    /// connection lost, database down) are started again on the next round.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut consumers: HashMap<QueueKey, JoinHandle<()>> = HashMap::new();
        loop {
            consumers.retain(|_, handle| !handle.is_finished());
            match self.watched_queues().await {
                Ok(queues) => {
                    for key in queues {
                        if consumers.contains_key(&key) {
                            continue;
                        }
                        tracing::info!(vhost = %key.0, queue = %key.1, "watching queue");
                        let task = self.clone();
                        let token = shutdown.child_token();
                        let (vhost, queue) = key.clone();
                        consumers.insert(
                            key,
                            tokio::spawn(async move {
                                if let Err(e) = task.consume(&vhost, &queue, &token).await {
                                    tracing::warn!(%vhost, %queue, error = ?e, "consumer stopped");
                                    tokio::select! {
                                        _ = token.cancelled() => {}
                                        _ = tokio::time::sleep(RETRY_BACKOFF) => {}
                                    }
                                }
                            }),
                        );
                    }
                }
                Err(e) => tracing::warn!(error = ?e, "queue discovery failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.config.discovery_interval) => {}
            }
        }
        for (_, handle) in consumers {
            let _ = handle.await;
        }
        self.amqp.close_all().await;
    }

    /// Consumes one queue: batches deliveries, commits them, then acks with
    /// `multiple` up to the last stored delivery tag.
    async fn consume(&self, vhost: &str, queue: &str, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let channel = self.amqp.channel(vhost).await.context("opening channel")?;
        let result = self.pump(&channel, vhost, queue, shutdown).await;
        if result.is_err() {
            // Closing the channel hands every unacked delivery back to the queue.
            let _ = channel.close(200, "redrive consumer error".into()).await;
        }
        result
    }

    async fn pump(
        &self,
        channel: &lapin::Channel,
        vhost: &str,
        queue: &str,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        channel
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await?;
        let tag = format!("redrive-{}", uuid::Uuid::new_v4());
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .context("basic.consume")?;

        let mut batch: Vec<NewMessage> = Vec::with_capacity(self.config.batch_size);
        let mut last_tag = 0;
        // Set when a batch gets its first message, so a trickle cannot delay a commit.
        let mut deadline = tokio::time::Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    self.flush(channel, &mut batch, last_tag).await?;
                    // Unacked deliveries beyond this point are requeued by the broker.
                    let _ = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
                    let _ = channel.close(200, "shutdown".into()).await;
                    return Ok(());
                }
                next = consumer.next() => match next {
                    Some(delivery) => {
                        let delivery = delivery.context("delivery")?;
                        last_tag = delivery.delivery_tag;
                        if batch.is_empty() {
                            deadline = tokio::time::Instant::now() + LINGER;
                        }
                        batch.push(decode(
                            Incoming {
                                vhost: vhost.to_owned(),
                                queue: queue.to_owned(),
                                exchange: delivery.exchange.to_string(),
                                routing_key: delivery.routing_key.to_string(),
                                redelivered: delivery.redelivered,
                                properties: delivery.properties,
                                body: delivery.data,
                            },
                            OffsetDateTime::now_utc(),
                        ));
                        if batch.len() >= self.config.batch_size {
                            self.flush(channel, &mut batch, last_tag).await?;
                        }
                    }
                    None => {
                        self.flush(channel, &mut batch, last_tag).await?;
                        anyhow::bail!("consumer cancelled by the broker (queue deleted?)");
                    }
                },
                _ = tokio::time::sleep_until(deadline), if !batch.is_empty() => {
                    self.flush(channel, &mut batch, last_tag).await?;
                }
            }
        }
    }

    async fn flush(
        &self,
        channel: &lapin::Channel,
        batch: &mut Vec<NewMessage>,
        last_tag: u64,
    ) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let stored = self
            .store
            .insert_batch(batch)
            .await
            .context("storing a batch (deliveries stay unacked and will be redelivered)")?;
        tracing::debug!(received = batch.len(), stored, "batch committed");
        batch.clear();
        channel
            .basic_ack(last_tag, BasicAckOptions { multiple: true })
            .await
            .context("ack after commit")?;
        Ok(())
    }
}
