//! Sign-in sessions. The cookie holds a random token; the table holds its
//! SHA-256, the user, the CSRF token and when it was last used.

use crate::store::StoreError;
use async_trait::async_trait;

use sha2::{Digest, Sha256};

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    pub csrf: String,
}

pub(super) fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// UI sign-in sessions, shared by every instance on the database.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(
        &self,
        token: &str,
        user: &str,
        csrf: &str,
        source: Option<&str>,
    ) -> Result<(), StoreError>;

    /// The session for `token` when it was used within `idle_ms`; marks it
    /// used. An expired session is deleted.
    async fn touch_session(&self, token: &str, idle_ms: i64) -> Result<Option<Session>, StoreError>;

    async fn delete_session(&self, token: &str) -> Result<(), StoreError>;

    /// Deletes sessions idle for longer than `idle_ms`; returns how many.
    async fn expire_sessions(&self, idle_ms: i64) -> Result<u64, StoreError>;
}
