//! The broker at a glance: version, nodes and alarms, totals, the deepest
//! queues, failures arriving, and what the advisor found.

use std::time::Duration;

use leptos::prelude::*;
use leptos_meta::Title;

use super::queues::queue_href;
use crate::api::get_overview;
use crate::components::ApiErrorBox;
use crate::components::{use_ticker, FreshnessBanner, GettingStarted, VhostName};
use crate::format::{human_bytes, non_empty, url_encode};
use crate::model::{NodeInfo, Overview};

#[component]
pub fn OverviewPage() -> impl IntoView {
    let tick = use_ticker(Duration::from_secs(5));
    let overview = Resource::new(move || tick.get(), |_| get_overview());
    view! {
        <Title text="Overview"/>
        <div class="page-head"><h1>"Overview"</h1></div>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || overview.get().map(|res| match res {
                Err(e) => view! { <ApiErrorBox error=e.clone()/> }.into_any(),
                Ok(o) => overview_body(o).into_any(),
            })}
        </Transition>
    }
}

fn node_row(n: NodeInfo) -> impl IntoView {
    let mem = format!(
        "{} of {}",
        human_bytes(n.mem_used.max(0) as usize),
        human_bytes(n.mem_limit.max(0) as usize)
    );
    let disk = format!(
        "{} free (limit {})",
        human_bytes(n.disk_free.max(0) as usize),
        human_bytes(n.disk_free_limit.max(0) as usize)
    );
    view! {
        <tr>
            <td>{non_empty(n.name)}</td>
            <td>{if n.running { "running" } else { "down" }}</td>
            <td class=if n.mem_alarm { "alarm" } else { "" }>{mem}{n.mem_alarm.then_some(" — memory alarm")}</td>
            <td class=if n.disk_free_alarm { "alarm" } else { "" }>{disk}{n.disk_free_alarm.then_some(" — disk alarm")}</td>
        </tr>
    }
}

/// A body row saying there is nothing, so an empty table does not look broken.
fn none_row(columns: u8, text: &'static str) -> impl IntoView {
    view! { <tr><td class="empty" colspan=columns>{text}</td></tr> }
}

fn overview_body(o: Overview) -> impl IntoView {
    let t = o.totals.clone();
    let f = o.findings.clone();
    let inflow_total: i64 = o.error_inflow.iter().map(|s| s.last_hour).sum();
    let no_queues = o.deepest.is_empty().then(|| none_row(4, "No queues."));
    let no_failures = o
        .error_inflow
        .is_empty()
        .then(|| none_row(2, "No failures captured in the last hour."));
    let getting_started = (o.stored == 0).then(|| view! {
        <GettingStarted
            title="Nothing captured yet"
            explain="Failed messages appear here once a captured queue receives one: Redrive stores each, then acks it, \
                     and counts them per service and queue below."/>
    });
    view! {
        <FreshnessBanner freshness=o.freshness/>
        {getting_started}
        <section class="cards">
            <a class="card" href="/?status=failed"><span class="label">"Waiting for a human"</span><span class="value">{o.waiting}</span><span class="muted" data-held-groups=o.held_groups data-held-messages=o.held_messages>{held_note(o.stored, o.held_groups, o.held_messages)}</span></a>
            <div class="card"><span class="label">"RabbitMQ"</span><span class="value">{non_empty(o.rabbitmq_version)}</span><span class="muted">{non_empty(o.cluster_name)}</span></div>
            <div class="card"><span class="label">"Queues"</span><span class="value">{t.queues}</span><span class="muted">{format!("{} connections, {} consumers", t.connections, t.consumers)}</span></div>
            <div class="card"><span class="label">"Ready"</span><span class="value">{t.messages_ready}</span><span class="muted">{format!("{} unacked, {} total", t.messages_unacknowledged, t.messages)}</span></div>
            <div class="card"><span class="label">"Failures, last hour"</span><span class="value">{inflow_total}</span><a class="muted" href="/services/*">"chart"</a></div>
            <a class="card" href="/advisor"><span class="label">"Advisor"</span>
                <span class="value"><span class="sev critical">{f.critical}</span>" "<span class="sev warning">{f.warning}</span>" "<span class="sev info">{f.info}</span></span>
                <span class="muted">"critical · warning · info"</span></a>
        </section>
        <h2>"Nodes"</h2>
        <table class="grid">
            <thead><tr><th>"Node"</th><th>"State"</th><th>"Memory"</th><th>"Disk"</th></tr></thead>
            <tbody>{o.nodes.into_iter().map(node_row).collect_view()}</tbody>
        </table>
        <div class="columns">
            <section>
                <h2>"Deepest queues"</h2>
                <table class="grid">
                    <thead><tr><th>"Queue"</th><th class="num">"Ready"</th><th class="num">"Unacked"</th><th class="num">"Consumers"</th></tr></thead>
                    <tbody>
                        {no_queues}
                        {o.deepest.into_iter().map(|q| view! {
                            <tr>
                                <td><a href=queue_href(&q.vhost, &q.name)><VhostName vhost=q.vhost.clone() name=q.name.clone()/></a></td>
                                <td class="num">{q.messages_ready}</td>
                                <td class="num">{q.messages_unacknowledged}</td>
                                <td class="num">{q.consumers}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </section>
            <section>
                <h2>"Failures per service, last hour"</h2>
                <table class="grid">
                    <thead><tr><th>"Service"</th><th class="num">"Captured"</th></tr></thead>
                    <tbody>
                        {no_failures}
                        {o.error_inflow.into_iter().map(|s| {
                            let name = if s.service.is_empty() {
                                view! { <span class="muted">"(unknown)"</span> }.into_any()
                            } else {
                                let href = format!("/services/{}", url_encode(&s.service));
                                view! { <a href=href>{s.service.clone()}</a> }.into_any()
                            };
                            view! { <tr><td>{name}</td><td class="num">{s.last_hour}</td></tr> }
                        }).collect_view()}
                    </tbody>
                </table>
            </section>
        </div>
    }
}

/// Under "Waiting for a human": how many are stored, and that groups and
/// messages on hold are not counted (so the number never hides them
/// silently).
fn held_note(stored: i64, held_groups: i64, held_messages: i64) -> String {
    let plural = |n: i64, one: &str| match n {
        1 => format!("1 {one}"),
        n => format!("{n} {one}s"),
    };
    let held: Vec<String> = [(held_groups, "group"), (held_messages, "message")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, one)| plural(n, one))
        .collect();
    match held.is_empty() {
        true => format!("of {stored} stored"),
        false => format!("of {stored} stored; {} on hold not counted", held.join(" and ")),
    }
}

#[cfg(test)]
mod tests {
    use super::held_note;

    #[test]
    fn the_held_note_names_what_it_leaves_out() {
        assert_eq!(held_note(5, 0, 0), "of 5 stored");
        assert_eq!(held_note(5, 1, 0), "of 5 stored; 1 group on hold not counted");
        assert_eq!(held_note(5, 0, 1), "of 5 stored; 1 message on hold not counted");
        assert_eq!(
            held_note(9, 2, 3),
            "of 9 stored; 2 groups and 3 messages on hold not counted"
        );
    }
}
