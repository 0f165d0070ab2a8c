//! `/m/{message_id}`: a link built from the AMQP message id a publisher
//! gave a message, for alert e-mails, tickets and chat. One stored match
//! goes straight to its page; several are listed; none says so, and why
//! that may be.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_params_map;

use crate::api::find_message_id;
use crate::components::{ApiErrorBox, StatusBadge};
use crate::format::{non_empty, short_time};
use crate::model::{MessageSummary, MESSAGE_ID_MATCHES};

#[component]
pub fn MessageIdPage() -> impl IntoView {
    let params = use_params_map();
    let message_id = Memo::new(move |_| params.get().get("message_id").unwrap_or_default());
    let found = Resource::new(move || message_id.get(), find_message_id);
    view! {
        <Title text=move || format!("Message id {}", message_id.get())/>
        <Suspense fallback=|| view! { <p class="muted">"Looking…"</p> }>
            {move || found.get().map(|res| match res {
                Err(e) => view! { <ApiErrorBox error=e.clone()/> }.into_any(),
                Ok(list) => matches(message_id.get_untracked(), list).into_any(),
            })}
        </Suspense>
    }
}

fn matches(message_id: String, list: Vec<MessageSummary>) -> impl IntoView {
    match list.as_slice() {
        [one] => view! { <Redirect path=format!("/messages/{}", one.id)/> }.into_any(),
        [] => view! {
            <div class="page-head"><h1>"Message id " <span class="mono">{message_id.clone()}</span></h1></div>
            <div class="panel empty" data-message-id-matches="0">
                <p><strong>"No stored message has this message id."</strong></p>
                <p class="muted">"It may be in a vhost you cannot see, not captured yet (capture takes a moment after a failure), \
                    or purged after its discard. Message ids are matched exactly, case included."</p>
            </div>
        }
        .into_any(),
        many => {
            let capped = many.len() as u32 >= MESSAGE_ID_MATCHES;
            let rows = many.to_vec();
            view! {
                <div class="page-head"><h1>"Message id " <span class="mono">{message_id.clone()}</span></h1></div>
                <p class="muted" data-message-id-matches=rows.len()>{format!(
                    "{}{} stored messages carry this message id (its publisher reused it, or the message failed again after a replay). Newest first.",
                    if capped { "The newest " } else { "" },
                    rows.len()
                )}</p>
                <table class="grid">
                    <thead><tr><th>"#"</th><th>"Status"</th><th>"Vhost"</th><th>"Queue"</th><th>"Reason"</th><th>"Received"</th></tr></thead>
                    <tbody>
                        {rows.into_iter().map(|m| view! {
                            <tr>
                                <td class="num"><a href=format!("/messages/{}", m.id)>{m.id}</a></td>
                                <td><StatusBadge status=m.status/></td>
                                <td>{m.vhost}</td>
                                <td class="mono">{m.queue}</td>
                                <td class="reason">{m.reason.and_then(non_empty)}</td>
                                <td class="nowrap">{short_time(&m.received_at)}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            }
            .into_any()
        }
    }
}
