//! One supervised consumer per watched queue.
//!
//! The supervisor reconnects with capped exponential backoff and jitter, the
//! first retry well under a second, so capture resumes within moments of a
//! connection the broker closed. A database that cannot commit never makes
//! it close a channel: closing requeues every unacked delivery, and each
//! requeue counts towards a quorum queue's delivery-limit, so a loop of them
//! would drop messages. It holds the deliveries and retries the commit.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use anyhow::Context;
use app::model::ConsumerState;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::classify::CONSUMER_TAG_PREFIX;
use super::decode::{decode, Incoming, NewMessage};
use super::Ingest;

/// How long a partial batch may wait for more deliveries before it is committed.
const LINGER: Duration = Duration::from_millis(25);
/// First reconnect delay, and the cap the delay doubles up to.
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
const RECONNECT_CAP: Duration = Duration::from_secs(5);
/// A consumer that ran this long before failing starts its backoff afresh.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);
/// First and longest wait between attempts to commit a batch.
const COMMIT_RETRY_FIRST: Duration = Duration::from_millis(100);
const COMMIT_RETRY_CAP: Duration = Duration::from_secs(10);

/// `base` ± 25 %, so consumers of one vhost do not reconnect in lockstep.
pub(crate) fn jittered(base: Duration) -> Duration {
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let factor = 0.75 + (r % 1000) as f64 / 2000.0;
    base.mul_f64(factor)
}

/// Deliveries taken but not yet committed.
struct Batch {
    messages: Vec<NewMessage>,
    bytes: usize,
    last_tag: u64,
}

impl Ingest {
    /// Keeps a consumer on `vhost`/`queue` until `stop`.
    pub(super) async fn supervise(self, vhost: String, queue: String, stop: CancellationToken) {
        let mut delay = RECONNECT_FIRST;
        self.status.set(&vhost, &queue, ConsumerState::Starting, None);
        loop {
            let started = Instant::now();
            let error = match self.consume(&vhost, &queue, &stop).await {
                Ok(()) => return,
                Err(e) => format!("{e:#}"),
            };
            if stop.is_cancelled() {
                return;
            }
            if started.elapsed() >= HEALTHY_AFTER {
                delay = RECONNECT_FIRST;
            }
            let wait = jittered(delay);
            tracing::warn!(%vhost, %queue, %error, retry_in_ms = wait.as_millis() as u64, "capture interrupted; reconnecting");
            self.status
                .set(&vhost, &queue, ConsumerState::Reconnecting, Some(error));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            delay = (delay * 2).min(RECONNECT_CAP);
        }
    }

    /// Consumes one queue until `stop` (Ok) or a broker or connection error.
    async fn consume(&self, vhost: &str, queue: &str, stop: &CancellationToken) -> anyhow::Result<()> {
        let channel = self.amqp.channel(vhost).await.context("opening a channel")?;
        let result = self.pump(&channel, vhost, queue, stop).await;
        if result.is_err() && channel.status().connected() {
            // Only broker-side trouble gets here (never a database fault):
            // closing hands the unacked deliveries back to the queue.
            let _ = channel.close(200, "redrive consumer error".into()).await;
        }
        result
    }

    async fn pump(
        &self,
        channel: &lapin::Channel,
        vhost: &str,
        queue: &str,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        channel
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await?;
        let tag = format!("{CONSUMER_TAG_PREFIX}{}", uuid::Uuid::new_v4());
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .context("basic.consume")?;
        self.status.set(vhost, queue, ConsumerState::Connected, None);

        let mut batch = Batch {
            messages: Vec::with_capacity(self.config.batch_size),
            bytes: 0,
            last_tag: 0,
        };
        // Set when a batch gets its first message, so a trickle cannot delay a commit.
        let mut deadline = Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => {
                    // What is in hand is committed and acked; deliveries the
                    // broker sent after this point go back to the queue.
                    let flushed = self.flush(channel, &mut batch, stop).await;
                    let _ = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
                    let _ = channel.close(200, "shutdown".into()).await;
                    return flushed;
                }
                next = consumer.next() => match next {
                    Some(delivery) => {
                        let delivery = delivery.context("delivery")?;
                        if batch.messages.is_empty() {
                            deadline = Instant::now() + LINGER;
                        }
                        batch.last_tag = delivery.delivery_tag;
                        batch.bytes += delivery.data.len();
                        batch.messages.push(decode(
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
                        if batch.messages.len() >= self.config.batch_size || batch.bytes >= self.config.batch_bytes {
                            self.flush(channel, &mut batch, stop).await?;
                        }
                    }
                    None => {
                        self.flush(channel, &mut batch, stop).await?;
                        anyhow::bail!("consumer cancelled by the broker or its connection closed");
                    }
                },
                _ = tokio::time::sleep_until(deadline), if !batch.messages.is_empty() => {
                    self.flush(channel, &mut batch, stop).await?;
                }
            }
        }
    }

    /// Commits the batch, then acks it with `multiple`.
    async fn flush(
        &self,
        channel: &lapin::Channel,
        batch: &mut Batch,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        if batch.messages.is_empty() {
            return Ok(());
        }
        let stored = self.commit(&batch.messages, stop).await?;
        tracing::debug!(received = batch.messages.len(), stored, "batch committed");
        batch.messages.clear();
        batch.bytes = 0;
        channel
            .basic_ack(batch.last_tag, BasicAckOptions { multiple: true })
            .await
            .context("ack after commit (a redelivered copy will be recognised)")?;
        Ok(())
    }

    /// Commits, retrying with backoff while the database fails: the
    /// deliveries stay unacked and no more are taken meanwhile (the prefetch
    /// window is full). Gives up only when Redrive is stopping.
    async fn commit(&self, messages: &[NewMessage], stop: &CancellationToken) -> anyhow::Result<usize> {
        let mut wait = COMMIT_RETRY_FIRST;
        loop {
            match self
                .store
                .insert_batch(messages, self.config.redelivery_window)
                .await
            {
                Ok(stored) => {
                    if let Some(ms) = self.status.database_ok() {
                        tracing::info!(outage_ms = ms, "database commits succeed again; capture resumed");
                    }
                    return Ok(stored);
                }
                Err(e) => {
                    let error = e.to_string();
                    if self.status.database_failed(error.clone()) {
                        tracing::error!(%error, held = messages.len(), "database commit failed; holding the deliveries unacked and retrying");
                    } else {
                        tracing::debug!(%error, "database commit still failing");
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => anyhow::bail!(
                    "stopping while the database fails: {} deliveries go back to the queue unacked",
                    messages.len()
                ),
                _ = tokio::time::sleep(jittered(wait)) => {}
            }
            wait = (wait * 2).min(COMMIT_RETRY_CAP);
        }
    }
}
