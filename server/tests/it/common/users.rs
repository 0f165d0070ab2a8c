//! Broker users made for one test, and sign-in through the form.

use reqwest::header;
use serde_json::json;

use super::{enc, mgmt_delete_blocking, random_name, TestApp, MGMT};

/// A broker user of the test's own, deleted on drop.
pub struct BrokerUser {
    pub name: String,
    pub password: String,
}

impl BrokerUser {
    pub async fn create(tags: &str, perms: &[(&str, &str, &str, &str)]) -> Self {
        let name = random_name("redrive-user");
        let password = random_name("pw");
        let http = reqwest::Client::new();
        let r = http
            .put(format!("{MGMT}/api/users/{}", enc(&name)))
            .basic_auth("guest", Some("guest"))
            .json(&json!({"password": password, "tags": tags}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "create user: {}", r.status());
        for (vhost, configure, write, read) in perms {
            let r = http
                .put(format!("{MGMT}/api/permissions/{}/{}", enc(vhost), enc(&name)))
                .basic_auth("guest", Some("guest"))
                .json(&json!({"configure": configure, "write": write, "read": read}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "permissions: {}", r.status());
        }
        Self { name, password }
    }

    pub fn creds(&self) -> Option<(&str, &str)> {
        Some((&self.name, &self.password))
    }

    pub async fn revoke(&self, vhost: &str) {
        reqwest::Client::new()
            .delete(format!(
                "{MGMT}/api/permissions/{}/{}",
                enc(vhost),
                enc(&self.name)
            ))
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .unwrap();
    }
}

impl Drop for BrokerUser {
    fn drop(&mut self) {
        mgmt_delete_blocking(format!("users/{}", enc(&self.name)));
    }
}

/// Signs in through the form; returns the session cookie's `name=value`.
pub async fn sign_in(app: &TestApp, user: &str, password: &str) -> (u16, Option<String>, Option<String>) {
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/login", app.base))
        .header(header::ORIGIN, &app.base)
        .form(&[("user", user), ("password", password), ("next", "/groups")])
        .send()
        .await
        .unwrap();
    let cookie = r
        .headers()
        .get(header::SET_COOKIE)
        .map(|c| c.to_str().unwrap().to_owned());
    let location = r
        .headers()
        .get(header::LOCATION)
        .map(|c| c.to_str().unwrap().to_owned());
    (r.status().as_u16(), cookie, location)
}

pub fn with_cookie(cookie: &str) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(header::COOKIE, cookie.split(';').next().unwrap().parse().unwrap());
    reqwest::Client::builder()
        .default_headers(h)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The CSRF token a signed-in page carries in `<meta name="csrf-token">`.
pub async fn csrf_of(session: &reqwest::Client, app: &TestApp) -> String {
    let page = session
        .get(format!("{}/jobs", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = page
        .find("<meta name=\"csrf-token\" content=\"")
        .unwrap_or_else(|| panic!("no csrf meta in {page}"));
    let rest = &page[at + "<meta name=\"csrf-token\" content=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}
