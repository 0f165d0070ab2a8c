//! Sessions: sign-in through the form, sign-out, the throttle on failed
//! sign-ins, and the CSRF token a session's state changes must carry.

use crate::common::*;
use lapin::BasicProperties;
use leptos::server_fn::ServerFn;
use reqwest::header;
use serde_json::{json, Value};

/// `GET /api/v1/me` with the session's cookie: 200 while it lives.
async fn me_status(session: &reqwest::Client, app: &TestApp) -> u16 {
    let r = session.get(format!("{}/api/v1/me", app.base)).send().await;
    r.unwrap().status().as_u16()
}

async fn setup() -> (TestVhost, TestDb, TestApp) {
    with_queues(&["sec.dlq"], &[]).await
}

#[tokio::test]
async fn a_session_starts_at_sign_in_and_ends_at_sign_out() {
    let (_vh, db, app) = setup().await;
    let (status, cookie, location) = sign_in(&app, "guest", "guest").await;
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some("/groups"));
    let cookie = cookie.expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: no Secure flag");
    let session = with_cookie(&cookie);
    let me: Value = session
        .get(format!("{}/api/v1/me", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"], "guest");
    assert!(
        me["tags"].as_array().unwrap().contains(&json!("administrator")),
        "{me}"
    );
    // The database holds a hash of the token, never the token.
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let mut conn = db.raw_connection().await;
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM sessions")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], token.as_bytes());
    // Sign-out revokes it on the server: the same cookie no longer works.
    let csrf = csrf_of(&session, &app).await;
    let out = session
        .post(format!("{}/logout", app.base))
        .header(header::ORIGIN, &app.base)
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(me_status(&session, &app).await, 401);
    // A wrong password starts nothing.
    let (status, cookie, _) = sign_in(&app, "guest", "wrong").await;
    assert_eq!((status, cookie), (401, None));
    app.stop().await;
}

#[tokio::test]
async fn failed_sign_ins_are_slowed_down_and_audited() {
    let (_vh, _db, app) = setup().await;
    let user = BrokerUser::create("management", &[]).await;
    let wrong = app.as_user(Some((&user.name, "wrong")));
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(wrong.get("/api/v1/me").await.0);
    }
    assert_eq!(&statuses[..3], [401, 401, 401], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "then slowed down: {statuses:?}");
    // Even the right password waits its turn while the user is locked.
    assert_eq!(app.as_user(user.creds()).get("/api/v1/me").await.0, 429);
    let path = format!("/api/v1/audit?action=sign_in_failed&user={}", enc(&user.name));
    let (status, page) = app.get(&path).await;
    assert_eq!(status, 200, "{page}");
    assert!(page["items"].as_array().unwrap().len() >= 3, "{page}");
    assert_eq!(page["items"][0]["result"], "refused");
    app.stop().await;
}

#[tokio::test]
async fn a_session_changes_state_only_with_its_csrf_token() {
    let (mut vh, _db, app) = setup().await;
    vh.publish("", "sec.dlq", b"{}", BasicProperties::default()).await;
    let id = app.wait_for_messages("sec.dlq", 1).await[0]["id"]
        .as_i64()
        .unwrap();
    let (_, cookie, _) = sign_in(&app, "guest", "guest").await;
    let session = with_cookie(&cookie.expect("a session cookie"));
    let token = csrf_of(&session, &app).await;
    assert!(token.len() >= 32, "{token}");

    // A server function call from the right origin, but without the token
    // (or with another), is refused and changes nothing.
    let discard = format!("{}{}", app.base, <app::api::DiscardMessage as ServerFn>::PATH);
    let call = |sent: Option<&str>| {
        let mut r = session
            .post(&discard)
            .header(header::ORIGIN, &app.base)
            .form(&[("id", id.to_string())]);
        if let Some(t) = sent {
            r = r.header(app::api::CSRF_HEADER, t);
        }
        r.send()
    };
    for sent in [None, Some("forged"), Some("")] {
        let r = call(sent).await.unwrap();
        assert_eq!(r.status(), 403, "{sent:?}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("CSRF"), "{body}");
    }
    let status = |m: Value| m["status"].clone();
    assert_eq!(
        status(app.get(&format!("/api/v1/messages/{id}")).await.1),
        json!("failed")
    );
    // The same over REST with the session cookie.
    let rest = session
        .post(format!("{}/api/v1/messages/{id}/discard", app.base))
        .header(header::ORIGIN, &app.base)
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 403);
    // Reads need no token.
    assert_eq!(me_status(&session, &app).await, 200);
    // With the page's token, it goes through.
    let r = call(Some(&token)).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(
        status(app.get(&format!("/api/v1/messages/{id}")).await.1),
        json!("discarded")
    );

    // Sign-out is a form: without the token it is refused and the session
    // lives on; with it, the session ends.
    let out = |form: Vec<(&'static str, String)>| {
        session
            .post(format!("{}/logout", app.base))
            .header(header::ORIGIN, &app.base)
            .form(&form)
            .send()
    };
    assert_eq!(out(vec![]).await.unwrap().status(), 403);
    assert_eq!(out(vec![("csrf", "x".into())]).await.unwrap().status(), 403);
    assert_eq!(me_status(&session, &app).await, 200);
    assert_eq!(out(vec![("csrf", token.clone())]).await.unwrap().status(), 303);
    assert_eq!(me_status(&session, &app).await, 401);

    // Each forged attempt is in the audit log under the user's name.
    let (_, page) = app.get("/api/v1/audit?action=forged_request&user=guest").await;
    let forged = page["items"].as_array().unwrap();
    assert_eq!(forged.len(), 6, "{page}");
    assert!(forged.iter().all(|e| e["result"] == "refused"), "{page}");
    app.stop().await;
}
