//! Alert rules with their destination (a webhook in one of four formats, or
//! e-mail), a test button, and every delivery with its attempts and last error.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::{
    create_alert_rule, delete_alert_rule, list_alert_deliveries, list_alert_rules, test_alert_rule,
};
use crate::components::ApiErrorBox;
use crate::components::{can_edit_alerts, ErrorBox, ListView};
use crate::format::{ms_time, non_empty};
use crate::model::{
    Addresses, AlertCondition, AlertDelivery, AlertFormat, AlertRule, AlertRuleRequest, QueueMetric, Severity,
};

pub fn describe(c: &AlertCondition) -> String {
    match c {
        AlertCondition::Queue {
            vhost,
            queue,
            metric,
            op,
            threshold,
        } => format!(
            "queues matching /{queue}/{}: {} {op} {threshold}",
            vhost.as_ref().map(|v| format!(" in {v}")).unwrap_or_default(),
            format!("{metric:?}").to_lowercase()
        ),
        AlertCondition::ErrorInflow { service, per_minute } => format!(
            "failures from {} above {per_minute}/min",
            service.as_deref().unwrap_or("any service")
        ),
        AlertCondition::Finding { severity } => {
            format!("advisor finding of severity {} or worse", severity.as_str())
        }
        AlertCondition::NewGroup { service, vhost } => format!(
            "a new failure group appears{}{}",
            service
                .as_ref()
                .map(|s| format!(" in service {s}"))
                .unwrap_or_default(),
            vhost
                .as_ref()
                .map(|v| format!(" in vhost {v}"))
                .unwrap_or_default()
        ),
    }
}

/// Where a rule's notifications go, as the table shows it.
fn destination(r: &AlertRule) -> String {
    match r.format {
        AlertFormat::Email => format!("e-mail to {}", r.email_to.join(", ")),
        format => format!("{} → {}", format.as_str(), r.webhook_url),
    }
}

