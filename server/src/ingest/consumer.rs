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
use super::window::Window;
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
    /// The consumer's prefetch count, re-stated to confirm an ack.
    prefetch: u16,
}

impl Batch {
    fn push(&mut self, delivery: lapin::message::Delivery, vhost: &str, queue: &str) {
        self.last_tag = delivery.delivery_tag;
        self.bytes += delivery.data.len();
        self.messages.push(decode(
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
    }
}

/// Sets the prefetch count and starts a consumer with a fresh Redrive tag.
async fn subscribe(
    channel: &lapin::Channel,
    queue: &str,
    prefetch: u16,
) -> anyhow::Result<(String, lapin::Consumer)> {
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .context("basic.qos")?;
    let tag = format!("{CONSUMER_TAG_PREFIX}{}", uuid::Uuid::new_v4());
    let consumer = channel
        .basic_consume(
            queue.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .context("basic.consume")?;
    Ok((tag, consumer))
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
        let mut window = Window::new(self.config.prefetch, self.config.inflight_bytes);
        let (mut tag, mut consumer) = subscribe(channel, queue, window.current()).await?;
        self.status.set(vhost, queue, ConsumerState::Connected, None);

        let mut batch = Batch {
            messages: Vec::with_capacity(self.config.batch_size),
            bytes: 0,
            last_tag: 0,
            prefetch: window.current(),
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
                        let resize = window.observe(delivery.data.len());
                        batch.push(delivery, vhost, queue);
                        // A full window sends nothing more until this batch is acked.
                        let limit = self.config.batch_size.min(usize::from(window.current()));
                        if batch.messages.len() >= limit || batch.bytes >= self.config.batch_bytes {
                            self.flush(channel, &mut batch, stop).await?;
                        }
                        if let Some(prefetch) = resize {
                            (tag, consumer) = self
                                .resubscribe(channel, (tag, consumer), &mut batch, prefetch, (vhost, queue), stop)
                                .await?;
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

    /// Moves the subscription to a new prefetch count without handing any
    /// delivery back: cancel, take and commit what the broker had already
    /// sent, then consume again. (A per-consumer prefetch applies only to
    /// consumers started after it; a channel-wide one is refused by quorum
    /// queues.)
    async fn resubscribe(
        &self,
        channel: &lapin::Channel,
        (tag, mut consumer): (String, lapin::Consumer),
        batch: &mut Batch,
        prefetch: u16,
        (vhost, queue): (&str, &str),
        stop: &CancellationToken,
    ) -> anyhow::Result<(String, lapin::Consumer)> {
        tracing::debug!(%vhost, %queue, prefetch, "resizing the prefetch window");
        channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await
            .context("basic.cancel")?;
        while let Some(delivery) = consumer.next().await {
            batch.push(delivery.context("delivery")?, vhost, queue);
            if batch.bytes >= self.config.batch_bytes {
                self.flush(channel, batch, stop).await?;
            }
        }
        self.flush(channel, batch, stop).await?;
        batch.prefetch = prefetch;
        subscribe(channel, queue, prefetch).await
    }

    /// Commits the batch (unsettled), settles it, acks it with `multiple`
    /// and confirms the ack with a round trip on the channel; when the ack
    /// or its confirmation fails, the batch is unsettled again, so the
    /// copies the broker redelivers are recognised (see `store::ingest`).
    async fn flush(
        &self,
        channel: &lapin::Channel,
        batch: &mut Batch,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        if batch.messages.is_empty() {
            return Ok(());
        }
        let held = batch.messages.len();
        let window = self.config.redelivery_window;
        let committed = self
            .durably(held, stop, || self.store.insert_batch(&batch.messages, window))
            .await?;
        tracing::debug!(received = held, stored = committed.stored, "batch committed");
        batch.messages.clear();
        batch.bytes = 0;
        if let Some(ids) = &committed.ids {
            self.durably(held, stop, || self.store.set_ack_unsettled(ids, false))
                .await?;
        }
        let acked = async {
            channel
                .basic_ack(batch.last_tag, BasicAckOptions { multiple: true })
                .await?;
            // The broker handles a channel's methods in order: its answer to
            // this one means it has processed the ack. (The prefetch is set
            // again before every consume, so re-stating it changes nothing.)
            channel
                .basic_qos(batch.prefetch, BasicQosOptions::default())
                .await
        }
        .await;
        if let Err(e) = acked {
            if let Some(ids) = &committed.ids {
                if let Err(e) = self.store.set_ack_unsettled(ids, true).await {
                    tracing::warn!(error = %e, "could not mark an unconfirmed ack; its redelivered copies will be stored again");
                }
            }
            return Err(e).context("ack after commit (the redelivered copies will be recognised)");
        }
        Ok(())
    }

    /// Runs a database write, retrying with backoff while the database
    /// fails: the deliveries stay unacked and no more are taken meanwhile
    /// (the prefetch window is full). Gives up only when Redrive is stopping.
    async fn durably<T, F, Fut>(
        &self,
        held: usize,
        stop: &CancellationToken,
        mut write: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, crate::store::StoreError>>,
    {
        let mut wait = COMMIT_RETRY_FIRST;
        loop {
            match write().await {
                Ok(done) => {
                    if let Some(ms) = self.status.database_ok() {
                        tracing::info!(outage_ms = ms, "database commits succeed again; capture resumed");
                    }
                    return Ok(done);
                }
                Err(e) => {
                    let error = e.to_string();
                    if self.status.database_failed(error.clone()) {
                        tracing::error!(%error, held, "database commit failed; holding the deliveries unacked and retrying");
                    } else {
                        tracing::debug!(%error, "database commit still failing");
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => anyhow::bail!(
                    "stopping while the database fails: {held} deliveries go back to the queue unacked"
                ),
                _ = tokio::time::sleep(jittered(wait)) => {}
            }
            wait = (wait * 2).min(COMMIT_RETRY_CAP);
        }
    }
}
