//! The [`Backend`] the UI and the REST API call, for one user: each method
//! checks what the broker would let the user do, then delegates to
//! [`Redrive`] and audits what was attempted.

use app::backend::Backend;
use app::model::{
    AdvisorReport, AlertCondition, AlertDelivery, AlertRule, AlertRuleRequest, AnnotationChange,
    AnnotationTarget, Annotations, ApiError, AuditAction, AuditPage, AuditQuery, GroupClaim, GroupQuery,
    GroupSummary, HoldRequest, Job, JobCommand, JobCreated, JobItem, JobRequest, Me, MessageClaim,
    MessageDetail, MessagePage, MessageQuery, MessageSummary, Overview, OwnerRequest, Policy, PolicyPreview,
    PolicyRequest, QueueHistory, QueuesView, ReplayTarget, ServiceHistory, VhostAccess, WatchSwitch,
    MESSAGE_ID_MATCHES, MESSAGE_ID_MAX_BYTES,
};

use super::{forbidden, Target, UserBackend};
use crate::domain::access::{Access, Denied};
use crate::domain::Principal;

impl UserBackend {
    /// A queue or new-group rule shows queues and failures of its vhost (of
    /// every vhost when none is named: administrators only); inflow and
    /// finding rules show counts.
    fn rule_visible(&self, condition: &AlertCondition) -> bool {
        match condition {
            AlertCondition::Queue { vhost: Some(v), .. }
            | AlertCondition::NewGroup { vhost: Some(v), .. } => self.who().can_see(v),
            AlertCondition::Queue { vhost: None, .. } | AlertCondition::NewGroup { vhost: None, .. } => {
                self.who().is_admin()
            }
            AlertCondition::ErrorInflow { .. } | AlertCondition::Finding { .. } => true,
        }
    }

    async fn visible_rule(&self, id: i64) -> Result<(), ApiError> {
        let rules = self.redrive.alert_rules().await?;
        match rules.iter().find(|r| r.id == id) {
            Some(r) if self.rule_visible(&r.condition) => Ok(()),
            _ => Err(ApiError::NotFound(format!("alert rule {id} not found"))),
        }
    }
}

#[async_trait::async_trait]
impl Backend for UserBackend {
    async fn me(&self) -> Result<Me, ApiError> {
        let p = self.who();
        Ok(Me {
            user: p.user.clone(),
            tags: p.tags.iter().map(|t| t.as_str().to_owned()).collect(),
            vhosts: p
                .vhosts
                .iter()
                .map(|(vhost, perms)| VhostAccess {
                    vhost: vhost.clone(),
                    configure: perms.configure.as_str().to_owned(),
                    write: perms.write.as_str().to_owned(),
                    read: perms.read.as_str().to_owned(),
                })
                .collect(),
            can_edit_policies: !self.redrive.config.web.read_only && p.require_policymaker().is_ok(),
            can_edit_alerts: !self.redrive.config.web.read_only && p.require_management().is_ok(),
            can_audit_all: p.is_admin(),
            read_only: self.writer().is_err(),
        })
    }

    async fn list_messages(&self, query: MessageQuery) -> Result<MessagePage, ApiError> {
        if let Some(v) = query.vhost.as_deref().filter(|v| !v.is_empty()) {
            self.visible(v, format!("vhost `{v}`"))?;
        }
        let mut page = self
            .redrive
            .store
            .list_within(&query, Some(&self.vhosts()))
            .await?;
        self.shown_summaries(&mut page.items);
        Ok(page)
    }

    async fn message(&self, id: i64) -> Result<MessageDetail, ApiError> {
        self.locate(id).await?;
        let detail = self.redrive.message(id).await?;
        Ok(self.shown_detail(detail).await)
    }

    async fn with_message_id(&self, message_id: String) -> Result<Vec<MessageSummary>, ApiError> {
        if message_id.is_empty() || message_id.len() > MESSAGE_ID_MAX_BYTES {
            return Err(ApiError::BadRequest(format!(
                "a message id is 1 to {MESSAGE_ID_MAX_BYTES} bytes (an AMQP short string)"
            )));
        }
        let visible = self.vhosts();
        let mut found = self
            .redrive
            .store
            .with_message_id(&message_id, Some(&visible), MESSAGE_ID_MATCHES)
            .await?;
        self.shown_summaries(&mut found);
        Ok(found)
    }

