//! The recovery flow with the `code` method: the user names a recovery address, a code is
//! e-mailed to it, and a correct code signs the user in (a new session, which counts as
//! privileged) and opens a settings flow to set a new password. Administrators can create a
//! code for an identity directly (`POST /admin/recovery/code`); such a flow is bound to the
//! browser that first opens its link.

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Flow, FlowType, Kind, NewFlow};
use crate::config::join_url;
use crate::csrf;
use crate::driver::{Registry, see_other, with_cookies};
use crate::error::ApiError;
use crate::identity::{Identity, View};
use crate::persistence::{FlowStore, IdentityStore, SessionStore};
use crate::selfservice::hook;
use crate::selfservice::strategy::code::{self, CodeStore};
use crate::selfservice::strategy::link;
use crate::text;
use crate::ui::{Container, Node};
use crate::x::Ctx;

/// The first form: e-mail address and "Continue" (code), or "Submit" (link).
pub(crate) fn nodes(reg: &Registry, ui: &mut Container, masked_csrf: Option<&str>) {
    if reg.config.recovery.use_link {
        link::email_nodes(ui, masked_csrf, None);
    } else {
        code::email_nodes(ui, masked_csrf);
    }
}

/// `GET /self-service/recovery/{browser,api}`: refused while signed in.
pub(crate) async fn init(reg: Arc<Registry>, ctx: Ctx, flow_type: FlowType) -> Response {
    if !reg.config.recovery_enabled {
        return ApiError::bad_request("Recovery is not allowed because it was disabled.")
            .id("self_service_flow_disabled")
            .into_response();
    }
    match reg.session_of(&ctx).await {
        Ok(Some(_)) => {
            if flow_type == FlowType::Browser && !ctx.is_json() {
                return see_other(reg.config.default_return_url.as_str());
            }
            return ApiError::bad_request(
                "A valid session was detected and thus recovery is not possible.",
            )
            .id("session_already_available")
            .into_response();
        }
        Ok(None) => {}
        Err(e) => return ApiError::from(e).into_response(),
    }
    let before = &reg.config.web_hooks.recovery_before;
    super::init_flow(&reg, &ctx, Kind::Recovery, flow_type, before, nodes).await
}

/// `POST /self-service/recovery?flow=`; a plain `GET` (the admin-made link) binds an unbound
/// browser flow to this browser and shows it.
pub(crate) async fn submit(reg: Arc<Registry>, ctx: Ctx, body: bytes::Bytes) -> Response {
    if ctx.method == http::Method::GET && ctx.query("token").is_some() {
        return super::verification::open_link(&reg, &ctx, Kind::Recovery).await;
    }
    if ctx.method == http::Method::GET && ctx.query("code").is_none() {
        return open_link(&reg, &ctx).await;
    }
    super::verification::submit_code_flow(&reg, &ctx, Kind::Recovery, body).await
}

async fn open_link(reg: &Registry, ctx: &Ctx) -> Response {
    let mut flow = match super::load(reg, ctx, Kind::Recovery, "flow").await {
        Ok(f) => f,
        Err(e) => return super::unrecoverable(reg, ctx, e).await,
    };
    let mut cookies = Vec::new();
    if flow.flow_type == FlowType::Browser && flow.csrf_token.is_empty() {
        let (cookie, set) = reg.ensure_csrf(ctx);
        cookies.extend(set);
        flow.ui.nodes.insert(0, Node::csrf(&csrf::mask(&cookie)));
        flow.csrf_token = cookie;
        flow.updated_at = reg.now();
        if let Err(e) = reg.store.update_flow(&flow).await {
            return ApiError::from(e).into_response();
        }
    }
    if ctx.is_json() {
        return with_cookies(Json(flow.to_json()).into_response(), cookies);
    }
    with_cookies(see_other(&flow.ui_location(reg)), cookies)
}

