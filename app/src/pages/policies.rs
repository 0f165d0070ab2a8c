//! Policies of every vhost: list, delete, and a form (lazy queues by default,
//! templates for the other reliability policies) with a live preview of the
//! queues a pattern matches and which policy wins for each.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::{delete_policy, get_overview, list_policies, list_vhosts, preview_policy, save_policy};
use crate::components::ApiErrorBox;
use crate::components::{can_edit_policies, ErrorBox, ListView};
use crate::format::non_empty;
use crate::model::{BrokerVersion, Policy, PolicyPreview, PolicyRequest};

/// A reliability policy's usual shape, offered as a button above the form.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Template {
    pub label: &'static str,
    /// The name the form suggests (kept if the operator typed their own).
    pub name: &'static str,
    pub apply_to: &'static str,
    pub definition: &'static str,
}

const LAZY: Template = Template {
    label: "Lazy queue",
    name: "lazy-queues",
    apply_to: "queues",
    definition: r#"{"queue-mode": "lazy"}"#,
};

const ALWAYS: [Template; 4] = [
    Template {
        label: "Dead-letter exchange",
        name: "dead-letter",
        apply_to: "queues",
        definition: r#"{"dead-letter-exchange": "error.direct", "dead-letter-routing-key": "service-name"}"#,
    },
    Template {
        label: "Message TTL",
        name: "message-ttl",
        apply_to: "queues",
        definition: r#"{"message-ttl": 86400000}"#,
    },
    Template {
        label: "Max length",
        name: "max-length",
        apply_to: "queues",
        definition: r#"{"max-length": 100000, "overflow": "reject-publish-dlx"}"#,
    },
    Template {
        label: "Max bytes",
        name: "max-bytes",
        apply_to: "queues",
        definition: r#"{"max-length-bytes": 1073741824, "overflow": "reject-publish-dlx"}"#,
    },
];

const DELIVERY_LIMIT: Template = Template {
    label: "Delivery limit (quorum)",
    name: "delivery-limit",
    apply_to: "quorum_queues",
    definition: r#"{"delivery-limit": 20}"#,
};

/// The templates that matter on this broker: lazy mode only before 3.12
/// (later, classic queues keep messages on disk anyway); the quorum
/// delivery-limit scoped to quorum queues where the broker can scope it
/// (older brokers refuse `quorum_queues`, and classic queues ignore the key).
pub fn templates(version: BrokerVersion) -> Vec<Template> {
    let lazy = version.lazy_mode_matters().then_some(LAZY);
    let mut delivery_limit = DELIVERY_LIMIT;
    if !version.queue_type_apply_to() {
        delivery_limit.apply_to = "queues";
    }
    lazy.into_iter().chain(ALWAYS).chain([delivery_limit]).collect()
}

/// A name the form suggested, not one the operator chose.
fn suggested_name(name: &str) -> bool {
    name.is_empty()
        || [LAZY, DELIVERY_LIMIT]
            .iter()
            .chain(&ALWAYS)
            .any(|t| t.name == name)
}

