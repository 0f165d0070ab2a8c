//! The client every server function calls through: the browser's `fetch`,
//! plus the session's CSRF token in [`CSRF_HEADER`].
//!
//! The session cookie is SameSite=Strict and the server checks `Origin`, but
//! a token another site cannot read is the defence that does not depend on
//! browsers getting either right. The page carries the token in
//! `<meta name="csrf-token">` (see [`CsrfMeta`]); a request without it is
//! refused before any server function runs.

use std::future::Future;

use leptos::prelude::*;
use leptos::server_fn::client::browser::BrowserClient;
use leptos::server_fn::client::Client;
use leptos::server_fn::error::FromServerFnError;
use leptos::server_fn::request::browser::BrowserRequest;
use leptos::server_fn::response::browser::BrowserResponse;
use leptos::server_fn::Bytes;

/// The request header that carries the token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field that carries it in plain HTML forms (sign-out).
pub const CSRF_FIELD: &str = "csrf";

/// The signed-in session's CSRF token, provided in context by the server
/// for the page being rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrfToken(pub String);

/// The token as the page carries it; empty when there is no session.
pub fn csrf_token() -> String {
    #[cfg(feature = "hydrate")]
    {
        web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.query_selector("meta[name=csrf-token]").ok().flatten())
            .and_then(|m| m.get_attribute("content"))
            .unwrap_or_default()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        use_context::<CsrfToken>().map(|t| t.0).unwrap_or_default()
    }
}

/// `<meta name="csrf-token">` for the page's `<head>`.
#[component]
pub fn CsrfMeta() -> impl IntoView {
    let token = use_context::<CsrfToken>().map(|t| t.0);
    token.map(|t| view! { <meta name="csrf-token" content=t/> })
}

/// [`BrowserClient`] with the CSRF header added to every call.
pub struct CsrfClient;

impl<E, I, O> Client<E, I, O> for CsrfClient
where
    E: FromServerFnError,
    I: FromServerFnError,
    O: FromServerFnError,
{
    type Request = BrowserRequest;
    type Response = BrowserResponse;

    fn send(req: Self::Request) -> impl Future<Output = Result<Self::Response, E>> + Send {
        req.headers().set(CSRF_HEADER, &csrf_token());
        <BrowserClient as Client<E, I, O>>::send(req)
    }

    fn open_websocket(
        url: &str,
    ) -> impl Future<
        Output = Result<
            (
                impl futures::Stream<Item = Result<Bytes, Bytes>> + Send + 'static,
                impl futures::Sink<Bytes> + Send + 'static,
            ),
            E,
        >,
    > + Send {
        <BrowserClient as Client<E, I, O>>::open_websocket(url)
    }

    fn spawn(future: impl Future<Output = ()> + Send + 'static) {
        <BrowserClient as Client<E, I, O>>::spawn(future);
    }
}
