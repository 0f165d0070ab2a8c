//! Client for the RabbitMQ management HTTP API.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    #[error("management API unreachable: {0}")]
    Unreachable(#[source] reqwest::Error),
    #[error("management API answered {status} for {path}: {body}")]
    Status { status: u16, path: String, body: String },
    #[error("management API sent an unexpected answer for {path}: {source}")]
    Decode {
        path: String,
        #[source]
        source: reqwest::Error,
    },
}

#[derive(Debug, Clone, Deserialize)]
pub struct Vhost {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct QueueStats {
    pub vhost: String,
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub durable: bool,
    #[serde(default)]
    pub messages_ready: i64,
    #[serde(default)]
    pub messages_unacknowledged: i64,
    #[serde(default)]
    pub consumers: i64,
}

#[derive(Clone)]
pub struct Management {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

/// Vhost names in API paths: `/` must become `%2F`.
pub fn enc(segment: &str) -> String {
    utf8_percent_encode(segment, NON_ALPHANUMERIC).to_string()
}

impl Management {
    pub fn new(base: &str, user: &str, password: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .expect("static reqwest configuration is valid");
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    async fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, ManagementError> {
        let res = self
            .http
            .get(format!("{}/api{path}", self.base))
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .map_err(ManagementError::Unreachable)?;
        let status = res.status();
        if !status.is_success() {
            let body = res.text().await.unwrap_or_default();
            return Err(ManagementError::Status {
                status: status.as_u16(),
                path: path.to_owned(),
                body,
            });
        }
        res.json().await.map_err(|source| ManagementError::Decode {
            path: path.to_owned(),
            source,
        })
    }

    pub async fn vhosts(&self) -> Result<Vec<Vhost>, ManagementError> {
        self.get("/vhosts?columns=name").await
    }

    pub async fn queues(&self, vhost: &str) -> Result<Vec<QueueStats>, ManagementError> {
        self.get(&format!(
            "/queues/{}?columns=name,vhost,type,durable,messages_ready,messages_unacknowledged,consumers",
            enc(vhost)
        ))
        .await
    }

    /// The vhosts to work on: `explicit` when given, else all this user sees.
    pub async fn vhost_names(&self, explicit: Vec<String>) -> Result<Vec<String>, ManagementError> {
        if !explicit.is_empty() {
            return Ok(explicit);
        }
        Ok(self.vhosts().await?.into_iter().map(|v| v.name).collect())
    }

    /// Cheap reachability check for `/readyz`.
    pub async fn ping(&self) -> Result<(), ManagementError> {
        self.get::<serde_json::Value>("/whoami").await.map(|_| ())
    }
}
