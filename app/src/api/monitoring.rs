//! Server functions of the monitoring pages: queues, overview, history,
//! policies, advisor and alerts.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

#[cfg(feature = "ssr")]
use super::{backend, fail};
use crate::model::{
    AdvisorReport, AlertDelivery, AlertRule, AlertRuleRequest, Overview, Policy, PolicyPreview,
    PolicyRequest, QueueHistory, QueuesView, ServiceHistory,
};

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn list_queues() -> Result<QueuesView, ServerFnError> {
    backend()?.queues().await.map_err(fail)
}

/// Capture switch for one queue: `Some(true)` on, `Some(false)` off, `None` back to the rules.
#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn set_watch(vhost: String, queue: String, watch: Option<bool>) -> Result<(), ServerFnError> {
    backend()?
        .set_watch(&vhost, &queue, crate::model::WatchSwitch { watch })
        .await
        .map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn get_overview() -> Result<Overview, ServerFnError> {
    backend()?.overview().await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn get_queue_history(
    vhost: String,
    queue: String,
    window: String,
) -> Result<QueueHistory, ServerFnError> {
    backend()?
        .queue_history(&vhost, &queue, &window)
        .await
        .map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn get_service_history(service: String, window: String) -> Result<ServiceHistory, ServerFnError> {
    backend()?.service_history(&service, &window).await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn list_vhosts() -> Result<Vec<String>, ServerFnError> {
    backend()?.vhosts().await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn list_policies() -> Result<Vec<Policy>, ServerFnError> {
    backend()?.policies(None).await.map_err(fail)
}

/// JSON in: the definition is a nested object.
#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn save_policy(
    vhost: String,
    name: String,
    policy: PolicyRequest,
) -> Result<Policy, ServerFnError> {
    backend()?.put_policy(&vhost, &name, policy).await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn delete_policy(vhost: String, name: String) -> Result<(), ServerFnError> {
    backend()?.delete_policy(&vhost, &name).await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn preview_policy(
    vhost: String,
    name: String,
    policy: PolicyRequest,
) -> Result<PolicyPreview, ServerFnError> {
    backend()?
        .preview_policy(&vhost, &name, policy)
        .await
        .map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn get_advisor() -> Result<AdvisorReport, ServerFnError> {
    backend()?.advisor().await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn apply_fix(finding_id: i64) -> Result<(), ServerFnError> {
    backend()?.apply_fix(finding_id).await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn list_alert_rules() -> Result<Vec<AlertRule>, ServerFnError> {
    backend()?.alert_rules().await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn create_alert_rule(rule: AlertRuleRequest) -> Result<AlertRule, ServerFnError> {
    backend()?.create_alert_rule(rule).await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn delete_alert_rule(id: i64) -> Result<(), ServerFnError> {
    backend()?.delete_alert_rule(id).await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn test_alert_rule(id: i64) -> Result<(), ServerFnError> {
    backend()?.test_alert_rule(id).await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn list_alert_deliveries() -> Result<Vec<AlertDelivery>, ServerFnError> {
    backend()?.alert_deliveries(None).await.map_err(fail)
}
