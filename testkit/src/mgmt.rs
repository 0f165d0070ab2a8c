//! The broker's management API, as its default user (`guest`).

use anyhow::{bail, Context};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;

/// The local broker's management API.
pub const MGMT: &str = "http://127.0.0.1:15672";

/// `s` as one path segment of a management API URL (`/` is `%2F`), as
/// Redrive escapes it.
pub fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// A management API client signed in as `guest`.
#[derive(Clone, Default)]
pub struct Mgmt {
    pub http: reqwest::Client,
}

impl Mgmt {
    fn url(path: &str) -> String {
        format!("{MGMT}/api/{}", path.trim_start_matches('/'))
    }

    /// `GET /api/{path}`: the status and the body (`null` if it is not JSON).
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let r = self
            .http
            .get(Self::url(path))
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .context("management API (is rabbitmq_management enabled?)")?;
        Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
    }

    /// `PUT /api/{path}` with `body`; an error unless the broker accepts it.
    pub async fn put(&self, path: &str, body: Value) -> anyhow::Result<()> {
        let r = self
            .http
            .put(Self::url(path))
            .basic_auth("guest", Some("guest"))
            .json(&body)
            .send()
            .await
            .context("management API (is rabbitmq_management enabled?)")?;
        if !r.status().is_success() {
            bail!("PUT {path}: {}", r.status());
        }
        Ok(())
    }

    /// `DELETE /api/{path}`; the status (404 is an answer, not an error).
    pub async fn delete(&self, path: &str) -> anyhow::Result<u16> {
        let r = self
            .http
            .delete(Self::url(path))
            .basic_auth("guest", Some("guest"))
            .header("X-Reason", "test cleanup")
            .send()
            .await
            .context("management API")?;
        Ok(r.status().as_u16())
    }

    /// [`Self::delete`] from a `Drop`, which cannot be async: a short-lived
    /// thread with a runtime of its own sends it, whatever runtime (if any)
    /// the caller is in.
    pub fn delete_blocking(path: String) {
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime");
            rt.block_on(async {
                let _ = Mgmt::default().delete(&path).await;
            });
        })
        .join();
    }

    /// Deletes every vhost whose name starts with `prefix` (what an
    /// interrupted earlier run left behind); how many.
    pub async fn remove_vhosts_named(&self, prefix: &str) -> anyhow::Result<usize> {
        let (_, vhosts) = self.get("vhosts").await?;
        let mut removed = 0;
        for name in vhosts
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str())
            .filter(|n| n.starts_with(prefix))
        {
            self.delete(&format!("vhosts/{}", enc(name))).await?;
            removed += 1;
        }
        Ok(removed)
    }
}
