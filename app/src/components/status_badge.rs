use leptos::prelude::*;

use crate::model::MessageStatus;

#[component]
pub fn StatusBadge(status: MessageStatus) -> impl IntoView {
    view! { <span class=format!("badge badge-{status}") data-status=status.as_str()>{status.as_str()}</span> }
}
