//! The bulk replay pipeline: one long-lived confirm channel per vhost, many
//! publishes in flight, and each publish's verdict decided only when the
//! broker's answer for it is certain.
//!
//! A channel per message costs four round trips (open, `confirm.select`,
//! publish + confirm, close); a window of unconfirmed publishes costs one
//! per window. The guarantees stay those of a single replay: `mandatory`,
//! success only on an ack without a return, a nack or a return fails only
//! its own message, and a publish whose channel died before its confirm is
//! unknown, never success.
//!
//! **Returns are matched by replay id, never by position.** RabbitMQ sends a
//! publish's `basic.return` before the `basic.ack` that covers it, and in
//! publish order; lapin hands each return to whichever confirm it resolves
//! next, which under `multiple` acks or out-of-order acks may be another
//! publish's. So every resolved confirm's return is read for the
//! `x-redrive-replay-id` it carries, and a publish is decided only once it
//! and every earlier publish are resolved: by then any return of its own has
//! arrived and been handed to a resolved confirm (the returns queue is FIFO
//! and each resolution takes one), so it has been read.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Confirmation, ExchangeKind};
use tokio::time::Instant;

use super::{Outgoing, PublishError};
use crate::broker::AmqpPool;
use crate::ingest::decode::replay_id_of;

/// The broker's answer to one publish, with what the caller attached to it.
#[derive(Debug)]
pub struct Verdict<T> {
    pub tag: T,
    pub result: Result<(), PublishError>,
}

enum Answer {
    Waiting,
    /// Acked (`true`) or nacked; any return was read off already.
    Confirmed(bool),
    ChannelFailed(lapin::Error),
    TimedOut,
}

struct Slot<T> {
    seq: u64,
    vhost: String,
    replay_id: String,
    sent_at: Instant,
    tag: T,
    answer: Answer,
}

/// A publish's confirm (or the error that ended its channel).
type Pending = Pin<Box<dyn Future<Output = lapin::Result<Confirmation>> + Send>>;
/// The same, numbered by publish order.
type Numbered = Pin<Box<dyn Future<Output = (u64, lapin::Result<Confirmation>)> + Send>>;

/// Publishes with confirms and `mandatory`, many at a time.
pub struct Pipeline<T> {
    amqp: AmqpPool,
    timeout: Duration,
    channels: HashMap<String, Channel>,
    /// `(vhost, exchange)` pairs seen to exist: a publish to a missing
    /// exchange closes the channel and with it every publish in flight, so
    /// each exchange is checked (passively) before its first publish.
    exchanges: HashSet<(String, String)>,
    /// In publish order; sequence numbers are contiguous from the front.
    slots: VecDeque<Slot<T>>,
    pending: FuturesUnordered<Numbered>,
    /// Returns read from resolved confirms, by the replay id they carry.
    returned: HashMap<String, (u16, String)>,
    /// Decided without a confirm: nothing was published.
    ready: Vec<Verdict<T>>,
    next_seq: u64,
}

impl<T> Pipeline<T> {
    pub fn new(amqp: AmqpPool, timeout: Duration) -> Self {
        Self {
            amqp,
            timeout,
            channels: HashMap::new(),
            exchanges: HashSet::new(),
            slots: VecDeque::new(),
            pending: FuturesUnordered::new(),
            returned: HashMap::new(),
            ready: Vec::new(),
            next_seq: 0,
        }
    }

    /// Publishes awaiting their verdict, and verdicts not yet collected.
    pub fn in_flight(&self) -> usize {
        self.slots.len() + self.ready.len()
    }

