//! One queue over time: ready, unacked and consumers as sampled by Redrive.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use std::time::Duration;

use super::advisor::finding;
use crate::api::{apply_fix, get_advisor, get_queue_history, list_queues};
use crate::components::ApiErrorBox;
use crate::components::{use_ticker, FreshnessBanner, LineChart, Series, VhostName};
use crate::format::{rate, url_encode};
use crate::model::{window_secs, QueueHistory, QueueInfo, WINDOWS};

/// The window links every chart page shows; plain links, so they work without JS.
#[component]
pub fn WindowPicker(base: String, current: String) -> impl IntoView {
    view! {
        <nav class="windows">
            {WINDOWS.iter().map(|w| {
                let href = format!("{base}?window={w}");
                let class = if *w == current { "btn btn-ghost active" } else { "btn btn-ghost" };
                view! { <a class=class href=href>{*w}</a> }
            }).collect_view()}
        </nav>
    }
}

/// The window from the URL, `1h` when missing or unknown.
pub fn window_param(raw: Option<String>) -> String {
    raw.filter(|w| window_secs(w).is_some())
        .unwrap_or_else(|| "1h".into())
}

fn queue_chart(h: QueueHistory) -> impl IntoView {
    let span = window_secs(&h.window).unwrap_or(3600) * 1000;
    let to = h.until;
    let from = to - span;
    let pick =
        |f: fn(&crate::model::HistoryPoint) -> f64| h.points.iter().map(|p| (p.at, f(p))).collect::<Vec<_>>();
    let counts = vec![
        Series {
            label: "ready",
            class: "s1",
            points: pick(|p| p.ready),
        },
        Series {
            label: "unacked",
            class: "s2",
            points: pick(|p| p.unacked),
        },
    ];
    let consumers = vec![Series {
        label: "consumers",
        class: "s3",
        points: pick(|p| p.consumers),
    }];
    view! {
        <LineChart series=counts from to title=format!("Messages, averaged per {} s", h.bucket_secs)/>
        <LineChart series=consumers from to title="Consumers"/>
    }
}

fn policies_label(policy: Option<String>, operator: Option<String>) -> String {
    match (policy, operator) {
        (None, None) => "no policy".to_owned(),
        (Some(p), None) => format!("policy {p}"),
        (None, Some(o)) => format!("operator policy {o}"),
        (Some(p), Some(o)) => format!("policy {p}, operator policy {o}"),
    }
}

/// The queue as it is now: counts, rates and what shapes its behaviour.
fn queue_summary(q: QueueInfo) -> impl IntoView {
    let json = |v: &serde_json::Value| match v.as_object() {
        Some(o) if !o.is_empty() => v.to_string(),
        _ => "none".to_owned(),
    };
    let setup = [
        Some(q.kind.as_str()),
        Some(if q.durable { "durable" } else { "transient" }),
        q.auto_delete.then_some("auto-delete"),
        q.exclusive.then_some("exclusive"),
        (q.mode == "lazy").then_some("lazy"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" · ");
    view! {
        <section class="cards">
            <div class="card"><span class="label">"Ready"</span><span class="value">{q.messages_ready}</span>
                <span class="muted">{format!("{} unacked, {} total", q.messages_unacknowledged, q.messages)}</span></div>
            <div class="card"><span class="label">"Consumers"</span><span class="value">{q.consumers}</span>
                <span class="muted">{format!("deliver {}/s, ack {}/s", rate(q.rates.deliver_get), rate(q.rates.ack))}</span></div>
            <div class="card"><span class="label">"Incoming"</span><span class="value">{format!("{}/s", rate(q.rates.incoming))}</span>
                <span class="muted">{format!("redelivered {}/s", rate(q.rates.redelivered))}</span></div>
            <div class="card"><span class="label">"Setup"</span><span class="value small">{setup}</span>
                <span class="muted">{policies_label(q.policy, q.operator_policy)}</span></div>
        </section>
        <table class="kv queue-args"><tbody>
            <tr><th>"Arguments"</th><td class="mono">{json(&q.arguments)}</td></tr>
            <tr><th>"Effective policy"</th><td class="mono">{json(&q.effective_policy)}</td></tr>
        </tbody></table>
    }
}

#[component]
pub fn QueuePage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let vhost = move || params.with(|p| p.get("vhost").unwrap_or_default());
    let name = move || params.with(|p| p.get("name").unwrap_or_default());
    let window = move || window_param(query.with(|q| q.get("window")));
    let history = Resource::new(
        move || (vhost(), name(), window()),
        |(vhost, queue, window)| get_queue_history(vhost, queue, window),
    );
    let fix = Action::new(|id: &i64| apply_fix(*id));
    let report = Resource::new(move || fix.version().get(), |_| get_advisor());
    let tick = use_ticker(Duration::from_secs(5));
    let queues = Resource::new(move || tick.get(), |_| list_queues());
    view! {
        <Title text=move || format!("Queue {}", name())/>
        <div class="page-head">
            <h1>{move || view! { <VhostName vhost=vhost() name=name()/> }}</h1>
            <div class="actions">
                <WindowPicker base=format!("/queues/{}/{}", url_encode(&vhost()), url_encode(&name())) current=window()/>
                <a class="btn btn-ghost" href=move || format!("/?vhost={}&queue={}", url_encode(&vhost()), url_encode(&name()))>"Captured messages"</a>
            </div>
        </div>
        <Transition fallback=|| ()>
            {move || queues.get().map(|res| match res {
                Err(e) => view! { <ApiErrorBox error=e.clone()/> }.into_any(),
                Ok(view) => {
                    let (vhost, name) = (vhost(), name());
                    match view.queues.into_iter().find(|q| q.vhost == vhost && q.name == name) {
                        Some(q) => view! { <FreshnessBanner freshness=view.freshness/> {queue_summary(q)} }.into_any(),
                        None => view! { <p class="empty">"The broker has no such queue (any more); its history is below."</p> }.into_any(),
                    }
                }
            })}
        </Transition>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || history.get().map(|res| match res {
                Err(e) => view! { <ApiErrorBox error=e.clone()/> }.into_any(),
                Ok(h) => queue_chart(h).into_any(),
            })}
        </Transition>
        <h2>"Advisor findings"</h2>
        {move || fix.value().get().and_then(Result::err).map(|e| view! { <ApiErrorBox error=e.clone()/> })}
        <Transition fallback=|| ()>
            {move || report.get().map(|res| match res {
                Err(e) => view! { <ApiErrorBox error=e.clone()/> }.into_any(),
                Ok(r) => {
                    let (vhost, name) = (vhost(), name());
                    let open: Vec<_> = r.findings.into_iter()
                        .filter(|f| f.resolved_at.is_none() && f.object_type == "queue" && f.vhost == vhost && f.object == name)
                        .collect();
                    if open.is_empty() {
                        view! { <p class="empty">"No open finding for this queue."</p> }.into_any()
                    } else {
                        view! { <ul class="findings">{open.into_iter().map(|f| finding(f, fix)).collect_view()}</ul> }.into_any()
                    }
                }
            })}
        </Transition>
    }
}
