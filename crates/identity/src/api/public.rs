//! The public API (Kratos's port 4433).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get};
use base64::Engine;
use portcullis_core::timefmt::rfc3339;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::driver::Registry;
use crate::error::ApiError;
use crate::persistence::{ErrorStore, SessionStore};
use crate::selfservice::flow::{
    FlowType, Kind, login, logout, recovery, registration, settings, verification,
};
use crate::session::tokenizer::Subject;
use crate::x::{self, Ctx};

type Reg = State<Arc<Registry>>;

/// Builds the public router.
pub(crate) fn router(reg: Arc<Registry>) -> Router {
    let router = Router::new()
        .route(
            "/self-service/login/browser",
            get(|State(r): Reg, ctx: Ctx| login::init(r, ctx, FlowType::Browser)),
        )
        .route(
            "/self-service/login/api",
            get(|State(r): Reg, ctx: Ctx| login::init(r, ctx, FlowType::Api)),
        )
        .route(
            "/self-service/login/flows",
            get(|State(r): Reg, ctx: Ctx| async move {
                crate::selfservice::flow::get(&r, ctx, Kind::Login).await
            }),
        )
        .route("/self-service/login", get(login_submit).post(login_submit))
        .route(
            "/self-service/registration/browser",
            get(|State(r): Reg, ctx: Ctx| registration::init(r, ctx, FlowType::Browser)),
        )
        .route(
            "/self-service/registration/api",
            get(|State(r): Reg, ctx: Ctx| registration::init(r, ctx, FlowType::Api)),
        )
        .route(
            "/self-service/registration/flows",
            get(|State(r): Reg, ctx: Ctx| async move {
                crate::selfservice::flow::get(&r, ctx, Kind::Registration).await
            }),
        )
        .route(
            "/self-service/registration",
            get(registration_submit).post(registration_submit),
        )
        .route(
            "/self-service/verification/browser",
            get(|State(r): Reg, ctx: Ctx| verification::init(r, ctx, FlowType::Browser)),
        )
        .route(
            "/self-service/verification/api",
            get(|State(r): Reg, ctx: Ctx| verification::init(r, ctx, FlowType::Api)),
        )
        .route(
            "/self-service/verification/flows",
            get(|State(r): Reg, ctx: Ctx| async move {
                crate::selfservice::flow::get(&r, ctx, Kind::Verification).await
            }),
        )
        .route(
            "/self-service/verification",
            get(verification_submit).post(verification_submit),
        )
        .route(
            "/self-service/recovery/browser",
            get(|State(r): Reg, ctx: Ctx| recovery::init(r, ctx, FlowType::Browser)),
        )
        .route(
            "/self-service/recovery/api",
            get(|State(r): Reg, ctx: Ctx| recovery::init(r, ctx, FlowType::Api)),
        )
        .route(
            "/self-service/recovery/flows",
            get(|State(r): Reg, ctx: Ctx| async move {
                crate::selfservice::flow::get(&r, ctx, Kind::Recovery).await
            }),
        )
        .route(
            "/self-service/recovery",
            get(recovery_submit).post(recovery_submit),
        )
        .route(
            "/self-service/settings/browser",
            get(|State(r): Reg, ctx: Ctx| settings::init(r, ctx, FlowType::Browser)),
        )
        .route(
            "/self-service/settings/api",
            get(|State(r): Reg, ctx: Ctx| settings::init(r, ctx, FlowType::Api)),
        )
        .route(
            "/self-service/settings/flows",
            get(|State(r): Reg, ctx: Ctx| settings::get(r, ctx)),
        )
        .route(
            "/self-service/settings",
            get(settings_submit).post(settings_submit),
        )
        .route(
            "/self-service/logout/browser",
            get(|State(r): Reg, ctx: Ctx| logout::create_browser(r, ctx)),
        )
        .route(
            "/self-service/logout",
            get(|State(r): Reg, ctx: Ctx| logout::update(r, ctx)),
        )
        .route("/self-service/logout/api", delete(logout_api))
        .route("/self-service/errors", get(flow_error))
        .route("/sessions/whoami", any(whoami))
        .route(
            "/sessions",
            get(list_my_sessions).delete(disable_my_other_sessions),
        )
        .route("/sessions/{id}", delete(disable_my_session))
        .route("/schemas", get(list_schemas))
        .route("/schemas/{id}", get(get_schema))
        .route("/health/alive", get(super::alive))
        .route("/health/ready", get(ready))
        .merge(super::cross_port::admin_paths())
        .fallback(super::not_found)
        .method_not_allowed_fallback(super::method_not_allowed)
        .layer(axum::middleware::from_fn(super::no_cache));
    let router = match reg.config.cors.clone() {
        Some(cors) => router.layer(axum::middleware::from_fn_with_state(
            Arc::new(cors),
            super::cors::layer,
        )),
        None => router,
    };
    router.with_state(reg)
}

