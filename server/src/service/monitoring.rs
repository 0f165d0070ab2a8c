//! Queue statistics, history, policies, advisor and alerts: the operations
//! behind the monitoring pages and their REST endpoints.

use std::time::Duration;

use app::model::{
    tap_queue_name, window_secs, AdvisorReport, AlertDelivery, AlertEvent, AlertRule, AlertRuleRequest,
    ApiError, CaptureMode, FixAction, Overview, Policy, PolicyPreview, PolicyRequest, QueueHistory,
    QueuesView, ServiceHistory, ServiceInflow, WatchSwitch, TAP_PREFIX, WINDOWS,
};

use super::Redrive;
use crate::broker::ManagementError;
use crate::domain::now_ms;
use crate::monitor::alerts;
use crate::monitor::snapshot::Cached;
use crate::policy;
use crate::store::SwitchDirection;

/// Pages refresh at most this often; within it they share one API call.
const MAX_AGE: Duration = Duration::from_secs(4);
/// Points a chart is drawn with, whatever its window.
const CHART_POINTS: i64 = 120;

/// Maps a management API error; `subject` names what a 404 means is
/// missing (the management API answers 404 for an unknown vhost, too).
fn broker_error(subject: String) -> impl FnOnce(ManagementError) -> ApiError {
    move |e| match e {
        ManagementError::Refused { reason } => {
            ApiError::BadRequest(format!("the broker refused it: {reason}"))
        }
        ManagementError::Status { status: 404, .. } => {
            ApiError::NotFound(format!("{subject} does not exist on the broker"))
        }
        other => super::unavailable(other),
    }
}

fn bucket_ms(window: &str, sample_interval: Duration) -> Result<(i64, i64), ApiError> {
    let secs = window_secs(window).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown window `{window}` (one of {})",
            WINDOWS.join(", ")
        ))
    })?;
    let bucket = (secs / CHART_POINTS).max(sample_interval.as_secs() as i64).max(1);
    Ok((secs * 1000, bucket * 1000))
}

impl Redrive {
    /// Broker data for a page: fresh if possible, else the last known with
    /// its error; `Unavailable` only if there has never been any.
    async fn broker_data(
        &self,
    ) -> Result<(Cached, std::sync::Arc<crate::monitor::snapshot::Snapshot>), ApiError> {
        let cached = self.monitor.current(MAX_AGE).await;
        match cached.snapshot.clone() {
            Some(s) => Ok((cached, s)),
            None => Err(ApiError::Unavailable(
                cached.error.unwrap_or_else(|| "no broker data yet".into()),
            )),
        }
    }

    pub(super) async fn queues_view(&self) -> Result<QueuesView, ApiError> {
        let (cached, snapshot) = self.broker_data().await?;
        let mut queues = snapshot.queue_infos(&self.capture);
        queues.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
        if queues.iter().any(|q| q.tap.is_some()) {
            let held = self.store.unhandled_counts().await?;
            let switching = self.store.capture_switches().await?;
            for q in &mut queues {
                if let Some(tap) = q.tap.as_mut() {
                    let key = (q.vhost.clone(), q.name.clone());
                    tap.held_by_redrive = held.get(&key).map_or(0, |(all, _)| *all);
                    tap.note = switching
                        .iter()
                        .any(|s| {
                            s.vhost == q.vhost && s.name == q.name && s.direction == SwitchDirection::ToTap
                        })
                        .then(|| {
                            "Switching from consume: Redrive cuts the queue and its tap at one marker.".into()
                        });
                }
            }
        }
        Ok(QueuesView {
            queues,
            freshness: cached.freshness(),
        })
    }

    /// Persists an operator's capture switch and drops the cached broker
    /// view, so the Queues page shows the new verdict at once.
    pub(super) async fn switch_watch(
        &self,
        vhost: &str,
        queue: &str,
        switch: WatchSwitch,
        actor: &str,
    ) -> Result<(), ApiError> {
        for (what, v) in [("vhost", vhost), ("queue", queue)] {
            if v.is_empty() || v.len() > 255 {
                return Err(ApiError::BadRequest(format!(
                    "{what} name must be 1 to 255 bytes"
                )));
            }
        }
        if switch.watch == Some(true) && self.is_stream(vhost, queue).await {
            return Err(ApiError::BadRequest(format!(
                "{queue} is a stream: Redrive lists streams but does not consume them \
                 (a stream keeps every message for all its readers)"
            )));
        }
        if let Some(tapped) = queue.strip_prefix(TAP_PREFIX) {
            return Err(ApiError::BadRequest(format!(
                "{queue} is Redrive's tap of {tapped}: switch {tapped} instead"
            )));
        }
        if switch.mode == Some(CaptureMode::Tap) && tap_queue_name(queue).is_none() {
            return Err(ApiError::BadRequest(format!(
                "{queue} cannot be tapped: its tap's name, {TAP_PREFIX}{queue}, would be longer than 255 bytes"
            )));
        }
        if let Some(mode) = switch.mode {
            let switch = self
                .store
                .set_capture_mode(vhost, queue, mode, self.config.capture.capture_mode, actor)
                .await?;
            if let Some(direction) = switch {
                tracing::info!(%vhost, %queue, direction = direction.as_str(), %actor, "capture mode switch recorded");
            }
        }
        self.store
            .set_watch_override(vhost, queue, switch.watch, actor)
            .await?;
        tracing::info!(%vhost, %queue, watch = ?switch.watch, mode = ?switch.mode, %actor, "capture switch changed");
        self.monitor.invalidate();
        Ok(())
    }

