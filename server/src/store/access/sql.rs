//! SQL for `store::access`, compiled once per backend (see `store`).

use crate::store::backend::SqlBackend;
use super::{select::FilterSql, Db, Engine};
use crate::store::*;
use crate::store::Scope;
use crate::store::{Filter, StoreError};
use async_trait::async_trait;
use sqlx::QueryBuilder;

#[async_trait]
impl VhostAccess for Engine {
    async fn scopes(&self, filter: &Filter) -> Result<Vec<Scope>, StoreError> {
        let mut b = QueryBuilder::<Db>::new(
            "SELECT DISTINCT vhost, queue, original_exchange AS exchange FROM messages",
        );
        filter.push_where(&mut b);
        Ok(b.build_query_as().fetch_all(self.pool()).await?)
    }

    async fn job_vhosts(&self, job_id: i64) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT vhost FROM job_vhosts WHERE job_id = $1")
                .bind(job_id)
                .fetch_all(self.pool())
                .await?,
        )
    }

    async fn group_vhosts(&self, group_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT vhost FROM messages WHERE group_id = $1")
                .bind(group_id)
                .fetch_all(self.pool())
                .await?,
        )
    }

    async fn finding_vhost(&self, id: i64) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT vhost FROM findings WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }
}
