//! How a replay job goes out, beyond what it selects: a canary checked
//! before the rest, a ramp, a rate that follows the target queues, and
//! where the copies go when the original route would reach more than the
//! service that failed. Fixed when the job is created.

use serde::{Deserialize, Serialize};

use super::word::word;

/// Replay a few first and watch whether they come back as failures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Canary {
    /// How many messages the canary replays; or give `percent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// The canary as a share of the job (1 to 100), rounded up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// How long to wait after the canary for copies that fail again.
    #[serde(default = "default_watch")]
    pub watch_seconds: u32,
    /// More copies than this failing again pause the job.
    #[serde(default)]
    pub max_failed_again: u32,
}

fn default_watch() -> u32 {
    30
}

impl Canary {
    /// How many messages of a job of `total` the canary replays.
    pub fn size(&self, total: i64) -> i64 {
        let n = match (self.count, self.percent) {
            (Some(n), _) => i64::from(n),
            (None, Some(p)) => (total as f64 * p / 100.0).ceil() as i64,
            (None, None) => 1,
        };
        n.clamp(1, total.max(1))
    }
}

/// After the canary, start slow and double.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ramp {
    /// Messages per second to start at.
    pub from: f64,
    /// The rate to stop doubling at; the job's `rate_per_sec` when absent
    /// (and unlimited when neither is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<f64>,
    pub double_every_seconds: f64,
}

impl Ramp {
    /// The rate `elapsed` seconds into the ramp; `None` once it has reached
    /// an unlimited end.
    pub fn rate_after(&self, elapsed: f64, ceiling: Option<f64>) -> Option<f64> {
        let doublings = (elapsed / self.double_every_seconds).floor().clamp(0.0, 60.0);
        let rate = self.from * 2f64.powf(doublings);
        match self.to.or(ceiling) {
            Some(top) => Some(rate.min(top)),
            None if rate >= RAMP_UNLIMITED => None,
            None => Some(rate),
        }
    }

    /// Whether the ramp has reached its end at `rate`.
    pub fn reached(&self, rate: Option<f64>, ceiling: Option<f64>) -> bool {
        match (rate, self.to.or(ceiling)) {
            (None, _) => true,
            (Some(r), Some(top)) => r >= top,
            (Some(_), None) => false,
        }
    }
}

/// A ramp with no end stops limiting once it has doubled past this.
pub const RAMP_UNLIMITED: f64 = 10_000.0;

/// The ready backlog an adaptive job lets a target queue reach by default.
pub const DEFAULT_MAX_BACKLOG: u32 = 1_000;

/// Everything about how a replay job sends, as requested and as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplayPlan {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<Ramp>,
    /// Wait while a target queue has no consumer or too long a backlog.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adaptive: bool,
    /// The ready messages a target queue may hold before an adaptive job
    /// waits (until it is back under half); 1,000 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backlog: Option<u32>,
    /// Send every copy to this queue only (through the default exchange).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_queue: Option<String>,
    /// Send each copy to the queue it was dead-lettered from only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub to_original_queue: bool,
}

impl ReplayPlan {
    /// Today's replay: the original route, as fast as the cap allows.
    pub const PLAIN: Self = Self {
        canary: None,
        ramp: None,
        adaptive: false,
        max_backlog: None,
        to_queue: None,
        to_original_queue: false,
    };

    pub fn max_backlog(&self) -> u32 {
        self.max_backlog.unwrap_or(DEFAULT_MAX_BACKLOG)
    }

    /// Whether nothing beyond today's plain replay was asked for.
    pub fn is_plain(&self) -> bool {
        *self == Self::default()
    }
}

/// Where a running replay job is in its plan.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum JobPhase {
    /// Replaying the canary's messages.
    Canary,
    /// The canary is out; waiting to see whether copies come back.
    Watching,
    /// Doubling its rate.
    Ramping,
    /// At its ceiling (`rate_per_sec`, or as fast as the broker confirms).
    FullSpeed,
}

word!(JobPhase, "job phase");

impl JobPhase {
    pub fn label(self) -> &'static str {
        match self {
            Self::Canary => "canary",
            Self::Watching => "watching the canary",
            Self::Ramping => "ramping",
            Self::FullSpeed => "full speed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_size_by_count_or_share() {
        let by_count = Canary {
            count: Some(10),
            percent: None,
            watch_seconds: 5,
            max_failed_again: 0,
        };
        assert_eq!(by_count.size(1_000), 10);
        assert_eq!(by_count.size(4), 4);
        let by_share = Canary {
            count: None,
            percent: Some(1.0),
            ..by_count
        };
        assert_eq!(by_share.size(1_050), 11);
        assert_eq!(by_share.size(3), 1);
    }

    #[test]
    fn ramp_doubles_to_its_end() {
        let ramp = Ramp {
            from: 5.0,
            to: Some(30.0),
            double_every_seconds: 2.0,
        };
        assert_eq!(ramp.rate_after(0.0, None), Some(5.0));
        assert_eq!(ramp.rate_after(1.9, None), Some(5.0));
        assert_eq!(ramp.rate_after(2.0, None), Some(10.0));
        assert_eq!(ramp.rate_after(4.5, None), Some(20.0));
        assert_eq!(ramp.rate_after(60.0, None), Some(30.0));
        assert!(ramp.reached(Some(30.0), None));
        let open = Ramp { to: None, ..ramp };
        assert_eq!(open.rate_after(4.0, Some(12.0)), Some(12.0));
        assert_eq!(open.rate_after(1_000.0, None), None);
        assert!(!open.reached(Some(80.0), None));
    }

    #[test]
    fn a_plain_plan_serialises_to_nothing() {
        assert_eq!(
            serde_json::to_value(ReplayPlan::default()).unwrap(),
            serde_json::json!({})
        );
        let plan: ReplayPlan = serde_json::from_value(serde_json::json!({
            "canary": {"count": 10, "watch_seconds": 20, "max_failed_again": 1},
            "adaptive": true
        }))
        .unwrap();
        assert_eq!(plan.canary.as_ref().unwrap().watch_seconds, 20);
        assert_eq!(plan.max_backlog(), 1_000);
        assert!(!plan.is_plain());
    }
}
