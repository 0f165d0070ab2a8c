//! An adaptive job's gate: before a copy goes out, every queue its route
//! reaches must have a consumer and room. Routes come from the broker's
//! bindings (management API, read again every few seconds so a new
//! binding counts); each queue's consumers and ready messages are read
//! exactly with a passive declare. After each read a queue may take what
//! is left up to `max_backlog`; past it the job waits until the queue is
//! back under half. When the management API does not answer, the job
//! waits: it does not guess where its copies go.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::Channel;
use tokio::time::Instant;

use crate::broker::{AmqpPool, Management};
use crate::topology::{RouteMap, VhostState};

/// How long a vhost's bindings are trusted.
const ROUTES_FOR: Duration = Duration::from_secs(5);
/// How often a blocked queue is read again.
const RECHECK: Duration = Duration::from_millis(250);

type QueueKey = (String, String);

struct QueueState {
    consumers: u32,
    /// Copies it may still take before the next read.
    budget: i64,
    /// Over the backlog: waits until under half.
    full: bool,
    read_at: Instant,
}

/// Whether a copy may go now.
#[derive(Debug, PartialEq)]
pub enum Admit {
    Go,
    /// Not now, for this reason (`waiting: q has no consumers`).
    Wait(String),
}

pub struct Gate {
    management: Management,
    amqp: AmqpPool,
    max_backlog: i64,
    routes: HashMap<String, (Instant, Option<RouteMap>)>,
    queues: HashMap<QueueKey, QueueState>,
    channels: HashMap<String, Channel>,
    /// Routes already resolved: (vhost, exchange, key) → queues.
    reach: HashMap<(String, String, String), BTreeSet<String>>,
}

impl Gate {
    pub fn new(management: Management, amqp: AmqpPool, max_backlog: u32) -> Self {
        Self {
            management,
            amqp,
            max_backlog: i64::from(max_backlog),
            routes: HashMap::new(),
            queues: HashMap::new(),
            channels: HashMap::new(),
            reach: HashMap::new(),
        }
    }

    /// Whether a copy to `exchange`/`key` in `vhost` may go now; takes one
    /// from each reached queue's budget when it may.
    pub async fn admit(&mut self, vhost: &str, exchange: &str, key: &str) -> Admit {
        let queues = match self.queues_of(vhost, exchange, key).await {
            Ok(q) => q,
            Err(why) => return Admit::Wait(why),
        };
        for queue in &queues {
            if let Err(why) = self.check(vhost, queue).await {
                return Admit::Wait(why);
            }
        }
        for queue in queues {
            if let Some(q) = self.queues.get_mut(&(vhost.to_owned(), queue)) {
                q.budget -= 1;
            }
        }
        Admit::Go
    }

    /// When a waiting job should ask again.
    pub fn recheck_at(&self) -> Instant {
        Instant::now() + RECHECK
    }

    async fn queues_of(
        &mut self,
        vhost: &str,
        exchange: &str,
        key: &str,
    ) -> Result<BTreeSet<String>, String> {
        let fresh = self
            .routes
            .get(vhost)
            .is_some_and(|(at, map)| map.is_some() && at.elapsed() < ROUTES_FOR);
        if !fresh {
            let map = match VhostState::routes(&self.management, vhost).await {
                Ok(map) => Some(map),
                Err(e) => {
                    tracing::warn!(vhost, error = %e, "an adaptive job cannot read the bindings");
                    None
                }
            };
            self.reach.retain(|(v, _, _), _| v != vhost);
            self.routes.insert(vhost.to_owned(), (Instant::now(), map));
        }
        let Some(map) = self.routes.get(vhost).and_then(|(_, m)| m.as_ref()) else {
            return Err(
                "waiting: the management API does not answer, so the queues this job's route reaches are unknown"
                    .into(),
            );
        };
        let route = (vhost.to_owned(), exchange.to_owned(), key.to_owned());
        Ok(self
            .reach
            .entry(route)
            .or_insert_with(|| map.reach(exchange, key).queues)
            .clone())
    }

    /// Reads the queue again when its budget is spent or it is blocked.
    async fn check(&mut self, vhost: &str, queue: &str) -> Result<(), String> {
        let k = (vhost.to_owned(), queue.to_owned());
        let stale = match self.queues.get(&k) {
            None => true,
            Some(q) => (q.budget <= 0 || q.consumers == 0 || q.full) && q.read_at.elapsed() >= RECHECK,
        };
        if stale {
            let (ready, consumers) = self.read(vhost, queue).await?;
            let was_full = self.queues.get(&k).is_some_and(|q| q.full);
            let full = if was_full {
                ready >= self.max_backlog / 2
            } else {
                ready >= self.max_backlog
            };
            self.queues.insert(
                k.clone(),
                QueueState {
                    consumers,
                    budget: self.max_backlog - ready,
                    full,
                    read_at: Instant::now(),
                },
            );
        }
        let q = &self.queues[&k];
        if q.consumers == 0 {
            return Err(format!("waiting: {queue} has no consumers"));
        }
        if q.full {
            return Err(format!(
                "waiting: {queue} holds {} or more ready messages; going on under {}",
                self.max_backlog,
                self.max_backlog / 2
            ));
        }
        if q.budget <= 0 {
            return Err(format!(
                "waiting: {queue} is near its backlog of {}",
                self.max_backlog
            ));
        }
        Ok(())
    }

    /// Ready messages and consumers, exactly (a passive declare).
    async fn read(&mut self, vhost: &str, queue: &str) -> Result<(i64, u32), String> {
        let channel = match self.channels.get(vhost).filter(|c| c.status().connected()) {
            Some(c) => c.clone(),
            None => {
                let c = self
                    .amqp
                    .channel(vhost)
                    .await
                    .map_err(|e| format!("waiting: cannot read the target queues: {e}"))?;
                self.channels.insert(vhost.to_owned(), c.clone());
                c
            }
        };
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        match channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
        {
            Ok(q) => Ok((i64::from(q.message_count()), q.consumer_count())),
            Err(e) => {
                // A failed passive declare closes the channel.
                self.channels.remove(vhost);
                Err(format!("waiting: cannot read {queue}: {e}"))
            }
        }
    }

    pub async fn close(&mut self) {
        for (_, c) in self.channels.drain() {
            let _ = c.close(200, "adaptive job done".into()).await;
        }
    }
}