    async fn replay(&self, id: i64, target: ReplayTarget) -> Result<MessageDetail, ApiError> {
        let t = self.check_replay(id, &target).await?;
        let action = if target.edit.is_some() {
            AuditAction::EditReplay
        } else {
            AuditAction::Replay
        };
        let (vhost, exchange) = (
            t.vhost.as_deref().unwrap_or_default(),
            t.exchange.as_deref().unwrap_or_default(),
        );
        let result = async {
            self.permit(|p| p.require(vhost, Access::Write, "exchange", exchange))?;
            let target = self.unmasked_edit(id, target).await?;
            self.redrive.replay(id, target, self.user()).await
        }
        .await;
        let replayed = self.audited(action, t, result).await?;
        Ok(self.shown_detail(replayed).await)
    }

    async fn discard(&self, id: i64) -> Result<MessageDetail, ApiError> {
        let (vhost, queue) = self.locate(id).await?;
        let result = async {
            self.permit(|p| p.require(&vhost, Access::Write, "queue", &queue))?;
            self.redrive.discard(id, self.user()).await
        }
        .await;
        let discarded = self
            .audited(AuditAction::Discard, Target::message(&vhost, id), result)
            .await?;
        Ok(self.shown_detail(discarded).await)
    }

    async fn restore(&self, id: i64) -> Result<MessageDetail, ApiError> {
        let (vhost, queue) = self.locate(id).await?;
        let result = async {
            self.permit(|p| p.require(&vhost, Access::Write, "queue", &queue))?;
            self.redrive.restore(id, self.user()).await
        }
        .await;
        let restored = self
            .audited(AuditAction::Restore, Target::message(&vhost, id), result)
            .await?;
        Ok(self.shown_detail(restored).await)
    }

    async fn set_group_owner(&self, id: String, request: OwnerRequest) -> Result<GroupClaim, ApiError> {
        UserBackend::set_group_owner(self, id, request).await
    }

    async fn hold_group(&self, id: String, request: HoldRequest) -> Result<GroupClaim, ApiError> {
        UserBackend::hold_group(self, id, request).await
    }

    async fn release_group(&self, id: String) -> Result<GroupClaim, ApiError> {
        UserBackend::release_group(self, id).await
    }

    async fn set_message_owner(&self, id: i64, request: OwnerRequest) -> Result<MessageClaim, ApiError> {
        UserBackend::set_message_owner(self, id, request).await
    }

    async fn hold_message(&self, id: i64, request: HoldRequest) -> Result<MessageClaim, ApiError> {
        UserBackend::hold_message(self, id, request).await
    }

    async fn release_message(&self, id: i64) -> Result<MessageClaim, ApiError> {
        UserBackend::release_message(self, id).await
    }

    async fn groups(&self, mut query: GroupQuery) -> Result<Vec<GroupSummary>, ApiError> {
        if query.owner.as_deref() == Some("me") {
            query.owner = Some(self.user().to_owned());
        }
        if let Some(v) = query.vhost.as_deref().filter(|v| !v.is_empty()) {
            self.visible(v, format!("vhost `{v}`"))?;
        }
        let mut groups = self
            .redrive
            .store
            .groups_within(&query, Some(&self.vhosts()))
            .await?;
        self.shown_groups(&mut groups);
        Ok(groups)
    }

    async fn create_job(&self, request: JobRequest) -> Result<JobCreated, ApiError> {
        let dry_run = request.dry_run;
        let target = Target {
            exchange: request.exchange.clone(),
            routing_key: request.routing_key.clone(),
            object: Some(format!("{} job", request.action.as_str())),
            ..Target::default()
        };
        let result = match self.check_job(&request).await {
            Ok(filter) => self.redrive.create_job_over(request, self.user(), filter).await,
            Err(e) => Err(e),
        };
        if dry_run && !matches!(result, Err(ApiError::Forbidden(_))) {
            return result;
        }
        let target = match &result {
            Ok(JobCreated::Job(job)) => Target {
                object: Some(format!("job {}", job.id)),
                ..target
            },
            _ => target,
        };
        self.audited(AuditAction::JobStart, target, result).await
    }

    async fn job(&self, id: i64) -> Result<Job, ApiError> {
        self.visible_job(id).await
    }

