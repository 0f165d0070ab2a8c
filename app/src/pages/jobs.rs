//! Bulk jobs: the list of recent jobs and one job's live progress.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::{get_job, job_problems, list_jobs, ControlJob};
use crate::components::ApiErrorBox;
use crate::components::{percent, ListView, ProgressBar};
use crate::format::{non_empty, short_time};
use crate::model::ApiError;
use crate::model::{Job, JobCommand, JobPhase, JobState};

/// A signal that ticks every `ms` in the browser (never during SSR), to
/// refresh live views without a page reload.
fn ticker(ms: u64) -> RwSignal<u64> {
    let tick = RwSignal::new(0u64);
    Effect::new(move |_| {
        let handle = set_interval_with_handle(
            move || tick.update(|t| *t += 1),
            std::time::Duration::from_millis(ms),
        );
        on_cleanup(move || {
            if let Ok(h) = handle {
                h.clear();
            }
        });
    });
    tick
}

#[component]
pub fn JobsPage() -> impl IntoView {
    let tick = ticker(2_000);
    let jobs = Resource::new(move || tick.get(), |_| list_jobs());
    view! {
        <Title text="Jobs"/>
        <div class="page-head"><h1>"Jobs"</h1></div>
        <ListView resource=jobs empty="No jobs yet. A job replays or discards many messages at once, with confirms and a rate limit, and shows its progress here: select messages on the Messages page (or filter by a group) and choose Replay or Discard." render={|list: Vec<Job>| view! {
                    <table class="grid">
                        <thead><tr>
                            <th>"#"</th><th>"Action"</th><th>"State"</th><th>"Progress"</th>
                            <th class="num">"Done"</th><th class="num">"Failed"</th><th>"Asked by"</th><th>"Approved by"</th><th>"Created"</th>
                        </tr></thead>
                        <tbody>
                            {list.into_iter().map(|j| view! {
                                <tr>
                                    <td class="num"><a href=format!("/jobs/{}", j.id)>{j.id}</a></td>
                                    <td>{j.action.as_str()}</td>
                                    <td><span class=format!("badge job-{}", j.state.as_str())>{j.state.as_str().replace('_', " ")}</span>
                                        {j.start_at.as_deref().filter(|_| j.state == JobState::Scheduled).map(|t| view! { <span class="muted nowrap">{format!(" at {}", short_time(t))}</span> })}
                                        {j.phase.filter(|p| *p != JobPhase::FullSpeed).map(|p| view! { <span class="muted">{format!(" {}", p.label())}</span> })}</td>
                                    <td class="progress-cell"><ProgressBar job=j.clone()/></td>
                                    <td class="num">{j.done}</td>
                                    <td class="num">{j.failed}</td>
                                    <td>{non_empty(j.actor)}</td>
                                    <td>{j.approved_by.unwrap_or_else(|| "—".into())}</td>
                                    <td class="nowrap">{short_time(&j.created_at)}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
        }}/>
    }
}

#[component]
pub fn JobPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.get().get("id").and_then(|s| s.parse::<i64>().ok()));
    let tick = ticker(1_000);
    let control = ServerAction::<ControlJob>::new();
    let job = Resource::new(
        move || (id.get(), tick.get(), control.version().get()),
        |(id, ..)| async move {
            match id {
                Some(id) => get_job(id).await,
                None => Err(ApiError::BadRequest("not a job id".into())),
            }
        },
    );
    view! {
        <Title text=move || id.get().map(|i| format!("Job {i}")).unwrap_or_default()/>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || job.get().map(|res| match res {
                Err(e) => view! { <ApiErrorBox error=e.clone()/> }.into_any(),
                Ok(j) => view! { <JobView job=j control/> }.into_any(),
            })}
        </Transition>
        {move || control.value().get().and_then(Result::err).map(|e| view! { <ApiErrorBox error=e.clone()/> })}
        <Problems id tick/>
    }
}

/// Messages of the job that did not go through, with the broker's reason.
#[component]
fn Problems(id: Memo<Option<i64>>, tick: RwSignal<u64>) -> impl IntoView {
    let items = Resource::new(
        move || (id.get(), tick.get() / 5),
        |(id, _)| async move {
            match id {
                Some(id) => job_problems(id).await,
                None => Ok(Vec::new()),
            }
        },
    );
    view! {
        <Transition fallback=|| ()>
            {move || items.get().and_then(Result::ok).filter(|l| !l.is_empty()).map(|list| view! {
                <section class="panel">
                    <h2>"Not replayed"</h2>
                    <table class="grid history"><thead><tr><th>"Message"</th><th>"Outcome"</th><th>"Why"</th></tr></thead>
                        <tbody>
                            {list.into_iter().map(|i| {
                                let row = if i.state == "failed" { "result-error" } else { "result-ok" };
                                view! {
                                <tr class=row>
                                    <td class="num"><a href=format!("/messages/{}", i.message_id)>{i.message_id}</a></td>
                                    <td>{non_empty(i.state)}</td>
                                    <td>{i.error.and_then(non_empty)}</td>
                                </tr>
                            }}).collect_view()}
                        </tbody>
                    </table>
                </section>
            })}
        </Transition>
    }
}

