//! One message: what failed, where it came from, and the actions on it.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use super::claims::ClaimCell;
use crate::api::{error_text, get_message, DiscardMessage, ReplayMessage, RestoreMessage};
use crate::components::ApiErrorBox;
use crate::components::{
    can_write, AnnotationsPanel, BodyView, ErrorBox, RouteReach, StatusBadge, TapNote, TapReplayConfirm,
};
use crate::format::{exchange_label, non_empty, short_time, typed_value};
use crate::model::ApiError;
use crate::model::{
    AnnotationTarget, HistoryEntry, MessageDetail, MessageEdit, MessageStatus, ReplayTarget, TapOriginal,
};

#[component]
pub fn MessagePage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.get().get("id").and_then(|s| s.parse::<i64>().ok()));
    let replay = ServerAction::<ReplayMessage>::new();
    let discard = ServerAction::<DiscardMessage>::new();
    let restore = ServerAction::<RestoreMessage>::new();
    // Bumped when its owner or hold changes, to read it again.
    let claimed = RwSignal::new(0u32);
    let message = Resource::new(
        move || {
            (
                id.get(),
                replay.version().get(),
                discard.version().get(),
                restore.version().get(),
                claimed.get(),
            )
        },
        |(id, ..)| async move {
            match id {
                Some(id) => get_message(id).await,
                None => Err(ApiError::BadRequest("not a message id".into())),
            }
        },
    );
    // The last action's error, shown until the next action.
    let action_error = Signal::derive(move || {
        [
            replay.value().get().and_then(Result::err),
            discard.value().get().and_then(Result::err),
            restore.value().get().and_then(Result::err),
        ]
        .into_iter()
        .flatten()
        .next()
        .map(|e| error_text(&e))
    });
    let pending =
        Signal::derive(move || replay.pending().get() || discard.pending().get() || restore.pending().get());

    view! {
        <Title text=move || id.get().map(|i| format!("Message {i}")).unwrap_or_default()/>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || message.get().map(|res| match res {
                Err(e) => view! { <ApiErrorBox error=e.clone()/> }.into_any(),
                Ok(m) => view! {
                    <MessageView m=m replay discard restore pending action_error
                        claim_changed=Callback::new(move |_| claimed.update(|n| *n += 1))/>
                }.into_any(),
            })}
        </Transition>
    }
}

