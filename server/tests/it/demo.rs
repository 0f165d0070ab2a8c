//! `redrive demo` against the real broker, beside a real Redrive: every
//! kind of failure arrives within a minute, and `--clean` leaves the
//! broker's definitions as they were.

use std::time::Duration;

use crate::common::*;
use lapin::types::FieldTable;
use serde_json::Value;

/// What the broker's definitions say about `vhost`: every entry that
/// belongs to it, by section. Other tests change other vhosts meanwhile.
async fn definitions_of(vhost: &str) -> Vec<(String, Value)> {
    let http = reqwest::Client::new();
    let all: Value = http
        .get(format!("{MGMT}/api/definitions"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut out = Vec::new();
    for (section, entries) in all.as_object().unwrap() {
        for e in entries.as_array().into_iter().flatten() {
            let ours = e["vhost"] == vhost || (section == "vhosts" && e["name"] == vhost);
            if ours {
                out.push((section.clone(), e.clone()));
            }
        }
    }
    out.sort_by_key(|(s, e)| format!("{s}{e}"));
    out
}

/// A management API object deleted when the test ends, however it ends.
struct DeleteOnDrop(String);

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        mgmt_delete_blocking(std::mem::take(&mut self.0));
    }
}

async fn stored(app: &TestApp, query: &str) -> Vec<Value> {
    let (_, page) = app.get(&format!("/api/v1/messages?limit=500&{query}")).await;
    page["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn the_demo_shows_every_kind_of_failure_within_a_minute_and_cleans_up() {
    let vhost = random_name("redrive-test-demo");
    // Deleted even when an assertion fails before `--clean` runs.
    let _leftover = DeleteOnDrop(format!("vhosts/{}", enc(&vhost)));
    let before = definitions_of(&vhost).await;
    let mut running = demo_command(&["--vhost", &vhost, "--duration", "60"])
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(20), || async {
        definitions_of(&vhost).await.iter().any(|(s, _)| s == "bindings")
    })
    .await;
    let db = TestDb::new();
    let app = TestApp::start(config_on_vhost(&vhost, &db)).await;

    // Spring failures in the plain error queue and in each service's.
    for queue in [
        "error.queue",
        "trade-service.error.queue",
        "pay-service.error.queue",
        "cart-service.error.queue",
    ] {
        let q = enc(queue);
        wait_until(Duration::from_secs(60), || async {
            !stored(&app, &format!("queue={q}")).await.is_empty()
        })
        .await;
        let (_, m) = app
            .get(&format!(
                "/api/v1/messages/{}",
                stored(&app, &format!("queue={q}")).await[0]["id"]
            ))
            .await;
        assert!(
            m.to_string().contains("x-exception-stacktrace") && m.to_string().contains("shop.events"),
            "{queue}: {m}"
        );
    }
    // Dead letters of every reason the broker gives.
    for (queue, reason) in [
        ("orders.dlq", "rejected"),
        ("notifications.dlq", "expired"),
        ("audit.dlq", "maxlen"),
        ("payments.dlq", "delivery_limit"),
    ] {
        wait_until(Duration::from_secs(60), || async {
            stored(&app, &format!("queue={queue}"))
                .await
                .iter()
                .any(|m| m["reason"] == reason)
        })
        .await;
    }
    // Groups, one of them across two services.
    let groups = wait_for(Duration::from_secs(30), || async {
        let (_, g) = app.get(&format!("/api/v1/groups?vhost={}", enc(&vhost))).await;
        let groups = g.as_array().cloned().unwrap_or_default();
        let spans_two = groups
            .iter()
            .any(|g| g["services"].as_array().is_some_and(|s| s.len() >= 2));
        (groups.len() >= 3 && spans_two).then_some(groups)
    })
    .await;
    assert!(groups.len() >= 3, "{groups:?}");
    // At least two kinds of advisor finding about the demo's vhost.
    wait_until(Duration::from_secs(60), || async {
        let (_, a) = app.get("/api/v1/advisor").await;
        let mut kinds: Vec<String> = a["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["vhost"] == vhost.as_str())
            .filter_map(|f| f["kind"].as_str().map(str::to_owned))
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds.len() >= 2
    })
    .await;
    // The TTL delay queue's target is a work queue: listed, not captured.
    let target = app.queue_row(&vhost, "orders.work").await;
    assert_eq!(target["watched"], false, "{target}");
    assert!(
        target["watch_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("delay queue"),
        "{target}"
    );

    // Ctrl-C ends it cleanly, before its minute is up.
    let pid = running.id().unwrap() as i32;
    // SAFETY: sends SIGINT to the child this test spawned.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let status = tokio::time::timeout(Duration::from_secs(20), running.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    app.stop().await;

    let out = demo_command(&["--clean", "--vhost", &vhost])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(definitions_of(&vhost).await, before);
}

#[tokio::test]
async fn the_demo_refuses_a_vhost_holding_other_objects_and_cleans_only_its_own() {
    let mut vh = TestVhost::new().await;
    vh.declare_queue("billing.invoices", FieldTable::default()).await;
    let before = definitions_of(&vh.name).await;

    let out = demo_command(&["--vhost", &vh.name, "--duration", "1"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("queue billing.invoices") && said.contains("--force"),
        "{said}"
    );
    assert_eq!(
        definitions_of(&vh.name).await,
        before,
        "a refusal changes nothing"
    );

    let out = demo_command(&["--vhost", &vh.name, "--duration", "2", "--force"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(definitions_of(&vh.name).await, before);
    let out = demo_command(&["--clean", "--vhost", &vh.name])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "cleaning a shared vhost needs --force too");
    let out = demo_command(&["--clean", "--force", "--vhost", &vh.name])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        definitions_of(&vh.name).await,
        before,
        "only the demo's objects are gone"
    );
}
