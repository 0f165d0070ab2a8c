//! Failure groups: what went wrong, how often, and since when.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::list_groups;
use crate::components::{ListView, Sparkline};
use crate::format::{non_empty, short_time, url_encode};
use crate::model::{GroupQuery, GroupSummary};

#[component]
pub fn GroupsPage() -> impl IntoView {
    let groups = Resource::new(|| (), |_| list_groups(GroupQuery::default()));
    view! {
        <Title text="Groups"/>
        <div class="page-head">
            <h1>"Failure groups"</h1>
        </div>
        <ListView resource=groups empty="No failure groups yet: failures that share an exception type, message and top application frames (or a dead-letter reason and route) form one group here, with every service they span. Capture a failure, or run the demo (see Messages)." render={|list: Vec<GroupSummary>| view! {
                    <table class="grid groups">
                        <thead><tr>
                            <th>"Services"</th><th>"Exception / reason"</th>
                            <th class="num">"Failed"</th><th class="num">"Replayed"</th><th class="num">"Discarded"</th><th class="num" title="replayed copies that failed again">"Came back"</th>
                            <th>"First seen"</th><th>"Last seen"</th><th>"Last 24 h"</th>
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
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
        }}/>
    }
}