#[component]
fn MessageView(
    m: MessageDetail,
    replay: ServerAction<ReplayMessage>,
    discard: ServerAction<DiscardMessage>,
    restore: ServerAction<RestoreMessage>,
    pending: Signal<bool>,
    action_error: Signal<Option<String>>,
    claim_changed: Callback<()>,
) -> impl IntoView {
    let s = &m.summary;
    let id = s.id;
    let status = s.status;
    let confirming = RwSignal::new(false);
    let can_write = can_write();
    let target_exchange = RwSignal::new(String::new());
    let target_key = RwSignal::new(String::new());
    let original = format!(
        "{} → {}",
        s.exchange.as_deref().map(exchange_label).unwrap_or("unknown"),
        s.routing_key.as_deref().unwrap_or("")
    );
    let target = move || {
        let non_empty = |s: String| (!s.trim().is_empty()).then_some(s);
        ReplayTarget {
            exchange: non_empty(target_exchange.get()),
            routing_key: non_empty(target_key.get()),
            ..Default::default()
        }
    };
    let replay_to = move |_| {
        replay.dispatch(ReplayMessage { id, target: target() });
    };
    // A copy whose original is still queued is replayed after a warning.
    let tapped = m.tap == Some(TapOriginal::InQueue);
    let replay_confirming = RwSignal::new(false);
    let replay_click = move |ev| {
        if tapped && !replay_confirming.get() {
            replay_confirming.set(true);
        } else {
            replay_confirming.set(false);
            replay_to(ev);
        }
    };
    let editor = (status == MessageStatus::Failed).then(|| {
        let original = EditSource {
            body: (!m.body_truncated).then(|| m.body_text.clone()).flatten(),
            headers: m.headers.clone(),
            properties: m.properties.clone(),
        };
        view! { <EditAndReplay id original replay pending target=Callback::new(move |_| target())/> }
    });

    view! {
        <div class="page-head">
            <h1>{format!("Message #{id} ")}<StatusBadge status/></h1>
            <div class="actions">
                <Show when=move || status == MessageStatus::Failed && can_write.get()>
                    <button class="btn btn-primary" data-action="replay" disabled=pending on:click=replay_click>
                        "Replay"
                    </button>
                    <Show
                        when=move || confirming.get()
                        fallback=move || view! {
                            <button class="btn btn-danger-ghost" data-action="discard" disabled=pending
                                on:click=move |_| confirming.set(true)>"Discard"</button>
                        }
                    >
                        <button class="btn btn-danger" data-action="confirm-discard" disabled=pending
                            on:click=move |_| { discard.dispatch(DiscardMessage { id }); }>"Confirm discard"</button>
                        <button class="btn btn-ghost" on:click=move |_| confirming.set(false)>"Cancel"</button>
                    </Show>
                </Show>
                <Show when=move || status == MessageStatus::Discarded && can_write.get()>
                    <button class="btn" data-action="restore" disabled=pending
                        on:click=move |_| { restore.dispatch(RestoreMessage { id }); }>"Restore"</button>
                </Show>
            </div>
        </div>
        {move || action_error.get().map(|e| view! { <ErrorBox message=e/> })}
        {
            let queue = s.queue.clone();
            move || replay_confirming.get().then(|| view! {
                <TapReplayConfirm queue=queue.clone() pending
                    confirm=Callback::new(move |_| {
                        replay_confirming.set(false);
                        replay.dispatch(ReplayMessage { id, target: target() });
                    })
                    cancel=Callback::new(move |_| replay_confirming.set(false))/>
            })
        }
        {m.tap.map(|tap| view! { <TapNote tap queue=s.queue.clone()/> })}
        {m.masked.then(|| view! {
            <div class="loop-box" role="note" data-masked="true">
                <p>
                    <strong>"Some values here read ••••."</strong>
                    " They are masked for users without the broker tag that unmasks them. Redrive keeps the \
                     real values, and a replay sends them; in Edit & replay, a •••• left as it is is sent as stored."
                </p>
            </div>
        })}
        {m.uncertain_replay_id.clone().map(|rid| view! {
            <div class="loop-box" role="alert" data-outcome="unknown">
                <p>
                    <strong>"Outcome unknown."</strong>
                    " A replay was published but the broker never confirmed it: it may or may not have been \
                     delivered. Check the target before replaying again; a retry carries the same "
                    <code>"x-redrive-replay-id"</code>" "<code>{rid}</code>
                    " so consumers can recognise a second copy."
                </p>
            </div>
        })}
        {m.possible_copy_of.map(|twin| view! {
            <div class="loop-box" role="note" data-possible-copy=twin>
                <p>
                    <strong>"Possibly a second copy of "<a href=format!("/messages/{twin}")>{format!("#{twin}")}</a>"."</strong>
                    " Redrive had stored that message and sent its ack when it stopped or lost its connection, \
                     before the broker confirmed the ack; the broker then delivered this identical message again. \
                     If it is the same failure, discard this one."
                </p>
            </div>
        })}
        <ReplayChain from=m.replayed_from times=m.failed_again_after_replay came_back=m.came_back_as.clone()/>
        <section class="panel facts">
            <dl>
                <dt>"Reason"</dt><dd class="reason">{s.reason.clone().and_then(non_empty).unwrap_or_else(|| "unknown".into())}</dd>
                <dt>"Queue"</dt><dd>{format!("{} (vhost {})", s.queue, s.vhost)}</dd>
                <dt>"Original route"</dt><dd class="mono">{original}</dd>
                <dt>"Delivered via"</dt><dd class="mono">{format!("{} → {}", exchange_label(&m.delivery_exchange), m.delivery_routing_key)}</dd>
                <dt>"Received"</dt><dd>{short_time(&s.received_at)}</dd>
                <dt>"Dead-lettered"</dt><dd>{format!("{} time(s)", s.death_count)}</dd>
                {s.service.clone().map(|svc| view! { <dt>"Service"</dt><dd>{svc}</dd> })}
                <dt>"Owner"</dt>
                <dd><ClaimCell target=AnnotationTarget::Message(id) owner=m.owner.clone() hold=m.hold.clone()
                    changed=claim_changed/></dd>
            </dl>
            <Show when=move || status == MessageStatus::Failed>
                <RouteReach id replay pending/>
            </Show>
            <Show when=move || status == MessageStatus::Failed>
                <details class="replay-to">
                    <summary>"Replay to another exchange / routing key"</summary>
                    <div class="inline-form">
                        <input type="text" placeholder="exchange" bind:value=target_exchange/>
                        <input type="text" placeholder="routing key" bind:value=target_key/>
                        <button class="btn" disabled=pending on:click=replay_to>"Replay there"</button>
                    </div>
                </details>
            </Show>
        </section>
        {editor}
        <BodyView id text=m.body_text base64=m.body_base64 size=m.body_size truncated=m.body_truncated/>
        {m.stack_trace.map(|st| view! {
            <section class="panel">
                <details open>
                    <summary><h2>"Stack trace"</h2></summary>
                    <pre class="stack">{st}</pre>
                </details>
            </section>
        })}
        <div class="two-col">
            <KeyValues title="Properties" value=m.properties typed=false/>
            <KeyValues title="Headers" value=m.headers typed=true/>
        </div>
        <AnnotationsPanel target=AnnotationTarget::Message(id) initial=m.annotations/>
        <History entries=m.history/>
    }
}