    /// Whether the broker data at hand says `queue` is a stream. Without
    /// data the switch is stored: classification refuses streams anyway.
    async fn is_stream(&self, vhost: &str, queue: &str) -> bool {
        let cached = self.monitor.current(MAX_AGE).await;
        cached
            .snapshot
            .as_ref()
            .and_then(|s| s.vhost(vhost))
            .and_then(|v| v.queues.iter().find(|q| q.name == queue))
            .is_some_and(|q| q.is_stream())
    }

    /// The overview, its lists limited to `visible` vhosts (all when `None`).
    pub(super) async fn overview_view(&self, visible: Option<&[String]>) -> Result<Overview, ApiError> {
        let (cached, snapshot) = self.broker_data().await?;
        let mut deepest = snapshot.queue_infos(&self.capture);
        if let Some(vhosts) = visible {
            deepest.retain(|q| vhosts.contains(&q.vhost));
        }
        deepest.sort_by(|a, b| b.messages.cmp(&a.messages).then_with(|| a.name.cmp(&b.name)));
        deepest.truncate(10);
        let inflow = self
            .store
            .inflow_by_service(now_ms() - 3_600_000, visible)
            .await?;
        let (stored, waiting) = self.store.stored_counts(visible).await?;
        Ok(Overview {
            stored,
            waiting,
            held_groups: self.store.held_groups(now_ms(), visible).await?,
            held_messages: self.store.held_messages(now_ms(), visible).await?,
            rabbitmq_version: snapshot.overview.rabbitmq_version.clone(),
            cluster_name: snapshot.overview.cluster_name.clone(),
            nodes: snapshot.node_infos(),
            totals: snapshot.totals(),
            deepest,
            error_inflow: inflow
                .into_iter()
                .map(|(service, last_hour)| ServiceInflow { service, last_hour })
                .collect(),
            findings: self.store.open_finding_counts().await?,
            freshness: cached.freshness(),
        })
    }

    pub(super) async fn queue_history_view(
        &self,
        vhost: &str,
        queue: &str,
        window: &str,
    ) -> Result<QueueHistory, ApiError> {
        let (span, bucket) = bucket_ms(window, self.config.monitor.sample_interval)?;
        let until = now_ms();
        let points = self
            .store
            .queue_history(vhost, queue, until - span, bucket)
            .await?;
        Ok(QueueHistory {
            vhost: vhost.to_owned(),
            queue: queue.to_owned(),
            window: window.to_owned(),
            bucket_secs: bucket / 1000,
            until,
            points,
        })
    }

    pub(super) async fn service_history_view(
        &self,
        service: &str,
        window: &str,
        visible: Option<&[String]>,
    ) -> Result<ServiceHistory, ApiError> {
        // Inflow is counted from stored messages, not samples: a minute is fine-grained enough.
        let (span, bucket) = bucket_ms(window, Duration::from_secs(60))?;
        // `*` is every service: no service can be named that in a URL path segment we generate.
        let filter = (service != "*").then_some(service);
        let until = now_ms();
        let points = self
            .store
            .service_inflow(filter, until - span, bucket, visible)
            .await?;
        Ok(ServiceHistory {
            service: service.to_owned(),
            window: window.to_owned(),
            bucket_secs: bucket / 1000,
            until,
            points,
        })
    }

    pub(super) async fn vhost_list(&self) -> Result<Vec<String>, ApiError> {
        let (_, snapshot) = self.broker_data().await?;
        Ok(snapshot.vhosts.iter().map(|v| v.name.clone()).collect())
    }

    pub(super) async fn policy_list(&self, vhost: Option<String>) -> Result<Vec<Policy>, ApiError> {
        let vhosts = match vhost {
            Some(v) => vec![v],
            None => self.vhost_list().await?,
        };
        let mut all = Vec::new();
        for v in vhosts {
            all.extend(
                self.management
                    .policies(&v)
                    .await
                    .map_err(broker_error(format!("vhost `{v}`")))?,
            );
        }
        all.sort_by(|a, b| (&a.vhost, -a.priority, &a.name).cmp(&(&b.vhost, -b.priority, &b.name)));
        Ok(all)
    }

