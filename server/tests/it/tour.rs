//! The README's tour: every main page in a real browser, first empty (the
//! guided first screen), then with `redrive demo`'s data. Each page must
//! log no console error; each is screenshotted (cropped to the page's
//! content) into `target/screenshots/`, or into `REDRIVE_SCREENSHOTS_DIR`
//! (`scripts/screenshots` uses that to refresh `docs/screenshots/`).

use std::path::PathBuf;
use std::time::Duration;

use crate::common::*;
use fantoccini::Locator;
use serde_json::{json, Value};

fn screenshots_dir() -> PathBuf {
    std::env::var_os("REDRIVE_SCREENSHOTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/screenshots")))
}

/// Opens `path`, waits for hydration and for `ready` (a selector that shows
/// the data arrived), screenshots `<main>` as `name.png`, and checks the
/// console stayed clean.
async fn visit(
    browser: &Browser,
    base: &str,
    (name, path, ready): (&str, &str, &str),
) -> Result<(), fantoccini::error::CmdError> {
    let c = &browser.client;
    c.goto(&format!("{base}{path}")).await?;
    let wait = || c.wait().at_most(Duration::from_secs(30));
    wait()
        .for_element(Locator::Css(r#"[data-hydrated="true"]"#))
        .await?;
    wait().for_element(Locator::Css(ready)).await?;
    // Charts and live figures draw after their first refresh.
    tokio::time::sleep(Duration::from_millis(700)).await;
    browser
        .screenshot("main", &screenshots_dir().join(format!("{name}.png")))
        .await?;
    let errors = browser.console_errors().await?;
    assert!(errors.is_empty(), "{name} ({path}) logged: {errors:?}");
    Ok(())
}

#[tokio::test]
async fn every_main_page_shows_the_demo_without_a_console_error() {
    require_site();
    // A short name, as the README's pictures show it; an empty vhost, as on
    // a fresh broker (the demo runs in it and cleans only its own objects).
    let vh = TestVhost::named(format!(
        "demo-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    ))
    .await;
    let vhost = vh.name.clone();
    let db = TestDb::new();
    // Redrive first, with nothing to capture yet: a first run.
    let app = TestApp::start(config_on_vhost(&vhost, &db)).await;
    let browser = Browser::start().await;
    browser.client.set_window_size(1280, 860).await.unwrap();
    let first = async {
        browser.sign_in(&app.base, "/").await?;
        let empty = browser
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("[data-empty-state]"))
            .await?
            .text()
            .await?;
        assert!(
            empty.contains("redrive demo") && empty.contains("REDRIVE_WATCH"),
            "{empty}"
        );
        assert!(
            empty.contains("The management API answers") && empty.contains("No queue is captured"),
            "{empty}"
        );
        visit(
            &browser,
            &app.base,
            ("first-run", "/", "[data-empty-state] .next-steps"),
        )
        .await
    }
    .await;
    if first.is_err() {
        return browser.finish(first).await;
    }

    let mut demo = demo_command(&["--vhost", &vhost, "--duration", "600"])
        .spawn()
        .unwrap();
    let grouped = wait_for(Duration::from_secs(60), || async {
        let (_, g) = app.get(&format!("/api/v1/groups?vhost={}", enc(&vhost))).await;
        let groups = g.as_array().cloned().unwrap_or_default();
        let kinds = |f: &Value| f["kind"].as_str().map(str::to_owned);
        let (_, a) = app.get("/api/v1/advisor").await;
        let findings: Vec<String> = a["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(kinds)
            .collect();
        // The demo's queues overflow once they fill: wait for that group
        // too, as the job below replays it.
        let overflowed = groups
            .iter()
            .any(|g| g["reason"].as_str().is_some_and(|r| r.starts_with("maxlen")));
        (groups.len() >= 5 && findings.len() >= 2 && overflowed).then_some(groups)
    })
    .await;
    // A slow bulk replay of the overflowed audit events, to show a job in progress.
    let audit = grouped
        .iter()
        .find(|g| g["reason"].as_str().is_some_and(|r| r.starts_with("maxlen")))
        .expect("an overflow group");
    let (status, job) = app
        .post(
            "/api/v1/jobs",
            Some(json!({"action": "replay", "group": audit["id"], "rate_per_sec": 2})),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let trade = wait_for(Duration::from_secs(30), || async {
        let (_, page) = app
            .get("/api/v1/messages?queue=trade-service.error.queue&limit=1")
            .await;
        page["items"][0]["id"].as_i64()
    })
    .await;

    let message = format!("/messages/{trade}");
    let job = format!("/jobs/{}", job["id"]);
    let messages = format!("/?vhost={}", enc(&vhost));
    let pages = [
        ("messages", messages.as_str(), "table.grid tbody tr"),
        ("message", message.as_str(), "h1 .badge"),
        ("groups", "/groups", "table.groups td.services a"),
        ("job", job.as_str(), ".progress"),
        ("queues", "/queues", "table.grid tbody tr"),
        ("policies", "/policies", "table.policies tbody tr"),
        ("advisor", "/advisor", ".finding-head"),
        ("overview", "/overview", ".cards"),
    ];
    let result = async {
        for page in pages {
            visit(&browser, &app.base, page).await?;
        }
        Ok(())
    }
    .await;
    browser.finish(result).await;

    let _ = demo.kill().await;
    app.stop().await;
    let out = demo_command(&["--clean", "--vhost", &vhost])
        .output()
        .await
        .unwrap();
    drop(vh);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