#[component]
fn KeyValues(title: &'static str, value: serde_json::Value, typed: bool) -> impl IntoView {
    let rows: Vec<(String, String, String)> = value
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let kind = v
                        .get("type")
                        .and_then(|t| t.as_str())
                        .unwrap_or_default()
                        .to_owned();
                    let text = if typed {
                        typed_value(v)
                    } else {
                        v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())
                    };
                    (k.clone(), text, if typed { kind } else { String::new() })
                })
                .collect()
        })
        .unwrap_or_default();
    view! {
        <section class="panel">
            <h2>{title}</h2>
            {if rows.is_empty() {
                view! { <p class="empty">"none"</p> }.into_any()
            } else {
                view! {
                    // Explicit <tbody>: the browser inserts one, and hydration must match.
                    <table class="kv"><tbody>
                        {rows.into_iter().map(|(k, v, kind)| view! {
                            <tr><th>{k}</th><td class="mono">{non_empty(v)}</td><td class="muted">{non_empty(kind)}</td></tr>
                        }).collect_view()}
                    </tbody></table>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn History(entries: Vec<HistoryEntry>) -> impl IntoView {
    view! {
        <section class="panel">
            <h2>"History"</h2>
            {if entries.is_empty() {
                view! { <p class="empty">"No action taken yet."</p> }.into_any()
            } else {
                view! {
                    <table class="grid history">
                        <thead><tr><th>"When"</th><th>"Action"</th><th>"By"</th><th>"Target"</th><th>"Result"</th><th>"Detail"</th></tr></thead>
                        <tbody>
                            {entries.into_iter().map(|e| {
                                let row_class = format!("result-{}", e.result);
                                view! {
                                <tr class=row_class>
                                    <td class="nowrap">{short_time(&e.at)}</td>
                                    <td>{e.action.as_str()}</td>
                                    <td>{non_empty(e.actor)}</td>
                                    <td class="mono">{e.target}</td>
                                    <td>{e.result}</td>
                                    <td>{e.detail}</td>
                                </tr>
                            }}).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

/// Where a replayed message came back from, and where its own replays went.
#[component]
fn ReplayChain(from: Option<i64>, times: i64, came_back: Vec<i64>) -> impl IntoView {
    let link = |id: i64| view! { <a href=format!("/messages/{id}")>{format!("#{id}")}</a> " " };
    (from.is_some() || !came_back.is_empty()).then(|| {
        view! {
            <div class="loop-box" role="status" data-failed-again=times>
                {from.map(|f| view! {
                    <p>
                        <strong>{format!("Failed again {times} time(s) after replay.")}</strong>
                        " Previous record: " {link(f)}
                    </p>
                })}
                {(!came_back.is_empty()).then(|| view! {
                    <p>"Replayed, then came back as: " {came_back.into_iter().map(link).collect_view()}</p>
                })}
            </div>
        }
    })
}

/// The stored message as the editor starts from it.
#[derive(Clone)]
struct EditSource {
    /// `None` when the body is binary or too large to edit here.
    body: Option<String>,
    headers: serde_json::Value,
    properties: serde_json::Value,
}

/// Edit body, headers and properties, then replay the edited copy. The
/// stored original stays as it is; the server records the diff in history.
#[component]
fn EditAndReplay(
    id: i64,
    original: EditSource,
    replay: ServerAction<ReplayMessage>,
    pending: Signal<bool>,
    target: Callback<(), ReplayTarget>,
) -> impl IntoView {
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let body = RwSignal::new(original.body.clone().unwrap_or_default());
    let headers = RwSignal::new(pretty(&original.headers));
    let properties = RwSignal::new(pretty(&original.properties));
    let problem = RwSignal::new(None::<String>);
    let can_edit_body = original.body.is_some();
    let original = StoredValue::new(original);
    let submit = move |_| {
        let parse = |what: &str, text: String| {
            serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| format!("{what} are not valid JSON: {e}"))
        };
        let edit = (|| {
            let o = original.get_value();
            let h = parse("headers", headers.get())?;
            let p = parse("properties", properties.get())?;
            Ok::<_, String>(MessageEdit {
                body: Some(body.get()).filter(|b| can_edit_body && o.body.as_ref() != Some(b)),
                headers: Some(h).filter(|h| *h != o.headers),
                properties: Some(p).filter(|p| *p != o.properties),
            })
        })();
        match edit {
            Err(e) => problem.set(Some(e)),
            Ok(edit) => {
                problem.set(None);
                let mut t = target.run(());
                t.edit = Some(edit);
                replay.dispatch(ReplayMessage { id, target: t });
            }
        }
    };
    view! {
        <section class="panel">
            <details class="edit-replay">
                <summary><h2>"Edit & replay"</h2></summary>
                <p class="muted">"The stored message stays as it is; the replayed copy carries your changes, recorded in the history."</p>
                {move || problem.get().map(|e| view! { <ErrorBox message=e/> })}
                {can_edit_body.then(|| view! {
                    <label class="stack">"Body" <textarea rows="10" class="mono" data-edit="body" bind:value=body></textarea></label>
                })}
                <div class="two-col">
                    <label class="stack">"Headers (typed)" <textarea rows="10" class="mono" data-edit="headers" bind:value=headers></textarea></label>
                    <label class="stack">"Properties" <textarea rows="10" class="mono" data-edit="properties" bind:value=properties></textarea></label>
                </div>
                <button class="btn btn-primary" data-action="replay-edited" disabled=pending on:click=submit>"Replay edited copy"</button>
            </details>
        </section>
    }
}