/// What the form says about the broker's version, once it is known.
fn version_note(version: BrokerVersion) -> Option<String> {
    if !version.is_known() {
        return None;
    }
    let v = format!("RabbitMQ {}.{}", version.major, version.minor);
    Some(if version.lazy_mode_matters() {
        format!(
            "{v}: a classic queue keeps its messages in memory unless it is lazy, so lazy mode matters for \
             deep queues (quorum queues ignore it). Policies apply to queues, exchanges or all; scoping one to \
             a queue type needs 3.12."
        )
    } else {
        format!(
            "{v}: classic queues always keep their messages on disk and ignore queue-mode, so lazy mode no \
             longer applies (and never did on quorum queues). The templates below still matter."
        )
    })
}

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
            name: RwSignal::new(LAZY.name.into()),
            pattern: RwSignal::new(String::new()),
            apply_to: RwSignal::new("queues".into()),
            priority: RwSignal::new("0".into()),
            definition: RwSignal::new(LAZY.definition.into()),
        }
    }

    /// Fills apply-to and definition from a template, and its name unless
    /// the operator typed one of their own.
    fn use_template(&self, t: &Template) {
        if suggested_name(&self.name.get_untracked()) {
            self.name.set(t.name.into());
        }
        self.apply_to.set(t.apply_to.into());
        self.definition.set(t.definition.into());
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
    let can_edit = can_edit_policies();
    let saved = RwSignal::new(0u32);
    let policies = Resource::new(move || saved.get(), |_| list_policies());
    let vhosts = Resource::new(|| (), |_| list_vhosts());
    let overview = Resource::new(|| (), |_| get_overview());
    let version = move || {
        overview
            .get()
            .and_then(Result::ok)
            .map(|o| BrokerVersion::parse(&o.rabbitmq_version))
            .unwrap_or_default()
    };
    // On 3.12+ lazy mode is moot: an untouched form starts from the first
    // template that still matters instead.
    Effect::new(move |_| {
        let v = version();
        let untouched =
            form.definition.get_untracked() == LAZY.definition && form.pattern.get_untracked().is_empty();
        if v.is_known() && !v.lazy_mode_matters() && untouched {
            form.use_template(&templates(v)[0]);
        }
    });
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
                                    <button class="btn btn-ghost" disabled=move || !can_edit.get() on:click=move |_| form.load(&edit)>"Edit"</button>
                                    <button class="btn btn-danger" disabled=move || !can_edit.get() on:click=move |_| { remove.dispatch(key.clone()); }>"Delete"</button>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        }}/>
        {move || remove.value().get().and_then(Result::err).map(|e| view! { <ApiErrorBox error=e.clone()/> })}

        <h2>"Set a policy"</h2>
        <Show when=move || !can_edit.get()>
            <p class="note" data-needs-tag="policymaker">"Changing policies needs the broker tag policymaker or administrator."</p>
        </Show>
        <Transition fallback=|| ()>
            {move || {
                let v = version();
                let class = if v.lazy_mode_matters() { "muted" } else { "note" };
                version_note(v).map(|n| view! { <p class=class data-version-note="">{n}</p> })
            }}
            <div class="templates">
                {move || templates(version()).into_iter().map(|t| view! {
                    <button class="btn btn-ghost" type="button" data-template=t.name on:click=move |_| form.use_template(&t)>
                        {t.label}
                    </button>
                }).collect_view()}
            </div>
        </Transition>
        <form class="policy-form" on:submit=submit>
            <fieldset class="plain" prop:disabled=move || !can_edit.get()>
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
                    <Transition fallback=|| ()>
                        {move || version().apply_to_options().into_iter().map(|a| {
                            let selected = a == form.apply_to.get();
                            view! { <option value=a selected=selected>{a}</option> }
                        }).collect_view()}
                    </Transition>
                </select>
            </label>
            <label>"Priority " <input type="number" name="priority" bind:value=form.priority/></label>
            <label class="stack">"Definition (JSON)" <textarea name="definition" rows="4" class="mono" bind:value=form.definition></textarea></label>
            <button class="btn btn-primary" type="submit" disabled=move || save.pending().get()>"Save policy"</button>
            </fieldset>
        </form>
        {move || form_error.get().map(|e| view! { <ErrorBox message=e/> })}
        {move || save.value().get().map(|res| match res {
            Ok(p) => view! { <p class="ok" role="status">{format!("Saved policy {} in {}.", p.name, p.vhost)}</p> }.into_any(),
            Err(e) => view! { <ApiErrorBox error=e.clone()/> }.into_any(),
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
                Err(e) => view! { <ApiErrorBox error=e.clone()/> }.into_any(),
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
                            <td>{m.kind.as_str()}</td>
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::APPLY_TO;

    #[test]
    fn templates_follow_the_broker_version() {
        let old = BrokerVersion::parse("3.10.8");
        let offered = templates(old);
        assert_eq!(offered[0], LAZY);
        assert_eq!(offered.last().unwrap().apply_to, "queues");
        assert!(version_note(old).unwrap().contains("needs 3.12"));
        assert!(version_note(BrokerVersion::default()).is_none());

        let new = BrokerVersion::parse("3.13.1");
        let offered = templates(new);
        assert!(!offered.contains(&LAZY));
        assert_eq!(offered.last().unwrap().apply_to, "quorum_queues");
        assert!(version_note(new).unwrap().contains("queue-mode"));
        // Unknown: every apply-to, and lazy offered (it may matter).
        assert_eq!(BrokerVersion::default().apply_to_options(), APPLY_TO);
        assert_eq!(templates(BrokerVersion::default())[0], LAZY);
    }

    #[test]
    fn a_template_keeps_a_name_the_operator_typed() {
        assert!(suggested_name("") && suggested_name("lazy-queues") && suggested_name("delivery-limit"));
        assert!(!suggested_name("orders-ttl"));
    }
}
