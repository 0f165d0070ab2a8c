//! Changing how a queue is captured, under a steady flow, without losing a
//! message or storing one twice.
//!
//! **Who.** A switch is recorded with the mode that asks for it (the
//! operator's change, or a new `REDRIVE_CAPTURE_MODE`), so every instance
//! sees the queue switching from that moment. Until the record ends, only
//! the holder of the `capture-switch` lease runs anything on the queue or
//! its tap (`reconcile`): two instances never capture the two sides at once.
//!
//! **Consume → tap.** Redrive binds the tap while it still consumes the
//! queue, so from then on every message reaches both. It then publishes one
//! marker through the default exchange to the queue with the tap in `BCC`:
//! the broker routes that single publish to both queues at once. The queue's
//! consumer captures everything before the marker and stops there (what it
//! had received after it goes back to the queue); the tap's consumer drops
//! the copies before the marker (their originals were just captured) and
//! captures from the marker on. The marker and which side passed it are in
//! the database, so a restart resumes the same cut.
//!
//! **Tap → consume.** The tap is unbound, then drained (its copies stored)
//! and deleted, and only then does the holder consume the queue, after a
//! marker that only it is before (`take_back`). Its originals up to the
//! marker (or, if a service took it, as many as the queue held) are paired
//! with the stored copies by content, oldest first (`Origin::Adopted`): a
//! copy answers for its original, and an original without
//! one (it reached the queue before the tap) is stored. Copies whose
//! originals had left the queue are marked so, in the commit that ends the
//! switch; then the other instances consume the queue too.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use lapin::BasicProperties;
use lapin::Confirmation;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::consumer::{drained, Batch, Work};
use super::plan::{AtMarker, Plan, MARKER_HEADER};
use super::{Ingest, QueueKey, Role, Running};
use crate::broker::AmqpPool;
use crate::store::{CaptureSwitch, SwitchDirection, SwitchSide};

/// The marker a delivery carries, if it is one.
pub fn marker_of(delivery: &Delivery) -> Option<String> {
    match delivery
        .properties
        .headers()
        .as_ref()?
        .inner()
        .get(MARKER_HEADER)?
    {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Acks a delivery without storing it: a copy whose original Redrive
/// captured, or a marker.
pub async fn drop_copy(channel: &lapin::Channel, delivery: &Delivery) -> anyhow::Result<()> {
    channel
        .basic_ack(delivery.delivery_tag, BasicAckOptions { multiple: false })
        .await
        .context("acking a copy already stored")
}

/// Hands a delivery back to its queue, in its place.
pub async fn give_back(channel: &lapin::Channel, delivery: &Delivery) -> anyhow::Result<()> {
    channel
        .basic_nack(
            delivery.delivery_tag,
            BasicNackOptions {
                multiple: false,
                requeue: true,
            },
        )
        .await
        .context("handing a delivery back")
}

/// Publishes the marker `id` to `queue`, and to `tap` in the same routing
/// decision when given (a switch to tap), and waits for the broker's confirm.
pub async fn publish_marker(
    amqp: &AmqpPool,
    vhost: &str,
    queue: &str,
    tap: Option<&str>,
    id: &str,
) -> anyhow::Result<()> {
    let channel = amqp
        .channel(vhost)
        .await
        .context("opening a channel for the marker")?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .context("confirm.select")?;
    let mut headers = FieldTable::default();
    headers.insert(MARKER_HEADER.into(), AMQPValue::LongString(LongString::from(id)));
    if let Some(tap) = tap {
        headers.insert(
            "BCC".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString(LongString::from(
                tap,
            ))])),
        );
    }
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("text/plain".into())
        .with_app_id("redrive".into())
        .with_headers(headers);
    let mode = if tap.is_some() { "tap" } else { "consume" };
    let body = format!(
        "Redrive capture-mode marker {id}: Redrive switched {queue} to {mode} and takes this message itself. \
         Safe to discard if found."
    );
    let confirm = channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body.as_bytes(),
            properties,
        )
        .await
        .context("publishing the marker")?
        .await
        .context("waiting for the marker's confirm")?;
    let _ = channel.close(200, "marker published".into()).await;
    match confirm {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_)) => {
            anyhow::bail!("the marker was returned: {queue} does not exist")
        }
        Confirmation::Nack(None) | Confirmation::NotRequested => {
            anyhow::bail!("the broker refused the marker")
        }
    }
}

