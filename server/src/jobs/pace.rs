//! A replay job's plan over time: the canary (send N, then hold), the
//! watch (count the canary's copies that came back failed), the ramp
//! (double the rate every T seconds, back to the start when copies come
//! back) and full speed. Each change of phase or rate is written to the
//! job, so its page says what it does and why, and a restart goes on from
//! the same phase (a ramp starts over: slow is the safe side).

use std::time::Duration;

use app::model::{JobAction, JobPhase, ReplayPlan};
use tokio::time::Instant;

use crate::store::{first_phase, now_ms, JobSpec, PhaseRecord};

/// The copies listed on a job that paused after its canary, at most.
pub const RETURNED_LISTED: i64 = 100;

/// What the runner should do after [`Pace::tick`].
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Nothing changes.
    Stay,
    /// The phase or rate changed: record it.
    Record(PhaseRecord),
    /// The watch is over: count the canary's copies that came back.
    Judge,
}

pub struct Pace {
    plan: ReplayPlan,
    ceiling: Option<f64>,
    phase: JobPhase,
    /// Start of the current phase, on both clocks.
    since: Instant,
    since_ms: i64,
    base: i64,
    canary_size: i64,
    canary_since: i64,
    /// Canary messages sent (published, whatever their outcome).
    canary_sent: i64,
    rate: Option<f64>,
}

fn rate_text(rate: Option<f64>) -> String {
    rate.map_or("unlimited".into(), |r| format!("{r:.0}/s"))
}

impl Pace {
    /// Where `spec`'s plan stands: its recorded phase, or the plan's start.
    pub fn begin(spec: &JobSpec, plan: ReplayPlan) -> (Self, PhaseRecord) {
        let recorded = spec.phase();
        let phase = recorded.unwrap_or_else(|| first_phase(JobAction::Replay, &plan));
        let now = now_ms();
        let since_ms = match recorded {
            Some(JobPhase::Watching | JobPhase::Canary) => spec.phase_since.unwrap_or(now),
            // A ramp starts over after a restart.
            _ => now,
        };
        let elapsed = Duration::from_millis((now - since_ms).max(0) as u64);
        let base = if recorded.is_some() {
            spec.phase_base
        } else {
            spec.settled
        };
        let canary_since = match (recorded, spec.canary_since) {
            (Some(_), Some(at)) => at,
            _ => now,
        };
        let mut pace = Self {
            canary_size: plan.canary.as_ref().map_or(0, |c| c.size(spec.total)),
            canary_sent: if phase == JobPhase::Canary {
                spec.settled - base
            } else {
                0
            },
            plan,
            ceiling: spec.rate_per_sec,
            phase,
            since: Instant::now().checked_sub(elapsed).unwrap_or_else(Instant::now),
            since_ms,
            base,
            canary_since,
            rate: None,
        };
        pace.rate = pace.rate_now();
        let record = pace.record(pace.note());
        (pace, record)
    }

    /// Whether the canary decides (while it is out and watched, the loop
    /// check leaves the verdict to it).
    pub fn in_canary(&self) -> bool {
        matches!(self.phase, JobPhase::Canary | JobPhase::Watching)
    }

    /// The rate cap that applies now; `None` is unlimited.
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    fn rate_now(&self) -> Option<f64> {
        match (self.phase, &self.plan.ramp) {
            // A canary goes at the start of the ramp (or the cap): it is a handful.
            (JobPhase::Canary, Some(ramp)) => Some(ramp.from),
            (JobPhase::Ramping, Some(ramp)) => {
                ramp.rate_after(self.since.elapsed().as_secs_f64(), self.ceiling)
            }
            _ => self.ceiling,
        }
    }

    /// How many more may be sent in this phase; `None` when the phase has
    /// no count (ramping, full speed).
    pub fn allowance(&self) -> Option<i64> {
        match self.phase {
            JobPhase::Canary => Some((self.canary_size - self.canary_sent).max(0)),
            JobPhase::Watching => Some(0),
            _ => None,
        }
    }

    pub fn sent(&mut self) {
        if self.phase == JobPhase::Canary {
            self.canary_sent += 1;
        }
    }

