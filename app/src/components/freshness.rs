//! The degraded-mode banner: broker data is the last known, and how old.

use leptos::prelude::*;

use crate::format::ms_time;
use crate::model::Freshness;

#[component]
pub fn FreshnessBanner(freshness: Freshness) -> impl IntoView {
    freshness.error.map(|error| {
        let since = freshness
            .fetched_at
            .map(|at| format!("Showing the last known data, from {} UTC.", ms_time(at)))
            .unwrap_or_else(|| "No broker data yet.".into());
        view! {
            <div class="banner degraded" role="status">
                <strong>"Management API unavailable. "</strong>
                {since}
                " Capture, search and replay keep working. "
                <span class="muted">{error}</span>
            </div>
        }
    })
}