impl Ingest {
    /// Back from tap, once the tap is gone: a marker goes to the queue
    /// (recorded as sent first), so the originals that may have a copy are
    /// exactly those before it, and the queue is consumed pairing them.
    pub(super) async fn take_back(
        &self,
        queue: &str,
        reason: &str,
        switch: &CaptureSwitch,
        consumers: &mut HashMap<QueueKey, Running>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let vhost = switch.vhost.as_str();
        let key = (vhost.to_owned(), queue.to_owned());
        if consumers.get(&key).is_some_and(|r| !r.task.is_finished()) {
            return Ok(());
        }
        if !switch.marker_sent {
            self.store
                .capture_marker_sending(vhost, queue, &switch.marker)
                .await?;
            publish_marker(&self.amqp, vhost, queue, None, &switch.marker).await?;
            tracing::info!(%vhost, %queue, marker = %switch.marker, "published the marker that ends pairing");
        }
        // After a restart the marker may be in the queue or gone: pairing
        // ends at it, or after as many deliveries as the queue held.
        let plan = Plan::consume(vhost, queue);
        plan.adopt_until(&switch.marker);
        self.start(consumers, Role::Consume(Arc::new(plan)), reason, shutdown);
        Ok(())
    }

    /// Meets a marker: the consume side's cut commits what came before and
    /// stops; the tap side's cut starts capturing; any other is dropped.
    /// Each side's passing is recorded before the marker is acked, so a
    /// crash in between redelivers a marker that is then stale.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn at_marker(
        &self,
        channel: &lapin::Channel,
        plan: &Plan,
        marker: &str,
        delivery: &Delivery,
        batch: &mut Batch,
        to_commit: &mpsc::Sender<Work>,
        stop: &CancellationToken,
    ) -> anyhow::Result<AtMarker> {
        let met = plan.meet(marker);
        let side = match met {
            AtMarker::Stop => {
                batch.hand_over(to_commit).await?;
                drained(to_commit).await?;
                Some(SwitchSide::Source)
            }
            AtMarker::Resume => Some(SwitchSide::Tap),
            AtMarker::EndPairing => {
                // The pairs before it are committed before the window ends.
                batch.hand_over(to_commit).await?;
                drained(to_commit).await?;
                None
            }
            AtMarker::Stale => None,
        };
        if let Some(side) = side {
            self.durably(0, stop, || {
                self.store
                    .capture_switch_passed(&plan.vhost, &plan.filed, marker, side)
            })
            .await?;
            tracing::info!(vhost = %plan.vhost, queue = %plan.filed, source = %plan.source, ?side, "passed the capture-mode marker");
        }
        drop_copy(channel, delivery).await?;
        Ok(met)
    }

    /// How many of the first deliveries are originals that copies may
    /// answer for: all the queue holds now, when it was tapped until now.
    pub(super) async fn adoption_window(
        &self,
        channel: &lapin::Channel,
        plan: &Plan,
        stop: &CancellationToken,
    ) -> anyhow::Result<u64> {
        if plan.mode != app::model::CaptureMode::Consume {
            return Ok(0);
        }
        let waiting = self
            .durably(0, stop, || {
                self.store.tap_originals_waiting(&plan.vhost, &plan.filed)
            })
            .await?;
        if !waiting {
            // Nothing to pair: a switch back to consume ends here.
            self.durably(0, stop, || {
                self.store
                    .forget_capture_switch(&plan.vhost, &plan.filed, Some(SwitchDirection::ToConsume))
            })
            .await?;
            return Ok(0);
        }
        let queue = channel
            .queue_declare(
                plan.source.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .context("counting the originals left by the tap")?;
        let held = u64::from(queue.message_count());
        tracing::info!(vhost = %plan.vhost, queue = %plan.filed, held, "taking over a tapped queue: pairing its originals with the stored copies");
        if held == 0 {
            self.adoption_done(plan, stop).await?;
        }
        Ok(held)
    }

    /// Ends an adoption window: the copies no original answered for lost
    /// theirs while the queue was tapped.
    pub(super) async fn adoption_done(&self, plan: &Plan, stop: &CancellationToken) -> anyhow::Result<()> {
        let left = self
            .durably(0, stop, || {
                self.store.leave_tap_originals(&plan.vhost, &plan.filed)
            })
            .await?;
        tracing::info!(vhost = %plan.vhost, queue = %plan.filed, left, "took over a tapped queue");
        Ok(())
    }
}
