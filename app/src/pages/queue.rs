//! One queue over time: ready, unacked and consumers as sampled by Redrive.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::advisor::finding;
use crate::api::{apply_fix, error_text, get_advisor, get_queue_history};
use crate::components::{ErrorBox, LineChart, Series};
use crate::format::url_encode;
use crate::model::{window_secs, QueueHistory, WINDOWS};

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
    view! {
        <Title text=move || format!("Queue {}", name())/>
        <div class="page-head">
            <h1>{move || format!("{} / {}", vhost(), name())}</h1>
            <div class="actions">
                <WindowPicker base=format!("/queues/{}/{}", url_encode(&vhost()), url_encode(&name())) current=window()/>
                <a class="btn btn-ghost" href=move || format!("/?vhost={}&queue={}", url_encode(&vhost()), url_encode(&name()))>"Captured messages"</a>
            </div>
        </div>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || history.get().map(|res| match res {
                Err(e) => view! { <ErrorBox message=error_text(&e)/> }.into_any(),
                Ok(h) => queue_chart(h).into_any(),
            })}
        </Transition>
        <h2>"Advisor findings"</h2>
        {move || fix.value().get().and_then(Result::err).map(|e| view! { <ErrorBox message=error_text(&e)/> })}
        <Transition fallback=|| ()>
            {move || report.get().map(|res| match res {
                Err(e) => view! { <ErrorBox message=error_text(&e)/> }.into_any(),
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
