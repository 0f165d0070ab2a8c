//! The list of captured messages, filtered through the URL so a link can be
//! shared in an incident channel.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::bulk::{BulkBar, Selection};
use crate::api::{get_annotations, list_messages};
use crate::components::ApiErrorBox;
use crate::components::{AnnotationsPanel, GettingStarted, StatusBadge};
use crate::format::{exchange_label, non_empty, query_string, short_time};
use crate::model::{AnnotationTarget, MessageQuery, MessageStatus, MessageSummary};

/// The URL keys of the filters, in the order they appear in links.
fn filters(q: &MessageQuery) -> [(&'static str, &Option<String>); 9] {
    [
        ("status", &q.status),
        ("vhost", &q.vhost),
        ("queue", &q.queue),
        ("service", &q.service),
        ("group", &q.group),
        ("tag", &q.tag),
        ("from", &q.from),
        ("to", &q.to),
        ("q", &q.q),
    ]
}

/// The REST export of the current filter.
fn export_link(query: &MessageQuery, format: &str) -> String {
    let list = link_with(query, None);
    format!("/api/v1/messages/export{}&format={format}", &list[1..])
}

fn link_with(query: &MessageQuery, cursor: Option<&str>) -> String {
    format!("/?{}", query_string(filters(query), cursor))
}

#[component]
pub fn MessagesPage() -> impl IntoView {
    let params = use_query_map();
    let query = Memo::new(move |_| {
        let p = params.get();
        let get = |k: &str| p.get(k).filter(|v| !v.is_empty());
        MessageQuery {
            status: get("status"),
            vhost: get("vhost"),
            queue: get("queue"),
            service: get("service"),
            group: get("group"),
            tag: get("tag"),
            from: get("from"),
            to: get("to"),
            q: get("q"),
            limit: None,
            cursor: get("cursor"),
            exact: get("exact").map(|v| v == "true"),
        }
    });
    let page = Resource::new(move || query.get(), list_messages);
    let selection = RwSignal::new(Selection::default());
    // A new filter or page starts with nothing selected.
    Effect::new(move |_| {
        query.track();
        selection.set(Selection::default());
    });
    let keys = super::keys::Keyboard::install(selection);

    view! {
        <Title text="Messages"/>
        <div class="page-head">
            <h1>"Failed messages"</h1>
        </div>
        <GroupNotes group=Signal::derive(move || query.get().group)/>
        <p class="muted keys-help">"Keys: j/k move · x select · o open · r replay · d discard (both ask first)"</p>
        <form class="filters" method="get" action="/">
            {move || {
                let q = query.get();
                let text_inputs: Vec<(&'static str, &'static str, String, &'static str)> = filters(&q)
                    .into_iter()
                    .filter_map(|(k, v)| {
                        let (label, hint) = match k {
                            "vhost" => ("Vhost", ""),
                            "queue" => ("Queue", ""),
                            "service" => ("Service", ""),
                            "group" => ("Group", "group id"),
                            "tag" => ("Tag", ""),
                            "from" => ("From", "2026-11-23T18:00:00Z"),
                            "to" => ("To", "RFC 3339"),
                            "q" => ("Search", "body, reason, message id"),
                            _ => return None,
                        };
                        Some((k, label, v.clone().unwrap_or_default(), hint))
                    })
                    .collect();
                view! {
                    <label>"Status"
                        <select name="status">
                            <option value="" selected=q.status.is_none()>"any"</option>
                            {MessageStatus::ALL.iter().copied().map(|s| view! {
                                <option value=s.as_str() selected=q.status.as_deref() == Some(s.as_str())>{s.as_str()}</option>
                            }).collect_view()}
                        </select>
                    </label>
                    {text_inputs.into_iter().map(|(name, label, value, hint)| view! {
                        <label>{label}
                            <input type="text" name=name value=value placeholder=hint/>
                        </label>
                    }).collect_view()}
                }
            }}
            <button type="submit" class="btn">"Filter"</button>
            <a class="btn btn-ghost" href="/">"Clear"</a>
        </form>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || page.get().map(|res| match res {
                Err(e) => view! { <ApiErrorBox error=e.clone()/> }.into_any(),
                Ok(p) if p.items.is_empty() && query.with_untracked(|q| q.cursor.is_none() && filters(q).iter().all(|(_, v)| v.is_none())) => view! {
                    <GettingStarted
                        title="No failed messages yet"
                        explain="Every message a captured queue receives is stored here (then acked), to inspect, search, \
                                 group, replay or discard. Nothing has been captured so far."/>
                }.into_any(),
                Ok(p) => {
                    let q = query.get_untracked();
                    let next = p.next_cursor.as_deref().map(|c| link_with(&q, Some(c)));
                    let first = q.cursor.is_some().then(|| link_with(&q, None));
                    let page_ids: Vec<i64> = p.items.iter().map(|m| m.id).collect();
                    keys.rows.set(page_ids.clone());
                    let total = p.total;
                    let count_link = format!("{}&exact=true", link_with(&q, q.cursor.as_deref()));
                    let unsearchable = (p.unsearchable > 0).then(|| view! {
                        <p class="muted" data-unsearchable=p.unsearchable>
                            {format!(
                                "{} message(s) stored in the last moments are not searchable yet; search again in a moment.",
                                p.unsearchable
                            )}
                        </p>
                    });
                    view! {
                        {unsearchable}
                        <p class="muted" data-total=p.total data-capped=p.total_capped.to_string()>
                            {if p.total_capped {
                                view! {
                                    {format!("{}+ matching (", p.total)}
                                    <a href=count_link>"count all"</a>
                                    ") · export "
                                }.into_any()
                            } else {
                                format!("{} matching · export ", p.total).into_any()
                            }}
                            <a href=export_link(&q, "jsonl") download="">"JSON Lines"</a>" · "
                            <a href=export_link(&q, "csv") download="">"CSV"</a>
                        </p>
                        {move || selection.with(|s| !s.is_empty()).then(|| view! {
                            <BulkBar selection query=query.get_untracked() total request=keys.bulk/>
                        })}
                        <MessageTable items=p.items selection page_ids cursor=keys.cursor/>
                        <nav class="pager">
                            {first.map(|href| view! { <a class="btn btn-ghost" href=href>"← Newest"</a> })}
                            {next.map(|href| view! { <a class="btn btn-ghost" href=href rel="next">"Older →"</a> })}
                        </nav>
                    }.into_any()
                }
            })}
        </Transition>
    }
}

#[component]
fn MessageTable(
    items: Vec<MessageSummary>,
    selection: RwSignal<Selection>,
    page_ids: Vec<i64>,
    cursor: RwSignal<usize>,
) -> impl IntoView {
    if items.is_empty() {
        return view! { <p class="empty">"No failed messages match. Nothing waits for a human."</p> }
            .into_any();
    }
    view! {
        <table class="grid">
            <thead>
                <tr>
                    <th class="check">
                        <input type="checkbox" data-action="select-page" title="Select this page"
                            prop:checked={
                                let page_ids = page_ids.clone();
                                move || selection.with(|s| s.covers(&page_ids))
                            }
                            on:change=move |ev| {
                                let ids = page_ids.clone();
                                selection.update(|s| s.set_page(&ids, event_target_checked(&ev)));
                            }/>
                    </th>
                    <th>"#"</th><th>"Status"</th><th>"Received"</th><th>"Queue"</th>
                    <th>"Original route"</th><th>"Reason"</th>
                </tr>
            </thead>
            <tbody>
                {items.into_iter().enumerate().map(|(row, m)| {
                    let href = format!("/messages/{}", m.id);
                    let route = format!("{} → {}",
                        m.exchange.as_deref().map(exchange_label).unwrap_or("?"),
                        m.routing_key.as_deref().unwrap_or(""));
                    let id = m.id;
                    view! {
                        <tr class:cursor=move || cursor.get() == row>
                            <td class="check">
                                <input type="checkbox" data-select=id
                                    prop:checked=move || selection.with(|s| s.contains(id))
                                    on:change=move |ev| selection.update(|s| s.toggle(id, event_target_checked(&ev)))/>
                            </td>
                            <td class="num"><a href=href.clone()>{m.id}</a></td>
                            <td><StatusBadge status=m.status/></td>
                            <td class="nowrap">{short_time(&m.received_at)}</td>
                            <td><span class="muted">{format!("{} ", m.vhost)}</span>{non_empty(m.queue)}</td>
                            <td class="mono">{route}</td>
                            <td class="reason"><a href=href>{m.reason.and_then(non_empty)}</a></td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// Tags and notes of the failure group being looked at (`?group=`).
#[component]
fn GroupNotes(group: Signal<Option<String>>) -> impl IntoView {
    let annotations = Resource::new(
        move || group.get(),
        |group| async move {
            match group {
                Some(g) => get_annotations(AnnotationTarget::Group(g.clone()))
                    .await
                    .map(|a| Some((g, a))),
                None => Ok(None),
            }
        },
    );
    view! {
        <Transition fallback=|| ()>
            {move || annotations.get().and_then(Result::ok).flatten().map(|(g, a)| view! {
                <AnnotationsPanel target=AnnotationTarget::Group(g) initial=a/>
            })}
        </Transition>
    }
}
