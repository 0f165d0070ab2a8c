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
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::classify::CONSUMER_TAG_PREFIX;
use super::decode::{decode, Incoming, NewMessage};
use super::window::Window;
use super::Ingest;
use crate::store::AckState;

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
enum Work {
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
struct Batch {
    messages: Vec<NewMessage>,
    bytes: usize,
    last_tag: u64,
    /// The consumer's prefetch count, re-stated to confirm an ack.
    prefetch: u16,
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
    async fn hand_over(&mut self, to_commit: &mpsc::Sender<Work>) -> anyhow::Result<()> {
        if self.messages.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(self, Batch::new(self.prefetch, self.messages.capacity()));
        to_commit
            .send(Work::Batch(full))
            .await
            .map_err(|_| anyhow::anyhow!("the committing side stopped"))
    }

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

    /// Receives and commits at once: one loop takes deliveries into
    /// batches while the other commits and acks the batch before, so the
    /// broker, the decoding and the database work side by side instead of
    /// in turn. Acks still go out in delivery order, each after its commit.
    async fn pump(
        &self,
        channel: &lapin::Channel,
        vhost: &str,
        queue: &str,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        let (to_commit, committing) = mpsc::channel(PIPELINE);
        let (tag, ended) = tokio::try_join!(
            self.receive(channel, (vhost, queue), to_commit, stop),
            self.commit_all(channel, committing, stop),
        )?
        .0;
        match ended {
            Ended::Stopping => {
                // Deliveries the broker sent after the last batch go back to the queue.
                let _ = channel
                    .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                    .await;
                let _ = channel.close(200, "shutdown".into()).await;
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
        (vhost, queue): (&str, &str),
        to_commit: mpsc::Sender<Work>,
        stop: &CancellationToken,
    ) -> anyhow::Result<(String, Ended)> {
        let mut window = Window::new(self.config.prefetch, self.config.inflight_bytes);
        let (mut tag, mut consumer) = subscribe(channel, queue, window.current()).await?;
        self.status.set(vhost, queue, ConsumerState::Connected, None);
        let mut batch = Batch::new(window.current(), self.config.batch_size);
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
                        if batch.messages.is_empty() {
                            deadline = Instant::now() + LINGER;
                        }
                        let resize = window.observe(delivery.data.len());
                        batch.push(delivery, vhost, queue);
                        if batch.messages.len() >= batch_limit(self.config.batch_size, window.current())
                            || batch.bytes >= self.config.batch_bytes
                        {
                            batch.hand_over(&to_commit).await?;
                        }
                        if let Some(prefetch) = resize {
                            (tag, consumer) = self
                                .resubscribe(channel, (tag, consumer), &mut batch, prefetch, (vhost, queue), &to_commit)
                                .await?;
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
        batch: &mut Batch,
        prefetch: u16,
        (vhost, queue): (&str, &str),
        to_commit: &mpsc::Sender<Work>,
    ) -> anyhow::Result<(String, lapin::Consumer)> {
        tracing::debug!(%vhost, %queue, prefetch, "resizing the prefetch window");
        channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await
            .context("basic.cancel")?;
        while let Some(delivery) = consumer.next().await {
            batch.push(delivery.context("delivery")?, vhost, queue);
            if batch.bytes >= self.config.batch_bytes {
                batch.hand_over(to_commit).await?;
            }
        }
        batch.hand_over(to_commit).await?;
        let (done, drained) = oneshot::channel();
        to_commit
            .send(Work::Drained(done))
            .await
            .map_err(|_| anyhow::anyhow!("the committing side stopped"))?;
        drained.await.context("the committing side stopped")?;
        batch.prefetch = prefetch;
        subscribe(channel, queue, prefetch).await
    }

    /// Commits the batch (`Unsent`), marks it `InFlight`, acks it with
    /// `multiple` and confirms the ack with a round trip on the channel, then
    /// marks it `Settled`. An ack that could not be sent puts the batch back
    /// to `Unsent`, so the copies the broker redelivers are absorbed; an ack
    /// sent but unconfirmed leaves it `InFlight`, so a redelivered twin is
    /// stored and flagged (see `store::ingest`).
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
        if committed.possible_copies > 0 {
            tracing::warn!(
                count = committed.possible_copies,
                "stored redelivered messages flagged as possible copies: an earlier ack was sent but never confirmed"
            );
        }
        self.indexer.wake();
        batch.messages.clear();
        batch.bytes = 0;
        let Some(ids) = &committed.ids else {
            // Every delivery was a copy already stored: nothing to mark.
            return self.ack(channel, batch).await;
        };
        self.durably(held, stop, || self.store.set_ack_state(ids, AckState::InFlight))
            .await?;
        if let Err(e) = channel
            .basic_ack(batch.last_tag, BasicAckOptions { multiple: true })
            .await
        {
            // lapin refuses to send on a closed channel: the broker never saw it.
            if let Err(e) = self.store.set_ack_state(ids, AckState::Unsent).await {
                tracing::warn!(error = %e, "could not mark an unsent ack; its redelivered copies will be flagged, not absorbed");
            }
            return Err(e).context("ack after commit (the redelivered copies will be recognised)");
        }
        confirm_acked(channel, batch.prefetch)
            .await
            .context("confirming an ack (redelivered twins of the batch will be flagged)")?;
        if let Err(e) = self.store.set_ack_state(ids, AckState::Settled).await {
            // Left in flight: a later identical redelivery is stored and flagged.
            tracing::warn!(error = %e, "could not mark a confirmed ack");
        }
        Ok(())
    }

    /// Acks a batch that stored no rows (all of it absorbed as copies).
    async fn ack(&self, channel: &lapin::Channel, batch: &Batch) -> anyhow::Result<()> {
        channel
            .basic_ack(batch.last_tag, BasicAckOptions { multiple: true })
            .await
            .context("ack of absorbed copies")?;
        confirm_acked(channel, batch.prefetch)
            .await
            .context("confirming an ack")
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

/// The broker handles a channel's methods in order: its answer to a
/// `basic.qos` sent after an ack means it has processed the ack. (The
/// prefetch is set again before every consume, so re-stating it changes
/// nothing.)
async fn confirm_acked(channel: &lapin::Channel, prefetch: u16) -> lapin::Result<()> {
    channel.basic_qos(prefetch, BasicQosOptions::default()).await
}
