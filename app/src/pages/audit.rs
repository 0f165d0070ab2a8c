//! The audit log: who did what, from where, to what, and how it went.
//! Filters live in the URL, so a link to "everything alice replayed
//! yesterday" can be shared; the export takes the same filters.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::list_audit;
use crate::components::ApiErrorBox;
use crate::format::{non_empty, short_time};
use crate::model::{AuditAction, AuditEntry, AuditQuery};

fn filters(q: &AuditQuery) -> [(&'static str, &Option<String>); 4] {
    [
        ("user", &q.user),
        ("action", &q.action),
        ("from", &q.from),
        ("to", &q.to),
    ]
}

fn query_string(q: &AuditQuery, cursor: Option<&str>) -> String {
    crate::format::query_string(filters(q), cursor)
}

fn target(e: &AuditEntry) -> String {
    let mut parts = Vec::new();
    if let Some(v) = &e.vhost {
        parts.push(format!("vhost {v}"));
    }
    if let Some(o) = &e.object {
        parts.push(o.clone());
    }
    if let Some(x) = &e.exchange {
        let key = e.routing_key.as_deref().unwrap_or_default();
        parts.push(format!(
            "→ {} / {key}",
            if x.is_empty() { "(default)" } else { x }
        ));
    }
    parts.join(" · ")
}

#[component]
pub fn AuditPage() -> impl IntoView {
    let params = use_query_map();
    let query = Memo::new(move |_| {
        let p = params.get();
        let get = |k: &str| p.get(k).filter(|v| !v.is_empty());
        AuditQuery {
            user: get("user"),
            action: get("action"),
            from: get("from"),
            to: get("to"),
            limit: None,
            cursor: get("cursor"),
        }
    });
    let page = Resource::new(move || query.get(), list_audit);
    view! {
        <Title text="Audit"/>
        <div class="page-head">
            <h1>"Audit log"</h1>
            <a class="btn" href=move || format!("/api/v1/audit/export?{}", query_string(&query.get(), None))>"Export (JSON Lines)"</a>
        </div>
        <form class="filters" method="get" action="/audit">
            <input name="user" placeholder="user" value=move || query.get().user.unwrap_or_default()/>
            <select name="action">
                <option value="">"any action"</option>
                {AuditAction::ALL.iter().copied().map(|a| view! {
                    <option value=a.as_str() selected=move || query.get().action.as_deref() == Some(a.as_str())>{a.as_str()}</option>
                }).collect_view()}
            </select>
            <input name="from" placeholder="from (RFC 3339)" value=move || query.get().from.unwrap_or_default()/>
            <input name="to" placeholder="to (RFC 3339)" value=move || query.get().to.unwrap_or_default()/>
            <button class="btn" type="submit">"Filter"</button>
        </form>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || page.get().map(|res| match res {
                Err(e) => view! { <ApiErrorBox error=e.clone()/> }.into_any(),
                Ok(p) if p.items.is_empty() => view! { <p class="empty">"No audit entries match."</p> }.into_any(),
                Ok(p) => {
                    let next = p.next_cursor.clone().map(|c| format!("/audit?{}", query_string(&query.get_untracked(), Some(&c))));
                    view! {
                        <table class="grid audit">
                            <thead><tr>
                                <th>"When"</th><th>"User"</th><th>"From"</th><th>"Action"</th>
                                <th>"Target"</th><th>"Result"</th><th>"Detail"</th>
                            </tr></thead>
                            <tbody>
                                {p.items.into_iter().map(|e| view! {
                                    <tr data-action=e.action.as_str()>
                                        <td class="nowrap">{short_time(&e.at)}</td>
                                        <td>{e.user.clone()}</td>
                                        <td class="mono">{non_empty(e.source.clone().unwrap_or_default())}</td>
                                        <td>{e.action.as_str()}</td>
                                        <td>{target(&e)}</td>
                                        <td><span class=format!("badge audit-{}", e.result.as_str())>{e.result.as_str()}</span></td>
                                        <td class="detail">{e.detail.clone().unwrap_or_default()}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                        {next.map(|href| view! { <a class="btn" href=href>"Older entries"</a> })}
                    }.into_any()
                }
            })}
        </Transition>
    }
}
