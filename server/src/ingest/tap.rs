//! A watched queue's tap: a durable queue of Redrive's own, `redrive.tap.<queue>`,
//! bound to every exchange and key (and arguments) the queue is bound to, so
//! each message routed to the queue is routed to the tap too. Its bindings
//! follow the queue's at every discovery round; a tap whose queue is gone,
//! no longer watched or back to consume is unbound, drained, then deleted.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use lapin::options::{QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::Ingest;
use crate::broker::management::BindingInfo;
use crate::broker::QueueStats;
use crate::topology::VhostState;
use app::model::QueueKind;

/// How often a draining tap is looked at.
const DRAIN_POLL: Duration = Duration::from_millis(500);

/// One binding as the tap copies it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    pub source: String,
    pub routing_key: String,
    /// The arguments as JSON text with sorted keys, so equal sets compare equal.
    pub arguments: String,
}

impl Route {
    fn of(b: &BindingInfo) -> Self {
        let sorted: std::collections::BTreeMap<_, _> = b.arguments.iter().collect();
        Self {
            source: b.source.clone(),
            routing_key: b.routing_key.clone(),
            arguments: serde_json::to_string(&sorted).unwrap_or_default(),
        }
    }

    fn table(&self) -> FieldTable {
        let map: Map<String, Value> = serde_json::from_str(&self.arguments).unwrap_or_default();
        plain_table(&map)
    }
}

/// The bindings of `queue` (the default exchange's aside: it cannot be bound).
pub fn routes_of(state: &VhostState, queue: &str) -> HashSet<Route> {
    state
        .bindings
        .iter()
        .filter(|b| b.destination_type == "queue" && b.destination == queue && !b.source.is_empty())
        .map(Route::of)
        .collect()
}

/// The management API shows binding arguments as plain JSON; AMQP wants
/// typed values (integers as `long`, which is what the broker stored for a
/// management-declared binding; clients that declared a narrower type
/// still match, as headers exchanges compare values, not wire types).
fn plain_table(map: &Map<String, Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in map {
        table.insert(k.as_str().into(), plain_value(v));
    }
    table
}

fn plain_value(v: &Value) -> AMQPValue {
    match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        Value::Array(a) => {
            AMQPValue::FieldArray(FieldArray::from(a.iter().map(plain_value).collect::<Vec<_>>()))
        }
        Value::Object(o) => AMQPValue::FieldTable(plain_table(o)),
    }
}

/// The tap's declaration: durable, of the queue's type where that matters
/// (a quorum queue's tap is a quorum queue, so it survives what the queue
/// survives).
fn declare_arguments(queue: &QueueStats) -> FieldTable {
    let mut args = FieldTable::default();
    if queue.kind == QueueKind::Quorum {
        args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    }
    args
}

/// Says which permission a refusal is about.
pub fn explain(e: lapin::Error, what: &str, tap: &str) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("ACCESS_REFUSED") || text.contains("access to") {
        anyhow::anyhow!(
            "the broker refused to {what} {tap}: in tap mode Redrive's RabbitMQ user needs `configure` \
             and `write` permission on ^redrive\\.tap\\. and `read` on the exchanges the queue is bound to ({text})"
        )
    } else {
        anyhow::Error::new(e).context(format!("could not {what} {tap}"))
    }
}

impl Ingest {
    /// Declares `tap` if the broker lacks it and makes its bindings those of
    /// `queue`. Returns whether the tap had to be declared.
    pub(super) async fn ensure_tap(
        &self,
        state: &VhostState,
        queue: &QueueStats,
        tap: &str,
    ) -> anyhow::Result<bool> {
        let channel = self
            .amqp
            .channel(&state.name)
            .await
            .context("opening a channel")?;
        let exists = state.queues.iter().any(|q| q.name == tap);
        if !exists {
            channel
                .queue_declare(
                    tap.into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    declare_arguments(queue),
                )
                .await
                .map_err(|e| explain(e, "declare", tap))?;
            tracing::info!(vhost = %state.name, queue = %queue.name, %tap, "declared the tap");
        }
        let want = routes_of(state, &queue.name);
        let have = routes_of(state, tap);
        for r in want.difference(&have) {
            channel
                .queue_bind(
                    tap.into(),
                    r.source.as_str().into(),
                    r.routing_key.as_str().into(),
                    QueueBindOptions::default(),
                    r.table(),
                )
                .await
                .map_err(|e| explain(e, &format!("bind {} to", r.source), tap))?;
            tracing::info!(vhost = %state.name, %tap, exchange = %r.source, key = %r.routing_key, "tap follows a binding");
        }
        for r in have.difference(&want) {
            unbind(&channel, tap, r).await?;
            tracing::info!(vhost = %state.name, %tap, exchange = %r.source, key = %r.routing_key, "tap drops a binding");
        }
        let _ = channel.close(200, "tap bound".into()).await;
        Ok(!exists)
    }

