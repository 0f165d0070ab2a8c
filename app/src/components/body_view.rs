//! A message body as operators want to read it: pretty JSON, plain text, or a
//! hex dump for binary payloads.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use leptos::prelude::*;

use crate::format::{hex_dump, human_bytes, pretty_json};

#[component]
pub fn BodyView(text: Option<String>, base64: String, size: usize) -> impl IntoView {
    let (kind, shown) = match text {
        Some(t) => match pretty_json(&t) {
            Some(p) => ("JSON", p),
            None => ("text", t),
        },
        None => (
            "binary",
            hex_dump(&B64.decode(base64.as_bytes()).unwrap_or_default()),
        ),
    };
    let empty = size == 0;
    view! {
        <section class="panel">
            <h2>"Body" <span class="muted">{format!(" {kind}, {}", human_bytes(size))}</span></h2>
            {if empty {
                view! { <p class="empty">"(empty body)"</p> }.into_any()
            } else {
                view! { <pre class=format!("body body-{}", kind.to_lowercase())>{shown}</pre> }.into_any()
            }}
        </section>
    }
}
