//! Failures arriving per minute for one service (or all of them).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::queue::{window_param, WindowPicker};
use crate::api::get_service_history;
use crate::components::ApiErrorBox;
use crate::components::{LineChart, Series};
use crate::format::url_encode;
use crate::model::window_secs;

#[component]
pub fn ServicePage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let service = move || params.with(|p| p.get("service").unwrap_or_default());
    let window = move || window_param(query.with(|q| q.get("window")));
    let history = Resource::new(move || (service(), window()), |(s, w)| get_service_history(s, w));
    view! {
        <Title text=move || format!("Service {}", service())/>
        <div class="page-head">
            <h1>{move || format!("Failures from {}", service())}</h1>
            <div class="actions">
                <WindowPicker base=format!("/services/{}", url_encode(&service())) current=window()/>
                <a class="btn btn-ghost" href=move || format!("/?service={}", url_encode(&service()))>"Messages"</a>
            </div>
        </div>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || history.get().map(|res| match res {
                Err(e) => view! { <ApiErrorBox error=e.clone()/> }.into_any(),
                Ok(h) => {
                    let span = window_secs(&h.window).unwrap_or(3600) * 1000;
                    let to = h.until;
                    let series = vec![Series {
                        label: "failures / min",
                        class: "s1",
                        points: h.points.iter().map(|p| (p.at, p.per_minute)).collect(),
                    }];
                    view! {
                        <LineChart series from=to - span to title=format!("Failures per minute, per {} s bucket", h.bucket_secs)/>
                    }.into_any()
                }
            })}
        </Transition>
    }
}
