//! The broker as Redrive's user directory, with short caches.
//!
//! A password is checked by the broker (`/api/whoami` with the user's
//! credentials) and never stored: a successful check is remembered for a
//! short while as a salted hash in memory only, so an API client sending
//! Basic credentials on every call does not cost a broker round trip each
//! time. Tags and permissions are read with Redrive's own credentials and
//! cached as briefly, so a user the broker revokes loses access within that
//! time. While the management API cannot answer, what was checked within
//! the last hour still holds (capture and replay must not stop because the
//! management plugin restarts); a first sign-in waits for the broker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::broker::users::Verdict;
use crate::broker::{Management, ManagementError};
use crate::domain::access::Principal;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("unknown user or wrong password")]
    BadCredentials,
    #[error("the broker cannot check credentials now: {0}")]
    Unavailable(#[from] ManagementError),
}

/// How long a check may stand in for the broker while it cannot answer.
const STALE_FOR: Duration = Duration::from_secs(3600);

/// Entries by user, with when they were fetched.
type Cache<T> = Arc<Mutex<HashMap<String, (Instant, T)>>>;

#[derive(Clone)]
pub struct Directory {
    management: Management,
    ttl: Duration,
    salt: [u8; 32],
    verified: Cache<[u8; 32]>,
    principals: Cache<Arc<Principal>>,
}

impl Directory {
    pub fn new(management: Management, ttl: Duration) -> Self {
        let mut salt = [0u8; 32];
        salt[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        salt[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self {
            management,
            ttl,
            salt,
            verified: Arc::default(),
            principals: Arc::default(),
        }
    }

    fn digest(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// Checks a password with the broker, or against a check it passed
    /// within the cache time.
    pub async fn verify(&self, user: &str, password: &str) -> Result<(), AuthError> {
        let digest = self.digest(user, password);
        let cached = self.verified.lock().expect("cache lock").get(user).copied();
        let matches = |max: Duration| cached.is_some_and(|(at, d)| at.elapsed() < max && d == digest);
        if matches(self.ttl) {
            return Ok(());
        }
        match self.management.check_password(user, password).await {
            Ok(Verdict::Accepted) => {
                let mut cache = self.verified.lock().expect("cache lock");
                cache.retain(|_, (at, _)| at.elapsed() < STALE_FOR);
                cache.insert(user.to_owned(), (Instant::now(), digest));
                Ok(())
            }
            Ok(Verdict::Refused) => {
                self.verified.lock().expect("cache lock").remove(user);
                Err(AuthError::BadCredentials)
            }
            Err(_) if matches(STALE_FOR) => Ok(()),
            Err(e) => Err(AuthError::Unavailable(e)),
        }
    }

    /// The user's tags and permissions; `BadCredentials` when the broker no
    /// longer knows the user.
    pub async fn principal(&self, user: &str) -> Result<Arc<Principal>, AuthError> {
        let cached = self.principals.lock().expect("cache lock").get(user).cloned();
        if let Some((at, p)) = &cached {
            if at.elapsed() < self.ttl {
                return Ok(p.clone());
            }
        }
        match self.fetch(user).await {
            Ok(principal) => {
                let mut cache = self.principals.lock().expect("cache lock");
                cache.retain(|_, (at, _)| at.elapsed() < STALE_FOR);
                cache.insert(user.to_owned(), (Instant::now(), principal.clone()));
                Ok(principal)
            }
            Err(AuthError::Unavailable(e)) => match cached {
                Some((at, p)) if at.elapsed() < STALE_FOR => {
                    tracing::debug!(error = %e, user, "management API unavailable; using the last known permissions");
                    Ok(p)
                }
                _ => Err(AuthError::Unavailable(e)),
            },
            Err(e) => {
                self.principals.lock().expect("cache lock").remove(user);
                Err(e)
            }
        }
    }

    async fn fetch(&self, user: &str) -> Result<Arc<Principal>, AuthError> {
        let principal = self.management.principal(user).await?;
        principal.map(Arc::new).ok_or(AuthError::BadCredentials)
    }
}