    async fn job_problems(&self, id: i64) -> Result<Vec<JobItem>, ApiError> {
        self.visible_job(id).await?;
        self.redrive.job_problems(id).await
    }

    async fn jobs(&self) -> Result<Vec<Job>, ApiError> {
        let mut visible = Vec::new();
        for job in self.redrive.jobs().await? {
            if self.job_visible(&job).await? {
                visible.push(job);
            }
        }
        Ok(visible)
    }

    async fn control_job(&self, id: i64, command: JobCommand) -> Result<Job, ApiError> {
        self.visible_job(id).await?;
        let action = match command {
            JobCommand::Start => AuditAction::JobStartNow,
            JobCommand::Pause => AuditAction::JobPause,
            JobCommand::Resume => AuditAction::JobResume,
            JobCommand::Cancel => AuditAction::JobCancel,
            JobCommand::Approve => AuditAction::JobApprove,
            JobCommand::Refuse => AuditAction::JobRefuse,
        };
        let result = async {
            self.writer()?;
            self.redrive.control_job(id, command, self.who()).await
        }
        .await;
        self.audited(action, Target::object(None, format!("job {id}")), result)
            .await
    }

    async fn annotations(&self, target: AnnotationTarget) -> Result<Annotations, ApiError> {
        self.check_annotation(&target).await?;
        self.redrive.annotations(target).await
    }

    async fn annotate(
        &self,
        target: AnnotationTarget,
        change: AnnotationChange,
    ) -> Result<Annotations, ApiError> {
        self.check_annotation(&target).await?;
        let object = Target::object(None, format!("{target:?}"));
        let result = async {
            self.writer()?;
            self.redrive.annotate(target, change, self.user()).await
        }
        .await;
        self.audited(AuditAction::Annotate, object, result).await
    }

    async fn queues(&self) -> Result<QueuesView, ApiError> {
        let mut view = self.redrive.queues_view().await?;
        view.queues.retain(|q| self.who().can_see(&q.vhost));
        Ok(view)
    }

    async fn set_watch(&self, vhost: &str, queue: &str, switch: WatchSwitch) -> Result<(), ApiError> {
        self.visible(vhost, format!("queue `{queue}`"))?;
        let result = async {
            self.permit(Principal::require_policymaker)?;
            self.redrive.switch_watch(vhost, queue, switch, self.user()).await
        }
        .await;
        let target = Target::object(Some(vhost), format!("queue {queue}: {switch:?}"));
        self.audited(AuditAction::WatchChange, target, result).await
    }

    async fn overview(&self) -> Result<Overview, ApiError> {
        self.redrive.overview_view(Some(&self.vhosts())).await
    }

    async fn queue_history(&self, vhost: &str, queue: &str, window: &str) -> Result<QueueHistory, ApiError> {
        self.visible(vhost, format!("queue `{queue}`"))?;
        self.redrive.queue_history_view(vhost, queue, window).await
    }

    async fn service_history(&self, service: &str, window: &str) -> Result<ServiceHistory, ApiError> {
        self.redrive
            .service_history_view(service, window, Some(&self.vhosts()))
            .await
    }

    async fn vhosts(&self) -> Result<Vec<String>, ApiError> {
        let mut all = self.redrive.vhost_list().await?;
        all.retain(|v| self.who().can_see(v));
        Ok(all)
    }

    async fn policies(&self, vhost: Option<String>) -> Result<Vec<Policy>, ApiError> {
        if let Some(v) = vhost.as_deref().filter(|v| !v.is_empty()) {
            self.visible(v, format!("vhost `{v}`"))?;
        }
        let mut all = self.redrive.policy_list(vhost).await?;
        all.retain(|p| self.who().can_see(&p.vhost));
        Ok(all)
    }

    async fn put_policy(&self, vhost: &str, name: &str, policy: PolicyRequest) -> Result<Policy, ApiError> {
        self.visible(vhost, format!("vhost `{vhost}`"))?;
        let result = async {
            self.permit(Principal::require_policymaker)?;
            self.redrive.save_policy(vhost, name, policy).await
        }
        .await;
        self.audited(
            AuditAction::PolicyPut,
            Target::object(Some(vhost), format!("policy {name}")),
            result,
        )
        .await
    }