    /// Sends `out` on `vhost`'s confirm channel. Its verdict comes from
    /// [`Pipeline::verdicts`], tagged with `tag`.
    pub async fn publish(&mut self, vhost: &str, out: Outgoing, tag: T) {
        let replay_id = out.replay_id.clone();
        match self.send(vhost, out).await {
            Ok(sent) => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.pending.push(Box::pin(sent.map(move |r| (seq, r))));
                self.slots.push_back(Slot {
                    seq,
                    vhost: vhost.to_owned(),
                    replay_id,
                    sent_at: Instant::now(),
                    tag,
                    answer: Answer::Waiting,
                });
            }
            Err(e) => self.ready.push(Verdict { tag, result: Err(e) }),
        }
    }

    /// Queues the publish on the channel and returns a future of its
    /// confirm, without waiting for the frames to reach the socket.
    ///
    /// lapin's `basic_publish` assigns the delivery tag and queues the frames
    /// synchronously, then waits for its I/O thread to write them: awaited
    /// one by one, every publish costs a round trip between threads. Polled
    /// once here, the publish is queued in order; the write and the confirm
    /// are awaited with the rest of the window.
    async fn send(&mut self, vhost: &str, out: Outgoing) -> Result<Pending, PublishError> {
        self.check_exchange(vhost, &out.exchange).await?;
        let channel = self.channel(vhost).await?;
        let Outgoing {
            exchange,
            routing_key,
            properties,
            body,
            ..
        } = out;
        let mut queued = Box::pin(async move {
            let options = BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            };
            channel
                .basic_publish(exchange.into(), routing_key.into(), options, &body, properties)
                .await
        });
        match futures::poll!(&mut queued) {
            // Failed at once: the channel closed before the frames were
            // queued, or their write failed. Which, is not knowable here,
            // so the outcome counts as unknown, never as not sent.
            std::task::Poll::Ready(Err(e)) => {
                self.channels.remove(vhost);
                Err(PublishError::Lost(e))
            }
            std::task::Poll::Ready(Ok(confirm)) => Ok(Box::pin(confirm)),
            std::task::Poll::Pending => Ok(Box::pin(async move { queued.await?.await })),
        }
    }

    /// The vhost's confirm channel, opened (again) when missing or closed.
    async fn channel(&mut self, vhost: &str) -> Result<Channel, PublishError> {
        if let Some(ch) = self.channels.get(vhost) {
            if ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        let wait = self.timeout;
        let ch = within(wait, "no channel", self.amqp.channel(vhost)).await?;
        within(
            wait,
            "confirm.select not answered",
            ch.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        self.channels.insert(vhost.to_owned(), ch.clone());
        Ok(ch)
    }

    /// Refuses a publish to an exchange the broker does not have, on a
    /// throwaway channel (a failed passive declare closes it).
    async fn check_exchange(&mut self, vhost: &str, exchange: &str) -> Result<(), PublishError> {
        let key = (vhost.to_owned(), exchange.to_owned());
        if exchange.is_empty() || self.exchanges.contains(&key) {
            return Ok(());
        }
        let wait = self.timeout;
        let ch = within(wait, "no channel", self.amqp.channel(vhost)).await?;
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let declared = tokio::time::timeout(
            wait,
            ch.exchange_declare(
                exchange.into(),
                ExchangeKind::Direct,
                passive,
                FieldTable::default(),
            ),
        )
        .await
        .map_err(|_| PublishError::NotPublished(format!("exchange check not answered within {wait:?}")))?;
        match declared {
            Ok(()) => {
                let _ = ch.close(200, "exchange checked".into()).await;
                self.exchanges.insert(key);
                Ok(())
            }
            Err(e) if e.is_amqp_soft_error() => Err(PublishError::Refused(e)),
            Err(e) => Err(PublishError::NotPublished(e.to_string())),
        }
    }

    /// Waits until at least one verdict is certain (or nothing is in flight)
    /// and returns every certain one.
    pub async fn verdicts(&mut self) -> Vec<Verdict<T>> {
        loop {
            let mut done = std::mem::take(&mut self.ready);
            self.decide(&mut done);
            if !done.is_empty() || self.slots.is_empty() {
                if self.slots.is_empty() {
                    // Nothing can claim a late return any more.
                    self.returned.clear();
                }
                return done;
            }
            let deadline = self.slots[0].sent_at + self.timeout;
            tokio::select! {
                next = self.pending.next() => {
                    if let Some((seq, answer)) = next {
                        self.record(seq, answer);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let front = &mut self.slots[0];
                    front.answer = Answer::TimedOut;
                    // A channel that does not confirm is not trusted again.
                    if let Some(ch) = self.channels.remove(&front.vhost) {
                        let _ = ch.close(200, "confirm timed out".into()).await;
                    }
                }
            }
            // Everything resolved by the same frames, before deciding.
            while let Some(Some((seq, answer))) = self.pending.next().now_or_never() {
                self.record(seq, answer);
            }
        }
    }

    fn record(&mut self, seq: u64, answer: lapin::Result<Confirmation>) {
        if let Ok(Confirmation::Ack(Some(ret)) | Confirmation::Nack(Some(ret))) = &answer {
            if let Some(id) = ret.properties.headers().as_ref().and_then(replay_id_of) {
                self.returned
                    .insert(id, (ret.reply_code, ret.reply_text.to_string()));
            }
        }
        let Some(front) = self.slots.front().map(|s| s.seq) else {
            return;
        };
        // Answers for slots already decided (timed out) are late: ignored.
        let Some(slot) = seq
            .checked_sub(front)
            .and_then(|i| self.slots.get_mut(usize::try_from(i).ok()?))
        else {
            return;
        };
        if !matches!(slot.answer, Answer::Waiting) {
            return;
        }
        slot.answer = match answer {
            Ok(c) => Answer::Confirmed(matches!(c, Confirmation::Ack(_))),
            Err(e) => {
                if e.is_amqp_soft_error() {
                    // The broker closed the channel (an exchange deleted
                    // meanwhile?): look again before the next publish.
                    self.exchanges.retain(|(v, _)| v != &slot.vhost);
                }
                Answer::ChannelFailed(e)
            }
        };
    }

    /// Moves the answered prefix of the window into `done`.
    fn decide(&mut self, done: &mut Vec<Verdict<T>>) {
        while let Some(slot) = self.slots.pop_front() {
            let result = match slot.answer {
                Answer::Waiting => {
                    self.slots.push_front(slot);
                    return;
                }
                Answer::Confirmed(acked) => match self.returned.remove(&slot.replay_id) {
                    Some((code, text)) => Err(PublishError::Returned { code, text }),
                    None if acked => Ok(()),
                    None => Err(PublishError::Nacked),
                },
                // Published, then the channel died: it may have been routed.
                Answer::ChannelFailed(e) => Err(PublishError::Lost(e)),
                Answer::TimedOut => Err(PublishError::Timeout(self.timeout)),
            };
            done.push(Verdict {
                tag: slot.tag,
                result,
            });
        }
    }

    /// Closes the channels (after the last verdict was collected).
    pub async fn close(&mut self) {
        for (_, ch) in self.channels.drain() {
            if ch.status().connected() {
                let _ = ch.close(200, "replay job done".into()).await;
            }
        }
    }
}

/// Runs a broker call that precedes any publish: failing or timing out, it
/// means nothing was sent.
async fn within<R>(
    wait: Duration,
    what: &str,
    call: impl Future<Output = lapin::Result<R>>,
) -> Result<R, PublishError> {
    tokio::time::timeout(wait, call)
        .await
        .map_err(|_| PublishError::NotPublished(format!("{what} within {wait:?}")))?
        .map_err(|e| PublishError::NotPublished(e.to_string()))
}
