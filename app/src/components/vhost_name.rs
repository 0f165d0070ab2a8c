//! A queue or exchange named with its vhost. The vhost is a muted tag, not a
//! `vhost / name` string: with the default vhost `/` that read as `/ / orders`.

use leptos::prelude::*;

#[component]
pub fn VhostName(vhost: String, name: String) -> impl IntoView {
    let title = format!("{name} in vhost {vhost}");
    view! {
        <span class="vhost-name" title=title>
            <span class="vhost-tag">{vhost}</span>
            {name}
        </span>
    }
}