    async fn delete_policy(&self, vhost: &str, name: &str) -> Result<(), ApiError> {
        self.visible(vhost, format!("vhost `{vhost}`"))?;
        let result = async {
            self.permit(Principal::require_policymaker)?;
            self.redrive.remove_policy(vhost, name).await
        }
        .await;
        let target = Target::object(Some(vhost), format!("policy {name}"));
        self.audited(AuditAction::PolicyDelete, target, result).await
    }

    async fn preview_policy(
        &self,
        vhost: &str,
        name: &str,
        policy: PolicyRequest,
    ) -> Result<PolicyPreview, ApiError> {
        self.visible(vhost, format!("vhost `{vhost}`"))?;
        self.redrive.policy_preview(vhost, name, policy).await
    }

    async fn advisor(&self) -> Result<AdvisorReport, ApiError> {
        let mut report = self.redrive.advisor_report().await?;
        report.findings.retain(|f| self.who().can_see(&f.vhost));
        Ok(report)
    }

    async fn apply_fix(&self, finding_id: i64) -> Result<(), ApiError> {
        let vhost = self
            .redrive
            .store
            .finding_vhost(finding_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("finding {finding_id} not found")))?;
        self.visible(&vhost, format!("finding {finding_id}"))?;
        let result = async {
            self.permit(Principal::require_policymaker)?;
            self.redrive.apply_finding_fix(finding_id).await
        }
        .await;
        let target = Target::object(Some(&vhost), format!("finding {finding_id}"));
        self.audited(AuditAction::AdvisorFix, target, result).await
    }

    async fn alert_rules(&self) -> Result<Vec<AlertRule>, ApiError> {
        let mut rules = self.redrive.alert_rules().await?;
        rules.retain(|r| self.rule_visible(&r.condition));
        Ok(rules)
    }

    async fn create_alert_rule(&self, rule: AlertRuleRequest) -> Result<AlertRule, ApiError> {
        let result = async {
            self.permit(Principal::require_management)?;
            if !self.rule_visible(&rule.condition) {
                return Err(ApiError::Forbidden(
                    "a queue or new-group rule needs permissions in its vhost, and one over every vhost needs \
                     administrator"
                        .into(),
                ));
            }
            self.redrive.add_alert_rule(rule).await
        }
        .await;
        let object = result
            .as_ref()
            .map_or_else(|_| "alert rule".to_owned(), |r| format!("alert rule {}", r.id));
        self.audited(AuditAction::AlertRuleCreate, Target::object(None, object), result)
            .await
    }

    async fn delete_alert_rule(&self, id: i64) -> Result<(), ApiError> {
        self.visible_rule(id).await?;
        let result = async {
            self.permit(Principal::require_management)?;
            self.redrive.remove_alert_rule(id).await
        }
        .await;
        let target = Target::object(None, format!("alert rule {id}"));
        self.audited(AuditAction::AlertRuleDelete, target, result).await
    }

    async fn test_alert_rule(&self, id: i64) -> Result<(), ApiError> {
        self.visible_rule(id).await?;
        let result = async {
            self.permit(Principal::require_management)?;
            self.redrive.send_test_alert(id).await
        }
        .await;
        let target = Target::object(None, format!("alert rule {id}"));
        self.audited(AuditAction::AlertRuleTest, target, result).await
    }

    async fn alert_deliveries(&self, rule_id: Option<i64>) -> Result<Vec<AlertDelivery>, ApiError> {
        let visible: Vec<i64> = self.alert_rules().await?.iter().map(|r| r.id).collect();
        if let Some(id) = rule_id.filter(|id| !visible.contains(id)) {
            return Err(ApiError::NotFound(format!("alert rule {id} not found")));
        }
        let mut deliveries = self.redrive.deliveries(rule_id).await?;
        deliveries.retain(|d| visible.contains(&d.rule_id));
        Ok(deliveries)
    }

    async fn audit(&self, query: AuditQuery) -> Result<AuditPage, ApiError> {
        let mut filter = crate::store::AuditFilter::try_from(&query)?;
        if !self.who().is_admin() {
            if filter.user.as_deref().is_some_and(|u| u != self.user()) {
                return Err(forbidden(Denied::Tag("administrator")));
            }
            filter.user = Some(self.user().to_owned());
        }
        self.redrive.audit_page(&filter).await
    }
}
