//! Sign-in with the broker's own users, and who is asking on each request.
//!
//! The REST API takes HTTP Basic; the UI signs in through a form that starts
//! a server-side session (an HttpOnly, SameSite=Strict cookie holding a
//! random token; the database keeps only its hash, so instances share
//! sessions and a copy of the database opens none). Everything needs a
//! signed-in user except the health probes, static assets and the sign-in
//! page itself.

pub mod directory;
mod pages;
pub mod throttle;
pub mod web;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use app::model::{AuditAction, AuditResult};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

pub use crate::domain::access::{Caller, Principal};
pub use directory::{AuthError, Directory};
pub use pages::{sign_in_form, sign_in_submit, sign_out};
pub use throttle::Throttle;

use crate::broker::ManagementError;
use crate::store::{NewAudit, Store};

pub const SESSION_COOKIE: &str = "redrive_session";

/// Sign-in machinery shared by the middleware and the sign-in pages.
#[derive(Clone)]
pub struct Auth {
    pub directory: Directory,
    pub throttle: Throttle,
    pub store: Store,
    /// A session unused this long is over.
    pub idle: Duration,
}

/// Paths anyone may fetch.
fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/login" | "/favicon.ico") || path.starts_with("/pkg/")
}

/// The address a request came from, for throttling and the audit log.
pub fn source_of(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// Why a request has no user.
pub(crate) enum Refusal {
    SignIn(&'static str),
    Throttled(Duration),
    /// The broker (or the database) cannot check the caller now; the text
    /// says what an operator can do, without internal addresses.
    Unavailable(&'static str),
}

const CANNOT_CHECK: &str = "the broker's management API cannot check sign-ins right now; try again shortly";
/// A fresh broker without the management plugin is the common first-run
/// cause; say the one-line fix instead of "try again".
const PLUGIN_OFF: &str = "Redrive checks sign-ins with the broker's management API, and nothing answers \
    there: if the broker is new, enable the plugin with `rabbitmq-plugins enable rabbitmq_management`";

fn cannot_check(e: &ManagementError) -> Refusal {
    Refusal::Unavailable(if e.is_not_listening() {
        PLUGIN_OFF
    } else {
        CANNOT_CHECK
    })
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

impl Auth {
    /// Records an audit entry; a failure to record is logged, never hidden.
    pub async fn audit(&self, entry: NewAudit) {
        if let Err(e) = self.store.append_audit(&entry).await {
            tracing::error!(error = %e, action = entry.action.as_str(), user = %entry.user, "could not write an audit entry");
        }
    }

    /// Checks a password, slowed down after failures; audits failures.
    pub(crate) async fn check_password(
        &self,
        user: &str,
        password: &str,
        from: IpAddr,
    ) -> Result<Arc<Principal>, Refusal> {
        if let Some(wait) = self.throttle.wait(user, from) {
            return Err(Refusal::Throttled(wait));
        }
        let verified = self.directory.verify(user, password).await;
        let principal = match verified {
            Ok(()) => self.directory.principal(user).await,
            Err(e) => Err(e),
        };
        match principal {
            Ok(p) => {
                self.throttle.succeeded(user);
                Ok(p)
            }
            Err(AuthError::BadCredentials) => {
                self.throttle.failed(user, from);
                self.audit(NewAudit::attempt(
                    user,
                    Some(from.to_string()),
                    AuditAction::SignInFailed,
                    AuditResult::Refused,
                    None,
                ))
                .await;
                Err(Refusal::SignIn("unknown user or wrong password"))
            }
            Err(AuthError::Unavailable(e)) => {
                tracing::warn!(error = %e, "cannot check credentials: management API unavailable");
                Err(cannot_check(&e))
            }
        }
    }

    async fn identify(&self, headers: &HeaderMap, from: IpAddr) -> Result<Caller, Refusal> {
        let source = Some(from.to_string());
        if let Some((user, password)) = basic_credentials(headers) {
            let principal = self.check_password(&user, &password, from).await?;
            return Ok(Caller {
                principal,
                source,
                csrf: None,
            });
        }
        let Some(token) = session_token(headers) else {
            return Err(Refusal::SignIn("sign in required"));
        };
        let idle = i64::try_from(self.idle.as_millis()).unwrap_or(i64::MAX);
        let session = self.store.touch_session(&token, idle).await.map_err(|e| {
            tracing::error!(error = %e, "reading a session failed");
            Refusal::Unavailable("Redrive cannot read its database right now; see its log")
        })?;
        let Some(session) = session else {
            return Err(Refusal::SignIn("your session has ended; sign in again"));
        };
        match self.directory.principal(&session.user).await {
            Ok(principal) => Ok(Caller {
                principal,
                source,
                csrf: Some(session.csrf),
            }),
            Err(AuthError::BadCredentials) => {
                // The broker no longer knows this user: end the session.
                let _ = self.store.delete_session(&token).await;
                Err(Refusal::SignIn("your user no longer exists on the broker"))
            }
            Err(AuthError::Unavailable(e)) => {
                tracing::warn!(error = %e, "cannot read permissions: management API unavailable");
                Err(cannot_check(&e))
            }
        }
    }
}

fn json_error(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": error }))).into_response()
}

fn sign_in_required(why: &str) -> Response {
    let mut res = json_error(StatusCode::UNAUTHORIZED, why);
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Redrive\", charset=\"UTF-8\""),
    );
    res
}

fn too_many(wait: Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut res = json_error(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("too many failed sign-ins; try again in {secs} s"),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

/// A path to come back to after signing in: local paths only.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.starts_with("/login") =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// Compares two secrets in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a session-signed request may change state: it must echo the
/// session's CSRF token in [`app::api::CSRF_HEADER`]. Sign-out is a plain
/// HTML form and checks the token in its body itself.
fn csrf_ok(caller: &Caller, method: &Method, path: &str, headers: &HeaderMap) -> bool {
    let Some(expected) = caller.csrf.as_deref() else {
        return true;
    };
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) || path == "/logout" {
        return true;
    }
    headers
        .get(app::api::CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sent| same_secret(sent, expected))
}

/// Refuses a forged state change, and records it: someone tried to act as
/// this user from elsewhere.
async fn refuse_forged(auth: &Auth, caller: &Caller, path: &str) -> Response {
    tracing::warn!(user = %caller.user(), path, "state change without the session's CSRF token refused");
    auth.audit(NewAudit::attempt(
        caller.user(),
        caller.source.clone(),
        AuditAction::ForgedRequest,
        AuditResult::Refused,
        Some(path.to_owned()),
    ))
    .await;
    json_error(
        StatusCode::FORBIDDEN,
        "missing or wrong CSRF token; reload the page and try again",
    )
}

/// Lets a request through with its [`Caller`], or answers 401 (API and
/// server functions), a redirect to the sign-in page (pages), 403 (a
/// session's state change without its CSRF token), 429 or 503.
pub async fn require_user(State(auth): State<Auth>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if is_public(&path) {
        return next.run(req).await;
    }
    let from = source_of(&req);
    match auth.identify(req.headers(), from).await {
        Ok(caller) if !csrf_ok(&caller, req.method(), &path, req.headers()) => {
            refuse_forged(&auth, &caller, &path).await
        }
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(Refusal::Throttled(wait)) => too_many(wait),
        Err(Refusal::Unavailable(why)) => json_error(StatusCode::SERVICE_UNAVAILABLE, why),
        Err(Refusal::SignIn(why)) if path.starts_with("/api/") => sign_in_required(why),
        // Server functions: no Basic challenge, or the browser would prompt.
        Err(Refusal::SignIn(why)) if path.starts_with("/rpc/") => json_error(StatusCode::UNAUTHORIZED, why),
        Err(Refusal::SignIn(_)) => {
            let here = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
            let target = format!(
                "/login?next={}",
                percent_encoding::utf8_percent_encode(&here, percent_encoding::NON_ALPHANUMERIC)
            );
            (StatusCode::SEE_OTHER, [(header::LOCATION, target)]).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_parse_and_odd_headers_do_not() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic Z3Vlc3Q6Z3U6ZXN0"),
        );
        assert_eq!(basic_credentials(&h), Some(("guest".into(), "gu:est".into())));
        for odd in ["Basic", "Basic !!!", "Bearer x", "Basic Z3Vlc3Q="] {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(odd));
            assert_eq!(basic_credentials(&h), None, "{odd}");
        }
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/messages?q=x")), "/messages?q=x");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "/login?next=/x",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; redrive_session=tok; b=2"),
        );
        assert_eq!(session_token(&h).as_deref(), Some("tok"));
        h.insert(header::COOKIE, HeaderValue::from_static("redrive_session="));
        assert_eq!(session_token(&h), None);
    }
}
