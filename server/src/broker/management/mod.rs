//! Client for the RabbitMQ management HTTP API.

use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

use app::model::{Policy, PolicyRequest};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    /// Nothing accepts connections at the URL. On a fresh broker this is
    /// almost always the plugin being off, so the message says how to fix it
    /// (it is what the degraded-mode banner shows).
    #[error(
        "nothing answers at {base}: is the management plugin enabled? \
         On the broker run: rabbitmq-plugins enable rabbitmq_management"
    )]
    NotListening {
        base: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("management API unreachable: {0}")]
    Unreachable(#[source] reqwest::Error),
    #[error("the management API refused the credentials of user {user:?} (check REDRIVE_MANAGEMENT_USER and _PASSWORD)")]
    Unauthorized { user: String },
    #[error("management API answered {status} for {path}: {body}")]
    Status { status: u16, path: String, body: String },
    /// The broker refused a change (validation); `reason` is its own text.
    #[error("{reason}")]
    Refused { reason: String },
    #[error("management API sent an unexpected answer for {path}: {source}")]
    Decode {
        path: String,
        #[source]
        source: reqwest::Error,
    },
}

impl ManagementError {
    /// Nothing listens at the management URL (plugin off, wrong port).
    pub fn is_not_listening(&self) -> bool {
        matches!(self, Self::NotListening { .. })
    }
}

mod admin;
mod types;

pub use admin::VhostDetail;
pub use types::*;

/// A client for the management API of every node given; see [`Management::new`].
#[derive(Clone)]
pub struct Management {
    http: reqwest::Client,
    /// Base URLs, one per node; the API is cluster-wide, so any node answers
    /// for all of them.
    bases: Arc<[String]>,
    /// The node that answered last is asked first.
    order: super::NodeOrder,
    user: String,
    password: secrecy::SecretString,
    /// Where each call's time and outcome are counted, when anywhere.
    metrics: Option<crate::metrics::Metrics>,
}

/// Vhost names in API paths: `/` must become `%2F`.
pub fn enc(segment: &str) -> String {
    utf8_percent_encode(segment, NON_ALPHANUMERIC).to_string()
}

impl Management {
    /// `bases` is one base URL or several, comma-separated (one per node of
    /// a cluster). A node that does not answer is skipped for the next.
    pub fn new(bases: &str, user: &str, password: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .expect("static reqwest configuration is valid");
        let mut list: Vec<String> = bases
            .split(',')
            .map(|b| b.trim().trim_end_matches('/').to_owned())
            .filter(|b| !b.is_empty())
            .collect();
        if list.is_empty() {
            list.push(String::new());
        }
        Self {
            http,
            bases: list.into(),
            order: super::NodeOrder::default(),
            user: user.to_owned(),
            password: password.into(),
            metrics: None,
        }
    }

    /// Counts every call in `metrics` (`/metrics`).
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Why a request got no answer at all from `base`.
    fn unreachable(base: &str, source: reqwest::Error) -> ManagementError {
        if source.is_connect() {
            ManagementError::NotListening {
                base: crate::config::redact_urls(base),
                source,
            }
        } else {
            ManagementError::Unreachable(source)
        }
    }

