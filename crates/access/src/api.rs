//! The API server (`serve.api`): forward-auth `/decisions`, `/rules`, health and version, in
//! the shapes of Oathkeeper's OpenAPI document.

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use http::{StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use crate::pipeline::mutate::Mutator;
use crate::{Access, credentials, request};

pub(crate) fn router(access: Access) -> Router {
    Router::new()
        .route("/health/alive", get(alive))
        .route("/health/ready", get(ready))
        .route("/version", get(version))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/metrics", get(metrics))
        .route("/rules", get(list_rules))
        .route("/rules/{id}", get(get_rule))
        .route("/decisions", any(decisions))
        .route("/decisions/{*rest}", any(decisions))
        .with_state(access)
}

async fn alive() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready means "serving a rule set with at least one valid rule" (Oathkeeper's
/// `rules_loaded` check): 200 `{"status":"ok"}`, else 503 `{"errors":{"rules_loaded":…}}`.
///
/// A rule file whose latest edit failed to load does not make the proxy unready — it keeps
/// enforcing the last good rules, and every replica watching the same broken ConfigMap
/// dropping out of rotation would turn a typo into an outage — but it is never hidden:
/// each such repository is listed under `errors` (keyed by its URL, with the file, line and
/// rule of the problem) next to the status, on 200 and 503 alike, until the file loads.
async fn ready(State(access): State<Access>) -> Response {
    let mut errors = serde_json::Map::new();
    for (location, error) in access.reload_failures() {
        errors.insert(location, json!(error));
    }
    if access.snapshot().rules.valid_count() > 0 {
        let mut body = json!({"status": "ok"});
        if !errors.is_empty() {
            body["errors"] = serde_json::Value::Object(errors);
        }
        Json(body).into_response()
    } else {
        errors.insert(
            "rules_loaded".into(),
            json!("no valid access rules are loaded"),
        );
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "errors": errors })),
        )
            .into_response()
    }
}

async fn version() -> Json<serde_json::Value> {
    Json(json!({"version": env!("CARGO_PKG_VERSION")}))
}

/// The public keys of every key set the `id_token` mutator signs with: the global
/// `mutators.id_token.config.jwks_url` and each rule's own; symmetric keys are never shown.
async fn jwks(State(access): State<Access>) -> Response {
    let mut urls: Vec<String> = access.config().id_token_jwks_url().into_iter().collect();
    for rule in access.snapshot().rules.rules() {
        let Ok(pipeline) = &rule.pipeline else {
            continue;
        };
        for mutator in &pipeline.mutators {
            if let Mutator::IdToken(m) = mutator
                && !urls.iter().any(|u| u == m.jwks_url())
            {
                urls.push(m.jwks_url().to_string());
            }
        }
    }
    let mut keys = Vec::new();
    for url in &urls {
        match access.fetcher().resolve(url).await {
            Ok(set) => keys.extend(set.keys.iter().filter_map(credentials::public_part)),
            Err(e) => {
                tracing::error!(error = %e, "cannot publish JSON Web Keys");
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({"error": {"code": 500, "status": "Internal Server Error",
                        "message": "An internal server error occurred, please contact the system administrator"}})),
                )
                    .into_response();
            }
        }
    }
    Json(json!({ "keys": keys })).into_response()
}

async fn metrics(State(access): State<Access>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        access.metrics().render(),
    )
        .into_response()
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
    let (parts, mut body) = req.into_parts();
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
    let outcome = snapshot.decide(&ctx, &mut body).await;
    access.record(crate::metrics::API, &outcome);
    match outcome {
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