    /// Retires a tap: no binding, every copy it holds stored, then gone.
    /// `consumer` is its running consumer, if any (one is started
    /// otherwise). Ends early, leaving the rest to a later round, at `stop`.
    pub(super) async fn retire_tap(
        self,
        vhost: String,
        queue: String,
        tap: String,
        consumer: Option<super::Running>,
        stop: CancellationToken,
    ) {
        let mut consumer = consumer;
        let mut waits = crate::retry::Waits::new(crate::retry::reconnect());
        loop {
            match self.retire_once(&vhost, &tap).await {
                // Gone: another instance deleted it.
                Ok(None) => break,
                Ok(Some(ready)) if ready > 0 => {
                    if consumer.is_none() {
                        consumer = Some(self.spawn_tap_consumer(&vhost, &queue, &tap, &stop));
                    }
                }
                Ok(Some(_)) => {
                    // Empty: this instance's consumer stops (committing what
                    // it holds), and the broker deletes the tap only while
                    // it is empty and nobody (another instance) consumes it.
                    if let Some(r) = consumer.take() {
                        r.stop.cancel();
                        let _ = r.task.await;
                    }
                    match self.delete_if_drained(&vhost, &tap).await {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::debug!(%vhost, %tap, error = %format!("{e:#}"), "tap not deleted yet")
                        }
                    }
                }
                Err(e) => tracing::warn!(%vhost, %tap, error = %format!("{e:#}"), "retiring the tap"),
            }
            let wait = DRAIN_POLL.max(waits.next_wait().min(Duration::from_secs(5)));
            tokio::select! {
                _ = stop.cancelled() => {
                    if let Some(r) = consumer {
                        r.stop.cancel();
                        let _ = r.task.await;
                    }
                    return;
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!(%vhost, %queue, %tap, "tap drained and deleted");
        // A switch to tap cut short by the tap's end ends with it; a switch
        // back to consume goes on (its originals are paired next).
        let _ = self
            .store
            .forget_capture_switch(&vhost, &queue, Some(crate::store::SwitchDirection::ToTap))
            .await;
        self.rediscover.notify_one();
    }

    /// Unbinds the tap and counts its ready messages; `None` once it is gone.
    async fn retire_once(&self, vhost: &str, tap: &str) -> anyhow::Result<Option<u32>> {
        let bindings = self
            .management
            .bindings(vhost)
            .await
            .context("listing bindings")?;
        let channel = self.amqp.channel(vhost).await.context("opening a channel")?;
        for b in bindings
            .iter()
            .filter(|b| b.destination == tap && b.destination_type == "queue" && !b.source.is_empty())
        {
            unbind(&channel, tap, &Route::of(b)).await?;
        }
        let _ = channel.close(200, "tap unbound".into()).await;
        Ok(self
            .declared(vhost, tap)
            .await
            .context("counting the tap's messages")?
            .map(|(ready, _)| ready))
    }

    /// Deletes the tap only while it is empty and has no consumer (the
    /// broker checks both, atomically): no copy is in anyone's hands.
    async fn delete_if_drained(&self, vhost: &str, tap: &str) -> anyhow::Result<()> {
        let channel = self.amqp.channel(vhost).await.context("opening a channel")?;
        channel
            .queue_delete(
                tap.into(),
                QueueDeleteOptions {
                    if_empty: true,
                    if_unused: true,
                    ..QueueDeleteOptions::default()
                },
            )
            .await
            .map_err(|e| explain(e, "delete", tap))?;
        let _ = channel.close(200, "tap deleted".into()).await;
        Ok(())
    }
}

async fn unbind(channel: &lapin::Channel, tap: &str, r: &Route) -> anyhow::Result<()> {
    channel
        .queue_unbind(
            tap.into(),
            r.source.as_str().into(),
            r.routing_key.as_str().into(),
            r.table(),
        )
        .await
        .map_err(|e| explain(e, &format!("unbind {} from", r.source), tap))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn binding(source: &str, dest: &str, key: &str, args: Value) -> BindingInfo {
        BindingInfo {
            source: source.into(),
            destination: dest.into(),
            destination_type: "queue".into(),
            routing_key: key.into(),
            arguments: args.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn the_tap_copies_every_binding_but_the_default_exchanges() {
        let state = VhostState {
            bindings: vec![
                binding("", "q", "q", json!({})),
                binding("error.direct", "q", "trade-service", json!({})),
                binding("h", "q", "", json!({"x-match": "all", "b": 1, "a": "x"})),
                binding("error.direct", "redrive.tap.q", "trade-service", json!({})),
                binding("gone", "redrive.tap.q", "k", json!({})),
            ],
            ..VhostState::default()
        };
        let want = routes_of(&state, "q");
        let have = routes_of(&state, "redrive.tap.q");
        assert_eq!(want.len(), 2, "{want:?}");
        let add: Vec<_> = want.difference(&have).collect();
        let drop: Vec<_> = have.difference(&want).collect();
        assert_eq!(add.len(), 1);
        assert_eq!(add[0].source, "h");
        assert_eq!(add[0].arguments, r#"{"a":"x","b":1,"x-match":"all"}"#);
        assert_eq!(drop.len(), 1);
        assert_eq!(drop[0].source, "gone");
        let table = add[0].table();
        assert_eq!(table.inner().get("b"), Some(&AMQPValue::LongLongInt(1)));
    }
}