/// The rule to create from the form's format and its "send to" field.
fn request(name: String, condition: AlertCondition, format: &str, to: &str) -> AlertRuleRequest {
    let format = AlertFormat::parse(format).unwrap_or_default();
    let (webhook_url, email_to) = match format {
        AlertFormat::Email => (
            String::new(),
            Some(Addresses::Many(
                to.split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
        ),
        _ => (to.trim().to_owned(), None),
    };
    AlertRuleRequest {
        name,
        condition,
        format,
        webhook_url,
        email_to,
    }
}

/// What the rule form holds, as typed.
struct RuleForm {
    kind: String,
    vhost: String,
    target: String,
    metric: String,
    threshold: String,
}

fn condition_from(form: &RuleForm) -> Result<AlertCondition, String> {
    let RuleForm {
        kind,
        vhost,
        target,
        metric,
        threshold,
    } = form;
    let number = || {
        threshold
            .trim()
            .parse::<f64>()
            .map_err(|_| "threshold must be a number".to_owned())
    };
    let target = target.trim();
    let vhost = vhost.trim();
    Ok(match kind.as_str() {
        "queue" => AlertCondition::Queue {
            vhost: (!vhost.is_empty()).then(|| vhost.to_owned()),
            queue: if target.is_empty() {
                ".*".into()
            } else {
                target.into()
            },
            metric: match metric.as_str() {
                "unacked" => QueueMetric::Unacked,
                "consumers" => QueueMetric::Consumers,
                _ => QueueMetric::Ready,
            },
            op: if metric == "consumers" {
                "below".into()
            } else {
                "above".into()
            },
            threshold: number()?,
        },
        "inflow" => AlertCondition::ErrorInflow {
            service: (!target.is_empty()).then(|| target.to_owned()),
            per_minute: number()?,
        },
        "new_group" => AlertCondition::NewGroup {
            service: (!target.is_empty()).then(|| target.to_owned()),
            vhost: (!vhost.is_empty()).then(|| vhost.to_owned()),
        },
        _ => AlertCondition::Finding {
            severity: Severity::parse(target).unwrap_or(Severity::Critical),
        },
    })
}

#[component]
pub fn AlertsPage() -> impl IntoView {
    let can_edit = can_edit_alerts();
    let changed = RwSignal::new(0u32);
    let rules = Resource::new(move || changed.get(), |_| list_alert_rules());
    let deliveries = Resource::new(move || changed.get(), |_| list_alert_deliveries());
    let create = Action::new(|r: &AlertRuleRequest| create_alert_rule(r.clone()));
    let remove = Action::new(|id: &i64| delete_alert_rule(*id));
    let test = Action::new(|id: &i64| test_alert_rule(*id));
    Effect::new(move |_| {
        let _ = (
            create.version().get(),
            remove.version().get(),
            test.version().get(),
        );
        changed.update(|n| *n += 1);
    });
    let format = RwSignal::new("json".to_owned());
    let (name, kind, vhost, target, metric, threshold, url) = (
        RwSignal::new(String::new()),
        RwSignal::new("queue".to_owned()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new("ready".to_owned()),
        RwSignal::new("1000".to_owned()),
        RwSignal::new(String::new()),
    );
    let form_error = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let form = RuleForm {
            kind: kind.get(),
            vhost: vhost.get(),
            target: target.get(),
            metric: metric.get(),
            threshold: threshold.get(),
        };
        match condition_from(&form) {
            Ok(condition) => {
                form_error.set(None);
                create.dispatch(request(name.get(), condition, &format.get(), &url.get()));
            }
            Err(e) => form_error.set(Some(e)),
        }
    };
    view! {
        <Title text="Alerts"/>
        <div class="page-head"><h1>"Alerts"</h1></div>
        <ListView resource=rules empty="No alert rules yet." render={move |list: Vec<AlertRule>| view! {
            <table class="grid">
                <thead><tr><th>"Rule"</th><th>"Condition"</th><th>"Sends"</th><th>"Firing"</th><th></th></tr></thead>
                <tbody>
                    {list.into_iter().map(|r| {
                        let id = r.id;
                        let sends = destination(&r);
                        view! {
                            <tr>
                                <td>{non_empty(r.name)}</td>
                                <td>{describe(&r.condition)}</td>
                                <td class="mono" data-format=r.format.as_str()>{sends}</td>
                                <td class=if r.firing.is_empty() { "" } else { "alarm" }>{non_empty(r.firing.join(", "))}</td>
                                <td class="nowrap">
                                    <button class="btn btn-ghost" on:click=move |_| { test.dispatch(id); }>"Test"</button>
                                    <button class="btn btn-danger" on:click=move |_| { remove.dispatch(id); }>"Delete"</button>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        }}/>
        <h2>"New rule"</h2>
        <Show when=move || !can_edit.get()>
            <p class="note" data-needs-tag="management">"Alert rules need the broker tag management or above."</p>
        </Show>
        <form class="policy-form" on:submit=submit>
            <fieldset class="plain" prop:disabled=move || !can_edit.get()>
            <label>"Name " <input type="text" bind:value=name required/></label>
            <label>"When "
                <select prop:value=move || kind.get() on:change=move |ev| kind.set(event_target_value(&ev))>
                    <option value="queue">"a queue counter crosses a threshold"</option>
                    <option value="inflow">"failures per minute for a service exceed"</option>
                    <option value="finding">"the advisor finds something of severity"</option>
                    <option value="new_group">"a new failure group appears (service optional)"</option>
                </select>
            </label>
            <label>"Vhost (queues, new groups; empty: all) " <input type="text" bind:value=vhost/></label>
            <label>"Queue regex / service / severity " <input type="text" bind:value=target/></label>
            <label>"Counter "
                <select prop:value=move || metric.get() on:change=move |ev| metric.set(event_target_value(&ev))>
                    <option value="ready">"ready above"</option>
                    <option value="unacked">"unacked above"</option>
                    <option value="consumers">"consumers below"</option>
                </select>
            </label>
            <label>"Threshold " <input type="text" bind:value=threshold/></label>
            <label>"Send as "
                <select data-field="format" prop:value=move || format.get() on:change=move |ev| format.set(event_target_value(&ev))>
                    <option value="json">"Redrive JSON (webhook)"</option>
                    <option value="slack">"Slack (incoming webhook)"</option>
                    <option value="teams">"Microsoft Teams (webhook card)"</option>
                    <option value="alertmanager">"Alertmanager (webhook receiver payload)"</option>
                    <option value="email">"E-mail"</option>
                </select>
            </label>
            <label>{move || if format.get() == "email" { "E-mail addresses (comma-separated) " } else { "Webhook URL " }}
                <input type="text" data-field="to" bind:value=url required
                    placeholder=move || if format.get() == "email" { "oncall@example.com" } else { "https://hooks.example.com/redrive" }/>
            </label>
            <button class="btn btn-primary" type="submit">"Add rule"</button>
            </fieldset>
        </form>
        {move || form_error.get().map(|e| view! { <ErrorBox message=e/> })}
        {move || create.value().get().and_then(Result::err).map(|e| view! { <ApiErrorBox error=e.clone()/> })}
        <h2>"Deliveries"</h2>
        <ListView resource=deliveries empty="Nothing sent yet." render={|list: Vec<AlertDelivery>| view! {
            <table class="grid">
                <thead><tr><th>"When"</th><th>"Rule"</th><th>"Event"</th><th>"Key"</th><th class="num">"Attempts"</th><th>"State"</th></tr></thead>
                <tbody>
                    {list.into_iter().map(|d| {
                        let state = match (d.delivered_at, d.next_attempt_at) {
                            (Some(at), _) => format!("delivered {}", ms_time(at)),
                            (None, Some(at)) => format!("retrying at {}", ms_time(at)),
                            (None, None) => "given up".to_owned(),
                        };
                        view! {
                            <tr>
                                <td class="nowrap">{ms_time(d.created_at)}</td>
                                <td class="num">{d.rule_id}</td>
                                <td>{d.event.as_str()}</td>
                                <td>{non_empty(d.key)}</td>
                                <td class="num">{d.attempts}</td>
                                <td>{state}{d.last_error.map(|e| view! { <span class="muted">" — "{e}</span> })}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        }}/>
    }
}
