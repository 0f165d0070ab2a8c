//! The sign-in page, plain HTML from the server: it must work before any
//! wasm loads, and it is the one page a stranger sees.

use app::model::{AuditAction, AuditResult};
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use base64::Engine;

use super::{safe_next, session_token, source_of, Auth, Refusal, SESSION_COOKIE};
use crate::store::NewAudit;

#[derive(Debug, serde::Deserialize, Default)]
pub struct NextParam {
    #[serde(default)]
    next: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

fn page(next: &str, user: &str, error: Option<&str>) -> String {
    let error = error.map_or_else(String::new, |e| {
        format!(r#"<p class="banner error" role="alert">{}</p>"#, escape(e))
    });
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>Sign in · Redrive</title><link rel="icon" href="/favicon.ico"/><link rel="stylesheet" href="/pkg/{css}.css"/></head>
<body><main class="sign-in">
<h1>Redrive</h1>
<p>Sign in with your RabbitMQ user. Redrive checks the password with the broker and never stores it.</p>
{error}
<form method="post" action="/login">
<input type="hidden" name="next" value="{next}"/>
<label>User <input name="user" autocomplete="username" required value="{user}" autofocus/></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required/></label>
<button type="submit">Sign in</button>
</form></main></body></html>"#,
        css = env!("LEPTOS_OUTPUT_NAME"),
        next = escape(next),
        user = escape(user),
    )
}

/// `GET /login`.
pub async fn sign_in_form(Query(q): Query<NextParam>) -> Html<String> {
    Html(page(&safe_next(q.next.as_deref()), "", None))
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn behind_tls(req: &Request) -> bool {
    req.headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// `POST /login` (a form): checks the password with the broker, starts a
/// session, and goes back to where the user was headed.
pub async fn sign_in_submit(State(auth): State<Auth>, req: Request) -> Response {
    let from = source_of(&req);
    let secure = behind_tls(&req);
    let form = match Form::<SignInForm>::from_request(req, &auth).await {
        Ok(Form(f)) => f,
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                Html(page("/", "", Some("The form was incomplete."))),
            )
                .into_response()
        }
    };
    let next = safe_next(form.next.as_deref());
    let user = form.user.trim();
    let principal = match auth.check_password(user, &form.password, from).await {
        Ok(p) => p,
        Err(refusal) => {
            let (status, why) = match refusal {
                Refusal::Throttled(_) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many failed sign-ins; wait a moment and try again.",
                ),
                Refusal::Unavailable(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
                Refusal::SignIn(_) => (StatusCode::UNAUTHORIZED, "Unknown user or wrong password."),
            };
            return (status, Html(page(&next, user, Some(why)))).into_response();
        }
    };
    let token = random_token();
    let csrf = random_token();
    if let Err(e) = auth
        .store
        .create_session(&token, &principal.user, &csrf, Some(&from.to_string()))
        .await
    {
        tracing::error!(error = %e, "could not store a session");
        let why = "Redrive could not start a session; see its log.";
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Html(page(&next, user, Some(why))),
        )
            .into_response();
    }
    auth.audit(NewAudit::attempt(
        &principal.user,
        Some(from.to_string()),
        AuditAction::SignIn,
        AuditResult::Ok,
        None,
    ))
    .await;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    let mut res = (StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// The CSRF token a form posted, if any.
fn posted_token(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == app::api::CSRF_FIELD)
        .map(|(_, v)| v.into_owned())
}

/// `POST /logout`: ends the session on the server, not only in the browser.
/// The form carries the session's CSRF token, so another site cannot sign
/// the user out.
pub async fn sign_out(State(auth): State<Auth>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let caller = parts.extensions.get::<super::Caller>().cloned();
    if let Some(caller) = &caller {
        if let Some(expected) = caller.csrf.as_deref() {
            let body = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
            let sent = posted_token(&body).unwrap_or_default();
            if !super::same_secret(&sent, expected) {
                return super::refuse_forged(&auth, caller, "/logout").await;
            }
        }
    }
    if let Some(token) = session_token(&parts.headers) {
        if let Err(e) = auth.store.delete_session(&token).await {
            tracing::error!(error = %e, "could not end a session");
        }
    }
    if let Some(caller) = caller {
        auth.audit(NewAudit::attempt(
            caller.user(),
            caller.source.clone(),
            AuditAction::SignOut,
            AuditResult::Ok,
            None,
        ))
        .await;
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/login".to_owned()),
            (header::SET_COOKIE, clear),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_escapes_what_the_user_typed() {
        let html = page("/x\"><script>", "<img src=x onerror=alert(1)>", Some("<b>"));
        assert!(!html.contains("<img src=x"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    }
}
