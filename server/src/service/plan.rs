//! A replay plan and target checked before anything is stored or sent:
//! every number within reason, one target at a time, a start time that
//! reads. Bad input is a 400 that says what a valid one looks like.

use app::model::{ApiError, JobAction, JobRequest, ReplayPlan, ReplayTarget};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The highest rate accepted; above it "unlimited" is the honest setting.
pub const MAX_RATE: f64 = 10_000.0;
/// The longest a canary may be watched, and a job scheduled ahead.
const MAX_WATCH_SECONDS: u32 = 3_600;
const MAX_AHEAD_DAYS: i64 = 366;
/// A start time this far in the past is a mistake (a time zone?), not "now".
const PAST_SLACK_MS: i64 = 60_000;

fn bad(why: impl Into<String>) -> ApiError {
    ApiError::BadRequest(why.into())
}

fn rate_ok(rate: f64) -> bool {
    rate.is_finite() && rate > 0.0 && rate <= MAX_RATE
}

fn queue_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > 255 {
        return Err(bad("`to_queue` must name a queue (1 to 255 bytes)"));
    }
    Ok(())
}

/// One target at a time: a queue, the original queues, or an exchange.
pub fn validate_target(t: &ReplayTarget) -> Result<(), ApiError> {
    let overrides = t.exchange.is_some() || t.routing_key.is_some();
    if (t.to_queue.is_some() as u8 + t.to_original_queue as u8 + overrides as u8) > 1 {
        return Err(bad(
            "give one of `to_queue`, `to_original_queue` or `exchange`/`routing_key`",
        ));
    }
    t.to_queue.as_deref().map(queue_name).transpose()?;
    Ok(())
}

pub fn validate_plan(req: &JobRequest) -> Result<(), ApiError> {
    let plan: &ReplayPlan = &req.plan;
    if req.action == JobAction::Discard && !plan.is_plain() {
        return Err(bad(
            "a discard job takes no `canary`, `ramp`, `adaptive`, `max_backlog`, `to_queue` or `to_original_queue`",
        ));
    }
    validate_target(&ReplayTarget {
        exchange: req.exchange.clone(),
        routing_key: req.routing_key.clone(),
        to_queue: plan.to_queue.clone(),
        to_original_queue: plan.to_original_queue,
        edit: None,
    })?;
    if let Some(c) = &plan.canary {
        match (c.count, c.percent) {
            (Some(_), Some(_)) => return Err(bad("give the canary's `count` or its `percent`, not both")),
            (Some(0), _) => return Err(bad("`canary.count` must be at least 1")),
            (_, Some(p)) if !(p.is_finite() && p > 0.0 && p <= 100.0) => {
                return Err(bad("`canary.percent` must be above 0 and at most 100"))
            }
            (None, None) => return Err(bad("give the canary's `count` (or its `percent`)")),
            _ => {}
        }
        if c.watch_seconds > MAX_WATCH_SECONDS {
            return Err(bad(format!(
                "`canary.watch_seconds` must be at most {MAX_WATCH_SECONDS}"
            )));
        }
    }
    if let Some(r) = &plan.ramp {
        if !rate_ok(r.from) || r.to.is_some_and(|to| !rate_ok(to) || to < r.from) {
            return Err(bad(format!(
                "`ramp.from` and `ramp.to` must be above 0 and at most {MAX_RATE}, with `to` at least `from`"
            )));
        }
        if !(r.double_every_seconds.is_finite() && (0.1..=86_400.0).contains(&r.double_every_seconds)) {
            return Err(bad("`ramp.double_every_seconds` must be between 0.1 and 86400"));
        }
    }
    if plan.max_backlog == Some(0) {
        return Err(bad("`max_backlog` must be at least 1"));
    }
    if plan.max_backlog.is_some() && !plan.adaptive {
        return Err(bad(
            "`max_backlog` applies to an adaptive job: add `\"adaptive\": true`",
        ));
    }
    Ok(())
}

