//! Every queue with the management UI's columns, sortable and filterable
//! through the URL (so it works before hydration too), refreshed live.

use std::time::Duration;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::{list_queues, SetWatch};
use crate::components::ApiErrorBox;
use crate::components::{use_ticker, FreshnessBanner};
use crate::format::{non_empty, rate, url_encode};
use crate::model::{ConsumerState, QueueInfo};

/// Sortable columns: (URL key, header, numeric).
const COLUMNS: [(&str, &str, bool); 10] = [
    ("name", "Queue", false),
    ("ready", "Ready", true),
    ("unacked", "Unacked", true),
    ("total", "Total", true),
    ("consumers", "Consumers", true),
    ("incoming", "In /s", true),
    ("deliver", "Deliver /s", true),
    ("redelivered", "Redelivered /s", true),
    ("ack", "Ack /s", true),
    ("policy", "Policy", false),
];

fn sort_value(q: &QueueInfo, key: &str) -> f64 {
    match key {
        "ready" => q.messages_ready as f64,
        "unacked" => q.messages_unacknowledged as f64,
        "total" => q.messages as f64,
        "consumers" => q.consumers as f64,
        "incoming" => q.rates.incoming,
        "deliver" => q.rates.deliver_get,
        "redelivered" => q.rates.redelivered,
        "ack" => q.rates.ack,
        _ => 0.0,
    }
}

/// Filters by a case-insensitive substring of `vhost/name`, then sorts.
pub fn arrange(mut list: Vec<QueueInfo>, filter: &str, sort: &str, desc: bool) -> Vec<QueueInfo> {
    let needle = filter.to_lowercase();
    list.retain(|q| needle.is_empty() || format!("{}/{}", q.vhost, q.name).to_lowercase().contains(&needle));
    match sort {
        "name" | "" => list.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name))),
        "policy" => list.sort_by(|a, b| a.policy.cmp(&b.policy)),
        key => list.sort_by(|a, b| sort_value(a, key).total_cmp(&sort_value(b, key))),
    }
    if desc {
        list.reverse();
    }
    list
}

pub fn queue_href(vhost: &str, name: &str) -> String {
    format!("/queues/{}/{}", url_encode(vhost), url_encode(name))
}

#[component]
pub fn QueuesPage() -> impl IntoView {
    let params = use_query_map();
    let tick = use_ticker(Duration::from_secs(5));
    let switch = ServerAction::<SetWatch>::new();
    let queues = Resource::new(move || (tick.get(), switch.version().get()), |_| list_queues());
    let param = move |k: &str| params.with(|p| p.get(k).unwrap_or_default());

    view! {
        <Title text="Queues"/>
        <div class="page-head">
            <h1>"Queues"</h1>
            <form class="actions" method="get" action="/queues">
                <input type="search" name="q" placeholder="filter vhost/name" value=move || param("q")/>
                <button class="btn btn-ghost" type="submit">"Filter"</button>
            </form>
        </div>
        {move || switch.value().get().and_then(Result::err).map(|e| view! { <ApiErrorBox error=e.clone()/> })}
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || queues.get().map(|res| match res {
                Err(e) => view! { <ApiErrorBox error=e.clone()/> }.into_any(),
                Ok(view) => {
                    let sort = param("sort");
                    let desc = param("desc") == "1";
                    let filter = param("q");
                    let list = arrange(view.queues, &filter, &sort, desc);
                    view! {
                        <FreshnessBanner freshness=view.freshness/>
                        <QueueTable list sort desc filter switch/>
                    }.into_any()
                }
            })}
        </Transition>
    }
}

