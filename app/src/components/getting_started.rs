//! What an empty page says: which queues Redrive captures and why, which it
//! leaves alone and why, whether the management API answers, and what to
//! do next. A newcomer's first screen must explain itself.

use leptos::prelude::*;

use crate::api::{error_text, list_queues};
use crate::components::VhostName;
use crate::model::{QueueInfo, QueuesView};

/// Queues shown per list before "and N more".
const SHOWN: usize = 8;

/// The empty state of a page: `title`, what would appear there
/// (`explain`), then where capture stands.
#[component]
pub fn GettingStarted(title: &'static str, explain: &'static str) -> impl IntoView {
    let queues = Resource::new(|| (), |_| list_queues());
    view! {
        <section class="getting-started" data-empty-state="">
            <h2>{title}</h2>
            <p>{explain}</p>
            <Transition fallback=|| view! { <p class="muted">"Reading the broker…"</p> }>
                {move || queues.get().map(|res| match res {
                    Ok(view) => view! { <CaptureState view/> }.into_any(),
                    Err(e) => view! {
                        <p class="muted">{format!("Which queues are captured is not available: {}", error_text(&e))}</p>
                    }.into_any(),
                })}
            </Transition>
            <h3>"What to do next"</h3>
            <ol class="next-steps">
                <li>
                    <strong>"See it work. "</strong>"Run "<code>"redrive demo"</code>" beside this server (or start both with "
                    <code>"scripts/run --demo"</code>"). Within a minute, Spring failures and dead letters of every kind arrive "
                    "in the vhost "<code>"redrive-demo"</code>"; "<code>"redrive demo --clean"</code>" removes it again."
                </li>
                <li>
                    <strong>"Send a failure. "</strong>"A Spring service's "<code>"RepublishMessageRecoverer"</code>
                    " publishes to "<code>"error.direct"</code>"; bind "<code>"<service>.error.queue"</code>
                    " to it with the service's name. A message rejected with "<code>"requeue=false"</code>
                    " from a queue with a dead-letter exchange reaches its dead-letter queue. Both are captured."
                </li>
                <li>
                    <strong>"Capture other queues. "</strong>"Set "<code>"REDRIVE_WATCH"</code>" (a regex over queue names) "
                    "or "<code>"REDRIVE_ERROR_EXCHANGES"</code>", or switch a queue on in "<a href="/queues">"Queues"</a>"."
                </li>
            </ol>
        </section>
    }
}

#[component]
fn CaptureState(view: QueuesView) -> impl IntoView {
    let api = match &view.freshness.error {
        None => view! {
            <p class="ok">"The management API answers: Redrive sees "{view.queues.len()}" queue(s)."</p>
        }
        .into_any(),
        Some(e) => view! {
            <p class="warn">
                "The management API does not answer, so queues cannot be discovered: "{e.clone()}
                " Enable it with "<code>"rabbitmq-plugins enable rabbitmq_management"</code>
                " and check "<code>"REDRIVE_MANAGEMENT_URL"</code>"."
            </p>
        }
        .into_any(),
    };
    let (watched, rest): (Vec<QueueInfo>, Vec<QueueInfo>) = view.queues.into_iter().partition(|q| q.watched);
    // Queues with a reason are failure-looking queues Redrive decided to
    // leave alone; the rest are ordinary work queues.
    let (left_alone, work): (Vec<QueueInfo>, Vec<QueueInfo>) =
        rest.into_iter().partition(|q| q.watch_reason.is_some());
    let captured = if watched.is_empty() {
        view! {
            <p class="warn">
                "No queue is captured: none matches "<code>"REDRIVE_WATCH"</code>", is bound to an error exchange, "
                "or receives dead letters."
            </p>
        }
        .into_any()
    } else {
        view! {
            <p>{format!("Captured ({}), and why:", watched.len())}</p>
            <QueueReasons queues=watched/>
        }
        .into_any()
    };
    let skipped = (!left_alone.is_empty()).then(|| {
        view! {
            <p>{format!("Not captured ({}), and why:", left_alone.len())}</p>
            <QueueReasons queues=left_alone/>
        }
    });
    let others = (!work.is_empty()).then(|| {
        view! { <p class="muted">{format!("{} work queue(s) are left alone: nothing marks them as holding failures.", work.len())}</p> }
    });
    view! { {api} {captured} {skipped} {others} }
}

#[component]
fn QueueReasons(queues: Vec<QueueInfo>) -> impl IntoView {
    let more = queues.len().saturating_sub(SHOWN);
    view! {
        <ul class="queue-reasons">
            {queues.into_iter().take(SHOWN).map(|q| view! {
                <li>
                    <VhostName vhost=q.vhost name=q.name/>
                    " — "{q.watch_reason.unwrap_or_default()}
                </li>
            }).collect_view()}
            {(more > 0).then(|| view! { <li class="muted">{format!("and {more} more (see Queues)")}</li> })}
        </ul>
    }
}
