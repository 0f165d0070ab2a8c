//! One supervised consumer per watched queue.
//!
//! The supervisor reconnects with capped exponential backoff and jitter, the
//! first retry well under a second, so capture resumes within moments of a
//! connection the broker closed. A database that cannot commit never makes
//! it close a channel: closing requeues every unacked delivery, and each
//! requeue counts towards a quorum queue's delivery-limit, so a loop of them
//! would drop messages. It holds the deliveries and retries the commit.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use app::model::ConsumerState;
use futures::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::commit::STOP_TIMEOUT;
use super::decode::{decode, Incoming};
use super::plan::{AtMarker, Plan};
use super::window::Window;
use super::Ingest;
use crate::domain::{NewMessage, Origin};
use crate::topology::CONSUMER_TAG_PREFIX;

/// How long a partial batch may wait for more deliveries before it is committed.
const LINGER: Duration = Duration::from_millis(25);
/// A consumer that ran this long before failing starts its backoff afresh.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// Batches handed to the committing side and not yet taken: one commits
/// while one waits and a third fills, so the prefetch window must hold
/// about three batches (see `batch_limit`).
const PIPELINE: usize = 1;

/// Messages per batch: the configured size, or a third of a prefetch window
/// that large messages shrank, so a batch can commit while the next fills.
fn batch_limit(batch_size: usize, window: u16) -> usize {
    batch_size.min(usize::from(window) / 3).max(1)
}

/// What the receiving side hands to the committing side.
pub(super) enum Work {
    Batch(Batch),
    /// Answered once every batch sent before it is committed and acked.
    Drained(oneshot::Sender<()>),
}

/// Why a consumer stopped receiving.
enum Ended {
    Stopping,
    ByBroker,
}

/// Deliveries taken but not yet committed.
pub(super) struct Batch {
    pub(super) messages: Vec<NewMessage>,
    pub(super) bytes: usize,
    pub(super) last_tag: u64,
    /// The consumer's prefetch count, re-stated to confirm an ack.
    pub(super) prefetch: u16,
}

impl Batch {
    fn new(prefetch: u16, capacity: usize) -> Self {
        Self {
            messages: Vec::with_capacity(capacity),
            bytes: 0,
            last_tag: 0,
            prefetch,
        }
    }

    /// Sends what is in hand to be committed (nothing when empty) and starts
    /// a new batch. Waits while a batch is already waiting (back-pressure).
    pub(super) async fn hand_over(&mut self, to_commit: &mpsc::Sender<Work>) -> anyhow::Result<()> {
        if self.messages.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(self, Batch::new(self.prefetch, self.messages.capacity()));
        to_commit
            .send(Work::Batch(full))
            .await
            .map_err(|_| anyhow::anyhow!("the committing side stopped"))
    }

    /// Takes a delivery of `plan`'s source, filed under its watched queue.
    fn push(&mut self, delivery: lapin::message::Delivery, plan: &Plan, origin: Origin) {
        self.last_tag = delivery.delivery_tag;
        self.bytes += delivery.data.len();
        let mut message = decode(
            Incoming {
                vhost: plan.vhost.clone(),
                queue: plan.filed.clone(),
                exchange: delivery.exchange.to_string(),
                routing_key: delivery.routing_key.to_string(),
                redelivered: delivery.redelivered,
                properties: delivery.properties,
                body: delivery.data,
            },
            OffsetDateTime::now_utc(),
        );
        message.origin = origin;
        self.messages.push(message);
    }
}

