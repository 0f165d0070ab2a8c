//! SQL for `store::sessions`, compiled once per backend (see `store`).

use crate::store::backend::SqlBackend;
use super::Engine;
use crate::store::*;
use crate::store::sessions::*;
use crate::store::{now_ms, StoreError};
use async_trait::async_trait;

#[async_trait]
impl SessionStore for Engine {
    async fn create_session(
        &self,
        token: &str,
        user: &str,
        csrf: &str,
        source: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO sessions (token_hash, \"user\", csrf, created_at, last_seen, source)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(hash(token))
        .bind(user)
        .bind(csrf)
        .bind(now)
        .bind(now)
        .bind(source)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn touch_session(&self, token: &str, idle_ms: i64) -> Result<Option<Session>, StoreError> {
        let now = now_ms();
        let key = hash(token);
        let row: Option<(String, String, i64)> =
            sqlx::query_as("SELECT \"user\", csrf, last_seen FROM sessions WHERE token_hash = $1")
                .bind(&key)
                .fetch_optional(self.pool())
                .await?;
        let Some((user, csrf, last_seen)) = row else {
            return Ok(None);
        };
        if now - last_seen > idle_ms {
            self.delete_session(token).await?;
            return Ok(None);
        }
        // Writing on every request would serialise reads behind the write
        // lock; a minute's precision is plenty for an idle expiry.
        if now - last_seen > 60_000 {
            sqlx::query("UPDATE sessions SET last_seen = $1 WHERE token_hash = $2")
                .bind(now)
                .bind(&key)
                .execute(self.pool())
                .await?;
        }
        Ok(Some(Session { user, csrf }))
    }

    async fn delete_session(&self, token: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(hash(token))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn expire_sessions(&self, idle_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE last_seen < $1")
            .bind(now_ms() - idle_ms)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
