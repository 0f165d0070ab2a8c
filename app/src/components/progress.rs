//! A job's progress: done / failed / remaining as one stacked bar.

use leptos::prelude::*;

use crate::model::Job;

/// Percent of a job's messages that are settled (done or failed), 0–100.
pub fn percent(job: &Job) -> u32 {
    if job.total <= 0 {
        return 100;
    }
    (((job.done + job.failed) * 100) / job.total).clamp(0, 100) as u32
}

#[component]
pub fn ProgressBar(job: Job) -> impl IntoView {
    let total = job.total.max(1) as f64;
    let done = job.done as f64 * 100.0 / total;
    let failed = job.failed as f64 * 100.0 / total;
    let pct = percent(&job);
    view! {
        <div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow=pct data-percent=pct>
            <div class="progress-done" style=format!("width: {done:.2}%")></div>
            <div class="progress-failed" style=format!("width: {failed:.2}%")></div>
        </div>
    }
}
