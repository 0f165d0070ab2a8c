//! Failure groups: what went wrong, how often, and since when.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::claims::ClaimCell;
use crate::api::list_groups;
use crate::components::{ListView, Sparkline};
use crate::format::{non_empty, short_time, url_encode};
use crate::model::{AnnotationTarget, GroupQuery, GroupSummary};

#[component]
pub fn GroupsPage() -> impl IntoView {
    let params = use_query_map();
    // The default list is what needs someone; "mine" and "on hold" are views of their own.
    let view_of = move || params.with(|p| (p.get("owner"), p.get("held")));
    let changed = RwSignal::new(0u32);
    let groups = Resource::new(
        move || (view_of(), changed.get()),
        |((owner, held), _)| {
            list_groups(GroupQuery {
                owner,
                held: held.map(|h| h == "true"),
                ..GroupQuery::default()
            })
        },
    );
    let on_change = Callback::new(move |()| changed.update(|n| *n += 1));
    let tab = move |label: &'static str,
                    href: &'static str,
                    which: (Option<&'static str>, Option<&'static str>)| {
        let current = move || {
            let (o, h) = view_of();
            (o.as_deref(), h.as_deref()) == which
        };
        view! { <a href=href class:active=current aria-current=move || current().then_some("page")>{label}</a> }
    };
    let empty = move || {
        match view_of() {
        (Some(_), _) => "No failure group is yours: take one with \"Take\" in its Owner column.",
        (_, Some(_)) => "No failure group is on hold. A hold keeps a group out of the overview's counts and the alerts until it ends (say, while a fix ships); its new failures are still captured.",
        _ => "No failure groups yet: failures that share an exception type, message and top application frames (or a dead-letter reason and route) form one group here, with every service they span. Capture a failure, or run the demo (see Messages).",
    }
    };
    view! {
        <Title text="Groups"/>
        <div class="page-head">
            <h1>"Failure groups"</h1>
            <nav class="tabs" data-group-views="">
                {tab("Needs someone", "/groups", (None, None))}
                {tab("Mine", "/groups?owner=me", (Some("me"), None))}
                {tab("On hold", "/groups?held=true", (None, Some("true")))}
            </nav>
        </div>
        <ListView resource=groups empty=Signal::derive(empty) render={move |list: Vec<GroupSummary>| view! {
                    <table class="grid groups">
                        <thead><tr>
                            <th>"Services"</th><th>"Exception / reason"</th>
                            <th class="num">"Failed"</th><th class="num">"Replayed"</th><th class="num">"Discarded"</th><th class="num" title="replayed copies that failed again">"Came back"</th>
                            <th>"First seen"</th><th>"Last seen"</th><th>"Last 24 h"</th><th>"Owner"</th>
                        </tr></thead>
                        <tbody>
                            {list.into_iter().map(|g| {
                                let href = format!("/?group={}", url_encode(&g.id));
                                let example = format!("/messages/{}", g.example_id);
                                view! {
                                    <tr data-group=g.id.clone()>
                                        <td class="services">
                                            {g.services.into_iter().map(|s| {
                                                let href = format!("/services/{}", url_encode(&s));
                                                view! { <a href=href>{s}</a>" " }
                                            }).collect_view()}
                                        </td>
                                        <td class="reason">
                                            <a href=href>{non_empty(g.reason)}</a>
                                            " "<a class="muted" href=example>"example"</a>
                                            {g.tags.into_iter().map(|t| {
                                                let href = format!("/?tag={}", url_encode(&t));
                                                view! { " "<a class="tag" href=href>{t}</a> }
                                            }).collect_view()}
                                        </td>
                                        <td class="num">{g.failed}</td>
                                        <td class="num">{g.replayed}</td>
                                        <td class="num">{g.discarded}</td>
                                        <td class={if g.came_back > 0 { "num warn" } else { "num" }}>{g.came_back}</td>
                                        <td class="nowrap">{short_time(&g.first_seen)}</td>
                                        <td class="nowrap">{short_time(&g.last_seen)}</td>
                                        <td><Sparkline values=g.arrivals_24h label="arrivals per hour, last 24 hours"/></td>
                                        <td><ClaimCell target=AnnotationTarget::Group(g.id.clone()) owner=g.owner hold=g.hold changed=on_change/></td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
        }}/>
    }
}
