//! Queue depths from the management API, with the watched ones marked.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::list_queues;
use crate::components::ListView;
use crate::format::{non_empty, url_encode};
use crate::model::QueueInfo;

#[component]
pub fn QueuesPage() -> impl IntoView {
    let refresh = RwSignal::new(0u32);
    let queues = Resource::new(move || refresh.get(), |_| list_queues());

    view! {
        <Title text="Queues"/>
        <div class="page-head">
            <h1>"Queues"</h1>
            <div class="actions">
                <button class="btn btn-ghost" on:click=move |_| refresh.update(|n| *n += 1)>"Refresh"</button>
            </div>
        </div>
        <ListView resource=queues empty="No queues." render={|list: Vec<QueueInfo>| view! {
                    <table class="grid">
                        <thead><tr>
                            <th>"Vhost"</th><th>"Queue"</th><th>"Type"</th><th>"Durable"</th>
                            <th class="num">"Ready"</th><th class="num">"Unacked"</th><th class="num">"Consumers"</th><th>"Redrive"</th>
                        </tr></thead>
                        <tbody>
                            {list.into_iter().map(|q| {
                                let link = q.watched.then(|| format!("/?vhost={}&queue={}", url_encode(&q.vhost), url_encode(&q.name)));
                                view! {
                                    <tr class={if q.watched { "watched" } else { "" }}>
                                        <td>{non_empty(q.vhost)}</td>
                                        <td>{non_empty(q.name)}</td>
                                        <td>{non_empty(q.kind)}</td>
                                        <td>{if q.durable { "yes" } else { "no" }}</td>
                                        <td class={if q.messages_ready > 0 { "num warn" } else { "num" }}>{q.messages_ready}</td>
                                        <td class="num">{q.messages_unacknowledged}</td>
                                        <td class={if q.consumers == 0 { "num warn" } else { "num" }}>{q.consumers}</td>
                                        <td>{link.map(|href| view! { <a href=href>"captured messages"</a> })}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
        }}/>
    }
}
