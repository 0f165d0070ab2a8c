//! Server functions of the monitoring pages: queues, overview, history,
//! policies, advisor and alerts.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

#[cfg(feature = "ssr")]
use super::backend;
use crate::model::{
    AdvisorReport, AlertDelivery, AlertRule, AlertRuleRequest, ApiError, Overview, Policy, PolicyPreview,
    PolicyRequest, QueueHistory, QueuesView, ServiceHistory,
};

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn list_queues() -> Result<QueuesView, ApiError> {
    backend()?.queues().await
}

/// Capture switch for one queue: `Some(true)` on, `Some(false)` off, `None`
/// back to the rules; `mode`, when given, how it is captured.
#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn set_watch(
    vhost: String,
    queue: String,
    watch: Option<bool>,
    #[server(default)] mode: Option<crate::model::CaptureMode>,
) -> Result<(), ApiError> {
    backend()?
        .set_watch(&vhost, &queue, crate::model::WatchSwitch { watch, mode })
        .await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn get_overview() -> Result<Overview, ApiError> {
    backend()?.overview().await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn get_queue_history(
    vhost: String,
    queue: String,
    window: String,
) -> Result<QueueHistory, ApiError> {
    backend()?.queue_history(&vhost, &queue, &window).await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn get_service_history(service: String, window: String) -> Result<ServiceHistory, ApiError> {
    backend()?.service_history(&service, &window).await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn list_vhosts() -> Result<Vec<String>, ApiError> {
    backend()?.vhosts().await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn list_policies() -> Result<Vec<Policy>, ApiError> {
    backend()?.policies(None).await
}

/// JSON in: the definition is a nested object.
#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn save_policy(vhost: String, name: String, policy: PolicyRequest) -> Result<Policy, ApiError> {
    backend()?.put_policy(&vhost, &name, policy).await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn delete_policy(vhost: String, name: String) -> Result<(), ApiError> {
    backend()?.delete_policy(&vhost, &name).await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn preview_policy(
    vhost: String,
    name: String,
    policy: PolicyRequest,
) -> Result<PolicyPreview, ApiError> {
    backend()?.preview_policy(&vhost, &name, policy).await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn get_advisor() -> Result<AdvisorReport, ApiError> {
    backend()?.advisor().await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn apply_fix(finding_id: i64) -> Result<(), ApiError> {
    backend()?.apply_fix(finding_id).await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn list_alert_rules() -> Result<Vec<AlertRule>, ApiError> {
    backend()?.alert_rules().await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn create_alert_rule(rule: AlertRuleRequest) -> Result<AlertRule, ApiError> {
    backend()?.create_alert_rule(rule).await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn delete_alert_rule(id: i64) -> Result<(), ApiError> {
    backend()?.delete_alert_rule(id).await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn test_alert_rule(id: i64) -> Result<(), ApiError> {
    backend()?.test_alert_rule(id).await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn list_alert_deliveries() -> Result<Vec<AlertDelivery>, ApiError> {
    backend()?.alert_deliveries(None).await
}
