//! Vhost administration: what `redrive demo` needs to create its own vhost
//! and remove it again. The server itself never creates or deletes vhosts.

use serde::Deserialize;

use super::{enc, Management, ManagementError};

/// A vhost with the metadata a creator left on it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct VhostDetail {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Management {
    /// The vhost, or `None` when the broker has no vhost of that name.
    pub async fn vhost(&self, name: &str) -> Result<Option<VhostDetail>, ManagementError> {
        match self.get(&format!("/vhosts/{}", enc(name))).await {
            Ok(v) => Ok(Some(v)),
            Err(ManagementError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a vhost carrying `description` and `tags`, so whoever created
    /// it can tell it apart later.
    pub async fn create_vhost(
        &self,
        name: &str,
        description: &str,
        tags: &[&str],
    ) -> Result<(), ManagementError> {
        let body = serde_json::json!({ "description": description, "tags": tags.join(",") });
        self.send(
            reqwest::Method::PUT,
            &format!("/vhosts/{}", enc(name)),
            Some(&body),
        )
        .await
        .map(|_| ())
    }

    /// Deletes a vhost with everything in it (queues, messages, policies,
    /// permissions).
    pub async fn delete_vhost(&self, name: &str) -> Result<(), ManagementError> {
        self.send(reqwest::Method::DELETE, &format!("/vhosts/{}", enc(name)), None)
            .await
            .map(|_| ())
    }

    /// Gives `user` configure, write and read on every object of `vhost`.
    pub async fn grant_all(&self, vhost: &str, user: &str) -> Result<(), ManagementError> {
        let body = serde_json::json!({ "configure": ".*", "write": ".*", "read": ".*" });
        let path = format!("/permissions/{}/{}", enc(vhost), enc(user));
        self.send(reqwest::Method::PUT, &path, Some(&body))
            .await
            .map(|_| ())
    }
}
