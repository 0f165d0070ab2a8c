//! Failure groups: aggregated from the messages table, never stored apart,
//! so counts cannot drift from the messages they count. Compiled once per
//! backend (see `store`).

use crate::store::backend::SqlBackend;
use super::{Db, Engine};
use crate::domain::fingerprint::{exception_type_from_trace, fingerprint, FailureFacts};
use crate::store::*;
use crate::store::rows::GroupRow;
use crate::store::{now_ms, StoreError};
use app::model::{GroupQuery, GroupSummary};
use async_trait::async_trait;
use serde_json::Value;
use sqlx::QueryBuilder;
use std::collections::HashMap;

const HOUR_MS: i64 = 3_600_000;
const MAX_GROUPS: i64 = 500;

/// ` AND …` for the group query's status, vhost and queue, and the
/// caller's visible vhosts: the columns `messages` and `message_counts` share.
fn push_group_filter(
    b: &mut QueryBuilder<'_, Db>,
    q: &GroupQuery,
    status: Option<app::model::MessageStatus>,
    visible: Option<&[String]>,
) {
    if let Some(s) = status {
        b.push(" AND status = ").push_bind(s.as_str());
    }
    for (column, value) in [("vhost", &q.vhost), ("queue", &q.queue)] {
        if let Some(v) = value.as_deref().filter(|s| !s.is_empty()) {
            b.push(format_args!(" AND {column} = ")).push_bind(v.to_owned());
        }
    }
    if let Some(vhosts) = visible {
        super::select::push_vhosts(b, vhosts);
    }
}

impl Engine {
    /// Every group's services under the same filters, by name, from the
    /// kept counts (no scan of the messages).
    async fn group_services(
        &self,
        q: &GroupQuery,
        status: Option<app::model::MessageStatus>,
        visible: Option<&[String]>,
    ) -> Result<HashMap<String, Vec<String>>, StoreError> {
        let mut b = QueryBuilder::<Db>::new(
            "SELECT group_id, service FROM message_counts
             WHERE group_id <> '' AND service <> '' AND messages > 0",
        );
        push_group_filter(&mut b, q, status, visible);
        b.push(" GROUP BY group_id, service ORDER BY group_id, service");
        let pairs: Vec<(String, String)> = b.build_query_as().fetch_all(self.pool()).await?;
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for (group, service) in pairs {
            out.entry(group).or_default().push(service);
        }
        Ok(out)
    }
}

#[async_trait]
impl GroupStore for Engine {
    async fn groups_within(
        &self,
        q: &GroupQuery,
        visible: Option<&[String]>,
    ) -> Result<Vec<GroupSummary>, StoreError> {
        let status = crate::store::filter::status(q.status.as_deref())?;
        let mut b = QueryBuilder::<Db>::new(
            "SELECT group_id AS id, MAX(service) AS service, MAX(group_title) AS title,
                MAX(exception_type) AS exception_type, COUNT(*) AS count,
                CAST(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS BIGINT) AS failed,
                CAST(SUM(CASE WHEN status = 'replayed' THEN 1 ELSE 0 END) AS BIGINT) AS replayed,
                CAST(SUM(CASE WHEN status = 'discarded' THEN 1 ELSE 0 END) AS BIGINT) AS discarded,
                CAST(SUM(CASE WHEN replay_id IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS came_back,
                MIN(received_at) AS first_seen,
                MAX(received_at) AS last_seen, MIN(id) AS example_id
             FROM messages WHERE group_id IS NOT NULL",
        );
        push_group_filter(&mut b, q, status, visible);
        b.push(" GROUP BY group_id ORDER BY last_seen DESC LIMIT ")
            .push_bind(MAX_GROUPS);
        let rows: Vec<GroupRow> = b
            .build_query_as()
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::from)?;

        let since = now_ms() - 24 * HOUR_MS;
        let mut b = QueryBuilder::<Db>::new("SELECT group_id, (received_at - ");
        b.push_bind(since)
            .push(") / ")
            .push_bind(HOUR_MS)
            .push(" AS bucket, COUNT(*) FROM messages WHERE group_id IS NOT NULL AND received_at >= ")
            .push_bind(since);
        if let Some(vhosts) = visible {
            super::select::push_vhosts(&mut b, vhosts);
        }
        b.push(" GROUP BY group_id, bucket");
        let buckets: Vec<(String, i64, i64)> = b
            .build_query_as()
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::from)?;
        let mut arrivals: HashMap<String, Vec<i64>> = HashMap::new();
        for (group, bucket, n) in buckets {
            if let Ok(i @ 0..24) = usize::try_from(bucket) {
                arrivals.entry(group).or_insert_with(|| vec![0; 24])[i] += n;
            }
        }
        let mut tags = self.group_tags().await?;
        let mut services = self.group_services(q, status, visible).await?;
        let mut claims = self.group_claims(now_ms()).await?;
        let owner = q.owner.as_deref().filter(|o| !o.is_empty());
        Ok(rows
            .into_iter()
            .map(|r| {
                let (owner, hold) = claims.remove(&r.id).unwrap_or_default();
                let a = arrivals.remove(&r.id).unwrap_or_else(|| vec![0; 24]);
                let t = tags.remove(&r.id).unwrap_or_default();
                let s = services.remove(&r.id).unwrap_or_default();
                let mut g = r.into_summary(a);
                g.tags = t;
                if !s.is_empty() {
                    g.service = s.first().cloned();
                    g.services = s;
                }
                g.owner = owner;
                g.hold = hold;
                g
            })
            // The default list is what needs someone: held groups wait
            // apart. An owner's list is all of theirs, held or not.
            .filter(|g| match q.held {
                Some(held) => g.hold.is_some() == held,
                None => owner.is_some() || g.hold.is_none(),
            })
            .filter(|g| owner.is_none() || g.owner.as_deref() == owner)
            .collect())
    }

    async fn backfill_groups(&self) -> Result<u64, StoreError> {
        type Row = (
            i64,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
        );
        let mut done = 0;
        loop {
            let rows: Vec<Row> = sqlx::query_as(concat!(
                "SELECT id, queue, reason, ",
                crate::store::contents::stored_trace!(),
                " AS stack_trace, original_exchange, original_routing_key, headers
                 FROM messages JOIN message_contents ON message_contents.message_id = messages.id
                 WHERE group_id IS NULL LIMIT 500"
            ))
            .fetch_all(self.pool())
            .await?;
            if rows.is_empty() {
                return Ok(done);
            }
            let mut tx = self.write_tx().await?;
            for (id, queue, reason, trace, exchange, key, headers) in rows {
                let headers: Value = serde_json::from_str(&headers).unwrap_or_default();
                let typed = |name: &str| headers[name]["value"].as_str().map(str::to_owned);
                let exception_type = typed("MT-Fault-ExceptionType")
                    .or_else(|| typed("NServiceBus.ExceptionInfo.ExceptionType"))
                    .or_else(|| trace.as_deref().and_then(exception_type_from_trace));
                let group = fingerprint(&FailureFacts {
                    queue: &queue,
                    reason: reason.as_deref(),
                    stack_trace: trace.as_deref(),
                    exception_type: exception_type.as_deref(),
                    original_exchange: exchange.as_deref(),
                    original_routing_key: key.as_deref(),
                });
                sqlx::query(
                    "UPDATE messages SET exception_type = $1, group_id = $2, group_title = $3 WHERE id = $4",
                )
                .bind(&exception_type)
                .bind(&group.id)
                .bind(&group.title)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                done += 1;
            }
            tx.commit().await?;
        }
    }
}
