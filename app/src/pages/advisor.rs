//! Reliability advisor findings: open ones by severity with the fix (one
//! click where a policy or binding is the fix), then recently resolved ones.

use std::time::Duration;

use leptos::prelude::*;
use leptos_meta::Title;

use super::queues::queue_href;
use crate::api::{apply_fix, get_advisor};
use crate::components::ApiErrorBox;
use crate::components::{use_ticker, FreshnessBanner, VhostName};
use crate::format::{ms_time, non_empty};
use crate::model::ApiError;
use crate::model::{Finding, FixAction};

fn action_label(a: &FixAction) -> String {
    match a {
        FixAction::Policy { name, policy, .. } => format!("Apply policy {name}: {}", policy.definition),
        FixAction::Binding {
            exchange,
            queue,
            routing_key,
            ..
        } => format!("Bind {queue} to {exchange} with key {routing_key}"),
    }
}

#[component]
pub fn AdvisorPage() -> impl IntoView {
    let tick = use_ticker(Duration::from_secs(10));
    let fix = Action::new(|id: &i64| apply_fix(*id));
    let report = Resource::new(move || (tick.get(), fix.version().get()), |_| get_advisor());
    view! {
        <Title text="Advisor"/>
        <div class="page-head"><h1>"Reliability advisor"</h1></div>
        {move || fix.value().get().and_then(Result::err).map(|e| view! { <ApiErrorBox error=e.clone()/> })}
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || report.get().map(|res| match res {
                Err(e) => view! { <ApiErrorBox error=e.clone()/> }.into_any(),
                Ok(r) => {
                    let (open, resolved): (Vec<Finding>, Vec<Finding>) =
                        r.findings.into_iter().partition(|f| f.resolved_at.is_none());
                    view! {
                        <FreshnessBanner freshness=r.freshness/>
                        {if open.is_empty() {
                            view! {
                                <p class="empty">
                                    "Nothing puts messages at risk right now. The advisor checks every queue and publisher "
                                    "the broker lists: queues nothing consumes, consumers that hold unacked messages, "
                                    "poison messages requeued for ever, work queues with no dead-letter path, growing "
                                    "error queues, publishers without confirms, transient messages and non-durable queues."
                                </p>
                            }.into_any()
                        } else {
                            view! { <ul class="findings">{open.into_iter().map(|f| finding(f, fix)).collect_view()}</ul> }.into_any()
                        }}
                        <h2>"Resolved in the last day"</h2>
                        {if resolved.is_empty() {
                            view! { <p class="empty">"None."</p> }.into_any()
                        } else {
                            view! { <ul class="findings resolved">{resolved.into_iter().map(|f| finding(f, fix)).collect_view()}</ul> }.into_any()
                        }}
                    }.into_any()
                }
            })}
        </Transition>
    }
}

/// One finding with its fix button; also listed on the queue's own page.
pub fn finding(f: Finding, fix: Action<i64, Result<(), ApiError>>) -> impl IntoView {
    let object = if f.object_type == "queue" {
        let href = queue_href(&f.vhost, &f.object);
        view! { <a href=href><VhostName vhost=f.vhost.clone() name=f.object.clone()/></a> }.into_any()
    } else {
        let kind = format!(" ({})", f.object_type);
        view! { <span><VhostName vhost=f.vhost.clone() name=f.object.clone()/>{kind}</span> }.into_any()
    };
    let when = match f.resolved_at {
        Some(at) => format!("resolved {}", ms_time(at)),
        None => format!("since {}", ms_time(f.first_seen)),
    };
    let button = f.action.as_ref().filter(|_| f.resolved_at.is_none()).map(|a| {
        let id = f.id;
        view! { <button class="btn btn-primary" on:click=move |_| { fix.dispatch(id); } title=action_label(a)>"Fix"</button> }
    });
    let kind = f.kind.clone();
    view! {
        <li class=format!("finding {}", f.severity.as_str()) data-kind=kind>
            <div class="finding-head">
                <span class=format!("sev {}", f.severity.as_str())>{f.severity.as_str()}</span>
                " "{object}" "<code>{non_empty(f.kind)}</code>
                <span class="muted">" "{when}</span>
            </div>
            <p>{non_empty(f.message)}</p>
            <p class="fix"><strong>"Fix: "</strong>{non_empty(f.fix)}" "{button}</p>
        </li>
    }
}
