//! The admin API (Kratos's port 4434). Every route answers both with and without the `/admin`
//! prefix, as Kratos's admin port does.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use portcullis_core::Secret;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::config::join_url;
use crate::courier::{CourierStore, MessageFilter, Status as CourierStatus};
use crate::driver::Registry;
use crate::error::ApiError;
use crate::identity::{State as IdentityState, View};
use crate::persistence::{IdentityStore, SessionStore, StoreError};
use crate::selfservice::flow::recovery;
use crate::selfservice::strategy::password::new_identity;
use crate::x::{self, Ctx};

type Reg = State<Arc<Registry>>;

/// Kratos's default and maximum `page_size`.
const DEFAULT_PAGE_SIZE: i64 = 250;
const MAX_PAGE_SIZE: i64 = 1000;

/// Builds the admin router.
pub(crate) fn router(reg: Arc<Registry>) -> Router {
    let routes = Router::new()
        .route(
            "/identities",
            get(super::identities::list)
                .post(create_identity)
                .patch(super::identities::batch_patch),
        )
        .route(
            "/identities/{id}",
            get(super::identities::get)
                .put(update_identity)
                .patch(patch_identity)
                .delete(delete_identity),
        )
        .route(
            "/identities/{id}/sessions",
            get(list_identity_sessions).delete(delete_identity_sessions),
        )
        .route("/sessions/{id}", get(get_session).delete(disable_session))
        .route("/recovery/code", post(create_recovery_code))
        .route("/recovery/link", post(create_recovery_link))
        .route("/courier/messages", get(list_courier_messages))
        .route("/courier/messages/{id}", get(get_courier_message))
        .route("/health/alive", get(super::alive))
        .route("/health/ready", get(super::public::ready))
        .route("/version", get(version));
    Router::new()
        .nest("/admin", routes.clone())
        .merge(routes)
        .merge(super::cross_port::public_paths())
        .fallback(super::not_found)
        .method_not_allowed_fallback(super::method_not_allowed)
        .layer(axum::middleware::from_fn(super::no_cache))
        .with_state(reg)
}

/// `POST /admin/recovery/code`.
async fn create_recovery_code(State(reg): Reg, ctx: Ctx, body: Body) -> Response {
    let bytes = match x::read_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match serde_json::from_slice::<recovery::AdminCodeBody>(&bytes) {
        Ok(body) => recovery::create_code_for_identity(&reg, &ctx, body).await,
        Err(e) => {
            ApiError::bad_request(format!("Unable to decode JSON payload: {e}")).into_response()
        }
    }
}

/// `POST /admin/recovery/link`.
async fn create_recovery_link(State(reg): Reg, ctx: Ctx, body: Body) -> Response {
    let bytes = match x::read_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match serde_json::from_slice::<recovery::AdminLinkBody>(&bytes) {
        Ok(body) => recovery::create_link_for_identity(&reg, &ctx, body).await,
        Err(e) => {
            ApiError::bad_request(format!("Unable to decode JSON payload: {e}")).into_response()
        }
    }
}

