//! Where a failed message's replay would go: the queues its original route
//! reaches now (from a dry run), and when that is more than one, a warning
//! that services which already handled it get a second copy, with a
//! replay to one queue only.

use leptos::prelude::*;

use super::can_write;
use crate::api::{create_job, ReplayMessage};
use crate::model::{JobAction, JobCreated, JobRequest, ReplayTarget};

fn dry_run(id: i64) -> JobRequest {
    JobRequest {
        ids: Some(vec![id]),
        dry_run: true,
        ..JobRequest::new(JobAction::Replay)
    }
}

#[component]
pub fn RouteReach(id: i64, replay: ServerAction<ReplayMessage>, pending: Signal<bool>) -> impl IntoView {
    let reach = Resource::new(move || id, |id| create_job(dry_run(id)));
    let can = can_write();
    view! {
        <Transition fallback=|| ()>
            {move || reach.get().and_then(Result::ok).and_then(|created| match created {
                JobCreated::DryRun(dry) => dry.destinations.into_iter().next(),
                JobCreated::Job(_) => None,
            }).map(|d| {
                let queues = d.queues.clone();
                view! {
                    <div class="route-reach" data-fans-out=d.fans_out.to_string()>
                        {(!queues.is_empty()).then(|| view! {
                            <p class="muted">"A replay to the original route reaches: "
                                <span class="mono">{queues.join(", ")}</span></p>
                        })}
                        {d.route_note.clone().map(|n| view! { <p class="muted">{n}</p> })}
                        {d.fans_out.then(|| view! {
                            <div class="warn" role="note" data-fans-out="">
                                <p>{format!(
                                    "This route delivers to {} queues: the services that already handled this message \
                                     would get a second copy. Replay to the one that failed only:",
                                    queues.len()
                                )}</p>
                                <Show when=move || can.get()>
                                {queues.iter().cloned().map(|q| {
                                    let label = format!("Replay only to {q}");
                                    view! {
                                        <button class="btn" data-only-queue=q.clone() disabled=pending
                                            on:click=move |_| {
                                                replay.dispatch(ReplayMessage {
                                                    id,
                                                    target: ReplayTarget { to_queue: Some(q.clone()), ..Default::default() },
                                                });
                                            }>{label}</button>
                                        " "
                                    }
                                }).collect_view()}
                                </Show>
                            </div>
                        })}
                    </div>
                }
            })}
        </Transition>
    }
}
