//! AMQP connections, one per vhost and role, to any node of the cluster.
//!
//! Consuming and publishing use separate connections (RabbitMQ applies flow
//! control per connection, so a blocked publisher must not stall ingest).
//!
//! `REDRIVE_AMQP_URL` may list several nodes, comma-separated. A connection
//! goes to the node that last accepted one, else to the next in the list,
//! so losing a node costs one reconnect, not an outage. Queues and
//! exchanges are cluster-wide, so any node serves any vhost.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;

/// How long one node may take to accept a connection before the next is
/// tried: a node that is down but not refusing (a dropped route, a paused
/// VM) must not use up the caller's whole deadline.
const NODE_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct AmqpPool {
    nodes: Arc<[AMQPUri]>,
    /// The node that last accepted a connection is tried first.
    order: super::NodeOrder,
    name: &'static str,
    conns: Arc<Mutex<HashMap<String, Connection>>>,
    /// Where failovers are counted, when anywhere.
    metrics: Option<crate::metrics::Metrics>,
}

/// The URLs of a comma-separated list, parsed; an error names the position
/// of the bad one (never its text, which may hold a password).
fn parse_nodes(urls: &str) -> anyhow::Result<Vec<AMQPUri>> {
    let nodes = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .enumerate()
        .map(|(i, u)| {
            u.parse::<AMQPUri>()
                .map_err(|e| anyhow::anyhow!("REDRIVE_AMQP_URL: URL {} of the list is invalid: {e}", i + 1))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!nodes.is_empty(), "REDRIVE_AMQP_URL is empty");
    Ok(nodes)
}

/// `host:port` of a node, for logs.
fn node_label(uri: &AMQPUri) -> String {
    format!("{}:{}", uri.authority.host, uri.authority.port)
}

impl AmqpPool {
    pub fn new(urls: &str, name: &'static str) -> anyhow::Result<Self> {
        Ok(Self {
            nodes: parse_nodes(urls)?.into(),
            order: super::NodeOrder::default(),
            name,
            conns: Arc::default(),
            metrics: None,
        })
    }

    /// Counts failovers in `metrics` (`/metrics`).
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The first URL's vhost, used when the management API lists none.
    pub fn default_vhost(&self) -> &str {
        &self.nodes[0].vhost
    }

    /// A fresh channel on the vhost's connection, reconnecting if it was lost.
    pub async fn channel(&self, vhost: &str) -> lapin::Result<Channel> {
        let mut conns = self.conns.lock().await;
        if let Some(conn) = conns.get(vhost) {
            if conn.status().connected() {
                match conn.create_channel().await {
                    Ok(ch) => return Ok(ch),
                    Err(e) => tracing::warn!(vhost, error = %e, "channel failed, reconnecting"),
                }
            }
        }
        let conn = self.connect(vhost, format!("redrive-{}", self.name)).await?;
        let ch = conn.create_channel().await?;
        conns.insert(vhost.to_owned(), conn);
        Ok(ch)
    }

    /// A connection of its own, not shared, shown on the broker as `name`:
    /// for clients that must be told apart there, such as the demo's
    /// simulated services.
    pub async fn dedicated(&self, vhost: &str, name: &str) -> lapin::Result<Connection> {
        self.connect(vhost, name.to_owned()).await
    }

    /// Connects to the preferred node, else to each other node in turn.
    async fn connect(&self, vhost: &str, name: String) -> lapin::Result<Connection> {
        let mut last_error = None;
        for i in self.order.tries(self.nodes.len()) {
            let mut uri = self.nodes[i].clone();
            uri.vhost = vhost.to_owned();
            let props = ConnectionProperties::default().with_connection_name(name.clone().into());
            let attempt =
                tokio::time::timeout(NODE_CONNECT_TIMEOUT, Connection::connect_uri(uri, props)).await;
            let error = match attempt {
                Ok(Ok(conn)) => {
                    if self.order.answered(i) {
                        tracing::warn!(
                            node = node_label(&self.nodes[i]),
                            vhost,
                            role = self.name,
                            "failed over to another node"
                        );
                        if let Some(m) = &self.metrics {
                            m.failed_over("amqp");
                        }
                    }
                    return Ok(conn);
                }
                Ok(Err(e)) => e,
                Err(_) => lapin::Error::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {NODE_CONNECT_TIMEOUT:?}"),
                )),
            };
            if self.nodes.len() > 1 {
                tracing::warn!(node = node_label(&self.nodes[i]), vhost, error = %error, "node refused a connection");
            }
            last_error = Some(error);
        }
        Err(last_error.expect("at least one node"))
    }

    pub async fn close_all(&self) {
        let conns: Vec<_> = self.conns.lock().await.drain().collect();
        for (_, conn) in conns {
            let _ = conn.close(200, "redrive shutting down".into()).await;
        }
    }
}