/// `GET /admin/courier/messages?status=&recipient=&page_size=&page_token=`: newest first.
async fn list_courier_messages(State(reg): Reg, ctx: Ctx) -> Response {
    let status = match ctx.query("status").filter(|s| !s.is_empty()) {
        Some(s) => match CourierStatus::parse(&s) {
            Some(s) => Some(s),
            None => {
                return ApiError::bad_request(format!(
                    "Message status {s:?} is not valid: use queued, processing, sent or abandoned."
                ))
                .into_response();
            }
        },
        None => None,
    };
    let filter = MessageFilter {
        status,
        recipient: ctx.query("recipient").filter(|r| !r.is_empty()),
    };
    let (size, offset) = page(&ctx);
    let list = match reg.store.list_messages(&filter, size, offset).await {
        Ok(l) => l,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let full = i64::try_from(list.len()).unwrap_or(0) == size;
    let body: Vec<Value> = list.iter().map(|m| m.to_json(false)).collect();
    let mut res = Json(body).into_response();
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(s) = filter.status {
        query.append_pair("status", s.as_str());
    }
    if let Some(r) = &filter.recipient {
        query.append_pair("recipient", r);
    }
    query.append_pair("page_size", &size.to_string());
    let base = format!(
        "{}?{}",
        join_url(&reg.config.admin_base_url, "/admin/courier/messages"),
        query.finish()
    );
    let mut link = format!("<{base}&page_token=0>; rel=\"first\"");
    if full {
        link.push_str(&format!(
            ",<{base}&page_token={}>; rel=\"next\"",
            offset + size
        ));
    }
    if let Ok(v) = HeaderValue::from_str(&link) {
        res.headers_mut().insert(header::LINK, v);
    }
    res
}

/// `GET /admin/courier/messages/{id}`: the message with its dispatches.
async fn get_courier_message(State(reg): Reg, Path(id): Path<String>) -> Response {
    let not_found = || ApiError::not_found("The requested resource could not be found");
    let Ok(id) = Uuid::parse_str(&id) else {
        return ApiError::bad_request(format!("Unable to parse \"{id}\" as an UUID."))
            .into_response();
    };
    match reg.store.get_message(id).await {
        Ok(Some(m)) => Json(m.to_json(true)).into_response(),
        Ok(None) => not_found().into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `page_size` (default 250, at most 1000; legacy `per_page`) and the offset `page_token`.
fn page(ctx: &Ctx) -> (i64, i64) {
    let size = ctx
        .query("page_size")
        .or_else(|| ctx.query("per_page"))
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(DEFAULT_PAGE_SIZE)
        .clamp(1, MAX_PAGE_SIZE);
    let offset = ctx
        .query("page_token")
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
    (size, offset)
}

async fn version() -> Response {
    Json(serde_json::json!({"version": env!("CARGO_PKG_VERSION")})).into_response()
}

/// `createIdentityBody`.
#[derive(Debug, Deserialize)]
pub(crate) struct CreateIdentityBody {
    schema_id: String,
    traits: Value,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    credentials: Option<ImportCredentials>,
    #[serde(default)]
    metadata_public: Option<Value>,
    #[serde(default)]
    metadata_admin: Option<Value>,
    #[serde(default)]
    external_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ImportCredentials {
    #[serde(default)]
    password: Option<ImportPassword>,
}

#[derive(Debug, Deserialize)]
struct ImportPassword {
    #[serde(default)]
    config: ImportPasswordConfig,
}

#[derive(Debug, Default, Deserialize)]
struct ImportPasswordConfig {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    hashed_password: Option<String>,
}

/// `POST /admin/identities`: 201 with `Location`; 400 for invalid traits; 409 on conflict.
async fn create_identity(State(reg): Reg, ctx: Ctx, body: Body) -> Response {
    let body = match x::read_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let value = match x::parse_body(&ctx, &body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let body: CreateIdentityBody = match serde_json::from_value(value) {
        Ok(b) => b,
        Err(e) => {
            return ApiError::bad_request(format!("Unable to decode JSON payload: {e}"))
                .into_response();
        }
    };
    let identity = match create_from_body(&reg, body).await {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let mut res = (
        StatusCode::CREATED,
        Json(identity.to_json(&reg.config.public_base_url, View::Admin)),
    )
        .into_response();
    let location = join_url(
        &reg.config.admin_base_url,
        &format!("/admin/identities/{}", identity.id),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// Validates a `createIdentityBody` and stores the identity it describes (400 for invalid
/// traits, state or credentials; 409 on conflict).
pub(crate) async fn create_from_body(
    reg: &Registry,
    body: CreateIdentityBody,
) -> Result<crate::identity::Identity, ApiError> {
    let Some(schema) = reg.config.schemas().get(&body.schema_id) else {
        return Err(ApiError::bad_request(format!(
            "Identity schema with id \"{}\" is not known.",
            body.schema_id
        )));
    };
    check_traits(schema, &body.traits)?;
    let state = match body.state.as_deref() {
        None => IdentityState::Active,
        Some(s) => IdentityState::parse(s)
            .ok_or_else(|| ApiError::bad_request(format!("Unknown identity state {s:?}.")))?,
    };
    let password = body
        .credentials
        .and_then(|c| c.password)
        .map(|p| p.config)
        .unwrap_or_default();
    let hashed = import_password(reg, password).await?;
    let identifiers = schema.password_identifiers(&body.traits);
    let mut identity = new_identity(
        reg,
        schema.id(),
        body.traits,
        identifiers,
        hashed.clone().unwrap_or_default(),
    );
    if hashed.is_none() {
        identity.credentials.clear();
    }
    identity.state = state;
    identity.metadata_public = body.metadata_public.filter(|v| !v.is_null());
    identity.metadata_admin = body.metadata_admin.filter(|v| !v.is_null());
    identity.external_id = body.external_id.filter(|e| !e.is_empty());
    match reg.store.create_identity(&identity).await {
        Ok(()) => Ok(identity),
        Err(StoreError::Conflict) => Err(ApiError::conflict(
            "This identity conflicts with another identity that already exists.",
        )),
        Err(e) => Err(e.into()),
    }
}

/// The stored hash for an imported password credential: a plain password is hashed with
/// the configured algorithm, a `hashed_password` is checked for format and cost bounds.
async fn import_password(
    reg: &Registry,
    config: ImportPasswordConfig,
) -> Result<Option<String>, ApiError> {
    match (config.password, config.hashed_password) {
        (Some(plain), _)
            if reg
                .hasher
                .algorithm()
                .max_password_bytes()
                .is_some_and(|max| plain.len() > max) =>
        {
            Err(ApiError::bad_request(
                "The password is longer than the configured hasher (bcrypt) accepts: at most 72 bytes.",
            ))
        }
        (Some(plain), _) => Ok(Some(reg.hasher.hash(Secret::new(plain)).await?)),
        (None, Some(hash)) => match crate::hash::verify_limits(&hash) {
            Ok(_) => Ok(Some(hash)),
            Err(reason) => Err(ApiError::bad_request(format!(
                "Unable to import hashed password: {reason}."
            ))),
        },
        (None, None) => Ok(None),
    }
}

/// 400 with every trait problem when `traits` do not satisfy `schema`.
fn check_traits(schema: &crate::schema::IdentitySchema, traits: &Value) -> Result<(), ApiError> {
    let problems = schema.validate_traits(traits);
    if problems.is_empty() {
        return Ok(());
    }
    let reason = problems
        .iter()
        .map(|(name, t)| {
            if name.is_empty() {
                t.text.clone()
            } else {
                format!("{name}: {}", t.text)
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    Err(ApiError::bad_request(reason)
        .message("The request was malformed or contained invalid parameters"))
}

/// Kratos's `updateIdentityBody` (`PUT`), also what a JSON-patched identity is read back as.
#[derive(Debug, Deserialize)]
struct UpdateIdentityBody {
    schema_id: String,
    state: String,
    traits: Value,
    #[serde(default)]
    credentials: Option<ImportCredentials>,
    #[serde(default)]
    metadata_public: Option<Value>,
    #[serde(default)]
    metadata_admin: Option<Value>,
    #[serde(default)]
    external_id: Option<String>,
}

pub(crate) fn identity_not_found() -> ApiError {
    ApiError::not_found("Unable to locate the resource")
}

/// `PUT /admin/identities/{id}`: replaces schema, state, traits, metadata and external id
/// (and the password when `credentials` is given); addresses and password identifiers follow
/// the new traits, keeping the verification status of unchanged addresses.
async fn update_identity(
    State(reg): Reg,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return identity_not_found().into_response();
    };
    let value = match x::read_body(body)
        .await
        .and_then(|b| x::parse_body(&ctx, &b))
    {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let body: UpdateIdentityBody = match serde_json::from_value(value) {
        Ok(b) => b,
        Err(e) => {
            return ApiError::bad_request(format!("Unable to decode JSON payload: {e}"))
                .into_response();
        }
    };
    let identity = match reg.store.get_identity(id, true).await {
        Ok(Some(i)) => i,
        Ok(None) => return identity_not_found().into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    replace_identity(&reg, identity, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Paths a JSON Patch may not touch, as in Kratos.
const DENIED_PATCH_PATHS: &[&str] = &["/id", "/stub", "/credentials"];

/// `PATCH /admin/identities/{id}`: an RFC 6902 JSON Patch over the identity's admin JSON,
/// then stored as `PUT` would; `/id` and `/credentials` may not be patched.
async fn patch_identity(State(reg): Reg, Path(id): Path<String>, body: Body) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return identity_not_found().into_response();
    };
    let body = match x::read_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let operations: json_patch::Patch = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return ApiError::bad_request(format!("Unable to decode JSON payload: {e}"))
                .into_response();
        }
    };
    for op in &operations.0 {
        let value = serde_json::to_value(op).unwrap_or(Value::Null);
        for key in ["path", "from"] {
            let Some(path) = value.get(key).and_then(Value::as_str) else {
                continue;
            };
            let denied = DENIED_PATCH_PATHS
                .iter()
                .any(|d| path == *d || path.starts_with(&format!("{d}/")));
            if denied {
                return ApiError::bad_request(format!("patch includes denied path: {path}"))
                    .into_response();
            }
        }
    }
    let identity = match reg.store.get_identity(id, true).await {
        Ok(Some(i)) => i,
        Ok(None) => return identity_not_found().into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mut doc = identity.to_json(&reg.config.public_base_url, View::Admin);
    if let Err(e) = json_patch::patch(&mut doc, &operations.0) {
        return ApiError::bad_request(format!("Unable to apply JSON patch: {e}")).into_response();
    }
    if let Some(obj) = doc.as_object_mut() {
        obj.remove("credentials");
    }
    let body: UpdateIdentityBody = match serde_json::from_value(doc) {
        Ok(b) => b,
        Err(e) => {
            return ApiError::bad_request(format!("The patched identity is invalid: {e}"))
                .into_response();
        }
    };
    replace_identity(&reg, identity, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Applies `body` to the stored `identity` (loaded with credentials) and answers 200 with it.
async fn replace_identity(
    reg: &Registry,
    mut identity: crate::identity::Identity,
    body: UpdateIdentityBody,
) -> Result<Response, ApiError> {
    let Some(schema) = reg.config.schemas().get(&body.schema_id) else {
        return Err(ApiError::bad_request(format!(
            "Identity schema with id \"{}\" is not known.",
            body.schema_id
        )));
    };
    check_traits(schema, &body.traits)?;
    let state = IdentityState::parse(&body.state).ok_or_else(|| {
        ApiError::bad_request(format!("Unknown identity state {:?}.", body.state))
    })?;
    let password = body.credentials.and_then(|c| c.password).map(|p| p.config);
    let hashed = match password {
        Some(config) => import_password(reg, config).await?,
        None => None,
    };
    let now = reg.now();
    if state != identity.state {
        identity.state = state;
        identity.state_changed_at = Some(now);
    }
    identity.replace_addresses(
        schema.verifiable_addresses(&body.traits),
        schema.recovery_addresses(&body.traits),
        now,
    );
    let identifiers = schema.password_identifiers(&body.traits);
    if let Some(hash) = hashed {
        let cred = identity
            .credentials
            .entry("password".into())
            .or_insert_with(|| crate::identity::Credential {
                id: portcullis_core::new_id(),
                kind: "password".into(),
                identifiers: Vec::new(),
                config: Value::Null,
                version: 0,
                created_at: now,
                updated_at: now,
            });
        cred.config = serde_json::json!({ "hashed_password": hash });
        cred.updated_at = now;
    }
    if let Some(cred) = identity.credentials.get_mut("password") {
        cred.identifiers = identifiers;
    }
    identity.schema_id = schema.id().to_string();
    identity.traits = body.traits;
    identity.metadata_public = body.metadata_public.filter(|v| !v.is_null());
    identity.metadata_admin = body.metadata_admin.filter(|v| !v.is_null());
    identity.external_id = body.external_id.filter(|e| !e.is_empty());
    identity.updated_at = now;
    match reg.store.update_identity(&identity).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Err(ApiError::conflict(
                "This identity conflicts with another identity that already exists.",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Json(identity.to_json(&reg.config.public_base_url, View::Admin)).into_response())
}

/// `DELETE /admin/identities/{id}`: 204, or 404.
async fn delete_identity(State(reg): Reg, Path(id): Path<String>) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return identity_not_found().into_response();
    };
    match reg.store.delete_identity(id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => identity_not_found().into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

fn session_not_found() -> ApiError {
    ApiError::not_found("Unable to locate the resource")
}

/// `GET /admin/identities/{id}/sessions?active=`.
async fn list_identity_sessions(State(reg): Reg, ctx: Ctx, Path(id): Path<String>) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return identity_not_found().into_response();
    };
    match reg.store.get_identity(id, false).await {
        Ok(Some(_)) => {}
        Ok(None) => return identity_not_found().into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    }
    let active_only = ctx.query("active").is_some_and(|a| a == "true");
    match reg.store.sessions_of(id, active_only).await {
        Ok(list) => {
            let now = reg.now();
            let body: Vec<Value> = list
                .iter()
                .map(|s| s.to_json(&reg.config.public_base_url, now))
                .collect();
            Json(body).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `DELETE /admin/identities/{id}/sessions`: revokes them all; 204.
async fn delete_identity_sessions(State(reg): Reg, Path(id): Path<String>) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return identity_not_found().into_response();
    };
    match reg.store.get_identity(id, false).await {
        Ok(Some(_)) => {}
        Ok(None) => return identity_not_found().into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    }
    match reg.store.revoke_sessions_of(id, None).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /admin/sessions/{id}`.
async fn get_session(State(reg): Reg, Path(id): Path<String>) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return session_not_found().into_response();
    };
    match reg.store.get_session(id).await {
        Ok(Some(s)) => Json(s.to_json(&reg.config.public_base_url, reg.now())).into_response(),
        Ok(None) => session_not_found().into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `DELETE /admin/sessions/{id}`: marks it inactive; 204.
async fn disable_session(State(reg): Reg, Path(id): Path<String>) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return session_not_found().into_response();
    };
    match reg.store.get_session(id).await {
        Ok(Some(s)) => match reg.store.revoke_session(s.id).await {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => ApiError::from(e).into_response(),
        },
        Ok(None) => session_not_found().into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
