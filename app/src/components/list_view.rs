//! The loading / error / empty / rows states every list page shares.

use leptos::prelude::*;

use super::ApiErrorBox;
use crate::model::ApiError;

/// Renders a list resource: a loading line, the error, `empty` when there
/// are no rows, else `render(rows)`. Keeps the previous rows while refreshing.
#[component]
pub fn ListView<T, V, F>(
    resource: Resource<Result<Vec<T>, ApiError>>,
    /// What an empty list says (a view's own words where the page has several).
    #[prop(into)]
    empty: Signal<&'static str>,
    render: F,
) -> impl IntoView
where
    T: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
    V: IntoView + 'static,
    F: Fn(Vec<T>) -> V + Clone + Send + Sync + 'static,
{
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {
                let render = render.clone();
                move || {
                    let render = render.clone();
                    resource.get().map(move |res| match res {
                        Err(e) => view! { <ApiErrorBox error=e.clone()/> }.into_any(),
                        Ok(list) if list.is_empty() => view! { <p class="empty">{empty.get()}</p> }.into_any(),
                        Ok(list) => render(list).into_any(),
                    })
                }
            }
        </Transition>
    }
}
