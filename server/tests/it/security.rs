//! Sign-in with the broker's users, authorisation that mirrors the broker's
//! permissions, the audit log, and the hardened web surface. Every user here
//! is a real broker user, created for the test and deleted after.

use std::time::Duration;

use crate::common::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use reqwest::header;
use serde_json::{json, Value};

/// A Spring failure whose original exchange is `exchange`.
async fn failure(vh: &mut TestVhost, exchange: &str, body: &[u8]) {
    let props = BasicProperties::default().with_headers(headers(&[
        ("x-exception-message", s("boom")),
        ("x-original-exchange", s(exchange)),
        ("x-original-routingKey", s("k")),
    ]));
    vh.publish("", "sec.dlq", body, props).await;
}

/// A vhost with `sec.dlq` captured and two exchanges to replay to.
async fn setup(extra: &[&str]) -> (TestVhost, TestDb, TestApp) {
    let (mut vh, db, app) = with_queues(&["sec.dlq", "allowed.q", "denied.q"], extra).await;
    for (x, q) in [("allowed.x", "allowed.q"), ("denied.x", "denied.q")] {
        vh.declare_exchange(x, ExchangeKind::Direct).await;
        vh.bind(q, x, "k").await;
    }
    (vh, db, app)
}

#[tokio::test]
async fn everything_needs_a_user_except_probes_and_the_sign_in_page() {
    let (mut vh, _db, app) = setup(&[]).await;
    failure(&mut vh, "allowed.x", b"{}").await;
    let id = app.wait_for_messages("sec.dlq", 1).await[0]["id"].clone();
    let nobody = app.as_user(None);
    let r = nobody
        .http
        .get(format!("{}/api/v1/messages", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let r = nobody
        .http
        .get(format!("{}/queues?x=1", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "pages send the browser to the sign-in form");
    assert_eq!(r.headers()[header::LOCATION], "/login?next=%2Fqueues%3Fx%3D1");
    let r = nobody
        .http
        .post(format!("{}/rpc/list_jobs", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers().get(header::WWW_AUTHENTICATE).is_none(),
        "no browser prompt for the UI"
    );
    assert_eq!(
        nobody
            .post(&format!("/api/v1/messages/{id}/replay"), None)
            .await
            .0,
        401
    );
    assert_eq!(nobody.get("/healthz").await.0, 200);
    assert_ne!(nobody.get("/readyz").await.0, 401);
    let r = nobody
        .http
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Every endpoint, without credentials and with a wrong password (a user
    // of its own each time: one user is slowed down after three failures).
    let routes: &[(reqwest::Method, String)] = &[
        (reqwest::Method::GET, "/api/v1/messages".into()),
        (reqwest::Method::GET, "/api/v1/messages/export".into()),
        (reqwest::Method::GET, format!("/api/v1/messages/{id}")),
        (reqwest::Method::GET, format!("/api/v1/messages/{id}/body")),
        (reqwest::Method::POST, format!("/api/v1/messages/{id}/replay")),
        (reqwest::Method::POST, format!("/api/v1/messages/{id}/discard")),
        (reqwest::Method::POST, format!("/api/v1/messages/{id}/restore")),
        (reqwest::Method::POST, format!("/api/v1/messages/{id}/notes")),
        (reqwest::Method::POST, format!("/api/v1/messages/{id}/tags")),
        (reqwest::Method::DELETE, format!("/api/v1/messages/{id}/tags/x")),
        (reqwest::Method::GET, "/api/v1/groups".into()),
        (reqwest::Method::GET, "/api/v1/groups/g/annotations".into()),
        (reqwest::Method::POST, "/api/v1/groups/g/notes".into()),
        (reqwest::Method::GET, "/api/v1/jobs".into()),
        (reqwest::Method::POST, "/api/v1/jobs".into()),
        (reqwest::Method::GET, "/api/v1/jobs/1".into()),
        (reqwest::Method::GET, "/api/v1/jobs/1/problems".into()),
        (reqwest::Method::POST, "/api/v1/jobs/1/cancel".into()),
        (reqwest::Method::GET, "/api/v1/me".into()),
        (reqwest::Method::GET, "/api/v1/audit".into()),
        (reqwest::Method::GET, "/api/v1/audit/export".into()),
        (reqwest::Method::GET, "/api/v1/overview".into()),
        (reqwest::Method::GET, "/api/v1/queues".into()),
        (reqwest::Method::GET, "/api/v1/queues/v/q/history".into()),
        (reqwest::Method::PUT, "/api/v1/queues/v/q/watch".into()),
        (reqwest::Method::GET, "/api/v1/services/s/history".into()),
        (reqwest::Method::GET, "/api/v1/policies".into()),
        (reqwest::Method::PUT, "/api/v1/policies/v/p".into()),
        (reqwest::Method::DELETE, "/api/v1/policies/v/p".into()),
        (reqwest::Method::POST, "/api/v1/policies/v/p/preview".into()),
        (reqwest::Method::GET, "/api/v1/advisor".into()),
        (reqwest::Method::POST, "/api/v1/advisor/1/fix".into()),
        (reqwest::Method::GET, "/api/v1/alerts".into()),
        (reqwest::Method::POST, "/api/v1/alerts".into()),
        (reqwest::Method::GET, "/api/v1/alerts/deliveries".into()),
        (reqwest::Method::DELETE, "/api/v1/alerts/1".into()),
        (reqwest::Method::POST, "/api/v1/alerts/1/test".into()),
        (reqwest::Method::GET, "/api/v1/alerts/1/deliveries".into()),
    ];
    for (method, path) in routes {
        assert_eq!(
            nobody.send(method.clone(), path, None).await.0,
            401,
            "{method} {path} without credentials"
        );
        let user = random_name("nobody");
        let wrong = app.as_user(Some((&user, "not-the-password")));
        assert_eq!(
            wrong.send(method.clone(), path, None).await.0,
            401,
            "{method} {path} with a wrong password"
        );
    }
    let wrong = app.as_user(Some(("guest", "not-the-password")));
    assert_eq!(wrong.get("/api/v1/messages").await.0, 401);
    // Nothing changed for all that.
    assert_eq!(
        app.get(&format!("/api/v1/messages/{id}")).await.1["status"],
        "failed"
    );
    app.stop().await;
}

#[tokio::test]
async fn permissions_mirror_the_broker() {
    let (mut vh, _db, app) = setup(&["--auth-cache=1"]).await;
    failure(&mut vh, "allowed.x", b"{\"n\":1}").await;
    failure(&mut vh, "denied.x", b"{\"n\":2}").await;
    failure(&mut vh, "other.x", b"{\"n\":3}").await;
    let items = app.wait_for_messages("sec.dlq", 3).await;
    let id_of = |exchange: &str| items.iter().find(|m| m["exchange"] == exchange).unwrap()["id"].clone();
    let (allowed, denied, other) = (id_of("allowed.x"), id_of("denied.x"), id_of("other.x"));
    let vhost = vh.name.clone();
    let outsider = BrokerUser::create("management", &[]).await;
    let monitor = BrokerUser::create("monitoring", &[(&vhost, ".*", ".*", ".*")]).await;
    let writer = BrokerUser::create("management", &[(&vhost, "", "^allowed\\.|^sec\\.", ".*")]).await;

    // A vhost without permissions does not exist for the user.
    let o = app.as_user(outsider.creds());
    let (status, page) = o.get("/api/v1/messages").await;
    assert_eq!((status, page["items"].as_array().unwrap().len()), (200, 0));
    assert_eq!(o.get(&format!("/api/v1/messages/{allowed}")).await.0, 404);
    assert_eq!(
        o.post(&format!("/api/v1/messages/{allowed}/replay"), None)
            .await
            .0,
        404
    );
    assert_eq!(o.get(&format!("/api/v1/messages/{allowed}/body")).await.0, 404);
    let (_, queues) = o.get("/api/v1/queues").await;
    assert!(!queues.to_string().contains(&vhost), "{queues}");
    let (_, overview) = o.get("/api/v1/overview").await;
    assert!(!overview["deepest"].to_string().contains(&vhost), "{overview}");
    assert_eq!(overview["error_inflow"], json!([]), "{overview}");
    assert_eq!(
        o.get(&format!("/api/v1/messages?vhost={}", enc(&vhost))).await.0,
        404
    );

    // monitoring alone reads and changes nothing.
    let m = app.as_user(monitor.creds());
    assert_eq!(m.get(&format!("/api/v1/messages/{allowed}")).await.0, 200);
    let (status, refused) = m.post(&format!("/api/v1/messages/{allowed}/replay"), None).await;
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("monitoring"),
        "{refused}"
    );
    assert_eq!(
        m.post(&format!("/api/v1/messages/{allowed}/discard"), None)
            .await
            .0,
        403
    );
    let policy = json!({"pattern": "^x$", "definition": {"max-length": 1}});
    let policy_path = format!("/api/v1/policies/{}/p", enc(&vhost));
    let put = m.send(reqwest::Method::PUT, &policy_path, Some(policy.clone()));
    assert_eq!(put.await.0, 403);
    let job = json!({"action": "replay", "filter": {"queue": "sec.dlq"}});
    assert_eq!(m.post("/api/v1/jobs", Some(job.clone())).await.0, 403);
    assert_eq!(m.get("/api/v1/me").await.1["read_only"], true);

    // Write follows the broker's write regex on the target exchange.
    let w = app.as_user(writer.creds());
    let (status, done) = w.post(&format!("/api/v1/messages/{allowed}/replay"), None).await;
    assert_eq!((status, &done["status"]), (200, &json!("replayed")), "{done}");
    assert_eq!(done["history"][0]["actor"], writer.name.as_str());
    let (status, refused) = w.post(&format!("/api/v1/messages/{denied}/replay"), None).await;
    assert_eq!(status, 403, "{refused}");
    let why = refused["error"].as_str().unwrap();
    assert!(why.contains("write") && why.contains("denied.x"), "{why}");
    // … also when the target is given explicitly, the default exchange included.
    let to_default = json!({"exchange": "", "routing_key": "denied.q"});
    assert_eq!(
        w.post(&format!("/api/v1/messages/{denied}/replay"), Some(to_default))
            .await
            .0,
        403
    );
    assert_eq!(vh.depth("denied.q").await, 0, "nothing published for a refusal");
    // A bulk job checks every destination before it starts.
    assert_eq!(w.post("/api/v1/jobs", Some(job)).await.0, 403);
    // Policies need policymaker; discard needs write on the source queue.
    let put = w.send(reqwest::Method::PUT, &policy_path, Some(policy));
    assert_eq!(put.await.0, 403);
    let discard = format!("/api/v1/messages/{other}/discard");
    assert_eq!(w.post(&discard, None).await.0, 200);
    // To an exchange the write permission matches, the refused message goes.
    let elsewhere = json!({"exchange": "allowed.x", "routing_key": "k"});
    let (status, done) = w
        .post(&format!("/api/v1/messages/{denied}/replay"), Some(elsewhere))
        .await;
    assert_eq!((status, &done["status"]), (200, &json!("replayed")), "{done}");
    assert_eq!(vh.depth("allowed.q").await, 2);

    // Alert rules: one on this vhost is the writer's to make and invisible
    // to the outsider; one over every vhost needs administrator.
    let rule = |vhost: Value| {
        json!({"name": "deep", "condition": {"kind": "queue", "vhost": vhost, "queue": "^sec", "metric": "ready",
               "threshold": 100}, "webhook_url": "http://127.0.0.1:9/hook"})
    };
    let (status, created) = w.post("/api/v1/alerts", Some(rule(json!(vhost)))).await;
    assert!(status < 300, "{status} {created}");
    assert_eq!(
        created["webhook_url"], "http://127.0.0.1:9/***",
        "webhook URLs are masked"
    );
    assert_eq!(w.post("/api/v1/alerts", Some(rule(Value::Null))).await.0, 403);
    let (_, rules) = o.get("/api/v1/alerts").await;
    assert_eq!(rules, json!([]), "{rules}");

    // The audit log names the real user, records refusals, and is private.
    let (_, own) = w.get("/api/v1/audit").await;
    let actions: Vec<(&str, &str)> = own["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["result"].as_str().unwrap()))
        .collect();
    assert!(actions.contains(&("replay", "ok")), "{actions:?}");
    assert!(actions.contains(&("replay", "refused")), "{actions:?}");
    assert!(actions.contains(&("policy_put", "refused")), "{actions:?}");
    assert!(own["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["user"] == writer.name.as_str()));
    assert_eq!(w.get("/api/v1/audit?user=guest").await.0, 403);

    // Revoked on the broker: gone within the cache time (1 s here).
    writer.revoke(&vhost).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(w.get(&format!("/api/v1/messages/{allowed}")).await.0, 404);
    app.stop().await;
}

#[tokio::test]
async fn read_only_mode_refuses_every_change() {
    let (mut vh, _db, app) = setup(&["--read-only=true"]).await;
    failure(&mut vh, "allowed.x", b"{}").await;
    let id = app.wait_for_messages("sec.dlq", 1).await[0]["id"].clone();
    let (status, body) = app.post(&format!("/api/v1/messages/{id}/replay"), None).await;
    assert_eq!(status, 403);
    assert!(
        body["error"].as_str().unwrap().contains("REDRIVE_READ_ONLY"),
        "{body}"
    );
    assert_eq!(
        app.post(&format!("/api/v1/messages/{id}/discard"), None).await.0,
        403
    );
    assert_eq!(app.get("/api/v1/me").await.1["read_only"], true);
    app.stop().await;
}

#[tokio::test]
async fn cross_origin_changes_and_foreign_hosts_are_refused() {
    let (mut vh, _db, app) = setup(&[]).await;
    failure(&mut vh, "allowed.x", b"{}").await;
    let id = app.wait_for_messages("sec.dlq", 1).await[0]["id"].clone();
    let replay = |origin: Option<&str>, referer: Option<&str>| {
        let mut req = app
            .http
            .post(format!("{}/api/v1/messages/{id}/discard", app.base));
        if let Some(o) = origin {
            req = req.header(header::ORIGIN, o);
        }
        if let Some(r) = referer {
            req = req.header(header::REFERER, r);
        }
        req.send()
    };
    assert_eq!(
        replay(Some("https://evil.example"), None).await.unwrap().status(),
        403
    );
    assert_eq!(replay(Some("null"), None).await.unwrap().status(), 403);
    assert_eq!(
        replay(None, Some("https://evil.example/page"))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        app.get(&format!("/api/v1/messages/{id}")).await.1["status"],
        "failed"
    );
    // A rebound DNS name reaches the port but not Redrive.
    let r = app
        .http
        .get(format!("{}/api/v1/messages", app.base))
        .header(header::HOST, "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 421);
    let r = replay(Some(&app.base), None).await.unwrap();
    assert_eq!(r.status(), 200, "same origin is fine");
    app.stop().await;
}

const XSS: &str = "<img src=x onerror=\"document.body.dataset.pwned=1\">";

#[tokio::test]
async fn publisher_controlled_text_is_inert_and_bodies_download() {
    let (mut vh, _db, app) = setup(&[]).await;
    let queue = format!("{XSS}.dlq");
    vh.declare_queue(&queue, FieldTable::default()).await;
    let props = BasicProperties::default()
        .with_content_type("text/html".into())
        .with_headers(headers(&[
            ("x-exception-message", s(XSS)),
            (
                "x-exception-stacktrace",
                s(&format!("java.lang.Exception: {XSS}\n\tat x.y(Z.java:1)")),
            ),
            ("x-original-exchange", s(XSS)),
            ("x-original-routingKey", s(XSS)),
            (XSS, s(XSS)),
        ]));
    vh.publish("", &queue, XSS.as_bytes(), props).await;
    let id = app.wait_for_messages(&queue, 1).await[0]["id"].clone();
    for path in [
        format!("/messages/{id}"),
        format!("/?queue={}", enc(&queue)),
        "/groups".to_owned(),
        "/queues".to_owned(),
    ] {
        let r = app.http.get(format!("{}{path}", app.base)).send().await.unwrap();
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("'nonce-"),
            "{csp}"
        );
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(r.headers()[header::REFERRER_POLICY], "same-origin");
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .unwrap()
            .split('\'')
            .next()
            .unwrap()
            .to_owned();
        let html = r.text().await.unwrap();
        assert!(
            !html.contains("<img src=x"),
            "{path} renders publisher text as markup"
        );
        // Every script on the page carries this response's nonce.
        for script in html.split("<script").skip(1) {
            assert!(
                script.contains(&format!("nonce=\"{nonce}\"")),
                "{path}: <script{}",
                &script[..80.min(script.len())]
            );
        }
    }
    let r = app
        .http
        .get(format!("{}/api/v1/messages/{id}/body", app.base))
        .send()
        .await
        .unwrap();
    assert!(r.headers()[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(r.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("sandbox"));
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        XSS.as_bytes(),
        "the body itself is exact"
    );
    app.stop().await;
}

#[test]
fn help_shows_variable_names_never_their_values() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_redrive"))
        .arg("--help")
        .env("REDRIVE_MANAGEMENT_PASSWORD", "pw-from-the-environment")
        .env("REDRIVE_AMQP_URL", "amqp://svc:amqp-secret@broker:5672/%2f")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("REDRIVE_MANAGEMENT_PASSWORD"), "{help}");
    assert!(
        !help.contains("pw-from-the-environment") && !help.contains("amqp-secret"),
        "{help}"
    );
}

/// Redrive running as its own broker user with a distinctive password, with
/// every log level on: neither that password nor a user's (right or wrong)
/// shows up in its output or its API answers.
#[tokio::test]
async fn no_password_reaches_logs_or_api_output() {
    use std::process::Stdio;
    use tokio::io::AsyncReadExt;

    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_queue("sec.dlq", FieldTable::default()).await;
    let vhost = vh.name.clone();
    let own = BrokerUser::create("administrator", &[(&vhost, ".*", ".*", ".*")]).await;
    let reader = BrokerUser::create("management", &[(&vhost, "", "", ".*")]).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let amqp = format!(
        "amqp://{}:{}@127.0.0.1:5672/{}",
        own.name,
        own.password,
        enc(&vhost)
    );
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_redrive"))
        .env("REDRIVE_AMQP_URL", &amqp)
        .env("REDRIVE_MANAGEMENT_USER", &own.name)
        .env("REDRIVE_MANAGEMENT_PASSWORD", &own.password)
        .env("REDRIVE_DATABASE_URL", db.url())
        .env("REDRIVE_LISTEN", format!("127.0.0.1:{port}"))
        .env("REDRIVE_VHOSTS", &vhost)
        .env("REDRIVE_SITE_ROOT", site_root())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Read the output while it runs: a full pipe would stall Redrive.
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let stdout = tokio::spawn(async move {
        let mut s = String::new();
        out.read_to_string(&mut s).await.map(|_| s)
    });
    let stderr = tokio::spawn(async move {
        let mut s = String::new();
        err.read_to_string(&mut s).await.map(|_| s)
    });
    let http = reqwest::Client::new();
    wait_until(Duration::from_secs(20), || async {
        http.get(format!("{base}/healthz")).send().await.is_ok()
    })
    .await;
    vh.publish("", "sec.dlq", b"{}", BasicProperties::default()).await;
    let client = TestClient {
        base: base.clone(),
        http: client_as(&reader.name, &reader.password),
    };
    let mut answers = String::new();
    for path in [
        "/api/v1/me",
        "/api/v1/queues",
        "/api/v1/messages",
        "/api/v1/audit",
        "/readyz",
        "/api/v1/overview",
    ] {
        answers.push_str(&client.get(path).await.1.to_string());
    }
    let wrong = TestClient {
        base: base.clone(),
        http: client_as(&reader.name, "a-wrong-password-7f3a"),
    };
    assert_eq!(wrong.get("/api/v1/me").await.0, 401);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = tokio::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().unwrap().to_string())
        .status()
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    let logs = stdout.await.unwrap().unwrap() + &stderr.await.unwrap().unwrap();
    assert!(
        logs.contains("starting redrive"),
        "the logs were captured: {logs}"
    );
    for secret in [
        own.password.as_str(),
        reader.password.as_str(),
        "a-wrong-password-7f3a",
    ] {
        assert!(!logs.contains(secret), "a password is in the logs");
        assert!(!answers.contains(secret), "a password is in an API answer");
    }
}

/// `/metrics` body as `credentials` (`None`: nobody) gets it.
async fn scrape(app: &TestApp, credentials: Option<(&str, &str)>) -> (u16, String) {
    let client = match credentials {
        Some((user, password)) => client_as(user, password),
        None => reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    };
    let r = client.get(format!("{}/metrics", app.base)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The value of the sample line `series` (name and labels exactly).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

/// Prometheus text for the users the broker shows every vhost's figures;
/// its counters follow capture and replay, its gauges the stored messages.
#[tokio::test]
async fn metrics_follow_capture_and_replay_and_need_a_monitoring_user() {
    let (mut vh, _db, app) = setup(&[]).await;
    failure(&mut vh, "allowed.x", b"{\"n\":1}").await;
    failure(&mut vh, "allowed.x", b"{\"n\":1}").await;
    let items = app.wait_for_messages("sec.dlq", 2).await;
    let queue = format!("vhost=\"{}\",queue=\"sec.dlq\"", vh.name);

    let (status, text) = scrape(&app, Some(("guest", "guest"))).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text: {text}");
    let received = format!("redrive_messages_received_total{{{queue}}}");
    assert_eq!(sample(&text, &received), Some(2.0), "{text}");
    let stored = format!("redrive_messages_stored_total{{{queue}}}");
    assert_eq!(sample(&text, &stored), Some(2.0), "{text}");
    assert_eq!(sample(&text, "redrive_messages{status=\"failed\"}"), Some(2.0));
    let connected = format!("redrive_consumer_state{{{queue},state=\"connected\"}}");
    assert_eq!(sample(&text, &connected), Some(1.0), "{text}");
    assert_eq!(sample(&text, "redrive_database_up"), Some(1.0));
    let ping = sample(&text, "redrive_database_ping_seconds").unwrap();
    assert!(ping > 0.0 && ping < 60.0, "a measured round trip: {ping}");
    let calls = sample(&text, "redrive_management_request_seconds_count{outcome=\"ok\"}");
    assert!(calls.unwrap_or(0.0) > 0.0, "{text}");
    let commits = sample(&text, "redrive_capture_commit_seconds_count").unwrap();
    assert!(commits >= 1.0, "{text}");

    let id = &items[0]["id"];
    let (status, done) = app.post(&format!("/api/v1/messages/{id}/replay"), None).await;
    assert_eq!(status, 200, "{done}");
    let (_, text) = scrape(&app, Some(("guest", "guest"))).await;
    let replayed = "redrive_replays_total{path=\"single\",outcome=\"replayed\"}";
    assert_eq!(sample(&text, replayed), Some(1.0), "{text}");
    assert_eq!(sample(&text, "redrive_messages{status=\"replayed\"}"), Some(1.0));
    assert_eq!(sample(&text, "redrive_messages{status=\"failed\"}"), Some(1.0));

    // Every vhost's figures: monitoring or administrator only.
    let vhost = vh.name.clone();
    let monitor = BrokerUser::create("monitoring", &[(&vhost, ".*", ".*", ".*")]).await;
    assert_eq!(scrape(&app, monitor.creds()).await.0, 200);
    let manager = BrokerUser::create("management", &[(&vhost, ".*", ".*", ".*")]).await;
    let (status, refused) = scrape(&app, manager.creds()).await;
    assert_eq!(status, 403, "{refused}");
    assert!(refused.contains("monitoring"), "{refused}");
    let (status, nothing) = scrape(&app, None).await;
    assert_ne!(status, 200);
    assert!(!nothing.contains("redrive_"), "{nothing}");
    app.stop().await;
}
