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
use crate::model::{CaptureMode, ConsumerState, QueueInfo, TapState, TAP_PREFIX};

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
    // Streams are never consumed (the server refuses the switch), and a
    // tap is Redrive's own: no button that can only fail.
    let switchable = q.kind != crate::model::QueueKind::Stream && !q.name.starts_with(TAP_PREFIX);
    let mode = q.capture_mode.filter(|_| q.watched);
    // The other mode, offered as a switch: capture by copy, or take over.
    let (mode_label, other) = match mode {
        Some(CaptureMode::Tap) => ("Consume instead", CaptureMode::Consume),
        _ => ("Tap instead", CaptureMode::Tap),
    };
    let tap = q
        .tap
        .clone()
        .filter(|_| mode == Some(CaptureMode::Tap))
        .map(tap_line);
    let send = move |watch: Option<bool>, mode: Option<CaptureMode>| {
        let (vhost, queue) = (q.vhost.clone(), q.name.clone());
        move |_| {
            switch.dispatch(SetWatch {
                vhost: vhost.clone(),
                queue: queue.clone(),
                watch,
                mode,
            });
        }
    };
    view! {
        {captured.map(|href| view! { <a href=href>"captured messages"</a>" " })}
        {state}
        {mode.map(|m| view! {
            <span class="badge capture-mode" title=mode_title(m)>{m.as_str()}</span>
        })}
        <div class="muted watch-reason">{q.watch_reason}</div>
        {tap}
        {switchable.then(|| view! {
            <button class="btn btn-ghost btn-small" type="button" on:click=send(Some(value), None)>
                {label}
            </button>
        })}
        {(switchable && q.watched).then(|| view! {
            <button class="btn btn-ghost btn-small switch-mode" type="button" title=mode_title(other)
                on:click=send(Some(true), Some(other))>
                {mode_label}
            </button>
        })}
        {(switchable && !q.watched).then(|| view! {
            <button class="btn btn-ghost btn-small switch-mode" type="button" title=mode_title(CaptureMode::Tap)
                on:click=send(Some(true), Some(CaptureMode::Tap))>
                "Tap"
            </button>
        })}
        {reset.then(|| view! {
            <button class="btn btn-ghost btn-small" type="button" on:click=send(None, None)>
                "Follow the rules"
            </button>
        })}
    }
}

/// What a capture mode does, for its badge and switch.
fn mode_title(mode: CaptureMode) -> &'static str {
    match mode {
        CaptureMode::Consume => "Redrive consumes the queue: its messages move into Redrive",
        CaptureMode::Tap => {
            "Redrive copies what reaches the queue through a queue of its own; \
             the queue, its messages and its consumers are left alone"
        }
    }
}

/// A tapped queue's two sides, and what the tap cannot see.
fn tap_line(t: TapState) -> impl IntoView {
    let missing = (!t.exists).then_some(" (not declared yet)");
    view! {
        <div class="tap-state">
            <span title="originals waiting in the service's queue; Redrive leaves them">
                {t.waiting_in_queue}" wait in the queue"
            </span>
            " · "
            <span title="messages Redrive holds for this queue">{t.held_by_redrive}" held by Redrive"</span>
            {(t.tap_backlog > 0).then(|| format!(" · {} on the tap", t.tap_backlog))}
        </div>
        <div class="muted tap-copies">
            "Copies through "<code>{t.tap_queue}</code>{missing}". Messages that reached the queue before the tap are not copied."
            {t.note.map(|n| view! { " "<strong>{n}</strong> })}
        </div>
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
            capture_mode: None,
            tap: None,
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
