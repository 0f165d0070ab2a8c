//! Policies of every vhost: list, delete, and a form (lazy queues by default,
//! templates for the other reliability policies) with a live preview of the
//! queues a pattern matches and which policy wins for each.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::{delete_policy, error_text, list_policies, list_vhosts, preview_policy, save_policy};
use crate::components::{ErrorBox, ListView};
use crate::format::non_empty;
use crate::model::{Policy, PolicyPreview, PolicyRequest, APPLY_TO};

/// `(button, apply-to, definition)`: what a reliability policy usually holds.
pub const TEMPLATES: [(&str, &str, &str); 6] = [
    ("Lazy queue", "queues", r#"{"queue-mode": "lazy"}"#),
    (
        "Dead-letter exchange",
        "queues",
        r#"{"dead-letter-exchange": "error.direct", "dead-letter-routing-key": "service-name"}"#,
    ),
    ("Message TTL", "queues", r#"{"message-ttl": 86400000}"#),
    (
        "Max length",
        "queues",
        r#"{"max-length": 100000, "overflow": "reject-publish-dlx"}"#,
    ),
    (
        "Max bytes",
        "queues",
        r#"{"max-length-bytes": 1073741824, "overflow": "reject-publish-dlx"}"#,
    ),
    (
        "Delivery limit (quorum)",
        "quorum_queues",
        r#"{"delivery-limit": 20}"#,
    ),
];

#[derive(Clone, Copy)]
struct Form {
    vhost: RwSignal<String>,
    name: RwSignal<String>,
    pattern: RwSignal<String>,
    apply_to: RwSignal<String>,
    priority: RwSignal<String>,
    definition: RwSignal<String>,
}

impl Form {
    fn new() -> Self {
        Self {
            vhost: RwSignal::new("/".into()),
            name: RwSignal::new("lazy-queues".into()),
            pattern: RwSignal::new(String::new()),
            apply_to: RwSignal::new("queues".into()),
            priority: RwSignal::new("0".into()),
            definition: RwSignal::new(TEMPLATES[0].2.into()),
        }
    }

    /// The request, or why the form cannot make one yet.
    fn request(&self) -> Result<(String, String, PolicyRequest), String> {
        let definition = serde_json::from_str(&self.definition.get())
            .map_err(|e| format!("definition is not valid JSON: {e}"))?;
        let priority = self
            .priority
            .get()
            .trim()
            .parse()
            .map_err(|_| "priority must be a whole number".to_owned())?;
        Ok((
            self.vhost.get(),
            self.name.get(),
            PolicyRequest {
                pattern: self.pattern.get(),
                apply_to: self.apply_to.get(),
                priority,
                definition,
            },
        ))
    }

    fn load(&self, p: &Policy) {
        self.vhost.set(p.vhost.clone());
        self.name.set(p.name.clone());
        self.pattern.set(p.pattern.clone());
        self.apply_to.set(p.apply_to.clone());
        self.priority.set(p.priority.to_string());
        self.definition
            .set(serde_json::to_string_pretty(&p.definition).unwrap_or_default());
    }
}

#[component]
pub fn PoliciesPage() -> impl IntoView {
    let form = Form::new();
    let saved = RwSignal::new(0u32);
    let policies = Resource::new(move || saved.get(), |_| list_policies());
    let vhosts = Resource::new(|| (), |_| list_vhosts());
    let save = Action::new(|(vhost, name, req): &(String, String, PolicyRequest)| {
        save_policy(vhost.clone(), name.clone(), req.clone())
    });
    let remove = Action::new(|(vhost, name): &(String, String)| delete_policy(vhost.clone(), name.clone()));
    Effect::new(move |_| {
        if matches!(save.value().get(), Some(Ok(_))) || matches!(remove.value().get(), Some(Ok(_))) {
            saved.update(|n| *n += 1);
        }
    });
    // Start on a vhost that exists: `/` may not be one this Redrive watches.
    Effect::new(move |_| {
        if let Some(Ok(list)) = vhosts.get() {
            if !list.contains(&form.vhost.get_untracked()) {
                if let Some(first) = list.first() {
                    form.vhost.set(first.clone());
                }
            }
        }
    });
    let form_error = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match form.request() {
            Ok(req) => {
                form_error.set(None);
                save.dispatch(req);
            }
            Err(e) => form_error.set(Some(e)),
        }
    };

    view! {
        <Title text="Policies"/>
        <div class="page-head"><h1>"Policies"</h1></div>
        <ListView resource=policies empty="No policies in any vhost." render={move |list: Vec<Policy>| view! {
            <table class="grid policies">
                <thead><tr><th>"Vhost"</th><th>"Name"</th><th>"Pattern"</th><th>"Apply to"</th><th class="num">"Priority"</th><th>"Definition"</th><th></th></tr></thead>
                <tbody>
                    {list.into_iter().map(|p| {
                        let edit = p.clone();
                        let key = (p.vhost.clone(), p.name.clone());
                        let row = p.name.clone();
                        view! {
                            <tr data-policy=row>
                                <td>{non_empty(p.vhost)}</td>
                                <td>{non_empty(p.name)}</td>
                                <td class="mono">{non_empty(p.pattern)}</td>
                                <td>{non_empty(p.apply_to)}</td>
                                <td class="num">{p.priority}</td>
                                <td class="mono">{p.definition.to_string()}</td>
                                <td class="nowrap">
                                    <button class="btn btn-ghost" on:click=move |_| form.load(&edit)>"Edit"</button>
                                    <button class="btn btn-danger" on:click=move |_| { remove.dispatch(key.clone()); }>"Delete"</button>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        }}/>
        {move || remove.value().get().and_then(Result::err).map(|e| view! { <ErrorBox message=error_text(&e)/> })}

        <h2>"Set a policy"</h2>
        <div class="templates">
            {TEMPLATES.iter().map(|(label, apply_to, def)| view! {
                <button class="btn btn-ghost" type="button" on:click=move |_| {
                    form.apply_to.set((*apply_to).into());
                    form.definition.set((*def).into());
                }>{*label}</button>
            }).collect_view()}
        </div>
        <form class="policy-form" on:submit=submit>
            <label>"Vhost "
                <select name="vhost" prop:value=move || form.vhost.get() on:change=move |ev| form.vhost.set(event_target_value(&ev))>
                    <Transition fallback=|| ()>
                        {move || vhosts.get().and_then(Result::ok).map(|list| list.into_iter().map(|v| {
                            let selected = v == form.vhost.get();
                            let value = v.clone();
                            view! { <option value=value selected=selected>{v}</option> }
                        }).collect_view())}
                    </Transition>
                </select>
            </label>
            <label>"Name " <input type="text" name="name" bind:value=form.name required/></label>
            <label>"Pattern " <input type="text" name="pattern" class="mono" placeholder="^orders\\." bind:value=form.pattern required/></label>
            <label>"Apply to "
                <select name="apply_to" prop:value=move || form.apply_to.get() on:change=move |ev| form.apply_to.set(event_target_value(&ev))>
                    {APPLY_TO.iter().map(|a| view! { <option value=*a>{*a}</option> }).collect_view()}
                </select>
            </label>
            <label>"Priority " <input type="number" name="priority" bind:value=form.priority/></label>
            <label class="stack">"Definition (JSON)" <textarea name="definition" rows="4" class="mono" bind:value=form.definition></textarea></label>
            <button class="btn btn-primary" type="submit" disabled=move || save.pending().get()>"Save policy"</button>
        </form>
        {move || form_error.get().map(|e| view! { <ErrorBox message=e/> })}
        {move || save.value().get().map(|res| match res {
            Ok(p) => view! { <p class="ok" role="status">{format!("Saved policy {} in {}.", p.name, p.vhost)}</p> }.into_any(),
            Err(e) => view! { <ErrorBox message=error_text(&e)/> }.into_any(),
        })}
        <PreviewPanel form/>
    }
}

/// Re-asks the server whenever the form changes; shows matches and notes.
#[component]
fn PreviewPanel(form: Form) -> impl IntoView {
    let preview = Resource::new(
        move || form.request().ok().filter(|(_, _, r)| !r.pattern.is_empty()),
        |req| async move {
            match req {
                Some((vhost, name, r)) => preview_policy(vhost, name, r).await.map(Some),
                None => Ok(None),
            }
        },
    );
    view! {
        <h2>"Preview"</h2>
        <Transition fallback=|| view! { <p class="muted">"…"</p> }>
            {move || preview.get().map(|res| match res {
                Err(e) => view! { <ErrorBox message=error_text(&e)/> }.into_any(),
                Ok(None) => view! { <p class="muted">"Type a pattern to see which queues it matches."</p> }.into_any(),
                Ok(Some(p)) => preview_table(p).into_any(),
            })}
        </Transition>
    }
}

fn preview_table(p: PolicyPreview) -> impl IntoView {
    let notes = p
        .notes
        .into_iter()
        .map(|n| view! { <p class="note">{n}</p> })
        .collect_view();
    let body = if p.matches.is_empty() {
        view! { <p class="empty">"The pattern matches no existing queue."</p> }.into_any()
    } else {
        view! {
            <table class="grid preview">
                <thead><tr><th>"Queue"</th><th>"Type"</th><th>"Policy now"</th><th>"Would win"</th><th>"Note"</th></tr></thead>
                <tbody>
                    {p.matches.into_iter().map(|m| { let row = m.queue.clone(); view! {
                        <tr data-preview=row>
                            <td>{non_empty(m.queue)}</td>
                            <td>{non_empty(m.kind)}</td>
                            <td>{m.current.and_then(non_empty)}</td>
                            <td>{m.winner.and_then(non_empty)}</td>
                            <td>{m.note.and_then(non_empty)}</td>
                        </tr>
                    }}).collect_view()}
                </tbody>
            </table>
        }
        .into_any()
    };
    view! { {notes} {body} }
}