    /// Sends one request to the node that answered last, else to each other
    /// node in turn, and returns the first answer whatever its status: a
    /// node that answers has spoken for the cluster. Only "no answer"
    /// (refused; for a read, also timed out) moves on to the next node.
    pub(super) async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        (user, password): (&str, &str),
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::Response, ManagementError> {
        let mut last_error = None;
        for i in self.order.tries(self.bases.len()) {
            let base = &self.bases[i];
            let mut req = self
                .http
                .request(method.clone(), format!("{base}/api{path}"))
                .basic_auth(user, Some(password));
            if let Some(body) = body {
                req = req.json(body);
            }
            match req.send().await {
                Ok(res) => {
                    if self.order.answered(i) {
                        tracing::warn!(node = %crate::config::redact_urls(base), "management API failed over to another node");
                        if let Some(m) = &self.metrics {
                            m.failed_over("management");
                        }
                    }
                    return Ok(res);
                }
                Err(e) => {
                    // A change that reached a node before it stopped answering
                    // may have been made: only a read, or a request that never
                    // connected, is sent again to another node.
                    let resend = e.is_connect() || method == reqwest::Method::GET;
                    if self.bases.len() > 1 {
                        tracing::warn!(node = %crate::config::redact_urls(base), error = %e, "management API node did not answer");
                    }
                    last_error = Some(Self::unreachable(base, e));
                    if !resend {
                        break;
                    }
                }
            }
        }
        Err(last_error.expect("at least one base URL"))
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::Response, ManagementError> {
        let started = std::time::Instant::now();
        let answer = self.call(method, path, body).await;
        if let Some(m) = &self.metrics {
            m.management_call(started.elapsed(), answer.is_ok());
        }
        answer
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::Response, ManagementError> {
        let res = self
            .request(method, path, (&self.user, self.password.expose_secret()), body)
            .await?;
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(ManagementError::Unauthorized {
                user: self.user.clone(),
            });
        }
        let body = res.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::BAD_REQUEST {
            return Err(ManagementError::Refused {
                reason: broker_reason(&body),
            });
        }
        Err(ManagementError::Status {
            status: status.as_u16(),
            path: path.to_owned(),
            body,
        })
    }

    pub(super) async fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, ManagementError> {
        let res = self.send(reqwest::Method::GET, path, None).await?;
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
            "/queues/{}?columns=name,vhost,type,durable,auto_delete,exclusive,arguments,policy,\
             operator_policy,effective_policy_definition,messages,messages_ready,messages_unacknowledged,consumers,message_stats",
            enc(vhost)
        ))
        .await
    }

    pub async fn exchanges(&self, vhost: &str) -> Result<Vec<ExchangeInfo>, ManagementError> {
        self.get(&format!(
            "/exchanges/{}?columns=name,type,durable,internal",
            enc(vhost)
        ))
        .await
    }

    pub async fn bindings(&self, vhost: &str) -> Result<Vec<BindingInfo>, ManagementError> {
        self.get(&format!(
            "/bindings/{}?columns=source,destination,destination_type,routing_key",
            enc(vhost)
        ))
        .await
    }

    pub async fn consumers(&self, vhost: &str) -> Result<Vec<ConsumerInfo>, ManagementError> {
        self.get(&format!(
            "/consumers/{}?columns=queue.name,consumer_tag,ack_required,channel_details.connection_name",
            enc(vhost)
        ))
        .await
    }

    pub async fn channels(&self, vhost: &str) -> Result<Vec<ChannelInfo>, ManagementError> {
        self.get(&format!(
            "/vhosts/{}/channels?columns=user,confirm,transactional,connection_details.name,\
             connection_details.peer_host,message_stats.publish",
            enc(vhost)
        ))
        .await
    }

    pub async fn connections(&self, vhost: &str) -> Result<Vec<ConnectionInfo>, ManagementError> {
        self.get(&format!(
            "/vhosts/{}/connections?columns=name,client_properties",
            enc(vhost)
        ))
        .await
    }

    pub async fn overview(&self) -> Result<OverviewInfo, ManagementError> {
        self.get("/overview?columns=rabbitmq_version,cluster_name,object_totals")
            .await
    }

    pub async fn nodes(&self) -> Result<Vec<NodeStats>, ManagementError> {
        self.get(
            "/nodes?columns=name,running,mem_used,mem_limit,mem_alarm,disk_free,disk_free_limit,disk_free_alarm",
        )
        .await
    }

    pub async fn policies(&self, vhost: &str) -> Result<Vec<Policy>, ManagementError> {
        self.get(&format!("/policies/{}", enc(vhost))).await
    }

    /// Creates or replaces a policy; the broker validates the definition.
    pub async fn put_policy(
        &self,
        vhost: &str,
        name: &str,
        policy: &PolicyRequest,
    ) -> Result<(), ManagementError> {
        let body = serde_json::json!({
            "pattern": policy.pattern,
            "apply-to": policy.apply_to,
            "priority": policy.priority,
            "definition": policy.definition,
        });
        let path = format!("/policies/{}/{}", enc(vhost), enc(name));
        self.send(reqwest::Method::PUT, &path, Some(&body))
            .await
            .map(|_| ())
    }

    pub async fn delete_policy(&self, vhost: &str, name: &str) -> Result<(), ManagementError> {
        let path = format!("/policies/{}/{}", enc(vhost), enc(name));
        self.send(reqwest::Method::DELETE, &path, None).await.map(|_| ())
    }

    pub async fn bind_queue(
        &self,
        vhost: &str,
        exchange: &str,
        queue: &str,
        routing_key: &str,
    ) -> Result<(), ManagementError> {
        let path = format!("/bindings/{}/e/{}/q/{}", enc(vhost), enc(exchange), enc(queue));
        let body = serde_json::json!({ "routing_key": routing_key });
        self.send(reqwest::Method::POST, &path, Some(&body))
            .await
            .map(|_| ())
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

/// The broker's `reason` from a 400 answer, with the HTML escaping the
/// management plugin applies undone, so operators read its own words.
fn broker_reason(body: &str) -> String {
    let reason = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.to_owned());
    reason
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn broker_reason_is_unescaped() {
        let body = r#"{"error":"bad_request","reason":"Validation failed\n\n&lt;&lt;\"bogus\"&gt;&gt; is not a valid queue-mode value\n"}"#;
        assert_eq!(
            super::broker_reason(body),
            "Validation failed\n\n<<\"bogus\">> is not a valid queue-mode value"
        );
    }
}