/// A correct code: the address counts as verified, a session is issued and a settings flow
/// opened; browsers are sent there (JSON clients get 422 with the location), native apps get
/// the flow with `continue_with` carrying the session token and the settings flow.
pub(crate) async fn succeed(
    reg: &Registry,
    ctx: &Ctx,
    mut flow: Flow,
    identity_id: Uuid,
    address: &str,
    method: &str,
) -> Response {
    let now = reg.now();
    if !address.is_empty()
        && let Err(e) = reg.store.mark_verified(identity_id, address, now).await
    {
        return ApiError::from(e).into_response();
    }
    let identity: Identity = match reg.store.get_identity(identity_id, true).await {
        Ok(Some(i)) => i,
        Ok(None) => return ApiError::not_found("The identity could not be found.").into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let issued = match reg.issue_session(identity.clone(), method, ctx).await {
        Ok(i) => i,
        Err(e) => return ApiError::from(e).into_response(),
    };
    flow.state = "passed_challenge".into();
    let hooks = &reg.config.web_hooks.recovery_after;
    if !hooks.is_empty() {
        let identity_json = identity.to_json(&reg.config.public_base_url, View::Admin);
        let session_json = issued.session.to_json(&reg.config.public_base_url, now);
        let ran = hook::after(
            reg,
            ctx,
            &flow,
            hooks,
            Some(identity_json),
            Some(session_json),
        );
        if let Err(e) = ran.await {
            // Recovery has no pre-persist stage: the hook refused a recovery already made.
            // The session just issued never reaches the client; the used code stays used and
            // the address verified; the flow starts over with the hook's messages.
            tracing::info!(identity = %identity_id, "a web hook refused the recovery");
            if let Err(e) = reg.store.revoke_session(issued.session.id).await {
                return ApiError::from(e).into_response();
            }
            restart(reg, &mut flow);
            return super::respond_to_refusal(reg, ctx, flow, e).await;
        }
    }
    tracing::info!(identity = %identity_id, session = %issued.session.id, "account recovered");
    let browser = flow.flow_type == FlowType::Browser;
    let new_csrf = browser.then(csrf::generate);
    let mut settings =
        match super::settings::create(reg, ctx, flow.flow_type, new_csrf.as_deref(), &identity)
            .await
        {
            Ok(f) => f,
            Err(e) => return e.into_response(),
        };
    let privileged_until = issued.session.authenticated_at + reg.config.privileged_session_max_age;
    settings
        .ui
        .messages
        .push(text::recovery_successful(privileged_until, now));
    settings.updated_at = now;
    if let Err(e) = reg.store.update_flow(&settings).await {
        return ApiError::from(e).into_response();
    }
    let csrf_node = flow
        .ui
        .nodes
        .iter()
        .find(|n| n.name() == "csrf_token")
        .cloned();
    flow.ui.nodes.clear();
    flow.ui.nodes.extend(csrf_node);
    flow.updated_at = now;
    if let Err(e) = reg.store.update_flow(&flow).await {
        return ApiError::from(e).into_response();
    }
    let settings_url = settings.ui_location(reg);
    if !browser {
        let mut body = flow.to_json();
        if let Some(map) = body.as_object_mut() {
            map.insert(
                "continue_with".into(),
                json!([
                    {"action": "set_ory_session_token", "ory_session_token": issued.token.expose()},
                    {"action": "show_settings_ui", "flow": {"id": settings.id, "url": settings_url}}
                ]),
            );
        }
        return Json(body).into_response();
    }
    let mut cookies = vec![reg.session_cookie(&issued.token, issued.session.expires_at)];
    cookies.extend(new_csrf.as_deref().map(|c| reg.csrf_cookie(c)));
    let res = if ctx.is_json() {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY)
            .id("browser_location_change_required")
            .reason(format!(
                "In order to complete this flow please redirect the browser to: {settings_url}"
            ))
            .with("redirect_browser_to", Value::String(settings_url))
            .into_response()
    } else {
        see_other(&settings_url)
    };
    with_cookies(res, cookies)
}

/// Puts a recovery flow back to its first form (the address form, state `choose_method`),
/// keeping its CSRF token.
fn restart(reg: &Registry, flow: &mut Flow) {
    let csrf_node = flow
        .ui
        .nodes
        .iter()
        .find(|n| n.name() == "csrf_token")
        .cloned();
    nodes(reg, &mut flow.ui, None);
    if let Some(csrf_node) = csrf_node
        && !flow.ui.nodes.iter().any(|n| n.name() == "csrf_token")
    {
        flow.ui.nodes.insert(0, csrf_node);
    }
    flow.state = "choose_method".into();
    flow.active = None;
}

/// What the admin recovery code and link endpoints share: the lifespan from `expires_in`
/// (`default` when absent) and the identity, or Kratos's 400/404 answer.
async fn admin_recovery_target(
    reg: &Registry,
    expires_in: Option<&str>,
    default: time::Duration,
    identity_id: Uuid,
) -> Result<(time::Duration, Identity), Box<Response>> {
    let lifespan = match expires_in {
        None | Some("") => default,
        Some(s) => match crate::config::parse_duration(s) {
            Some(d) if d.is_positive() => d,
            _ => {
                return Err(Box::new(
                    ApiError::bad_request(format!(
                        "Unable to parse \"expires_in\": {s:?} is not a duration such as 1h."
                    ))
                    .into_response(),
                ));
            }
        },
    };
    match reg.store.get_identity(identity_id, false).await {
        Ok(Some(identity)) => Ok((lifespan, identity)),
        Ok(None) => Err(Box::new(
            ApiError::not_found("The requested resource could not be found")
                .reason("The identity could not be found.")
                .into_response(),
        )),
        Err(e) => Err(Box::new(ApiError::from(e).into_response())),
    }
}

