//! The web surface's defences, applied to every request before sign-in:
//! the `Host` must be one of Redrive's names (DNS rebinding cannot reach a
//! local instance), a state-changing request must come from Redrive's own
//! origin (browsers resend cookies and cached Basic credentials cross-site),
//! and every response carries a strict Content-Security-Policy with a fresh
//! nonce for the hydration script, `nosniff`, no framing and a same-origin
//! referrer policy.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

/// The nonce of one response's inline scripts, for the Leptos renderer.
#[derive(Debug, Clone)]
pub struct CspNonce(pub String);

/// Which hosts and origins Redrive answers to.
#[derive(Debug, Clone, Default)]
pub struct Surface {
    /// Host names (without port) accepted in `Host`; empty accepts any.
    pub hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`) accepted besides the request's own.
    pub origins: Vec<String>,
}

impl Surface {
    /// `hosts` as configured; when none are and Redrive listens on loopback
    /// only, the loopback names, so a rebound DNS name cannot reach it.
    pub fn new(hosts: &[String], origins: &[String], listen: std::net::SocketAddr) -> Self {
        let mut hosts: Vec<String> = hosts
            .iter()
            .filter(|h| !h.is_empty())
            .map(|h| h.to_ascii_lowercase())
            .collect();
        if hosts.is_empty() && listen.ip().is_loopback() {
            hosts = ["localhost", "127.0.0.1", "[::1]"].map(String::from).to_vec();
        }
        Self {
            hosts,
            origins: origins
                .iter()
                .filter(|o| !o.is_empty())
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        if self.hosts.is_empty() {
            return true;
        }
        let name = host_name(host);
        self.hosts.contains(&name)
    }

    /// Same origin as the request's `Host`, or one configured (a proxy's).
    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.origins.contains(&origin) {
            return true;
        }
        let Some(host) = host else { return false };
        let host = host.to_ascii_lowercase();
        origin == format!("http://{host}") || origin == format!("https://{host}")
    }
}

/// `example.com:3000` → `example.com`; `[::1]:3000` → `[::1]`.
fn host_name(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or_default().to_owned();
    }
    host.split(':').next().unwrap_or_default().to_owned()
}

/// The origin of a `Referer` URL.
fn referer_origin(referer: &str) -> Option<String> {
    let url = url::Url::parse(referer).ok()?;
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Why a request is refused before anything else looks at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    UnknownHost,
    CrossOrigin,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let (status, error) = match self {
            Self::UnknownHost => (
                StatusCode::MISDIRECTED_REQUEST,
                "unknown host name: set REDRIVE_ALLOWED_HOSTS to the names Redrive is reached by",
            ),
            Self::CrossOrigin => (
                StatusCode::FORBIDDEN,
                "cross-origin request refused: set REDRIVE_ALLOWED_ORIGINS when Redrive sits behind a proxy",
            ),
        };
        super::json_error(status, error)
    }
}

pub fn check(surface: &Surface, method: &Method, headers: &HeaderMap) -> Result<(), Refused> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if let Some(h) = host {
        if !surface.host_allowed(h) {
            return Err(Refused::UnknownHost);
        }
    }
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if safe {
        return Ok(());
    }
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get(header::REFERER)
                .and_then(|r| r.to_str().ok())
                .and_then(referer_origin)
        });
    match origin {
        // Neither header: not a browser (curl, scripts), which cannot be
        // made to send someone else's credentials.
        None => Ok(()),
        Some(o) if surface.origin_allowed(&o, host) => Ok(()),
        Some(_) => Err(Refused::CrossOrigin),
    }
}

fn fresh_nonce() -> String {
    base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes())
}

/// Host and origin checks, then the response headers.
pub async fn harden(State(surface): State<Surface>, mut req: Request, next: Next) -> Response {
    if let Err(refused) = check(&surface, req.method(), req.headers()) {
        return with_headers(refused.into_response(), None);
    }
    let nonce = fresh_nonce();
    req.extensions_mut().insert(CspNonce(nonce.clone()));
    with_headers(next.run(req).await, Some(&nonce))
}

fn with_headers(mut res: Response, nonce: Option<&str>) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        let script = nonce.map_or_else(String::new, |n| format!(" 'nonce-{n}'"));
        // 'wasm-unsafe-eval' lets the page compile its own wasm, nothing
        // else; inline style attributes are allowed (charts set widths).
        let csp = format!(
            "default-src 'self'; script-src 'self'{script} 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
             frame-ancestors 'none'"
        );
        if let Ok(v) = HeaderValue::from_str(&csp) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn local() -> Surface {
        Surface::new(&[], &[], "127.0.0.1:3000".parse().unwrap())
    }

    #[test]
    fn a_loopback_instance_answers_only_to_loopback_names() {
        let s = local();
        let ok = headers(&[(header::HOST, "localhost:3000")]);
        assert!(check(&s, &Method::GET, &ok).is_ok());
        assert!(check(&s, &Method::GET, &headers(&[(header::HOST, "[::1]:3000")])).is_ok());
        let rebound = headers(&[(header::HOST, "attacker.example:3000")]);
        assert!(check(&s, &Method::GET, &rebound).is_err());
        // Listening on all interfaces with no names configured: any host.
        let open = Surface::new(&[], &[], "0.0.0.0:3000".parse().unwrap());
        assert!(check(&open, &Method::GET, &rebound).is_ok());
        let named = Surface::new(&["redrive.example".into()], &[], "0.0.0.0:3000".parse().unwrap());
        assert!(check(&named, &Method::GET, &rebound).is_err());
    }

    #[test]
    fn state_changes_must_come_from_the_same_origin() {
        let s = local();
        let same = headers(&[
            (header::HOST, "127.0.0.1:3000"),
            (header::ORIGIN, "http://127.0.0.1:3000"),
        ]);
        assert!(check(&s, &Method::POST, &same).is_ok());
        let cross = headers(&[
            (header::HOST, "127.0.0.1:3000"),
            (header::ORIGIN, "https://evil.example"),
        ]);
        assert!(check(&s, &Method::POST, &cross).is_err());
        assert!(
            check(&s, &Method::GET, &cross).is_ok(),
            "reads are not state changes"
        );
        let null = headers(&[(header::HOST, "127.0.0.1:3000"), (header::ORIGIN, "null")]);
        assert!(check(&s, &Method::DELETE, &null).is_err());
        let referer = headers(&[
            (header::HOST, "127.0.0.1:3000"),
            (header::REFERER, "http://evil.example/x"),
        ]);
        assert!(check(&s, &Method::PUT, &referer).is_err());
        let referer = headers(&[
            (header::HOST, "127.0.0.1:3000"),
            (header::REFERER, "http://127.0.0.1:3000/q"),
        ]);
        assert!(check(&s, &Method::PUT, &referer).is_ok());
        let cli = headers(&[(header::HOST, "127.0.0.1:3000")]);
        assert!(
            check(&s, &Method::POST, &cli).is_ok(),
            "no browser, no ambient credentials"
        );
        let proxied = Surface::new(
            &[],
            &["https://redrive.example".into()],
            "127.0.0.1:3000".parse().unwrap(),
        );
        let via_proxy = headers(&[
            (header::HOST, "127.0.0.1:3000"),
            (header::ORIGIN, "https://redrive.example"),
        ]);
        assert!(check(&proxied, &Method::POST, &via_proxy).is_ok());
    }
}
