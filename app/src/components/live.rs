//! Live refresh: a counter that ticks in the browser, for resources to
//! depend on. Nothing ticks during server rendering.

use std::time::Duration;

use leptos::prelude::*;

/// A signal bumped every `every` once the page is hydrated.
pub fn use_ticker(every: Duration) -> RwSignal<u32> {
    let tick = RwSignal::new(0u32);
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(move || tick.update(|n| *n = n.wrapping_add(1)), every) {
            on_cleanup(move || handle.clear());
        }
    });
    tick
}