/// `start_at` as milliseconds since the epoch, checked: RFC 3339, not in
/// the past, within a year.
pub fn start_at_ms(start_at: Option<&str>, now_ms: i64) -> Result<Option<i64>, ApiError> {
    start_at
        .map(|text| future_ms("start_at", text, now_ms, "leave it out to start now"))
        .transpose()
}

/// A time an operator names for later (`field`, RFC 3339): not in the past
/// (`instead` says what to do then), within a year.
pub fn future_ms(field: &str, text: &str, now_ms: i64, instead: &str) -> Result<i64, ApiError> {
    let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        bad(format!(
            "`{field}` must be an RFC 3339 time, such as 2026-12-03T02:00:00Z"
        ))
    })?;
    let ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
    if ms < now_ms - PAST_SLACK_MS {
        return Err(bad(format!("`{field}` is in the past; {instead}")));
    }
    if ms > now_ms + MAX_AHEAD_DAYS * 86_400_000 {
        return Err(bad(format!("`{field}` must be within {MAX_AHEAD_DAYS} days")));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::model::{Canary, Ramp};

    fn req(plan: ReplayPlan) -> JobRequest {
        JobRequest {
            group: Some("g".into()),
            plan,
            ..JobRequest::new(JobAction::Replay)
        }
    }

    fn canary(count: Option<u32>, percent: Option<f64>) -> ReplayPlan {
        ReplayPlan {
            canary: Some(Canary {
                count,
                percent,
                watch_seconds: 10,
                max_failed_again: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn plans_are_checked() {
        assert!(validate_plan(&req(canary(Some(10), None))).is_ok());
        assert!(validate_plan(&req(canary(None, Some(5.0)))).is_ok());
        for bad in [
            canary(Some(0), None),
            canary(None, None),
            canary(Some(1), Some(1.0)),
            canary(None, Some(150.0)),
        ] {
            assert!(validate_plan(&req(bad.clone())).is_err(), "{bad:?}");
        }
        let ramp = |from: f64, to: Option<f64>, every: f64| ReplayPlan {
            ramp: Some(Ramp {
                from,
                to,
                double_every_seconds: every,
            }),
            ..Default::default()
        };
        assert!(validate_plan(&req(ramp(5.0, Some(100.0), 2.0))).is_ok());
        assert!(validate_plan(&req(ramp(0.0, None, 2.0))).is_err());
        assert!(validate_plan(&req(ramp(50.0, Some(10.0), 2.0))).is_err());
        assert!(validate_plan(&req(ramp(5.0, None, 0.0))).is_err());
        assert!(validate_plan(&req(ramp(5.0, None, f64::NAN))).is_err());
        let backlog = ReplayPlan {
            max_backlog: Some(10),
            ..Default::default()
        };
        assert!(validate_plan(&req(backlog.clone())).is_err(), "needs adaptive");
        assert!(validate_plan(&req(ReplayPlan {
            adaptive: true,
            ..backlog
        }))
        .is_ok());
        let both = JobRequest {
            exchange: Some("x".into()),
            ..req(ReplayPlan {
                to_queue: Some("q".into()),
                ..Default::default()
            })
        };
        assert!(validate_plan(&both).is_err());
        let discard = JobRequest {
            action: JobAction::Discard,
            ..req(canary(Some(1), None))
        };
        assert!(validate_plan(&discard).is_err());
    }

    #[test]
    fn start_times_read_and_lie_ahead() {
        // 2027-01-01T00:00:00Z
        let now = 1_798_761_600_000;
        assert_eq!(start_at_ms(None, now).unwrap(), None);
        assert_eq!(
            start_at_ms(Some("2027-01-15T08:00:00+01:00"), now).unwrap(),
            Some(now + (14 * 24 + 7) * 3_600_000)
        );
        assert!(
            start_at_ms(Some("2026-12-31T23:59:30Z"), now).is_ok(),
            "a moment ago is now"
        );
        assert!(start_at_ms(Some("tomorrow"), now).is_err());
        assert!(start_at_ms(Some("2020-01-01T00:00:00Z"), now).is_err());
        assert!(start_at_ms(Some("2099-01-01T00:00:00Z"), now).is_err());
    }
}
