//! Committing a batch and acking it: the store's ack states (see
//! `store::ingest`) follow the ack from commit to the broker's answer.

use std::time::Duration;

use anyhow::Context;
use lapin::options::{BasicAckOptions, BasicQosOptions};
use tokio_util::sync::CancellationToken;

use super::consumer::Batch;
use super::Ingest;
use crate::store::AckState;

/// Longest wait for the broker's answer to a method (the `basic.qos` that
/// confirms an ack). lapin has left such a future pending for good when its
/// channel was torn down under it; past this, the channel counts as lost
/// and capture reconnects. Generous: a loaded broker answers in milliseconds.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the broker's answers when stopping: a stop must not hang
/// on a broker that does not answer (the process exit closes the connection,
/// and the broker requeues what was not acked).
pub(super) const STOP_TIMEOUT: Duration = Duration::from_secs(5);

impl Ingest {
    /// Commits the batch (`Unsent`), marks it `InFlight`, acks it with
    /// `multiple` and confirms the ack with a round trip on the channel, then
    /// marks it `Settled`. An ack that could not be sent puts the batch back
    /// to `Unsent`, so the copies the broker redelivers are absorbed; an ack
    /// sent but unconfirmed leaves it `InFlight`, so a redelivered twin is
    /// stored and flagged (see `store::ingest`).
    #[tracing::instrument(name = "batch", skip_all, fields(messages = batch.messages.len()))]
    pub(super) async fn flush(
        &self,
        channel: &lapin::Channel,
        batch: &mut Batch,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        if batch.messages.is_empty() {
            return Ok(());
        }
        let held = batch.messages.len();
        let window = self.config.capture.redelivery_window;
        let started = std::time::Instant::now();
        let committed = self
            .durably(held, stop, || self.store.insert_batch(&batch.messages, window))
            .await?;
        self.metrics.committed(started.elapsed());
        if let Some(m) = batch.messages.first() {
            self.metrics.captured(&m.vhost, &m.queue, held, committed.stored);
        }
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
        // No batch: every delivery was a copy already stored, nothing to mark.
        let stored = committed.batch;
        if let Some(stored) = stored {
            self.durably(held, stop, || {
                self.store.set_ack_state(stored, AckState::InFlight)
            })
            .await?;
        }
        if let Err(e) = channel
            .basic_ack(batch.last_tag, BasicAckOptions { multiple: true })
            .await
        {
            // lapin refuses to send on a closed channel: the broker never saw it.
            if let Some(stored) = stored {
                if let Err(e) = self.store.set_ack_state(stored, AckState::Unsent).await {
                    tracing::warn!(error = %e, "could not mark an unsent ack; its redelivered copies will be flagged, not absorbed");
                }
            }
            return Err(e).context("ack after commit (the redelivered copies will be recognised)");
        }
        confirm_acked(channel, batch.prefetch, stop)
            .await
            .context("confirming an ack (redelivered twins of the batch will be flagged)")?;
        if let Some(stored) = stored {
            if let Err(e) = self.store.set_ack_state(stored, AckState::Settled).await {
                // Left in flight: a later identical redelivery is stored and flagged.
                tracing::warn!(error = %e, "could not mark a confirmed ack");
            }
        }
        Ok(())
    }

    /// Runs a database write, retrying with backoff while the database
    /// fails: the deliveries stay unacked and no more are taken meanwhile
    /// (the prefetch window is full). Gives up only when Redrive is stopping.
    pub(super) async fn durably<T, F, Fut>(
        &self,
        held: usize,
        stop: &CancellationToken,
        mut write: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, crate::store::StoreError>>,
    {
        let mut waits = crate::retry::Waits::new(crate::retry::capture_commit());
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
                _ = tokio::time::sleep(waits.next_wait()) => {}
            }
        }
    }
}

/// The broker handles a channel's methods in order: its answer to a
/// `basic.qos` sent after an ack means it has processed the ack. (The
/// prefetch is set again before every consume, so re-stating it changes
/// nothing.)
///
/// Waits at most `REPLY_TIMEOUT`, and `STOP_TIMEOUT` once Redrive is stopping.
async fn confirm_acked(
    channel: &lapin::Channel,
    prefetch: u16,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let qos = channel.basic_qos(prefetch, BasicQosOptions::default());
    let stopping = async {
        stop.cancelled().await;
        tokio::time::sleep(STOP_TIMEOUT).await;
    };
    tokio::select! {
        answer = qos => Ok(answer?),
        _ = tokio::time::sleep(REPLY_TIMEOUT) => anyhow::bail!("no answer from the broker within {REPLY_TIMEOUT:?}"),
        _ = stopping => anyhow::bail!("stopping, and no answer from the broker"),
    }
}
