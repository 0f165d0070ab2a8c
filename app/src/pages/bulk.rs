//! Selecting messages and acting on them in bulk: a dry run first, then a job.

use std::collections::BTreeSet;

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

use crate::api::create_job;
use crate::components::ApiErrorBox;
use crate::format::exchange_label;
use crate::model::{Canary, JobAction, JobCreated, JobRequest, MessageQuery, ReplayPlan};

/// What the operator selected: some ids, or everything the filter matches.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Selection {
    #[default]
    None,
    Ids(BTreeSet<i64>),
    AllMatching,
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        match self {
            Selection::None => true,
            Selection::Ids(ids) => ids.is_empty(),
            Selection::AllMatching => false,
        }
    }

    pub fn contains(&self, id: i64) -> bool {
        match self {
            Selection::None => false,
            Selection::Ids(ids) => ids.contains(&id),
            Selection::AllMatching => true,
        }
    }

    pub fn covers(&self, page: &[i64]) -> bool {
        !page.is_empty() && page.iter().all(|id| self.contains(*id))
    }

    pub fn toggle(&mut self, id: i64, on: bool) {
        let mut ids = match std::mem::take(self) {
            Selection::Ids(ids) => ids,
            _ => BTreeSet::new(),
        };
        if on {
            ids.insert(id);
        } else {
            ids.remove(&id);
        }
        *self = Selection::Ids(ids);
    }

    pub fn set_page(&mut self, page: &[i64], on: bool) {
        for id in page {
            self.toggle(*id, on);
        }
    }

    fn request(
        &self,
        action: JobAction,
        query: &MessageQuery,
        rate: Option<f64>,
        dry_run: bool,
    ) -> JobRequest {
        let (ids, filter) = match self {
            Selection::Ids(ids) => (Some(ids.iter().copied().collect()), None),
            _ => (
                None,
                Some(MessageQuery {
                    cursor: None,
                    limit: None,
                    ..query.clone()
                }),
            ),
        };
        JobRequest {
            ids,
            filter,
            rate_per_sec: rate,
            dry_run,
            ..JobRequest::new(action)
        }
    }
}