#[component]
fn QueueTable(
    list: Vec<QueueInfo>,
    sort: String,
    desc: bool,
    filter: String,
    switch: ServerAction<SetWatch>,
) -> impl IntoView {
    if list.is_empty() {
        return view! { <p class="empty">"No queues match."</p> }.into_any();
    }
    let headers = COLUMNS
        .iter()
        .map(|(key, label, numeric)| {
            // Clicking the sorted column flips it; numbers sort biggest first.
            let next_desc = if sort == *key { !desc } else { *numeric };
            let href = format!(
                "/queues?sort={key}&desc={}&q={}",
                u8::from(next_desc),
                url_encode(&filter)
            );
            let arrow = (sort == *key).then_some(if desc { " ↓" } else { " ↑" });
            view! { <th class=if *numeric { "num" } else { "" }><a href=href>{*label}{arrow}</a></th> }
        })
        .collect_view();
    view! {
        <table class="grid queues">
            <thead><tr><th>"Vhost"</th>{headers}<th>"Type"</th><th>"Features"</th><th>"Capture"</th></tr></thead>
            <tbody>
                {list.into_iter().map(|q| view! { <QueueRow q switch/> }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// The management UI's feature letters: durable, auto-delete, exclusive, lazy.
pub fn features(q: &QueueInfo) -> String {
    let flags = [
        (q.durable, "D"),
        (q.auto_delete, "AD"),
        (q.exclusive, "Excl"),
        (q.mode == "lazy", "lazy"),
    ];
    flags
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, f)| *f)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Capture column: captured or not, why, the consumer's state, and the
/// operator's switch (buttons, so it needs the hydrated page; the REST API
/// offers the same switch).
#[component]
fn CaptureCell(q: QueueInfo, switch: ServerAction<SetWatch>) -> impl IntoView {
    let captured = q
        .watched
        .then(|| format!("/?vhost={}&queue={}", url_encode(&q.vhost), url_encode(&q.name)));
    let state = q.capture.as_ref().filter(|_| q.watched).map(|c| {
        let class = match c.state {
            ConsumerState::Connected => "badge ok",
            ConsumerState::Starting => "badge",
            ConsumerState::Reconnecting => "badge warn",
        };
        let title = c.last_error.clone().unwrap_or_default();
        view! { <span class=class title=title>{c.state.as_str()}</span> }
    });
    // The switch offered flips the current verdict; "follow the rules"
    // appears once an operator has overridden them.
    let (label, value) = if q.watched {
        ("Stop capturing", false)
    } else {
        ("Capture", true)
    };
    let reset = q.watch_override.is_some();
    // Streams are never consumed (the server refuses the switch): no button
    // that can only fail.
    let switchable = q.kind != crate::model::QueueKind::Stream;
    let (vhost, name) = (q.vhost.clone(), q.name.clone());
    let (vhost2, name2) = (q.vhost.clone(), q.name.clone());
    view! {
        {captured.map(|href| view! { <a href=href>"captured messages"</a>" " })}
        {state}
        <div class="muted watch-reason">{q.watch_reason}</div>
        {switchable.then(|| view! {
            <button class="btn btn-ghost btn-small" type="button"
                on:click=move |_| { switch.dispatch(SetWatch { vhost: vhost.clone(), queue: name.clone(), watch: Some(value) }); }>
                {label}
            </button>
        })}
        {reset.then(|| view! {
            <button class="btn btn-ghost btn-small" type="button"
                on:click=move |_| { switch.dispatch(SetWatch { vhost: vhost2.clone(), queue: name2.clone(), watch: None }); }>
                "Follow the rules"
            </button>
        })}
    }
}

#[component]
fn QueueRow(q: QueueInfo, switch: ServerAction<SetWatch>) -> impl IntoView {
    let detail = queue_href(&q.vhost, &q.name);
    let capture = q.clone();
    let features = non_empty(features(&q));
    let warn = |bad: bool| if bad { "num warn" } else { "num" };
    let row = q.name.clone();
    view! {
        <tr class=if q.watched { "watched" } else { "" } data-queue=row>
            <td>{non_empty(q.vhost)}</td>
            <td><a href=detail>{non_empty(q.name)}</a></td>
            <td class=warn(q.messages_ready > 0 && q.consumers == 0)>{q.messages_ready}</td>
            <td class="num">{q.messages_unacknowledged}</td>
            <td class="num">{q.messages}</td>
            <td class=warn(q.consumers == 0 && q.messages > 0)>{q.consumers}</td>
            <td class="num">{rate(q.rates.incoming)}</td>
            <td class="num">{rate(q.rates.deliver_get)}</td>
            <td class=warn(q.rates.redelivered > 0.0 && q.rates.ack == 0.0)>{rate(q.rates.redelivered)}</td>
            <td class="num">{rate(q.rates.ack)}</td>
            <td>
                {q.policy.and_then(non_empty)}
                {q.operator_policy.map(|p| view! { <span class="muted" title="operator policy">" op: "{p}</span> })}
            </td>
            <td>{q.kind.as_str()}</td>
            <td class="features">{features}</td>
            <td class="capture"><CaptureCell q=capture switch/></td>
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Rates;

    fn q(name: &str, ready: i64) -> QueueInfo {
        QueueInfo {
            vhost: "v".into(),
            name: name.into(),
            kind: crate::model::QueueKind::Classic,
            durable: true,
            auto_delete: false,
            exclusive: false,
            mode: "default".into(),
            policy: None,
            operator_policy: None,
            arguments: serde_json::json!({}),
            effective_policy: serde_json::json!({}),
            messages_ready: ready,
            messages_unacknowledged: 0,
            messages: ready,
            consumers: 0,
            rates: Rates::default(),
            watched: false,
            watch_reason: None,
            watch_override: None,
            capture: None,
        }
    }

    #[test]
    fn filter_and_sort() {
        let list = vec![q("b", 1), q("a", 5), q("orders", 3)];
        let names = |l: Vec<QueueInfo>| l.into_iter().map(|q| q.name).collect::<Vec<_>>();
        assert_eq!(names(arrange(list.clone(), "", "", false)), ["a", "b", "orders"]);
        assert_eq!(
            names(arrange(list.clone(), "", "ready", true)),
            ["a", "orders", "b"]
        );
        assert_eq!(names(arrange(list, "ORD", "", false)), ["orders"]);
    }
}
