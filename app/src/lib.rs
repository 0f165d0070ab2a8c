//! Redrive's UI: pages, components, the types both sides share and thin server
//! functions. Compiled with `ssr` into the server and with `hydrate` to wasm.

pub mod api;
#[cfg(feature = "ssr")]
pub mod backend;
mod components;
pub mod format;
pub mod model;
mod pages;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::{path, SsrMode};

use components::UserMenu;
use pages::{
    AdvisorPage, AlertsPage, AuditPage, GroupsPage, JobPage, JobsPage, MessageIdPage, MessagePage,
    MessagesPage, OverviewPage, PoliciesPage, QueuePage, QueuesPage, ServicePage,
};

/// The icon, also served as `/favicon.ico` for pages and clients that ask there.
pub const FAVICON_SVG: &str =
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><circle cx='8' cy='8' r='7' fill='#ff6a00'/></svg>";
/// Inline in every page, so a page load asks for no icon.
const FAVICON: &str = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Ccircle cx='8' cy='8' r='7' fill='%23ff6a00'/%3E%3C/svg%3E";

pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href=FAVICON/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
                <api::CsrfMeta/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    components::provide_me();
    // Set once the wasm has taken over the page; browser tests wait for it.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    view! {
        <Stylesheet id="redrive" href=format!("/pkg/{}.css", env!("LEPTOS_OUTPUT_NAME"))/>
        <Title formatter=|t: String| if t.is_empty() { "Redrive".into() } else { format!("{t} · Redrive") }/>
        <Router>
            <div class="app" data-hydrated=move || if hydrated.get() { "true" } else { "false" }>
                <header class="topbar">
                    <a class="brand" href="/">"Redrive"</a>
                    <nav>
                        <A href="/" exact=true>"Messages"</A>
                        <A href="/groups">"Groups"</A>
                        <A href="/jobs">"Jobs"</A>
                        <A href="/overview">"Overview"</A>
                        <A href="/queues">"Queues"</A>
                        <A href="/policies">"Policies"</A>
                        <A href="/advisor">"Advisor"</A>
                        <A href="/alerts">"Alerts"</A>
                        <A href="/audit">"Audit"</A>
                    </nav>
                    <UserMenu/>
                </header>
                <main class="content">
                    <Routes fallback=|| view! { <p class="empty">"Page not found."</p> }>
                        <Route path=path!("") view=MessagesPage/>
                        <Route path=path!("/messages/:id") view=MessagePage/>
                        <Route path=path!("/m/:message_id") view=MessageIdPage ssr=SsrMode::Async/>
                        <Route path=path!("/groups") view=GroupsPage/>
                        <Route path=path!("/jobs") view=JobsPage/>
                        <Route path=path!("/jobs/:id") view=JobPage/>
                        <Route path=path!("/overview") view=OverviewPage ssr=SsrMode::Async/>
                        <Route path=path!("/queues") view=QueuesPage ssr=SsrMode::Async/>
                        <Route path=path!("/queues/:vhost/:name") view=QueuePage ssr=SsrMode::Async/>
                        <Route path=path!("/services/:service") view=ServicePage ssr=SsrMode::Async/>
                        <Route path=path!("/policies") view=PoliciesPage/>
                        <Route path=path!("/advisor") view=AdvisorPage ssr=SsrMode::Async/>
                        <Route path=path!("/alerts") view=AlertsPage/>
                        <Route path=path!("/audit") view=AuditPage/>
                    </Routes>
                </main>
            </div>
        </Router>
    }
}

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
