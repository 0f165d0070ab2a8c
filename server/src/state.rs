//! What every HTTP handler may extract: the service, sign-in, the web
//! defences and the UI's options. Its own module so that the sign-in
//! middleware, the REST API and the router all depend on it and on nothing
//! above them.

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use crate::auth::web::Surface;
use crate::auth::Auth;
use crate::service::Redrive;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub redrive: Redrive,
    pub auth: Auth,
    pub surface: Surface,
}
