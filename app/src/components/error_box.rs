use leptos::prelude::*;

#[component]
pub fn ErrorBox(message: String) -> impl IntoView {
    view! { <div class="error-box" role="alert">{message}</div> }
}
