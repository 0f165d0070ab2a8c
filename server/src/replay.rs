//! Replay: republish a stored message with publisher confirms and `mandatory`.
//!
//! A replay counts only when the broker has acked the publish; a return
//! (unroutable), a nack, a closed channel (missing exchange) or a timeout is an
//! error carrying the broker's own words.

use std::time::Duration;

use app::format::exchange_label;
use app::model::{ApiError, MessageEdit, ReplayTarget};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::BasicProperties;
use lapin::Confirmation;
use serde_json::Value;

mod diff;
pub mod pipeline;

use crate::broker::AmqpPool;
use crate::domain::Mask;
use crate::fields::{json_to_properties, json_to_table};
use crate::ingest::decode::REPLAY_ID_HEADER;
use crate::store::StoredMessage;

/// A message ready to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub exchange: String,
    pub routing_key: String,
    pub properties: BasicProperties,
    pub body: Vec<u8>,
    pub replay_id: String,
    /// What the operator changed, for the history; `None` when nothing.
    pub edit_diff: Option<String>,
}

impl Outgoing {
    /// `exchange` / `routing key` as shown in history; `(default)` for "".
    pub fn target(&self) -> String {
        format!("{} / {}", exchange_label(&self.exchange), self.routing_key)
    }
}

/// Why a publish did not end in a confirm, in three kinds that call for
/// different handling (see [`PublishError::kind`]).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("returned by the broker: {code} {text}")]
    Returned { code: u16, text: String },
    #[error("negatively acknowledged (nack) by the broker")]
    Nacked,
    /// The broker closed the channel over this publish (missing exchange,
    /// no permission): it refused the message.
    #[error("{0}")]
    Refused(lapin::Error),
    /// No channel, or no confirm mode: `basic.publish` was never sent.
    #[error("not published: {0}")]
    NotPublished(String),
    #[error("published, but no confirm from the broker within {0:?}")]
    Timeout(Duration),
    /// The connection failed after `basic.publish` was sent.
    #[error("published, but the connection failed before the broker confirmed: {0}")]
    Lost(lapin::Error),
}

/// What a failed publish means for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The broker said no: retrying the same publish fails the same way.
    Refused,
    /// Nothing reached the broker: safe to retry.
    NotPublished,
    /// It may or may not have been delivered: never retried on its own.
    Unknown,
}

impl PublishError {
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Returned { .. } | Self::Nacked | Self::Refused(_) => FailureKind::Refused,
            Self::NotPublished(_) => FailureKind::NotPublished,
            Self::Timeout(_) | Self::Lost(_) => FailureKind::Unknown,
        }
    }

    /// A lapin error once `basic.publish` was sent: a soft (channel) error
    /// is the broker refusing this message, anything else leaves it unknown.
    fn after_publish(e: lapin::Error) -> Self {
        if e.is_amqp_soft_error() {
            Self::Refused(e)
        } else {
            Self::Lost(e)
        }
    }
}

/// Whether a header is failure bookkeeping that must not travel with a replay:
/// a copy carrying an old `x-death` would confuse `x-death`-based retry counters.
fn is_failure_header(name: &str) -> bool {
    name == "x-death"
        // Set by quorum queues on redelivery; the target counts its own.
        || name == "x-delivery-count"
        || name.starts_with("x-first-death-")
        || name.starts_with("x-last-death-")
        || name.starts_with("x-exception-")
        || name == REPLAY_ID_HEADER
}

/// Builds the copy to publish. Pure, so bad input is refused before anything
/// is sent or written. An edit's diff, kept in the message's history for
/// everyone who reads it, is of the bodies and headers as `shown` masks them.
pub fn prepare(
    msg: &StoredMessage,
    target: &ReplayTarget,
    replay_id: String,
    shown: &Mask,
) -> Result<Outgoing, ApiError> {
    let (exchange, routing_key) = route(msg, target)?;
    for (what, v) in [("exchange", &exchange), ("routing key", &routing_key)] {
        if v.len() > 255 {
            return Err(ApiError::BadRequest(format!("{what} is longer than 255 bytes")));
        }
    }

    let edited = target
        .edit
        .as_ref()
        .is_some_and(|e| e.headers.is_some() || e.properties.is_some());
    let invalid = |e: crate::fields::FieldError| {
        let whose = if edited { "edited" } else { "stored" };
        ApiError::BadRequest(format!("{whose} message cannot be republished: {e}"))
    };
    let (props_json, headers_json, body, edit_diff) = match &target.edit {
        // A bulk job's case: the stored message as it is, nothing to diff.
        None => (msg.properties(), msg.headers(), msg.body.clone(), None),
        Some(edit) => edited_copy(msg, edit, shown)?,
    };
    let mut headers = match headers_json {
        Value::Object(map) => map,
        _ => return Err(ApiError::BadRequest("headers must be an object".into())),
    };
    headers.retain(|k, _| !is_failure_header(k));
    headers.insert(
        REPLAY_ID_HEADER.into(),
        serde_json::json!({ "type": "longstr", "value": replay_id }),
    );
    let headers = json_to_table(&Value::Object(headers), "headers").map_err(invalid)?;
    let properties = json_to_properties(&props_json)
        .map_err(invalid)?
        .with_headers(headers);
    Ok(Outgoing {
        exchange,
        routing_key,
        properties,
        body,
        replay_id,
        edit_diff,
    })
}