/// Waits until every batch handed over before is committed and acked.
pub(super) async fn drained(to_commit: &mpsc::Sender<Work>) -> anyhow::Result<()> {
    let (done, drained) = oneshot::channel();
    to_commit
        .send(Work::Drained(done))
        .await
        .map_err(|_| anyhow::anyhow!("the committing side stopped"))?;
    drained.await.context("the committing side stopped")
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
    /// Keeps a consumer on `plan`'s source until `stop`, or until it
    /// reaches the marker it stops at.
    pub(super) async fn supervise(self, plan: Arc<Plan>, stop: CancellationToken) {
        let mut waits = crate::retry::Waits::new(crate::retry::reconnect());
        let (vhost, queue) = (plan.vhost.as_str(), plan.filed.as_str());
        self.status.set(vhost, queue, ConsumerState::Starting, None);
        loop {
            let started = Instant::now();
            let error = match self.consume(&plan, &stop).await {
                Ok(()) => return,
                Err(e) => format!("{e:#}"),
            };
            if stop.is_cancelled() {
                return;
            }
            if started.elapsed() >= HEALTHY_AFTER {
                waits = crate::retry::Waits::new(crate::retry::reconnect());
            }
            let wait = waits.next_wait();
            tracing::warn!(%vhost, %queue, source = %plan.source, %error, retry_in_ms = wait.as_millis() as u64, "capture interrupted; reconnecting");
            self.status
                .set(vhost, queue, ConsumerState::Reconnecting, Some(error));
            self.metrics.reconnecting(vhost, queue);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Consumes one queue until `stop` (Ok) or a broker or connection error.
    #[tracing::instrument(name = "capture", skip_all, fields(vhost = %plan.vhost, queue = %plan.source))]
    async fn consume(&self, plan: &Plan, stop: &CancellationToken) -> anyhow::Result<()> {
        let channel = self
            .amqp
            .channel(&plan.vhost)
            .await
            .context("opening a channel")?;
        let result = self.pump(&channel, plan, stop).await;
        if result.is_err() && channel.status().connected() {
            // Only broker-side trouble gets here (never a database fault):
            // closing hands the unacked deliveries back to the queue.
            let close = channel.close(200, "redrive consumer error".into());
            let _ = tokio::time::timeout(STOP_TIMEOUT, close).await;
        }
        result
    }

    /// Receives and commits at once: one loop takes deliveries into
    /// batches while the other commits and acks the batch before, so the
    /// broker, the decoding and the database work side by side instead of
    /// in turn. Acks still go out in delivery order, each after its commit.
    async fn pump(
        &self,
        channel: &lapin::Channel,
        plan: &Plan,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        let (vhost, queue) = (plan.vhost.as_str(), plan.source.as_str());
        let (to_commit, committing) = mpsc::channel(PIPELINE);
        let (tag, ended) = tokio::try_join!(
            self.receive(channel, plan, to_commit, stop),
            self.commit_all(channel, committing, stop),
        )?
        .0;
        match ended {
            Ended::Stopping => {
                // Deliveries the broker sent after the last batch go back to the queue.
                let cancel = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default());
                if tokio::time::timeout(STOP_TIMEOUT, cancel).await.is_err() {
                    tracing::warn!(%vhost, %queue, "the broker did not answer basic.cancel; stopping anyway");
                }
                let close = channel.close(200, "shutdown".into());
                let _ = tokio::time::timeout(STOP_TIMEOUT, close).await;
                Ok(())
            }
            Ended::ByBroker => anyhow::bail!("consumer cancelled by the broker or its connection closed"),
        }
    }

    /// Takes deliveries into batches and hands each full (or lingering)
    /// batch to `commit_all`. Returns the consumer tag and why it ended.
    async fn receive(
        &self,
        channel: &lapin::Channel,
        plan: &Plan,
        to_commit: mpsc::Sender<Work>,
        stop: &CancellationToken,
    ) -> anyhow::Result<(String, Ended)> {
        let mut window = Window::new(self.config.capture.prefetch, self.config.capture.inflight_bytes);
        let mut adopting = self.adoption_window(channel, plan, stop).await?;
        let (mut tag, mut consumer) = subscribe(channel, &plan.source, window.current()).await?;
        self.status
            .set(&plan.vhost, &plan.filed, ConsumerState::Connected, None);
        let mut batch = Batch::new(window.current(), self.config.capture.batch_size);
        // Set when a batch gets its first message, so a trickle cannot delay a commit.
        let mut deadline = Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => {
                    // What is in hand is committed and acked.
                    batch.hand_over(&to_commit).await?;
                    return Ok((tag, Ended::Stopping));
                }
                next = consumer.next() => match next {
                    Some(delivery) => {
                        let delivery = delivery.context("delivery")?;
                        if let Some(marker) = super::switch::marker_of(&delivery) {
                            match self.at_marker(channel, plan, &marker, &delivery, &mut batch, &to_commit, stop).await? {
                                AtMarker::Stop => return Ok((tag, Ended::Stopping)),
                                // Fewer originals than the queue held came
                                // (the service took some): the rest are new.
                                AtMarker::EndPairing if adopting > 0 => {
                                    adopting = 0;
                                    self.adoption_done(plan, stop).await?;
                                }
                                _ => {}
                            }
                            continue;
                        }
                        if plan.skipping() {
                            super::switch::drop_copy(channel, &delivery).await?;
                            continue;
                        }
                        if batch.messages.is_empty() {
                            deadline = Instant::now() + LINGER;
                        }
                        let resize = window.observe(delivery.data.len());
                        batch.push(delivery, plan, plan.origin(adopting > 0));
                        if adopting > 0 {
                            adopting -= 1;
                            if adopting == 0 {
                                batch.hand_over(&to_commit).await?;
                                drained(&to_commit).await?;
                                self.adoption_done(plan, stop).await?;
                            }
                        }
                        if batch.messages.len() >= batch_limit(self.config.capture.batch_size, window.current())
                            || batch.bytes >= self.config.capture.batch_bytes
                        {
                            batch.hand_over(&to_commit).await?;
                        }
                        if let Some(prefetch) = resize {
                            let was_adopting = adopting > 0;
                            (tag, consumer) = self
                                .resubscribe(channel, (tag, consumer), (&mut batch, &mut adopting), prefetch, plan, &to_commit)
                                .await?;
                            if was_adopting && adopting == 0 {
                                self.adoption_done(plan, stop).await?;
                            }
                        }
                    }
                    None => {
                        batch.hand_over(&to_commit).await?;
                        return Ok((tag, Ended::ByBroker));
                    }
                },
                _ = tokio::time::sleep_until(deadline), if !batch.messages.is_empty() => {
                    batch.hand_over(&to_commit).await?;
                }
            }
        }
    }

    /// Commits and acks batches in the order they come, until the receiving
    /// side is done.
    async fn commit_all(
        &self,
        channel: &lapin::Channel,
        mut committing: mpsc::Receiver<Work>,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        while let Some(work) = committing.recv().await {
            match work {
                Work::Batch(mut batch) => self.flush(channel, &mut batch, stop).await?,
                Work::Drained(done) => {
                    let _ = done.send(());
                }
            }
        }
        Ok(())
    }

    /// Moves the subscription to a new prefetch count without handing any
    /// delivery back: cancel, take and commit what the broker had already
    /// sent, then consume again. (A per-consumer prefetch applies only to
    /// consumers started after it; a channel-wide one is refused by quorum
    /// queues.) Every batch is acked before the new consumer starts: the
    /// acks re-state the old prefetch (see `flush`).
    async fn resubscribe(
        &self,
        channel: &lapin::Channel,
        (tag, mut consumer): (String, lapin::Consumer),
        (batch, adopting): (&mut Batch, &mut u64),
        prefetch: u16,
        plan: &Plan,
        to_commit: &mpsc::Sender<Work>,
    ) -> anyhow::Result<(String, lapin::Consumer)> {
        tracing::debug!(vhost = %plan.vhost, queue = %plan.source, prefetch, "resizing the prefetch window");
        channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await
            .context("basic.cancel")?;
        // What the broker had sent is taken as `receive` would take it. A
        // marker, and whatever came after it, goes back to the queue in its
        // place, to be met by the new consumer.
        let mut after_marker = false;
        while let Some(delivery) = consumer.next().await {
            let delivery = delivery.context("delivery")?;
            after_marker |= super::switch::marker_of(&delivery).is_some();
            if after_marker {
                super::switch::give_back(channel, &delivery).await?;
                continue;
            }
            if plan.skipping() {
                super::switch::drop_copy(channel, &delivery).await?;
                continue;
            }
            batch.push(delivery, plan, plan.origin(*adopting > 0));
            *adopting = adopting.saturating_sub(1);
            if batch.bytes >= self.config.capture.batch_bytes {
                batch.hand_over(to_commit).await?;
            }
        }
        batch.hand_over(to_commit).await?;
        drained(to_commit).await?;
        batch.prefetch = prefetch;
        subscribe(channel, &plan.source, prefetch).await
    }
}
