//! The settings flow: a signed-in identity changes its traits (`profile`) or its password
//! (`password`). A flow belongs to the identity that created it; only that identity's
//! session may read or submit it. Changing the password, or a trait that is a login
//! identifier or an address, needs a *privileged* session — one authenticated within
//! `privileged_session_max_age` — otherwise the answer is 403 `session_refresh_required`
//! (browsers: 303) pointing at a `refresh=true` login that returns to this flow.

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis_core::Secret;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Flow, FlowType, Kind, NewFlow};
use crate::config::join_url;
use crate::driver::{Registry, see_other};
use crate::error::ApiError;
use crate::identity::{Credential, Identity, View};
use crate::persistence::{FlowStore, IdentityStore, StoreError};
use crate::selfservice::hook;
use crate::session::Session;
use crate::text;
use crate::ui::{Container, Group, Node};
use crate::x::{self, Ctx};

/// The settings form for `identity`: traits (profile group) and a new password.
fn fill_nodes(reg: &Registry, identity: &Identity, ui: &mut Container, masked_csrf: Option<&str>) {
    ui.nodes.clear();
    if let Some(token) = masked_csrf {
        ui.nodes.push(Node::csrf(token));
    }
    if let Some(schema) = reg.config.schemas().get(&identity.schema_id) {
        let mut traits = schema.trait_nodes(Group::Profile);
        let mut holder = Container::new(String::new());
        holder.nodes.append(&mut traits);
        holder.refill(&json!({ "traits": identity.traits }));
        ui.nodes.append(&mut holder.nodes);
    }
    ui.nodes
        .push(Node::submit(Group::Profile, "profile", text::save()));
    if reg.config.password_enabled {
        ui.nodes.push(
            Node::input(Group::Password, "password", "password")
                .required()
                .autocomplete("new-password")
                .label(text::label_password()),
        );
        ui.nodes
            .push(Node::submit(Group::Password, "password", text::save()));
    }
}

/// Rebuilds the form after a change, keeping the flow's CSRF token.
fn refresh_nodes(reg: &Registry, identity: &Identity, ui: &mut Container) {
    let csrf = ui.nodes.iter().find(|n| n.name() == "csrf_token").cloned();
    fill_nodes(reg, identity, ui, None);
    if let Some(csrf) = csrf {
        ui.nodes.insert(0, csrf);
    }
}

/// The login URL a session must refresh through before changing protected settings.
fn refresh_url(reg: &Registry, return_to: &str) -> String {
    let mut url = join_url(&reg.config.public_base_url, "/self-service/login/browser");
    url.push_str("?refresh=true&return_to=");
    url.extend(form_urlencoded::byte_serialize(return_to.as_bytes()));
    url
}

fn login_url(reg: &Registry, ctx: &Ctx) -> String {
    let mut url = join_url(&reg.config.public_base_url, "/self-service/login/browser");
    if let Some(r) = ctx.query("return_to").filter(|r| !r.is_empty()) {
        url.push_str("?return_to=");
        url.extend(form_urlencoded::byte_serialize(r.as_bytes()));
    }
    url
}

fn identity_mismatch() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN)
        .id("security_identity_mismatch")
        .reason("The request was initiated by someone else and has been blocked for security reasons. Please go back and try again.")
}

/// The caller's session, or the answer for a caller without one: browsers are sent to login,
/// everyone else gets 401.
async fn require_session(reg: &Registry, ctx: &Ctx, browser: bool) -> Result<Session, Response> {
    match reg.session_of(ctx).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) if browser && !ctx.is_json() => Err(see_other(&login_url(reg, ctx))),
        Ok(None) => Err(ApiError::session_inactive().into_response()),
        Err(e) => Err(ApiError::from(e).into_response()),
    }
}

async fn load_identity(reg: &Registry, id: Uuid) -> Result<Identity, ApiError> {
    reg.store
        .get_identity(id, true)
        .await?
        .ok_or_else(ApiError::session_inactive)
}

