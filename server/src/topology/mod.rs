//! The broker's topology as Redrive reads it: one vhost's queues, bindings,
//! policies and consumers, and which of its queues hold failures. Capture
//! and the monitor both classify from it, so it sits below both.

mod classify;
mod routes;

use std::collections::HashMap;

use app::model::{CaptureMode, Policy};

use crate::broker::management::{BindingInfo, ChannelInfo, ConnectionInfo, ConsumerInfo, ExchangeInfo};
use crate::broker::{Management, ManagementError, QueueStats};

pub use classify::{classify, Role, Verdict, WatchRules, CONSUMER_TAG_PREFIX};
pub use routes::{topic_matches, Reach, RouteMap};

/// The operator's watch switches: vhost → queue → capture.
pub type Overrides = HashMap<String, HashMap<String, bool>>;

/// The operator's capture modes: vhost → queue → mode.
pub type Modes = HashMap<String, HashMap<String, CaptureMode>>;

#[derive(Debug, Clone, Default)]
pub struct VhostState {
    pub name: String,
    pub queues: Vec<QueueStats>,
    pub exchanges: Vec<ExchangeInfo>,
    pub bindings: Vec<BindingInfo>,
    pub policies: Vec<Policy>,
    pub consumers: Vec<ConsumerInfo>,
    pub channels: Vec<ChannelInfo>,
    pub connections: Vec<ConnectionInfo>,
    /// Every queue's classification (captured or not, and why).
    pub verdicts: HashMap<String, Verdict>,
    /// The operator's switches in this vhost.
    pub overrides: HashMap<String, bool>,
    /// The operator's capture modes in this vhost.
    pub modes: HashMap<String, CaptureMode>,
    /// The mode of a queue without one (`REDRIVE_CAPTURE_MODE`).
    pub default_mode: CaptureMode,
}

impl VhostState {
    /// What capture needs to classify a vhost's queues, and nothing more.
    pub async fn fetch_for_capture(management: &Management, name: &str) -> Result<Self, ManagementError> {
        let (queues, bindings, policies, consumers) = tokio::try_join!(
            management.queues(name),
            management.bindings(name),
            management.policies(name),
            management.consumers(name),
        )?;
        Ok(Self {
            name: name.to_owned(),
            queues,
            bindings,
            policies,
            consumers,
            ..Self::default()
        })
    }

    /// How this vhost routes, from its exchanges and bindings.
    pub async fn routes(management: &Management, name: &str) -> Result<RouteMap, ManagementError> {
        let (exchanges, bindings) = tokio::try_join!(management.exchanges(name), management.bindings(name))?;
        Ok(RouteMap::new(&exchanges, &bindings))
    }

    /// The queue's classification; a queue unknown to it is a work queue.
    pub fn verdict(&self, queue: &str) -> Option<&Verdict> {
        self.verdicts.get(queue)
    }

    pub fn is_watched(&self, queue: &str) -> bool {
        self.verdict(queue).is_some_and(|v| v.watched)
    }

    /// How `queue` is captured when it is.
    pub fn mode_of(&self, queue: &str) -> CaptureMode {
        self.modes.get(queue).copied().unwrap_or(self.default_mode)
    }

    /// Whether `queue` is captured through a tap.
    pub fn is_tapped(&self, queue: &str) -> bool {
        self.is_watched(queue) && self.mode_of(queue) == CaptureMode::Tap
    }
}
