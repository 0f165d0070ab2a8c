//! Headless Chromium through chromedriver, for the browser tests and the
//! README's screenshots.

use std::process::Stdio;
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use super::random_name;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Headless Chromium driven through chromedriver on a free port.
pub struct Browser {
    pub client: fantoccini::Client,
    driver: tokio::process::Child,
    /// chromedriver's process group, which the Chromium it starts joins:
    /// killed whole on drop, so a test that panics leaves no browser behind.
    group: Option<u32>,
    profile: std::path::PathBuf,
}

impl Browser {
    pub async fn start() -> Self {
        let port = free_port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .expect("chromedriver is installed (scripts/test-services installs it)");
        let group = driver.id();
        let profile = std::env::temp_dir().join(random_name("redrive-chromium"));
        let caps = json!({
            // Console messages, for `console_errors`.
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-quic", "--no-first-run", format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        let mut client = None;
        for _ in 0..50 {
            // Plain HTTP to the local chromedriver: no TLS stack needed.
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.as_object().unwrap().clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => {
                    client = Some(c);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        Self {
            client: client.expect("chromedriver session"),
            driver,
            group,
            profile,
        }
    }

    /// Signs in through the form, as guest, and waits to land on `next`.
    pub async fn sign_in(&self, base: &str, next: &str) -> Result<(), fantoccini::error::CmdError> {
        let c = &self.client;
        c.goto(&format!("{base}{next}")).await?;
        // Not signed in: every page sends the browser to the sign-in form.
        let wait = || c.wait().at_most(Duration::from_secs(20));
        wait().for_element(Locator::Css("form[action='/login']")).await?;
        assert!(c.current_url().await?.path() == "/login");
        c.find(Locator::Css("input[name=user]"))
            .await?
            .send_keys("guest")
            .await?;
        c.find(Locator::Css("input[name=password]"))
            .await?
            .send_keys("guest")
            .await?;
        c.find(Locator::Css("form[action='/login'] button"))
            .await?
            .click()
            .await?;
        wait()
            .for_element(Locator::Css(r#"[data-hydrated="true"]"#))
            .await?;
        assert_eq!(c.current_url().await?.path(), next.split('?').next().unwrap());
        Ok(())
    }

    /// Errors the pages logged since the last call (console errors, failed
    /// resources such as a missing favicon, uncaught exceptions).
    pub async fn console_errors(&self) -> Result<Vec<String>, fantoccini::error::CmdError> {
        let logs = self.client.issue_cmd(BrowserLog).await?;
        Ok(logs
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect())
    }

    /// A PNG of the element `css` (cropped to it), written to `path`.
    pub async fn screenshot(
        &self,
        css: &str,
        path: &std::path::Path,
    ) -> Result<(), fantoccini::error::CmdError> {
        let element = self.client.find(Locator::Css(css)).await?;
        // A driver's element screenshot stops at the window's edge: bring
        // the element into view for it, then scroll back, so the flow goes
        // on where it was (a sticky bar could hide its next click).
        let arg = serde_json::to_value(&element).expect("an element serialises");
        let was = self
            .client
            .execute(
                "const y = window.scrollY; arguments[0].scrollIntoView({block: 'nearest'}); return y;",
                vec![arg],
            )
            .await?;
        let png = element.screenshot().await;
        self.client
            .execute("window.scrollTo(0, arguments[0])", vec![was])
            .await?;
        let png = png?;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
        Ok(())
    }

    /// Closes the browser; on failure prints the page first, then panics.
    pub async fn finish(mut self, result: Result<(), fantoccini::error::CmdError>) {
        if result.is_err() {
            eprintln!(
                "page at failure:\n{}",
                self.client.source().await.unwrap_or_default()
            );
        }
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
        result.expect("browser flow");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(group) = self.group {
            // `kill -KILL -- -PGID`: the whole group, without unsafe code.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// chromedriver's log endpoint (not in the W3C protocol, so not in
/// fantoccini): the browser's console since the last read.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        let body: Value = json!({ "type": "browser" });
        (axum::http::Method::POST, Some(body.to_string()))
    }
}

/// Where a UI test writes its screenshot `name`: `target/screenshots/`,
/// or `REDRIVE_SCREENSHOTS_DIR`.
pub fn shot(name: &str) -> std::path::PathBuf {
    std::env::var_os("REDRIVE_SCREENSHOTS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/screenshots"))
        })
        .join(format!("{name}.png"))
}
