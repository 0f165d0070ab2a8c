//! Who is signed in, shown in the top bar with a sign-out button, and what
//! they may do, for pages to hide what the broker would not let them do.
//! The server checks every action anyway; hiding only spares a refusal.

use leptos::prelude::*;

use crate::api::{csrf_token, whoami, CSRF_FIELD};
use crate::model::ApiError;
use crate::model::Me;

type MeResource = Resource<Result<Me, ApiError>>;

/// Loads the signed-in user once per page; call at the root.
pub fn provide_me() {
    let me: MeResource = Resource::new(|| (), |_| whoami());
    provide_context(me);
}

/// The user, once known.
fn me() -> Option<Me> {
    use_context::<MeResource>()?.get()?.ok()
}

/// The signed-in user's name, once known.
pub fn my_name() -> Option<String> {
    me().map(|m| m.user)
}

/// Whether the user may change messages and jobs at all (false while unknown).
pub fn can_write() -> Signal<bool> {
    Signal::derive(move || me().is_some_and(|m| !m.read_only))
}

pub fn can_edit_policies() -> Signal<bool> {
    Signal::derive(move || me().is_some_and(|m| m.can_edit_policies))
}

pub fn can_edit_alerts() -> Signal<bool> {
    Signal::derive(move || me().is_some_and(|m| m.can_edit_alerts))
}

#[component]
pub fn UserMenu() -> impl IntoView {
    view! {
        <div class="user-menu">
            <Transition fallback=|| ()>
                {move || me().map(|m| {
                    let title = if m.tags.is_empty() { "no broker tags".to_owned() } else { m.tags.join(", ") };
                    view! { <span class="user" data-user=m.user.clone() title=title>{m.user.clone()}</span> }
                })}
            </Transition>
            <form method="post" action="/logout">
                <input type="hidden" name=CSRF_FIELD value=csrf_token()/>
                <button class="btn btn-ghost" type="submit" data-action="sign-out">"Sign out"</button>
            </form>
        </div>
    }
}
