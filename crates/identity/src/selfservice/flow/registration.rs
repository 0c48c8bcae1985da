//! The registration flow, one-step ("unified") style: traits from the identity schema plus a
//! password in one form. With the `session` after-hook (as in the tutorial) the new identity
//! is signed in at once.

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Flow, FlowType, Kind};
use crate::csrf;
use crate::driver::{Registry, see_other, with_cookies};
use crate::error::ApiError;
use crate::identity::{Identity, View};
use crate::persistence::FlowStore;
use crate::selfservice::strategy::password::{self, Failure};
use crate::text;
use crate::ui::{Container, Group, Node};
use crate::x::{self, Ctx};

/// The one-step form: csrf token, traits, password, submit.
pub(crate) fn nodes(reg: &Registry, ui: &mut Container, masked_csrf: Option<&str>) {
    if let Some(token) = masked_csrf {
        ui.nodes.push(Node::csrf(token));
    }
    if let Some(schema) = reg.config.schemas().default_schema() {
        ui.nodes.extend(schema.trait_nodes(Group::Default));
    }
    ui.nodes.push(
        Node::input(Group::Password, "password", "password")
            .required()
            .autocomplete("new-password")
            .label(text::label_password()),
    );
    ui.nodes.push(Node::submit(
        Group::Password,
        "password",
        text::registration(),
    ));
}

/// `GET /self-service/registration/{browser,api}`.
pub(crate) async fn init(reg: Arc<Registry>, ctx: Ctx, flow_type: FlowType) -> Response {
    if !reg.config.registration_enabled {
        return ApiError::bad_request("Registration is not allowed because it was disabled.")
            .id("self_service_flow_disabled")
            .into_response();
    }
    match reg.session_of(&ctx).await {
        Ok(Some(_)) => {
            if flow_type == FlowType::Browser && !ctx.is_json() {
                return see_other(reg.config.default_return_url.as_str());
            }
            return ApiError::bad_request(
                "A valid session was detected and thus registration is not possible.",
            )
            .id("session_already_available")
            .into_response();
        }
        Ok(None) => {}
        Err(e) => return ApiError::from(e).into_response(),
    }
    let (csrf_cookie, set_csrf) = match flow_type {
        FlowType::Browser => {
            let (v, set) = reg.ensure_csrf(&ctx);
            (Some(v), set)
        }
        FlowType::Api => (None, None),
    };
    let flow = match super::create(
        &reg,
        &ctx,
        Kind::Registration,
        flow_type,
        csrf_cookie.as_deref(),
        ctx.query("return_to"),
        nodes,
    )
    .await
    {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    match flow_type {
        FlowType::Browser => super::respond_browser_init(&reg, &ctx, &flow, set_csrf),
        FlowType::Api => Json(flow.to_json()).into_response(),
    }
}

/// `POST /self-service/registration?flow=`.
pub(crate) async fn submit(reg: Arc<Registry>, ctx: Ctx, body: bytes::Bytes) -> Response {
    let mut flow = match super::load(&reg, &ctx, Kind::Registration, "flow").await {
        Ok(f) => f,
        Err(e) => return super::unrecoverable(&reg, &ctx, e).await,
    };
    let body = match x::parse_body(&ctx, &body) {
        Ok(b) => b,
        Err(e) => return super::unrecoverable(&reg, &ctx, e).await,
    };
    if flow.expires_at <= reg.now() {
        return super::expired(&reg, &ctx, &flow, nodes, text::registration_flow_expired).await;
    }
    if let Err(e) = super::check_csrf(&reg, &ctx, &flow, &body) {
        return super::unrecoverable(&reg, &ctx, e).await;
    }
    if x::body_str(&body, "method") != Some("password") || !reg.config.password_enabled {
        flow.ui.reset_messages();
        flow.ui.refill(&body);
        flow.ui.messages.push(text::no_strategy_registration());
        return super::respond_with_errors(&reg, &ctx, flow).await;
    }
    match password::register(&reg, &mut flow, &body).await {
        Ok(identity) => succeed(&reg, &ctx, flow, identity).await,
        Err(Failure::Form) => super::respond_with_errors(&reg, &ctx, flow).await,
        Err(Failure::Error(e)) => super::unrecoverable(&reg, &ctx, e).await,
    }
}

async fn succeed(reg: &Registry, ctx: &Ctx, mut flow: Flow, identity: Identity) -> Response {
    tracing::info!(identity = %identity.id, flow_type = flow.flow_type.as_str(), "identity registered");
    flow.state = "passed_challenge".into();
    flow.active = Some("password".into());
    flow.ui.reset_messages();
    flow.updated_at = reg.now();
    if let Err(e) = reg.store.update_flow(&flow).await {
        return ApiError::from(e).into_response();
    }
    let identity_json = identity.to_json(&reg.config.public_base_url, View::Public);
    let issued = if reg.config.registration_session_hook {
        match reg.issue_session(identity, "password", ctx).await {
            Ok(i) => Some(i),
            Err(e) => return ApiError::from(e).into_response(),
        }
    } else {
        None
    };
    let mut body = json!({ "identity": identity_json });
    let mut continue_with: Vec<Value> = Vec::new();
    if let (Some(issued), Some(map)) = (&issued, body.as_object_mut()) {
        map.insert(
            "session".into(),
            issued
                .session
                .to_json(&reg.config.public_base_url, reg.now()),
        );
        if flow.flow_type == FlowType::Api {
            map.insert("session_token".into(), json!(issued.token.expose()));
            continue_with.push(json!({
                "action": "set_ory_session_token",
                "ory_session_token": issued.token.expose(),
            }));
        }
    }
    if flow.flow_type == FlowType::Api {
        if let Some(map) = body.as_object_mut() {
            map.insert("continue_with".into(), Value::Array(continue_with));
        }
        return (StatusCode::OK, Json(body)).into_response();
    }
    let to = super::return_url(
        reg,
        &flow,
        reg.config.registration.after_return_url.as_ref(),
    );
    let mut cookies = Vec::new();
    if let Some(issued) = &issued {
        cookies.push(reg.session_cookie(&issued.token, issued.session.expires_at));
        cookies.push(reg.csrf_cookie(&csrf::generate()));
    }
    let res = if ctx.is_json() {
        continue_with.push(json!({"action": "redirect_browser_to", "redirect_browser_to": to}));
        if let Some(map) = body.as_object_mut() {
            map.insert("continue_with".into(), Value::Array(continue_with));
        }
        Json(body).into_response()
    } else {
        see_other(&to)
    };
    with_cookies(res, cookies)
}
