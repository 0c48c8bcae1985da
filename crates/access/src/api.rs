//! The API server (`serve.api`): forward-auth `/decisions`, `/rules`, health and version, in
//! the shapes of Oathkeeper's OpenAPI document.

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use http::{StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use crate::Access;
use crate::request;

pub(crate) fn router(access: Access) -> Router {
    Router::new()
        .route("/health/alive", get(alive))
        .route("/health/ready", get(ready))
        .route("/version", get(version))
        .route("/rules", get(list_rules))
        .route("/rules/{id}", get(get_rule))
        .route("/decisions", any(decisions))
        .route("/decisions/{*rest}", any(decisions))
        .with_state(access)
}

async fn alive() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(access): State<Access>) -> Response {
    if access.snapshot().rules.valid_count() > 0 {
        Json(json!({"status": "ok"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"errors": {"rules_loaded": "no valid access rules are loaded"}})),
        )
            .into_response()
    }
}

async fn version() -> Json<serde_json::Value> {
    Json(json!({"version": env!("CARGO_PKG_VERSION")}))
}

#[derive(Deserialize)]
struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn list_rules(State(access): State<Access>, Query(page): Query<Page>) -> Response {
    let limit = page.limit.unwrap_or(50).min(500);
    let offset = page.offset.unwrap_or(0);
    let snapshot = access.snapshot();
    let rules: Vec<_> = snapshot
        .rules
        .rules()
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| &r.raw)
        .collect();
    Json(rules).into_response()
}

fn not_found(message: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": {"code": 404, "status": "Not Found", "message": message}})),
    )
        .into_response()
}

async fn get_rule(State(access): State<Access>, Path(id): Path<String>) -> Response {
    let snapshot = access.snapshot();
    match snapshot.rules.rules().iter().find(|r| r.raw.id == id) {
        Some(rule) => Json(&rule.raw).into_response(),
        None => not_found("Unable to find rule"),
    }
}

async fn decisions(State(access): State<Access>, req: Request) -> Response {
    let (parts, _body) = req.into_parts();
    let rest = parts
        .uri
        .path()
        .strip_prefix("/decisions")
        .unwrap_or_default()
        .to_string();
    let snapshot = access.snapshot();
    let (ctx, valid) = request::for_decisions(&parts, &rest);
    if let Err(error) = valid {
        return snapshot.respond(&error.into(), &ctx);
    }
    match snapshot.decide(&ctx).await {
        Ok(decision) => {
            let mut response = StatusCode::OK.into_response();
            for name in decision.session.header.keys() {
                if name == header::CONTENT_LENGTH {
                    continue;
                }
                if let Some(value) = decision.session.header.get(name) {
                    response.headers_mut().insert(name.clone(), value.clone());
                }
            }
            response
        }
        Err(failure) => snapshot.respond(&failure, &ctx),
    }
}
