//! The two HTTP APIs: public (self-service, whoami, schemas) and admin (identities). Both
//! answer unknown routes and every error in Kratos's envelope, and every GET response carries
//! Kratos's `Cache-Control: private, no-cache, no-store, must-revalidate`.

pub mod admin;
pub mod cors;
mod cross_port;
pub(crate) mod identities;
pub mod public;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ApiError;

/// Kratos's `NoCache` middleware.
pub(crate) async fn no_cache(req: Request, next: Next) -> Response {
    let is_get = req.method() == Method::GET;
    let mut res = next.run(req).await;
    if is_get && !res.headers().contains_key(header::CACHE_CONTROL) {
        res.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache, no-store, must-revalidate"),
        );
    }
    res
}

/// 404 for unknown routes, in the API's error shape.
pub(crate) async fn not_found() -> Response {
    ApiError::not_found("The requested route does not exist.").into_response()
}

/// 405 for a known route with the wrong method, in the API's error shape.
pub(crate) async fn method_not_allowed() -> Response {
    ApiError::new(axum::http::StatusCode::METHOD_NOT_ALLOWED)
        .reason("The HTTP method is not allowed on this route.")
        .into_response()
}

/// `GET /health/alive`.
pub(crate) async fn alive() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}
