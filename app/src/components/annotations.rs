//! Tags and notes of a message or group, editable in place.

use leptos::prelude::*;

use super::ApiErrorBox;
use crate::api::Annotate;
use crate::format::short_time;
use crate::model::{AnnotationChange, AnnotationTarget, Annotations};

#[component]
pub fn AnnotationsPanel(target: AnnotationTarget, initial: Annotations) -> impl IntoView {
    let action = ServerAction::<Annotate>::new();
    // The server answers with the target's annotations after each change.
    let current = Signal::derive(move || match action.value().get() {
        Some(Ok(a)) => a,
        _ => initial.clone(),
    });
    let new_tag = RwSignal::new(String::new());
    let new_note = RwSignal::new(String::new());
    let title = match target {
        AnnotationTarget::Message(_) => "Tags & notes",
        AnnotationTarget::Group(_) => "Failure group: tags & notes",
    };
    let target = StoredValue::new(target);
    let send = move |change: AnnotationChange| {
        action.dispatch(Annotate {
            target: target.get_value(),
            change,
        });
    };
    view! {
        <section class="panel annotations">
            <h2>{title}</h2>
            <div class="tags">
                {move || current.get().tags.into_iter().map(|t| {
                    let (remove, label) = (t.clone(), t.clone());
                    view! {
                        <span class="tag" data-tag=label>{t}
                            <button class="tag-x" title="Remove tag" on:click=move |_| send(AnnotationChange::RemoveTag(remove.clone()))>"×"</button>
                        </span>
                    }
                }).collect_view()}
                <input type="text" placeholder="add tag, e.g. INC-42" data-input="tag" bind:value=new_tag
                    on:keydown=move |ev| if ev.key() == "Enter" {
                        send(AnnotationChange::AddTag(new_tag.get()));
                        new_tag.set(String::new());
                    }/>
            </div>
            <ul class="notes">
                {move || current.get().notes.into_iter().map(|n| view! {
                    <li><span class="muted">{format!("{} · {} — ", short_time(&n.at), n.actor)}</span>{n.text}</li>
                }).collect_view()}
            </ul>
            <div class="inline-form">
                <input type="text" class="grow" placeholder="add a note: owner, ticket link, what you found" data-input="note" bind:value=new_note/>
                <button class="btn" on:click=move |_| {
                    send(AnnotationChange::AddNote(new_note.get()));
                    new_note.set(String::new());
                }>"Add note"</button>
            </div>
            {move || action.value().get().and_then(Result::err).map(|e| view! { <ApiErrorBox error=e.clone()/> })}
        </section>
    }
}
