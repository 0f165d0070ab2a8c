//! AMQP connections, one per vhost and role.
//!
//! Consuming and publishing use separate connections (RabbitMQ applies flow
//! control per connection, so a blocked publisher must not stall ingest).

use std::collections::HashMap;
use std::sync::Arc;

use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;

#[derive(Clone)]
pub struct AmqpPool {
    base: AMQPUri,
    name: &'static str,
    conns: Arc<Mutex<HashMap<String, Connection>>>,
}

impl AmqpPool {
    pub fn new(url: &str, name: &'static str) -> anyhow::Result<Self> {
        let base: AMQPUri = url
            .parse()
            .map_err(|e| anyhow::anyhow!("REDRIVE_AMQP_URL is invalid: {e}"))?;
        Ok(Self {
            base,
            name,
            conns: Arc::default(),
        })
    }

    /// The URL's own vhost, used when the management API lists none.
    pub fn default_vhost(&self) -> &str {
        &self.base.vhost
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
        let mut uri = self.base.clone();
        uri.vhost = vhost.to_owned();
        let props =
            ConnectionProperties::default().with_connection_name(format!("redrive-{}", self.name).into());
        let conn = Connection::connect_uri(uri, props).await?;
        let ch = conn.create_channel().await?;
        conns.insert(vhost.to_owned(), conn);
        Ok(ch)
    }

    pub async fn close_all(&self) {
        let conns: Vec<_> = self.conns.lock().await.drain().collect();
        for (_, conn) in conns {
            let _ = conn.close(200, "redrive shutting down".into()).await;
        }
    }
}