async fn login_submit(State(r): Reg, ctx: Ctx, body: Body) -> Response {
    match x::read_body(body).await {
        Ok(body) => login::submit(r, ctx, body).await,
        Err(e) => e.into_response(),
    }
}

async fn registration_submit(State(r): Reg, ctx: Ctx, body: Body) -> Response {
    match x::read_body(body).await {
        Ok(body) => registration::submit(r, ctx, body).await,
        Err(e) => e.into_response(),
    }
}

async fn verification_submit(State(r): Reg, ctx: Ctx, body: Body) -> Response {
    match x::read_body(body).await {
        Ok(body) => verification::submit(r, ctx, body).await,
        Err(e) => e.into_response(),
    }
}

async fn recovery_submit(State(r): Reg, ctx: Ctx, body: Body) -> Response {
    match x::read_body(body).await {
        Ok(body) => recovery::submit(r, ctx, body).await,
        Err(e) => e.into_response(),
    }
}

async fn settings_submit(State(r): Reg, ctx: Ctx, body: Body) -> Response {
    match x::read_body(body).await {
        Ok(body) => settings::submit(r, ctx, body).await,
        Err(e) => e.into_response(),
    }
}

async fn logout_api(State(r): Reg, ctx: Ctx, body: Body) -> Response {
    match x::read_body(body).await {
        Ok(body) => logout::perform_native(r, ctx, body).await,
        Err(e) => e.into_response(),
    }
}

