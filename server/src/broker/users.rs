//! The broker's users, as sign-in and authorisation need them.

use serde::Deserialize;

use super::management::{enc, Management, ManagementError};
use crate::domain::access::{Pattern, Principal, Tag, VhostPermissions};

/// `GET /api/users/{user}`.
#[derive(Debug, Clone, Deserialize)]
pub struct UserInfo {
    pub name: String,
    /// A list on 3.9+, a comma-separated string before.
    #[serde(default)]
    pub tags: serde_json::Value,
}

/// One row of `GET /api/users/{user}/permissions`.
#[derive(Debug, Clone, Deserialize)]
pub struct PermissionInfo {
    pub vhost: String,
    #[serde(default)]
    pub configure: String,
    #[serde(default)]
    pub write: String,
    #[serde(default)]
    pub read: String,
}

/// What the broker said of a user's password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Refused,
}

impl Management {
    /// The user's tags, read with Redrive's own credentials; `None` when the
    /// broker has no such user (deleted since sign-in).
    pub async fn user(&self, name: &str) -> Result<Option<UserInfo>, ManagementError> {
        match self.get(&format!("/users/{}", enc(name))).await {
            Ok(u) => Ok(Some(u)),
            Err(ManagementError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The user's tags and permissions as the broker holds them now;
    /// `None` when the broker has no such user. Sign-in caches it; a
    /// scheduled job reads it afresh when it starts.
    pub async fn principal(&self, name: &str) -> Result<Option<Principal>, ManagementError> {
        let Some(info) = self.user(name).await? else {
            return Ok(None);
        };
        let permissions = self.user_permissions(name).await?;
        Ok(Some(Principal {
            user: info.name,
            tags: Tag::parse_all(&info.tags),
            other_tags: Tag::others(&info.tags),
            vhosts: permissions
                .into_iter()
                .map(|p| {
                    let perms = VhostPermissions {
                        configure: Pattern::new(&p.configure),
                        write: Pattern::new(&p.write),
                        read: Pattern::new(&p.read),
                    };
                    (p.vhost, perms)
                })
                .collect(),
        }))
    }

    pub async fn user_permissions(&self, name: &str) -> Result<Vec<PermissionInfo>, ManagementError> {
        match self.get(&format!("/users/{}/permissions", enc(name))).await {
            Err(ManagementError::Status { status: 404, .. }) => Ok(Vec::new()),
            other => other,
        }
    }

    /// Asks the broker whether `password` is the user's, by calling
    /// `/api/whoami` with those credentials. A user without a management tag
    /// is refused by the broker's API, and so by Redrive.
    pub async fn check_password(&self, user: &str, password: &str) -> Result<Verdict, ManagementError> {
        let res = self
            .request(reqwest::Method::GET, "/whoami", (user, password), None)
            .await?;
        match res.status().as_u16() {
            200 => Ok(Verdict::Accepted),
            401 | 403 => Ok(Verdict::Refused),
            status => Err(ManagementError::Status {
                status,
                path: "/whoami".into(),
                body: String::new(),
            }),
        }
    }
}
