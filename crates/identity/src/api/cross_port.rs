//! Kratos's cross-port convenience redirects: admin routes asked for on the public port, and
//! the public self-service routes asked for on the admin port, answer `307 Temporary Redirect`
//! to the same path and query on the other port's base URL (307 keeps the method and body).

use std::sync::Arc;

use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete};
use url::Url;

use crate::config::join_url;
use crate::driver::Registry;

/// Admin paths served on the public port, redirected to `serve.admin.base_url`.
pub(crate) fn admin_paths() -> Router<Arc<Registry>> {
    Router::new()
        .route("/admin/identities", any(to_admin))
        .route("/admin/identities/{*rest}", any(to_admin))
        .route("/admin/courier/messages", any(to_admin))
        .route("/admin/courier/messages/{*rest}", any(to_admin))
        .route("/admin/recovery/link", any(to_admin))
        .route("/admin/recovery/code", any(to_admin))
}

/// Public paths served on the admin port, redirected to `serve.public.base_url`.
pub(crate) fn public_paths() -> Router<Arc<Registry>> {
    Router::new()
        .route("/self-service/{*rest}", any(to_public))
        .route("/schemas", any(to_public))
        .route("/schemas/{*rest}", any(to_public))
        .route("/sessions", delete(to_public))
}

async fn to_admin(State(reg): State<Arc<Registry>>, OriginalUri(uri): OriginalUri) -> Response {
    redirect(&reg.config.admin_base_url, &uri)
}

async fn to_public(State(reg): State<Arc<Registry>>, OriginalUri(uri): OriginalUri) -> Response {
    redirect(&reg.config.public_base_url, &uri)
}

fn redirect(base: &Url, uri: &axum::http::Uri) -> Response {
    let target = join_url(base, uri.path_and_query().map_or("/", |p| p.as_str()));
    match HeaderValue::from_str(&target) {
        Ok(location) => (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
        // A configured base URL is always a valid header value; never answer garbage.
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