/// `GET /self-service/settings/{browser,api}`.
pub(crate) async fn init(reg: Arc<Registry>, ctx: Ctx, flow_type: FlowType) -> Response {
    let session = match require_session(&reg, &ctx, flow_type == FlowType::Browser).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    let identity = match load_identity(&reg, session.identity_id).await {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let (csrf_cookie, set_csrf) = match flow_type {
        FlowType::Browser => {
            let (v, set) = reg.ensure_csrf(&ctx);
            (Some(v), set)
        }
        FlowType::Api => (None, None),
    };
    let flow = match create(&reg, &ctx, flow_type, csrf_cookie.as_deref(), &identity).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let before = &reg.config.web_hooks.settings_before;
    if let Err(res) = super::run_before(&reg, &ctx, &flow, before).await {
        return res;
    }
    match flow_type {
        FlowType::Browser => super::respond_browser_init(&reg, &ctx, &flow, set_csrf),
        FlowType::Api => Json(flow.to_json()).into_response(),
    }
}

/// Creates a settings flow for `identity` (also used by recovery).
pub(crate) async fn create(
    reg: &Registry,
    ctx: &Ctx,
    flow_type: FlowType,
    csrf_cookie: Option<&str>,
    identity: &Identity,
) -> Result<Flow, ApiError> {
    let mut flow = super::create(
        reg,
        ctx,
        NewFlow {
            kind: Kind::Settings,
            flow_type,
            csrf_cookie,
            return_to: ctx.query("return_to"),
            identity_id: Some(identity.id),
        },
        |reg, ui, csrf| fill_nodes(reg, identity, ui, csrf),
    )
    .await?;
    flow.identity = Some(identity.to_json(&reg.config.public_base_url, View::Public));
    Ok(flow)
}

/// Loads a settings flow for its owner: 401 without a session, 403 for someone else's flow.
async fn owned_flow(
    reg: &Registry,
    ctx: &Ctx,
    param: &str,
) -> Result<(Flow, Session, Identity), Response> {
    let flow = super::load(reg, ctx, Kind::Settings, param)
        .await
        .map_err(IntoResponse::into_response)?;
    let session = require_session(reg, ctx, flow.flow_type == FlowType::Browser).await?;
    if flow.identity_id != Some(session.identity_id) {
        return Err(identity_mismatch().into_response());
    }
    let identity = load_identity(reg, session.identity_id)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok((flow, session, identity))
}

/// `GET /self-service/settings/flows?id=`.
pub(crate) async fn get(reg: Arc<Registry>, ctx: Ctx) -> Response {
    let (mut flow, _, identity) = match owned_flow(&reg, &ctx, "id").await {
        Ok(t) => t,
        Err(res) => return res,
    };
    if flow.flow_type == FlowType::Browser {
        let bound = reg.csrf_cookie_of(&ctx).is_some_and(|c| {
            portcullis_core::constant_time_eq(c.as_bytes(), flow.csrf_token.as_bytes())
        });
        if !bound {
            return ApiError::csrf("The HTTP Cookie Header was set and a CSRF token was sent but they do not match. We recommend deleting all cookies for this domain and retrying the flow.").into_response();
        }
    }
    if flow.expires_at <= reg.now() {
        return ApiError::new(StatusCode::GONE)
            .id("self_service_flow_expired")
            .reason(format!(
                "The settings flow has expired. Initialize a new one at {}.",
                join_url(
                    &reg.config.public_base_url,
                    &format!("/self-service/settings/{}", flow.flow_type.as_str())
                )
            ))
            .into_response();
    }
    flow.identity = Some(identity.to_json(&reg.config.public_base_url, View::Public));
    Json(flow.to_json()).into_response()
}

/// `POST /self-service/settings?flow=`.
pub(crate) async fn submit(reg: Arc<Registry>, ctx: Ctx, body: bytes::Bytes) -> Response {
    let (mut flow, session, identity) = match owned_flow(&reg, &ctx, "flow").await {
        Ok(t) => t,
        Err(res) => return res,
    };
    let body = match x::parse_body(&ctx, &body) {
        Ok(b) => b,
        Err(e) => return super::unrecoverable(&reg, &ctx, e).await,
    };
    if flow.expires_at <= reg.now() {
        return super::expired(
            &reg,
            &ctx,
            &flow,
            |reg, ui, csrf| fill_nodes(reg, &identity, ui, csrf),
            text::settings_flow_expired,
        )
        .await;
    }
    if let Err(e) = super::check_csrf(&reg, &ctx, &flow, &body) {
        return super::unrecoverable(&reg, &ctx, e).await;
    }
    flow.identity = Some(identity.to_json(&reg.config.public_base_url, View::Public));
    flow.ui.reset_messages();
    let privileged = session.authenticated_at + reg.config.privileged_session_max_age > reg.now();
    let outcome = match x::body_str(&body, "method") {
        Some("profile") => update_profile(&reg, &ctx, &mut flow, identity, &body, privileged).await,
        Some("password") if reg.config.password_enabled => {
            update_password(&reg, &ctx, &mut flow, identity, &body, privileged).await
        }
        _ => {
            flow.ui.messages.push(text::validation_generic(
                "Could not find a strategy to update your settings. Did you fill out the form correctly?",
            ));
            Outcome::Form
        }
    };
    match outcome {
        Outcome::Saved(identity, method) => succeed(&reg, &ctx, flow, &identity, method).await,
        Outcome::Form => super::respond_with_errors(&reg, &ctx, flow).await,
        Outcome::RefreshRequired => refresh_required(&reg, &ctx, &flow),
        Outcome::Error(e) => super::unrecoverable(&reg, &ctx, e).await,
    }
}

enum Outcome {
    Saved(Box<Identity>, &'static str),
    Form,
    RefreshRequired,
    Error(ApiError),
}

impl From<StoreError> for Outcome {
    fn from(e: StoreError) -> Self {
        Outcome::Error(e.into())
    }
}

async fn update_profile(
    reg: &Registry,
    ctx: &Ctx,
    flow: &mut Flow,
    mut identity: Identity,
    body: &Value,
    privileged: bool,
) -> Outcome {
    let Some(schema) = reg.config.schemas().get(&identity.schema_id) else {
        return Outcome::Error(ApiError::internal(
            &"the identity's schema is not configured",
        ));
    };
    let mut traits = body.get("traits").cloned().unwrap_or_else(|| json!({}));
    schema.coerce_form_traits(&mut traits);
    flow.ui.refill(body);
    let problems = schema.validate_traits(&traits);
    if !problems.is_empty() {
        for (name, message) in problems {
            flow.ui.add_message(&name, message);
        }
        return Outcome::Form;
    }
    let protected_changed = schema.password_identifiers(&traits)
        != schema.password_identifiers(&identity.traits)
        || schema.verifiable_addresses(&traits) != schema.verifiable_addresses(&identity.traits)
        || schema.recovery_addresses(&traits) != schema.recovery_addresses(&identity.traits);
    if protected_changed && !privileged {
        return Outcome::RefreshRequired;
    }
    let now = reg.now();
    identity.replace_addresses(
        schema.verifiable_addresses(&traits),
        schema.recovery_addresses(&traits),
        now,
    );
    if let Some(cred) = identity.credentials.get_mut("password") {
        cred.identifiers = schema.password_identifiers(&traits);
        cred.updated_at = now;
    }
    identity.traits = traits;
    identity.updated_at = now;
    save(reg, ctx, flow, identity, "profile").await
}

/// Stores a settings change once the after-hooks that may interrupt or change the identity
/// (`can_interrupt`, `response.parse`) have run on it: an interruption, or invalid traits a
/// hook set, leave the identity as it was and answer with the form.
async fn save(
    reg: &Registry,
    ctx: &Ctx,
    flow: &mut Flow,
    mut identity: Identity,
    method: &'static str,
) -> Outcome {
    let hooks = reg.config.web_hooks.settings_after(method);
    if let Err(refused) = hook::pre_persist(reg, ctx, flow, hooks, &mut identity, None).await {
        return match refused {
            hook::Refused::Form => Outcome::Form,
            hook::Refused::Error(e) => Outcome::Error(e),
        };
    }
    match reg.store.update_identity(&identity).await {
        Ok(()) => Outcome::Saved(Box::new(identity), method),
        Err(StoreError::Conflict) => {
            flow.ui.messages.push(text::duplicate_credentials());
            Outcome::Form
        }
        Err(e) => e.into(),
    }
}

async fn update_password(
    reg: &Registry,
    ctx: &Ctx,
    flow: &mut Flow,
    mut identity: Identity,
    body: &Value,
    privileged: bool,
) -> Outcome {
    let password = x::body_str(body, "password")
        .unwrap_or_default()
        .to_string();
    if password.is_empty() {
        flow.ui
            .add_message("password", text::missing_property("password"));
        return Outcome::Form;
    }
    if !privileged {
        return Outcome::RefreshRequired;
    }
    let identifiers = reg
        .config
        .schemas()
        .get(&identity.schema_id)
        .map(|s| s.password_identifiers(&identity.traits))
        .unwrap_or_default();
    if let Err(message) =
        crate::selfservice::strategy::password::check_new_password(reg, &identifiers, &password)
            .await
    {
        flow.ui.add_message("password", message);
        return Outcome::Form;
    }
    let hashed = match reg.hasher.hash(Secret::new(password)).await {
        Ok(h) => h,
        Err(e) => return Outcome::Error(e.into()),
    };
    let now = reg.now();
    let cred = identity
        .credentials
        .entry("password".into())
        .or_insert_with(|| Credential {
            id: portcullis_core::new_id(),
            kind: "password".into(),
            identifiers: Vec::new(),
            config: json!({}),
            version: 0,
            created_at: now,
            updated_at: now,
        });
    cred.identifiers = identifiers;
    cred.config = json!({ "hashed_password": hashed });
    cred.updated_at = now;
    identity.updated_at = now;
    save(reg, ctx, flow, identity, "password").await
}

fn refresh_required(reg: &Registry, ctx: &Ctx, flow: &Flow) -> Response {
    let to = refresh_url(reg, &flow.ui_location(reg));
    if flow.flow_type == FlowType::Browser && !ctx.is_json() {
        return see_other(&to);
    }
    ApiError::new(StatusCode::FORBIDDEN)
        .id("session_refresh_required")
        .reason("The login session is too old and thus not allowed to update these fields. Please re-authenticate.")
        .with("redirect_browser_to", json!(to))
        .into_response()
}

async fn succeed(
    reg: &Registry,
    ctx: &Ctx,
    mut flow: Flow,
    identity: &Identity,
    method: &'static str,
) -> Response {
    tracing::info!(identity = %identity.id, method, "settings updated");
    // The hooks that can neither interrupt nor change the identity run once it is stored.
    let identity_json = identity.to_json(&reg.config.public_base_url, View::Admin);
    let hooks = reg.config.web_hooks.settings_after(method).iter();
    let post_persist: Vec<&hook::web_hook::WebHook> = hooks.filter(|h| !h.interrupts()).collect();
    if let Err(e) =
        hook::after_completed(reg, ctx, &flow, post_persist, Some(identity_json), None).await
    {
        return super::unrecoverable(reg, ctx, e).await;
    }
    flow.state = "success".into();
    flow.active = Some(method.into());
    refresh_nodes(reg, identity, &mut flow.ui);
    flow.ui.messages.push(text::settings_saved());
    flow.identity = Some(identity.to_json(&reg.config.public_base_url, View::Public));
    flow.updated_at = reg.now();
    if let Err(e) = reg.store.update_flow(&flow).await {
        return ApiError::from(e).into_response();
    }
    if flow.flow_type == FlowType::Api || ctx.is_json() {
        return Json(flow.to_json()).into_response();
    }
    let to = flow
        .return_to
        .clone()
        .or_else(|| {
            reg.config
                .settings
                .after_return_url
                .as_ref()
                .map(|u| u.to_string())
        })
        .unwrap_or_else(|| flow.ui_location(reg));
    see_other(&to)
}