/// The exchange and routing key a copy is published with: one queue only
/// (through the default exchange), or the original route unless overridden.
fn route(msg: &StoredMessage, target: &ReplayTarget) -> Result<(String, String), ApiError> {
    if let Some(queue) = &target.to_queue {
        return Ok((String::new(), queue.clone()));
    }
    if target.to_original_queue {
        let queue = msg.original_queue().ok_or_else(|| {
            ApiError::BadRequest(
                "the queue this message was dead-lettered from is unknown (it has no `x-death` entry \
                 naming one); give a queue or an exchange to replay to"
                    .into(),
            )
        })?;
        return Ok((String::new(), queue));
    }
    let exchange = target
        .exchange
        .clone()
        .or_else(|| msg.original_exchange().map(str::to_owned))
        .ok_or_else(|| {
            ApiError::BadRequest(
                "the original exchange of this message is unknown; give an exchange to replay to".into(),
            )
        })?;
    let routing_key = target
        .routing_key
        .clone()
        .or_else(|| msg.original_routing_key().map(str::to_owned))
        .unwrap_or_default();
    Ok((exchange, routing_key))
}

/// Properties, headers and body of an edited copy, and what changed.
fn edited_copy(
    msg: &StoredMessage,
    edit: &MessageEdit,
    shown: &Mask,
) -> Result<(Value, Value, Vec<u8>, Option<String>), ApiError> {
    let (old_props, old_headers) = (msg.properties(), msg.headers());
    let props_json = edit.properties.clone().unwrap_or_else(|| old_props.clone());
    let headers_json = edit.headers.clone().unwrap_or_else(|| old_headers.clone());
    let body = match &edit.body {
        Some(text) => {
            let is_json = props_json["content_type"]
                .as_str()
                .is_some_and(|c| c.contains("json"));
            if is_json {
                serde_json::from_str::<Value>(text)
                    .map_err(|e| ApiError::BadRequest(format!("edited body is not valid JSON: {e}")))?;
            }
            text.clone().into_bytes()
        }
        None => msg.body.clone(),
    };
    let body_shown = |b: &[u8]| shown.body(b).unwrap_or_else(|| b.to_vec());
    let headers_shown = |h: &Value| shown.headers(h, msg.reason()).unwrap_or_else(|| h.clone());
    let edit_diff = diff::describe(
        (&body_shown(&msg.body), &body_shown(&body)),
        (&old_props, &props_json),
        (&headers_shown(&old_headers), &headers_shown(&headers_json)),
    );
    Ok((props_json, headers_json, body, edit_diff))
}

#[derive(Clone)]
pub struct Publisher {
    amqp: AmqpPool,
    confirm_timeout: Duration,
}

impl Publisher {
    pub fn new(amqp: AmqpPool, confirm_timeout: Duration) -> Self {
        Self {
            amqp,
            confirm_timeout,
        }
    }

    /// Whether an AMQP channel can be opened on the default vhost (readiness).
    pub fn confirm_timeout(&self) -> Duration {
        self.confirm_timeout
    }

    /// The publishing connections (an adaptive job reads its target queues on them).
    pub fn amqp(&self) -> &AmqpPool {
        &self.amqp
    }

    /// A pipeline for a bulk job, on the publishing connections.
    pub fn pipeline<T>(&self) -> pipeline::Pipeline<T> {
        pipeline::Pipeline::new(self.amqp.clone(), self.confirm_timeout)
    }

    pub async fn ping(&self) -> Result<(), lapin::Error> {
        let channel = self.amqp.channel(self.amqp.default_vhost()).await?;
        channel.close(200, "readiness probe".into()).await
    }

    /// Publishes on a channel of its own: a missing exchange closes the
    /// channel, which must not fail other replays in flight.
    pub async fn publish(&self, vhost: &str, out: &Outgoing) -> Result<(), PublishError> {
        // A wedged connection must not hold the replay forever: nothing is
        // sent until the channel is open and in confirm mode.
        let wait = self.confirm_timeout;
        let not_published = |e: lapin::Error| PublishError::NotPublished(e.to_string());
        let channel = tokio::time::timeout(wait, self.amqp.channel(vhost))
            .await
            .map_err(|_| PublishError::NotPublished(format!("no channel within {wait:?}")))?
            .map_err(not_published)?;
        let result = async {
            let select = channel.confirm_select(ConfirmSelectOptions::default());
            tokio::time::timeout(wait, select)
                .await
                .map_err(|_| {
                    PublishError::NotPublished(format!("confirm.select not answered within {wait:?}"))
                })?
                .map_err(not_published)?;
            publish_confirmed(
                &channel,
                (&out.exchange, &out.routing_key),
                &out.body,
                out.properties.clone(),
                self.confirm_timeout,
            )
            .await
        }
        .await;
        if channel.status().connected() {
            let _ = channel.close(200, "replay done".into()).await;
        }
        result
    }
}

/// Publishes one message with `mandatory` on a channel in confirm mode and
/// waits for the broker's verdict: only an ack without a return is success.
/// Shared by replays and `redrive import`.
pub async fn publish_confirmed(
    channel: &lapin::Channel,
    (exchange, routing_key): (&str, &str),
    body: &[u8],
    properties: BasicProperties,
    timeout: Duration,
) -> Result<(), PublishError> {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            properties,
        )
        .await
        .map_err(PublishError::after_publish)?;
    let confirmation = tokio::time::timeout(timeout, confirm)
        .await
        .map_err(|_| PublishError::Timeout(timeout))?
        .map_err(PublishError::after_publish)?;
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(ret)) | Confirmation::Nack(Some(ret)) => Err(PublishError::Returned {
            code: ret.reply_code,
            text: ret.reply_text.to_string(),
        }),
        Confirmation::Nack(None) | Confirmation::NotRequested => Err(PublishError::Nacked),
    }
}
