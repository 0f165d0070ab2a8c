//! A message body as operators want to read it: pretty JSON, plain text, or a
//! hex dump for binary payloads.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use leptos::prelude::*;

use crate::format::{hex_dump, human_bytes, json_parts, pretty_json, JsonPart};

/// Larger JSON is shown plain: tens of thousands of spans slow hydration down.
const MAX_COLOURED: usize = 64 * 1024;

fn coloured(json: String) -> AnyView {
    if json.len() > MAX_COLOURED {
        return json.into_any();
    }
    json_parts(&json)
        .into_iter()
        .map(|p| match p {
            JsonPart::Plain(t) => t.into_any(),
            JsonPart::Key(t) => view! { <span class="j-key">{t}</span> }.into_any(),
            JsonPart::Str(t) => view! { <span class="j-str">{t}</span> }.into_any(),
            JsonPart::Num(t) => view! { <span class="j-num">{t}</span> }.into_any(),
            JsonPart::Lit(t) => view! { <span class="j-lit">{t}</span> }.into_any(),
        })
        .collect_view()
        .into_any()
}

#[component]
pub fn BodyView(
    id: i64,
    text: Option<String>,
    base64: String,
    size: usize,
    truncated: bool,
) -> impl IntoView {
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
    let content = if kind == "JSON" {
        coloured(shown)
    } else {
        shown.into_any()
    };
    view! {
        <section class="panel">
            <details open>
            <summary><h2>"Body" <span class="muted">{format!(" {kind}, {}", human_bytes(size))}</span></h2></summary>
            " "<a class="download" href=format!("/api/v1/messages/{id}/body") download=format!("message-{id}.bin")>"download raw"</a>
            {truncated.then(|| view! {
                <p class="muted">{format!("Showing the first {} of {}.", human_bytes(crate::api::SHOWN_BODY_BYTES), human_bytes(size))}</p>
            })}
            {if empty {
                view! { <p class="empty">"(empty body)"</p> }.into_any()
            } else {
                view! { <pre class=format!("body body-{}", kind.to_lowercase())>{content}</pre> }.into_any()
            }}
            </details>
        </section>
    }
}
