//! What a copy from a tap is: its original stayed in the service's queue,
//! so replaying the copy may make a second outcome and discarding it
//! touches nothing but Redrive's copy.

use leptos::prelude::*;

use crate::model::TapOriginal;

/// Where this copy's original is, for the message page.
#[component]
pub fn TapNote(tap: TapOriginal, queue: String) -> impl IntoView {
    let text = match tap {
        TapOriginal::InQueue => format!(
            "Redrive copied this message from its tap. The original went to {queue} too and stays there \
             for the service's own consumers: replaying this copy may make a second outcome if the service \
             also handles the original. Discarding removes Redrive's copy only."
        ),
        TapOriginal::Taken => format!(
            "Redrive copied this message from its tap. When {queue} was switched to consume, Redrive took \
             the original from it without storing it again: this is the only copy."
        ),
        TapOriginal::Left => format!(
            "Redrive copied this message from its tap. The original had left {queue} (its service handled \
             it, or it expired) before Redrive took the queue over."
        ),
    };
    view! {
        <div class="loop-box tap-note" role="note" data-tap=tap.as_str()>
            <p><strong>"A copy. "</strong>{text}</p>
        </div>
    }
}

/// The confirm a replay of a copy whose original is still queued needs.
#[component]
pub fn TapReplayConfirm(
    queue: String,
    pending: Signal<bool>,
    confirm: Callback<()>,
    cancel: Callback<()>,
) -> impl IntoView {
    view! {
        <div class="loop-box" role="alert" data-confirm="tap-replay">
            <p>
                <strong>"The original is still in "{queue}"."</strong>
                " If the service handles it too, this replay makes a second outcome (a second booking, a second \
                 e-mail). Replay anyway?"
            </p>
            <button class="btn btn-primary" data-action="replay-anyway" disabled=pending
                on:click=move |_| confirm.run(())>"Replay anyway"</button>
            " "
            <button class="btn btn-ghost" on:click=move |_| cancel.run(())>"Cancel"</button>
        </div>
    }
}