/// `POST /admin/recovery/code` body.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct AdminCodeBody {
    identity_id: Uuid,
    #[serde(default)]
    expires_in: Option<String>,
    #[serde(default)]
    flow_type: Option<String>,
}

/// `POST /admin/recovery/code`: a recovery flow already in the "code sent" state for the
/// identity, its link and its code (201).
pub(crate) async fn create_code_for_identity(
    reg: &Registry,
    ctx: &Ctx,
    body: AdminCodeBody,
) -> Response {
    let flow_type = match body.flow_type.as_deref() {
        None | Some("browser") => FlowType::Browser,
        Some("api") => FlowType::Api,
        Some(other) => {
            return ApiError::bad_request(format!("Unknown flow type {other:?}.")).into_response();
        }
    };
    let (lifespan, identity) = match admin_recovery_target(
        reg,
        body.expires_in.as_deref(),
        reg.config.recovery.lifespan,
        body.identity_id,
    )
    .await
    {
        Ok(target) => target,
        Err(res) => return *res,
    };
    let mut flow = match super::create(
        reg,
        ctx,
        NewFlow {
            kind: Kind::Recovery,
            flow_type,
            csrf_cookie: None,
            return_to: None,
            identity_id: None,
        },
        nodes,
    )
    .await
    {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let now = reg.now();
    flow.expires_at = now + lifespan;
    flow.state = "sent_email".into();
    flow.active = Some("code".into());
    let (code, expires_at) =
        match code::issue(reg, flow.id, Kind::Recovery, identity.id, "", lifespan).await {
            Ok(c) => c,
            Err(e) => return ApiError::from(e).into_response(),
        };
    code::code_nodes(&mut flow.ui, "", text::label_recovery_code());
    flow.ui.nodes.retain(|n| n.name() != "email");
    flow.updated_at = now;
    if let Err(e) = reg.store.update_flow(&flow).await {
        return ApiError::from(e).into_response();
    }
    let link = format!(
        "{}?flow={}",
        join_url(&reg.config.public_base_url, "/self-service/recovery"),
        flow.id
    );
    (
        StatusCode::CREATED,
        Json(json!({
            "recovery_link": link,
            "recovery_code": code.expose(),
            "expires_at": portcullis_core::timefmt::rfc3339(expires_at),
        })),
    )
        .into_response()
}

/// `POST /admin/recovery/link` body.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct AdminLinkBody {
    identity_id: Uuid,
    #[serde(default)]
    expires_in: Option<String>,
}

/// `POST /admin/recovery/link`: a browser recovery flow for the identity and the link that
/// completes it (200 `{recovery_link, expires_at}`), valid for `expires_in` (default
/// `methods.link.config.lifespan`).
pub(crate) async fn create_link_for_identity(
    reg: &Registry,
    ctx: &Ctx,
    body: AdminLinkBody,
) -> Response {
    if !reg.config.recovery_enabled {
        return ApiError::bad_request("The recovery flow is not enabled.").into_response();
    }
    if !reg.config.link.enabled {
        return ApiError::bad_request("The link method is not enabled.")
            .reason("selfservice.methods.link.enabled is false.")
            .into_response();
    }
    let (lifespan, identity) = match admin_recovery_target(
        reg,
        body.expires_in.as_deref(),
        reg.config.link.lifespan,
        body.identity_id,
    )
    .await
    {
        Ok(target) => target,
        Err(res) => return *res,
    };
    let mut flow = match super::create(
        reg,
        ctx,
        NewFlow {
            kind: Kind::Recovery,
            flow_type: FlowType::Browser,
            csrf_cookie: None,
            return_to: ctx.query("return_to"),
            identity_id: None,
        },
        |_, ui, csrf| link::email_nodes(ui, csrf, None),
    )
    .await
    {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let now = reg.now();
    flow.expires_at = now + lifespan;
    flow.state = "sent_email".into();
    flow.active = Some("link".into());
    flow.updated_at = now;
    if let Err(e) = reg.store.update_flow(&flow).await {
        return ApiError::from(e).into_response();
    }
    let (link, expires_at) =
        match link::issue(reg, flow.id, Kind::Recovery, identity.id, "", lifespan).await {
            Ok(l) => l,
            Err(e) => return ApiError::from(e).into_response(),
        };
    Json(json!({
        "recovery_link": link.expose(),
        "expires_at": portcullis_core::timefmt::rfc3339(expires_at),
    }))
    .into_response()
}