    /// When the watch ends (for the runner's wake-up).
    pub fn watch_ends(&self) -> Option<Instant> {
        let canary = self.plan.canary.as_ref()?;
        (self.phase == JobPhase::Watching)
            .then(|| self.since + Duration::from_secs(u64::from(canary.watch_seconds)))
    }

    /// When the ramp's rate next doubles.
    pub fn next_doubling(&self) -> Option<Instant> {
        let ramp = self.plan.ramp.as_ref()?;
        if self.phase != JobPhase::Ramping {
            return None;
        }
        let every = ramp.double_every_seconds;
        let n = (self.since.elapsed().as_secs_f64() / every).floor() + 1.0;
        Some(self.since + Duration::from_secs_f64(n * every))
    }

    /// Moves on when the phase is over. `settled` says whether everything
    /// sent so far has its verdict recorded.
    pub fn tick(&mut self, settled: bool, settled_items: i64) -> Step {
        match self.phase {
            JobPhase::Canary if self.canary_sent >= self.canary_size && settled => {
                self.enter(JobPhase::Watching, settled_items);
                let watch = self.plan.canary.as_ref().map_or(0, |c| c.watch_seconds);
                Step::Record(self.record(Some(format!(
                    "the canary's {} messages are out; watching {watch}s for copies that fail again",
                    self.canary_sent
                ))))
            }
            JobPhase::Watching if self.watch_ends().is_some_and(|t| Instant::now() >= t) => Step::Judge,
            JobPhase::Ramping => {
                let rate = self.rate_now();
                let ramp = self.plan.ramp.as_ref().expect("ramping has a ramp");
                if ramp.reached(rate, self.ceiling) {
                    self.enter(JobPhase::FullSpeed, settled_items);
                    return Step::Record(self.record(Some("the ramp reached its end".into())));
                }
                if rate != self.rate {
                    self.rate = rate;
                    return Step::Record(self.record(self.note()));
                }
                Step::Stay
            }
            _ => Step::Stay,
        }
    }

    /// The canary's verdict: `Err(reason)` pauses the job.
    pub fn judge(&mut self, returned: i64, settled_items: i64) -> Result<PhaseRecord, String> {
        let allowed = self
            .plan
            .canary
            .as_ref()
            .map_or(0, |c| i64::from(c.max_failed_again));
        let verdict = format!("canary: {returned} of {} failed again", self.canary_sent);
        if returned > allowed {
            return Err(verdict);
        }
        let next = if self.plan.ramp.is_some() {
            JobPhase::Ramping
        } else {
            JobPhase::FullSpeed
        };
        self.enter(next, settled_items);
        Ok(self.record(Some(format!("{verdict} (at most {allowed} allowed); going on"))))
    }

    /// Copies came back while ramping: start the ramp over.
    pub fn copies_back(&mut self, back: i64, settled_items: i64) -> Option<PhaseRecord> {
        if self.phase != JobPhase::Ramping || back == 0 {
            return None;
        }
        self.enter(JobPhase::Ramping, settled_items);
        Some(self.record(Some(format!(
            "{back} copies came back failed; back to {}",
            rate_text(self.rate)
        ))))
    }

    pub fn canary_since(&self) -> i64 {
        self.canary_since
    }

    fn enter(&mut self, phase: JobPhase, settled_items: i64) {
        self.phase = phase;
        self.since = Instant::now();
        self.since_ms = now_ms();
        self.base = settled_items;
        self.rate = self.rate_now();
    }

    fn note(&self) -> Option<String> {
        Some(match (self.phase, &self.plan.ramp) {
            (JobPhase::Canary, _) => format!(
                "replaying a canary of {} before the rest ({} sent)",
                self.canary_size, self.canary_sent
            ),
            (JobPhase::Watching, _) => "watching the canary's copies".into(),
            (JobPhase::Ramping, Some(r)) => format!(
                "ramping: {}, doubling every {}s up to {}",
                rate_text(self.rate),
                r.double_every_seconds,
                rate_text(r.to.or(self.ceiling))
            ),
            _ => format!("full speed: {}", rate_text(self.rate)),
        })
    }

    fn record(&self, note: Option<String>) -> PhaseRecord {
        PhaseRecord {
            phase: self.phase,
            since: self.since_ms,
            base: self.base,
            rate: self.rate,
            note,
            canary_since: (self.phase == JobPhase::Canary).then_some(self.canary_since),
        }
    }
}
