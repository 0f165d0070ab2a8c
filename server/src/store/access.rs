//! What authorisation needs to know about stored things: which vhosts,
//! queues and exchanges a selection, a job, a group or a finding touches.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite};

use super::api::*;
use super::{Filter, SqliteStore, StoreError};

/// A distinct place the messages of a selection come from.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Scope {
    pub vhost: String,
    pub queue: String,
    /// The exchange a replay goes back to when none is given.
    pub exchange: Option<String>,
}

#[async_trait]
impl VhostAccess for SqliteStore {
    async fn scopes(&self, filter: &Filter) -> Result<Vec<Scope>, StoreError> {
        let mut b = QueryBuilder::<Sqlite>::new(
            "SELECT DISTINCT vhost, queue, original_exchange AS exchange FROM messages",
        );
        filter.push_where(&mut b);
        Ok(b.build_query_as().fetch_all(&self.pool).await?)
    }

    async fn job_vhosts(&self, job_id: i64) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT vhost FROM job_vhosts WHERE job_id = ?")
                .bind(job_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn group_vhosts(&self, group_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT vhost FROM messages WHERE group_id = ?")
                .bind(group_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn finding_vhost(&self, id: i64) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT vhost FROM findings WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }
}
