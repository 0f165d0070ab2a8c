//! The owner and hold of a failure group (on the Groups page) or of one
//! message (on its page): who is on it, "take it", and holding it out of
//! the counts and alerts while a fix ships.

use leptos::prelude::*;

use crate::api::{HoldFor, ReleaseHold, SetOwner};
use crate::components::{can_write, my_name, ApiErrorBox};
use crate::format::short_time;
use crate::model::{AnnotationTarget, Hold};

/// Hold spans the page offers (hours); the REST API takes any time.
const SPANS: [(u32, &str); 3] = [(4, "4 h"), (24, "1 day"), (168, "1 week")];

#[component]
pub fn ClaimCell(
    target: AnnotationTarget,
    owner: Option<String>,
    hold: Option<Hold>,
    changed: Callback<()>,
) -> impl IntoView {
    let owner_action = ServerAction::<SetOwner>::new();
    let hold_action = ServerAction::<HoldFor>::new();
    let release_action = ServerAction::<ReleaseHold>::new();
    Effect::new(move |prev: Option<(usize, usize, usize)>| {
        let now = (
            owner_action.version().get(),
            hold_action.version().get(),
            release_action.version().get(),
        );
        if prev.is_some_and(|p| p != now) {
            changed.run(());
        }
        now
    });
    let note = RwSignal::new(String::new());
    let me_name = move || my_name().unwrap_or_default();
    let error = move || {
        [
            owner_action.value().get(),
            hold_action.value().get(),
            release_action.value().get(),
        ]
        .into_iter()
        .flatten()
        .find_map(Result::err)
    };
    let (t1, t2, t3) = (target.clone(), target.clone(), target.clone());
    // What "until a fix is replayed" waits for: a group's first delivered
    // replay, or this message's own.
    let (replayed, replayed_title) = match target {
        AnnotationTarget::Group(_) => (
            "until a fix is replayed",
            "Ends when a replay of one of this group's messages is delivered; 30 days at the latest",
        ),
        AnnotationTarget::Message(_) => (
            "until it is replayed",
            "Ends when a replay of this message is delivered; 30 days at the latest",
        ),
    };
    let owned = owner.clone();
    view! {
        <div class="claim" data-owner=owner.clone().unwrap_or_default()>
            {match owner.clone() {
                Some(o) => view! { <span class="owner">{o}</span> }.into_any(),
                None => view! { <span class="muted">"nobody"</span> }.into_any(),
            }}
            {move || can_write().get().then(|| {
                let target = t1.clone();
                // Mine: let it go; anyone else's or nobody's: take it.
                let mine = owned.is_some() && owned == my_name();
                let (action, label) = if mine { ("drop", "Let go") } else { ("take", "Take") };
                view! {
                    " "
                    <button class="btn btn-ghost" data-action=action
                        on:click=move |_| {
                            let user = if mine { String::new() } else { me_name() };
                            owner_action.dispatch(SetOwner { target: target.clone(), user });
                        }>{label}</button>
                }
            })}
            {hold.clone().map(|h| view! {
                <div class="hold" data-held-until=h.until.clone()
                    title=format!("ends {} at the latest", short_time(&h.until))>
                    <span class="badge job-awaiting_approval">"on hold"</span>
                    {match h.until_replayed {
                        true => format!(" {replayed}, by {}", h.by),
                        false => format!(" until {} by {}", short_time(&h.until), h.by),
                    }}
                    {h.arrived_since.map(|n| format!(" · {n} arrived since"))}
                    {h.note.clone().map(|n| view! { <div class="muted">{n}</div> })}
                </div>
            })}
            {move || can_write().get().then(|| match hold.is_some() {
                true => {
                    let target = t2.clone();
                    view! {
                        <button class="btn btn-ghost" data-action="release"
                            on:click=move |_| { release_action.dispatch(ReleaseHold { target: target.clone() }); }>"End hold"</button>
                    }.into_any()
                }
                false => {
                    let target = t3.clone();
                    view! {
                        <details class="hold-form">
                            <summary>"Hold…"</summary>
                            <input type="text" placeholder="why, e.g. fix in PAY-123" maxlength="1000"
                                prop:value=move || note.get() on:input=move |ev| note.set(event_target_value(&ev))/>
                            {SPANS.iter().map(|(hours, label)| {
                                let (target, hours) = (target.clone(), *hours);
                                view! {
                                    <button class="btn btn-ghost" data-hold-hours=hours
                                        on:click=move |_| { hold_action.dispatch(HoldFor { target: target.clone(), hours, note: note.get_untracked(), until_replayed: false }); }>{*label}</button>
                                }
                            }).collect_view()}
                            <button class="btn btn-ghost" data-hold-until-replayed="true"
                                title=replayed_title
                                on:click=move |_| { hold_action.dispatch(HoldFor { target: target.clone(), hours: 0, note: note.get_untracked(), until_replayed: true }); }>{replayed}</button>
                        </details>
                    }.into_any()
                }
            })}
            {move || error().map(|e| view! { <ApiErrorBox error=e/> })}
        </div>
    }
}
