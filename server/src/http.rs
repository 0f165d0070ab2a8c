//! The HTTP surface: REST API, health probes, sign-in, the Leptos UI and its
//! assets, behind the web defences and the sign-in check.

use std::path::Path;

use app::{shell, App};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::{provide_context, use_context};
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;

use crate::api;
use crate::auth::web::CspNonce;
use crate::auth::{self, Caller};
use crate::service::{handle, Redrive};
use crate::state::AppState;

/// What each page render and server function gets in context: the signed-in
/// user's backend, their session's CSRF token for the page to echo, and the
/// nonce the page's inline scripts carry.
fn request_context(redrive: &Redrive) {
    let Some(parts) = use_context::<Parts>() else {
        return;
    };
    if let Some(caller) = parts.extensions.get::<Caller>() {
        provide_context(handle(redrive, caller.clone()));
        if let Some(csrf) = &caller.csrf {
            provide_context(app::api::CsrfToken(csrf.clone()));
        }
    }
    if let Some(CspNonce(nonce)) = parts.extensions.get::<CspNonce>() {
        provide_context(leptos::nonce::Nonce::from_value(nonce.as_str()));
    }
}

pub fn router(state: AppState, site_root: &Path) -> Router {
    let leptos_options = state.leptos_options.clone();
    let routes = generate_route_list(App);
    let redrive = state.redrive.clone();
    Router::new()
        .nest("/api/v1", api::router())
        .route("/login", get(auth::sign_in_form).post(auth::sign_in_submit))
        .route("/logout", post(auth::sign_out))
        .route("/metrics", get(api::monitoring::metrics))
        .route("/favicon.ico", get(favicon))
        .leptos_routes_with_context(
            &state,
            routes,
            move || request_context(&redrive),
            move || shell(leptos_options.clone()),
        )
        // scripts/build-site leaves brotli (quality 11) and gzip (-9) copies.
        .nest_service(
            "/pkg",
            ServeDir::new(site_root.join("pkg"))
                .precompressed_br()
                .precompressed_gzip(),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(axum::middleware::from_fn(rpc_status))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_user,
        ))
        // Probes answer without a user, but still behind the web defences.
        .merge(api::health_router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::web::harden,
        ))
        .layer(CompressionLayer::new())
        .with_state(state)
}

/// server_fn answers every server function error with 500. The error is
/// Redrive's typed `ApiError`, so its kind's status is set here, once for
/// all of them (arguments that do not decode included): an unknown id is a
/// 404 and a refusal a 403, as in the REST API.
async fn rpc_status(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let rpc = req.uri().path().starts_with("/rpc/");
    let res = next.run(req).await;
    if !rpc || res.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 256 * 1024).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Ok(e) = serde_json::from_slice::<app::model::ApiError>(&bytes) {
        parts.status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// The icon at the address browsers try when a page names none.
async fn favicon() -> impl axum::response::IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "image/svg+xml"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        app::FAVICON_SVG,
    )
}

/// Leptos options for the UI served from `site_root`.
pub fn leptos_options(site_root: &Path) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name(env!("LEPTOS_OUTPUT_NAME"))
        .site_root(site_root.to_string_lossy().into_owned())
        .site_pkg_dir("pkg")
        .build()
}