    pub(super) async fn save_policy(
        &self,
        vhost: &str,
        name: &str,
        request: PolicyRequest,
    ) -> Result<Policy, ApiError> {
        policy::validate(name, &request)?;
        self.management
            .put_policy(vhost, name, &request)
            .await
            .map_err(broker_error(format!("vhost `{vhost}`")))?;
        tracing::info!(vhost, name, pattern = %request.pattern, "policy saved");
        Ok(Policy {
            vhost: vhost.to_owned(),
            name: name.to_owned(),
            pattern: request.pattern,
            apply_to: request.apply_to,
            priority: request.priority,
            definition: request.definition,
        })
    }

    pub(super) async fn remove_policy(&self, vhost: &str, name: &str) -> Result<(), ApiError> {
        self.management
            .delete_policy(vhost, name)
            .await
            .map_err(broker_error(format!("policy `{name}` in vhost `{vhost}`")))?;
        tracing::info!(vhost, name, "policy deleted");
        Ok(())
    }

    pub(super) async fn policy_preview(
        &self,
        vhost: &str,
        name: &str,
        request: PolicyRequest,
    ) -> Result<PolicyPreview, ApiError> {
        policy::validate(name, &request)?;
        // Live, not cached: the preview must show the queues as they are now.
        let (queues, existing) =
            tokio::try_join!(self.management.queues(vhost), self.management.policies(vhost))
                .map_err(broker_error(format!("vhost `{vhost}`")))?;
        let lazy_matters = match self.monitor.cached().snapshot {
            Some(s) => s.lazy_mode_matters(),
            None => true,
        };
        policy::preview(name, &request, &existing, &queues, lazy_matters)
    }

    pub(super) async fn advisor_report(&self) -> Result<AdvisorReport, ApiError> {
        let findings = self.store.findings(now_ms() - 86_400_000).await?;
        Ok(AdvisorReport {
            findings,
            freshness: self.monitor.cached().freshness(),
        })
    }

    pub(super) async fn apply_finding_fix(&self, finding_id: i64) -> Result<(), ApiError> {
        let finding = self
            .store
            .findings(0)
            .await?
            .into_iter()
            .find(|f| f.id == finding_id)
            .ok_or_else(|| ApiError::NotFound(format!("finding {finding_id} not found")))?;
        match finding.action {
            Some(FixAction::Policy { vhost, name, policy }) => {
                self.save_policy(&vhost, &name, policy).await.map(|_| ())
            }
            Some(FixAction::Binding {
                vhost,
                exchange,
                queue,
                routing_key,
            }) => {
                self.management
                    .bind_queue(&vhost, &exchange, &queue, &routing_key)
                    .await
                    .map_err(broker_error(format!(
                        "exchange `{exchange}` or queue `{queue}` in vhost `{vhost}`"
                    )))?;
                tracing::info!(vhost, exchange, queue, routing_key, "binding added from advisor");
                Ok(())
            }
            None => Err(ApiError::BadRequest(format!(
                "finding {finding_id} has no one-click fix: {}",
                finding.fix
            ))),
        }
    }

    pub(super) async fn add_alert_rule(&self, rule: AlertRuleRequest) -> Result<AlertRule, ApiError> {
        super::alert_rules::validate(&rule, self.config.notify.smtp_url.is_some())?;
        let id = self.store.create_alert_rule(&rule, now_ms()).await?;
        self.alert_rule(id).await
    }

    async fn alert_rule(&self, id: i64) -> Result<AlertRule, ApiError> {
        let mut rule = self
            .store
            .alert_rule(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("alert rule {id} not found")))?;
        rule.webhook_url = crate::config::mask_webhook(&rule.webhook_url);
        Ok(rule)
    }

    pub(super) async fn remove_alert_rule(&self, id: i64) -> Result<(), ApiError> {
        if self.store.delete_alert_rule(id).await? {
            Ok(())
        } else {
            Err(ApiError::NotFound(format!("alert rule {id} not found")))
        }
    }

    pub(super) async fn send_test_alert(&self, id: i64) -> Result<(), ApiError> {
        let rule = self.alert_rule(id).await?;
        let now = now_ms();
        let body = alerts::payload(
            &rule,
            AlertEvent::Test,
            "test",
            None,
            "Test notification from Redrive",
            now,
        );
        Ok(self.store.queue_test_delivery(id, &body, now).await?)
    }

    pub(super) async fn deliveries(&self, rule_id: Option<i64>) -> Result<Vec<AlertDelivery>, ApiError> {
        if let Some(id) = rule_id {
            self.alert_rule(id).await?;
        }
        Ok(self.store.alert_deliveries(rule_id, 100).await?)
    }
}