#[component]
pub fn BulkBar(
    selection: RwSignal<Selection>,
    query: MessageQuery,
    total: i64,
    /// A bulk action asked for from the keyboard; answered with a dry run.
    request: RwSignal<Option<JobAction>>,
) -> impl IntoView {
    let query = StoredValue::new(query);
    let rate = RwSignal::new(String::new());
    let preview = Action::new(|req: &JobRequest| create_job(req.clone()));
    let start = Action::new(|req: &JobRequest| create_job(req.clone()));
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(JobCreated::Job(job))) = start.value().get() {
            navigate(&format!("/jobs/{}", job.id), Default::default());
        }
    });
    // How the replay goes out: a canary first, a rate that follows the
    // target, one queue only when the route fans out.
    let canary = RwSignal::new(false);
    let adaptive = RwSignal::new(false);
    let only_queue = RwSignal::new(None::<String>);
    let build = move |action: JobAction, dry_run: bool| {
        let rate = rate.get_untracked().trim().parse::<f64>().ok();
        let mut req = query.with_value(|q| selection.with_untracked(|s| s.request(action, q, rate, dry_run)));
        if action == JobAction::Replay {
            req.plan = ReplayPlan {
                canary: canary.get_untracked().then_some(Canary {
                    count: Some(10),
                    percent: None,
                    watch_seconds: 30,
                    max_failed_again: 0,
                }),
                adaptive: adaptive.get_untracked(),
                to_queue: only_queue.get_untracked(),
                ..ReplayPlan::default()
            };
        }
        req
    };
    Effect::new(move |_| {
        if let Some(action) = request.get() {
            request.set(None);
            preview.dispatch(build(action, true));
        }
    });
    let count = move || match selection.get() {
        Selection::Ids(ids) => format!("{} selected", ids.len()),
        Selection::AllMatching => format!("all {total} matching selected"),
        Selection::None => String::new(),
    };

    view! {
        <div class="bulkbar">
            <strong>{count}</strong>
            {move || (!matches!(selection.get(), Selection::AllMatching) && total > 0).then(|| view! {
                <button class="btn btn-ghost" data-action="select-all-matching"
                    on:click=move |_| selection.set(Selection::AllMatching)>{format!("Select all {total} matching")}</button>
            })}
            <label class="muted">"Rate cap " <input type="number" min="1" placeholder="msg/s" bind:value=rate/></label>
            <label class="muted" title="Replay 10 first, watch 30 s, and pause if any fails again">
                <input type="checkbox" data-option="canary" bind:checked=canary/>" Canary of 10"</label>
            <label class="muted" title="Wait while a target queue has no consumer or over 1,000 ready">
                <input type="checkbox" data-option="adaptive" bind:checked=adaptive/>" Follow the target"</label>
            <button class="btn btn-primary" data-action="bulk-replay"
                on:click=move |_| { preview.dispatch(build(JobAction::Replay, true)); }>"Replay…"</button>
            <button class="btn btn-danger-ghost" data-action="bulk-discard"
                on:click=move |_| { preview.dispatch(build(JobAction::Discard, true)); }>"Discard…"</button>
            <button class="btn btn-ghost" on:click=move |_| selection.set(Selection::None)>"Clear selection"</button>
        </div>
        {move || preview.value().get().map(|res| match res {
            Err(e) => view! { <ApiErrorBox error=e.clone()/> }.into_any(),
            Ok(JobCreated::DryRun(dry)) => {
                let action = dry.action;
                let routes = dry.destinations.iter().map(|d| {
                    let route = format!("{} × {} / {}",
                        d.count,
                        d.exchange.as_deref().map(exchange_label).unwrap_or("unknown exchange"),
                        d.routing_key.as_deref().unwrap_or(""));
                    (route, d.clone())
                }).collect::<Vec<_>>();
                let fans_out = dry.destinations.iter().any(|d| d.fans_out);
                view! {
                    <div class="panel dry-run" data-total=dry.total data-fans-out=fans_out.to_string()>
                        <p><strong>{format!("{} {} message(s)", if action == JobAction::Replay { "Replay" } else { "Discard" }, dry.total)}</strong></p>
                        {(dry.copies_in_queue > 0).then(|| view! {
                            <div class="warn" data-tap-copies=dry.copies_in_queue>{tap_copies_warning(action, dry.copies_in_queue, dry.total)}</div>
                        })}
                        {dry.needs_approval.then(|| view! {
                            <p class="muted" data-needs-approval="">"This many messages need a second person: the job waits, sending nothing, until another user with the same permissions approves it on its page."</p>
                        })}
                        <ul class="mono">{routes.into_iter().map(|(r, d)| view! {
                            <li>{r}
                                {(!d.queues.is_empty()).then(|| view! { <span class="muted">{format!(" → {}", d.queues.join(", "))}</span> })}
                                {d.route_note.clone().map(|n| view! { <div class="muted">{n}</div> })}
                                {d.fans_out.then(|| {
                                    let queues = d.queues.clone();
                                    view! {
                                        <div class="warn" data-fans-out="">
                                            {format!("This route delivers to {} queues: services that already handled these messages get a second copy.", queues.len())}
                                            " "
                                            {queues.into_iter().map(|q| {
                                                let label = format!("Only to {q}");
                                                view! { <button class="btn btn-ghost" data-only-queue=q.clone()
                                                    on:click=move |_| { only_queue.set(Some(q.clone())); preview.dispatch(build(action, true)); }>{label}</button> }
                                            }).collect_view()}
                                        </div>
                                    }
                                })}
                            </li>
                        }).collect_view()}</ul>
                        <button class="btn btn-primary" data-action="confirm-job" disabled=move || start.pending().get()
                            on:click=move |_| { start.dispatch(build(action, false)); }>"Start job"</button>
                        " "
                        <button class="btn btn-ghost" on:click=move |_| preview.value().set(None)>"Cancel"</button>
                    </div>
                }.into_any()
            }
            Ok(JobCreated::Job(_)) => ().into_any(),
        })}
        {move || start.value().get().and_then(Result::err).map(|e| view! { <ApiErrorBox error=e.clone()/> })}
    }
}

/// What a bulk job does to tapped copies whose originals are still queued.
fn tap_copies_warning(action: JobAction, copies: i64, total: i64) -> String {
    let which = if copies == total {
        "All of these are".to_owned()
    } else {
        format!("{copies} of these are")
    };
    match action {
        JobAction::Replay => format!(
            "{which} copies from a tap: their originals are still in the services' queues, \
             and the services may handle them too. Replaying sends a second copy of each."
        ),
        JobAction::Discard => format!(
            "{which} copies from a tap: discarding removes Redrive's copies only; \
             the originals stay in the services' queues."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_toggles_and_builds_requests() {
        let mut s = Selection::default();
        assert!(s.is_empty());
        s.set_page(&[1, 2, 3], true);
        assert!(s.covers(&[1, 2, 3]));
        s.toggle(2, false);
        assert!(!s.covers(&[1, 2, 3]));
        let q = MessageQuery {
            group: Some("g".into()),
            cursor: Some("9".into()),
            ..Default::default()
        };
        let req = s.request(JobAction::Replay, &q, Some(5.0), true);
        assert_eq!(req.ids, Some(vec![1, 3]));
        assert!(req.filter.is_none() && req.dry_run);
        let req = Selection::AllMatching.request(JobAction::Discard, &q, None, false);
        let f = req.filter.unwrap();
        assert_eq!((f.group.as_deref(), f.cursor), (Some("g"), None));
    }

    #[test]
    fn tapped_copies_are_named_before_a_bulk_job() {
        let replay = tap_copies_warning(JobAction::Replay, 3, 3);
        assert!(
            replay.starts_with("All of these") && replay.contains("second copy"),
            "{replay}"
        );
        let discard = tap_copies_warning(JobAction::Discard, 2, 5);
        assert!(
            discard.starts_with("2 of these") && discard.contains("copies only"),
            "{discard}"
        );
    }
}
