//! The HTTP surface: REST API, health probes, the Leptos UI and its assets.

use std::path::Path;
use std::sync::Arc;

use app::backend::BackendHandle;
use app::{shell, App};
use axum::extract::FromRef;
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;

use crate::api;
use crate::service::Redrive;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub redrive: Redrive,
}

pub fn router(redrive: Redrive, site_root: &Path) -> Router {
    let leptos_options = LeptosOptions::builder()
        .output_name(env!("LEPTOS_OUTPUT_NAME"))
        .site_root(site_root.to_string_lossy().into_owned())
        .site_pkg_dir("pkg")
        .build();
    let backend: BackendHandle = Arc::new(redrive.clone());
    let state = AppState {
        leptos_options: leptos_options.clone(),
        redrive,
    };
    let routes = generate_route_list(App);
    Router::new()
        .nest("/api/v1", api::router())
        .merge(api::health_router())
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(backend.clone()),
            move || shell(leptos_options.clone()),
        )
        .nest_service("/pkg", ServeDir::new(site_root.join("pkg")))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(CompressionLayer::new())
        .with_state(state)
}