#[component]
fn JobView(job: Job, control: ServerAction<ControlJob>) -> impl IntoView {
    let id = job.id;
    let state = job.state;
    let send = move |command: JobCommand| {
        control.dispatch(ControlJob { id, command });
    };
    let target = match (&job.exchange, &job.routing_key) {
        _ if job.plan.to_original_queue => "the queue each message was dead-lettered from".to_owned(),
        _ if job.plan.to_queue.is_some() => {
            format!("only queue {}", job.plan.to_queue.as_deref().unwrap_or(""))
        }
        (None, None) => "original route of each message".to_owned(),
        (e, k) => format!(
            "{} / {}",
            e.as_deref().unwrap_or("(original)"),
            k.as_deref().unwrap_or("(original)")
        ),
    };
    view! {
        <div class="page-head">
            <h1>{format!("Job #{id}: {} ", job.action.as_str())}
                <span class=format!("badge job-{}", state.as_str()) data-state=state.as_str()>{state.as_str().replace('_', " ")}</span>
            </h1>
            <div class="actions">
                {(state == JobState::AwaitingApproval).then(|| view! {
                    <button class="btn btn-primary" data-action="approve" on:click=move |_| send(JobCommand::Approve)>"Approve"</button>
                    <button class="btn" data-action="refuse" on:click=move |_| send(JobCommand::Refuse)>"Refuse"</button>
                })}
                {(state == JobState::Scheduled).then(|| view! {
                    <button class="btn btn-primary" data-action="start" on:click=move |_| send(JobCommand::Start)>"Start now"</button>
                })}
                {(state == JobState::Running).then(|| view! {
                    <button class="btn" data-action="pause" on:click=move |_| send(JobCommand::Pause)>"Pause"</button>
                })}
                {(state == JobState::Paused).then(|| view! {
                    <button class="btn btn-primary" data-action="resume" on:click=move |_| send(JobCommand::Resume)>"Resume"</button>
                })}
                {(!state.is_final()).then(|| view! {
                    <button class="btn btn-danger-ghost" data-action="cancel" on:click=move |_| send(JobCommand::Cancel)>"Cancel"</button>
                })}
            </div>
        </div>
        <section class="panel">
            <p class="big-progress" data-percent=percent(&job)>{format!("{}%", percent(&job))}</p>
            <ProgressBar job=job.clone()/>
            {job.approval_expires_at.clone().map(|t| view! {
                <p class="warn" data-awaiting-approval="">{format!(
                    "Waits for a second person: {} asked for {} messages, more than the approval threshold. \
                     Another user with the same permissions approves or refuses it here before {}; until then it sends nothing.",
                    job.actor, job.total, short_time(&t))}</p>
            })}
            {job.phase_note.clone().map(|n| view! { <p class="muted" data-phase-note="">{n}</p> })}
            {job.waiting.clone().map(|n| view! { <p class="warn" data-waiting="">{n}</p> })}
            {job.pause_reason.clone().or(job.note.clone()).map(|n| view! { <p class="warn" data-pause-reason="">{n}</p> })}
            {(!job.canary_returned.is_empty()).then(|| view! {
                <p data-canary-returned="">"Came back failed: "
                    {job.canary_returned.iter().map(|id| view! { <a href=format!("/messages/{id}")>{format!("#{id}")}</a>" " }).collect_view()}
                </p>
            })}
            <dl class="facts-grid">
                <dt>"Done"</dt><dd>{job.done}</dd>
                <dt>"Failed"</dt><dd class:warn=job.failed != 0>{job.failed}</dd>
                <dt>"Remaining"</dt><dd>{job.remaining}</dd>
                <dt>"Total"</dt><dd>{job.total}</dd>
                <dt>"Rate cap"</dt><dd>{job.rate_per_sec.map(|r| format!("{r} msg/s")).unwrap_or_else(|| "none".into())}</dd>
                {job.start_at.clone().map(|t| view! { <dt>"Starts at"</dt><dd data-start-at=t.clone()>{short_time(&t)}</dd> })}
                {job.phase.map(|p| view! { <dt>"Phase"</dt><dd data-phase=p.as_str()>{p.label()}</dd> })}
                {job.phase.map(|_| view! { <dt>"Sending at"</dt><dd>{job.current_rate.map(|r| format!("{r:.0} msg/s")).unwrap_or_else(|| "as fast as the broker confirms".into())}</dd> })}
                {job.plan.canary.clone().map(|c| view! { <dt>"Canary"</dt><dd>{format!("{} message(s), watched {}s, at most {} failing again", c.count.map(|n| n.to_string()).unwrap_or_else(|| format!("{}%", c.percent.unwrap_or_default())), c.watch_seconds, c.max_failed_again)}</dd> })}
                {job.plan.adaptive.then(|| view! { <dt>"Adaptive"</dt><dd>{format!("waits for consumers and a backlog under {}", job.plan.max_backlog())}</dd> })}
                <dt>"Target"</dt><dd class="mono">{target}</dd>
                <dt>"Asked by"</dt><dd>{non_empty(job.actor.clone())}</dd>
                {job.approved_by.clone().map(|u| view! {
                    <dt>"Approved by"</dt><dd data-approved-by=u.clone()>{format!("{u}, {}", job.approved_at.as_deref().map(short_time).unwrap_or_default())}</dd>
                })}
                <dt>"Created"</dt><dd>{short_time(&job.created_at)}</dd>
                <dt>"Finished"</dt><dd>{job.finished_at.as_deref().map(short_time).unwrap_or_else(|| "—".into())}</dd>
            </dl>
        </section>
    }
}