/// `/sessions/whoami`: the session JSON, or exactly Kratos's 401; with `?tokenize_as=`, the
/// session also as a JWT (`tokenized`), or Kratos's 400 when it cannot be made.
async fn whoami(State(reg): Reg, ctx: Ctx) -> Response {
    match reg.session_of(&ctx).await {
        Ok(Some(session)) => {
            let now = reg.now();
            let mut body = session.to_json(&reg.config.public_base_url, now);
            if let Some(template) = ctx.query("tokenize_as").filter(|t| !t.is_empty()) {
                let subject = Subject {
                    session_id: session.id,
                    identity_id: session.identity_id,
                    external_id: session
                        .identity
                        .as_ref()
                        .and_then(|i| i.external_id.as_deref()),
                    session: &body,
                };
                let token = reg.config.tokenizer.tokenize(
                    &template,
                    &subject,
                    reg.config.public_base_url.as_str(),
                    now,
                );
                match token {
                    Ok(token) => {
                        if let Some(map) = body.as_object_mut() {
                            map.insert("tokenized".into(), Value::String(token));
                        }
                    }
                    Err(e) => return ApiError::from(e).into_response(),
                }
            }
            let mut res = Json(body).into_response();
            if let Ok(v) = HeaderValue::from_str(&session.identity_id.to_string()) {
                res.headers_mut()
                    .insert("x-kratos-authenticated-identity-id", v);
            }
            res
        }
        Ok(None) => ApiError::whoami_unauthorized().into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /sessions`: the caller's other active sessions (the current one excluded).
async fn list_my_sessions(State(reg): Reg, ctx: Ctx) -> Response {
    let current = match reg.session_of(&ctx).await {
        Ok(Some(s)) => s,
        Ok(None) => return ApiError::session_inactive().into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    match reg.store.sessions_of(current.identity_id, true).await {
        Ok(list) => {
            let now = reg.now();
            let body: Vec<Value> = list
                .iter()
                .filter(|s| s.id != current.id)
                .map(|s| s.to_json(&reg.config.public_base_url, now))
                .collect();
            Json(body).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `DELETE /sessions`: revokes the caller's other sessions; `{"count": n}`.
async fn disable_my_other_sessions(State(reg): Reg, ctx: Ctx) -> Response {
    let current = match reg.session_of(&ctx).await {
        Ok(Some(s)) => s,
        Ok(None) => return ApiError::session_inactive().into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    match reg
        .store
        .revoke_sessions_of(current.identity_id, Some(current.id))
        .await
    {
        Ok(count) => Json(json!({ "count": count })).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `DELETE /sessions/{id}`: revokes another session of the caller; the current one must be
/// ended through the logout flow.
async fn disable_my_session(State(reg): Reg, ctx: Ctx, Path(id): Path<String>) -> Response {
    let current = match reg.session_of(&ctx).await {
        Ok(Some(s)) => s,
        Ok(None) => return ApiError::session_inactive().into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let Ok(id) = Uuid::parse_str(&id) else {
        return ApiError::not_found("The session could not be found.").into_response();
    };
    if id == current.id {
        return ApiError::bad_request(
            "You are not allowed to revoke your current session. Please use the logout flow instead.",
        )
        .into_response();
    }
    match reg.store.get_session(id).await {
        Ok(Some(s)) if s.identity_id == current.identity_id => {
            match reg.store.revoke_session(s.id).await {
                Ok(()) => StatusCode::NO_CONTENT.into_response(),
                Err(e) => ApiError::from(e).into_response(),
            }
        }
        Ok(_) => ApiError::not_found("The session could not be found.").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /self-service/errors?id=`.
async fn flow_error(State(reg): Reg, ctx: Ctx) -> Response {
    let raw = ctx
        .query("id")
        .or_else(|| ctx.query("error"))
        .unwrap_or_default();
    let Ok(id) = Uuid::parse_str(raw.trim()) else {
        return ApiError::not_found("The requested error could not be found.").into_response();
    };
    match reg.store.get_error(id).await {
        Ok(Some((error, created))) => Json(json!({
            "id": id,
            "error": error,
            "created_at": rfc3339(created),
            "updated_at": rfc3339(created),
        }))
        .into_response(),
        Ok(None) => ApiError::not_found("The requested error could not be found.").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /schemas`.
async fn list_schemas(State(reg): Reg) -> Response {
    let list: Vec<Value> = reg
        .config
        .schemas()
        .iter()
        .map(|s| json!({"id": s.id(), "schema": s.raw()}))
        .collect();
    Json(list).into_response()
}

/// `GET /schemas/{id}`: the raw schema; the id may be base64url-encoded, as in `schema_url`.
async fn get_schema(State(reg): Reg, Path(id): Path<String>) -> Response {
    let schemas = reg.config.schemas();
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id.trim_end_matches('='))
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let found = schemas
        .get(&id)
        .or_else(|| decoded.as_deref().and_then(|d| schemas.get(d)));
    match found {
        Some(s) => Json(s.raw().clone()).into_response(),
        None => ApiError::not_found("The requested resource could not be found")
            .reason("Identity schema could not be found.")
            .into_response(),
    }
}

/// `GET /health/ready`: the store answers.
pub(crate) async fn ready(State(reg): Reg) -> Response {
    if reg.store.ping().await {
        Json(json!({"status": "ok"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"errors": {"database": "the database is not reachable"}})),
        )
            .into_response()
    }
}
