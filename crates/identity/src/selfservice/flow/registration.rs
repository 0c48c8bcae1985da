//! The registration flow, one-step ("unified") style: traits from the identity schema plus a
//! password in one form. With the `session` after-hook (as in the tutorial) the new identity
//! is signed in at once.

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Flow, FlowType, Kind, verification};
use crate::csrf;
use crate::driver::{Registry, see_other, with_cookies};
use crate::error::ApiError;
use crate::identity::{Identity, View};
use crate::persistence::FlowStore;
use crate::selfservice::hook;
use crate::selfservice::strategy::password::{self, Failure};
use crate::text;
use crate::ui::{Container, Group, Node};
use crate::x::{self, Ctx};

/// The first form: with `style: profile_first` the traits and "Sign up" (`method=profile`);
/// otherwise the one-step form: csrf token, traits, password, submit.
pub(crate) fn nodes(reg: &Registry, ui: &mut Container, masked_csrf: Option<&str>) {
    if let Some(token) = masked_csrf {
        ui.nodes.push(Node::csrf(token));
    }
    if let Some(schema) = reg.config.schemas().default_schema() {
        ui.nodes.extend(schema.trait_nodes(Group::Default));
    }
    if reg.config.registration_profile_first {
        ui.nodes.push(Node::submit(
            Group::Profile,
            "profile",
            text::registration(),
        ));
        return;
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
    let before = &reg.config.web_hooks.registration_before;
    super::init_flow(&reg, &ctx, Kind::Registration, flow_type, before, nodes).await
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
    // The "Back" button sends only `screen=previous`, so it needs no `method`.
    if reg.config.registration_profile_first
        && (x::body_str(&body, "method") == Some("profile")
            || x::body_str(&body, "screen") == Some("previous"))
    {
        return profile_step(&reg, &ctx, flow, &body).await;
    }
    if x::body_str(&body, "method") != Some("password") || !reg.config.password_enabled {
        flow.ui.reset_messages();
        flow.ui.refill(&body);
        flow.ui.messages.push(text::no_strategy_registration());
        return super::respond_with_errors(&reg, &ctx, flow).await;
    }
    match password::register(&reg, &ctx, &mut flow, &body).await {
        Ok(identity) => succeed(&reg, &ctx, flow, identity).await,
        Err(Failure::Form | Failure::Locked(_)) => {
            super::respond_with_errors(&reg, &ctx, flow).await
        }
        Err(Failure::Error(e)) => super::unrecoverable(&reg, &ctx, e).await,
    }
}

/// `profile_first`, first step: traits are validated, then the form asks for credentials
/// (traits kept as hidden fields, a password, and "Back"); `screen=previous` returns to the
/// traits form with its values.
async fn profile_step(reg: &Registry, ctx: &Ctx, mut flow: Flow, body: &Value) -> Response {
    let Some(schema) = reg.config.schemas().default_schema() else {
        return super::unrecoverable(reg, ctx, ApiError::internal(&"no default identity schema"))
            .await;
    };
    let csrf = flow
        .ui
        .nodes
        .iter()
        .find(|n| n.name() == "csrf_token")
        .cloned();
    let mut traits = body.get("traits").cloned().unwrap_or_else(|| json!({}));
    schema.coerce_form_traits(&mut traits);
    let filled = json!({ "traits": traits });
    flow.ui.reset_messages();
    flow.ui.nodes.clear();
    flow.ui.nodes.extend(csrf);
    if x::body_str(body, "screen") == Some("previous") {
        let mut first = schema.trait_nodes(Group::Default);
        first.push(Node::submit(
            Group::Profile,
            "profile",
            text::registration(),
        ));
        flow.ui.nodes.extend(first);
        flow.ui.refill(&filled);
        return super::respond_with_flow(reg, ctx, flow).await;
    }
    let problems = schema.validate_traits(&traits);
    if !problems.is_empty() {
        flow.ui.nodes.extend(schema.trait_nodes(Group::Default));
        flow.ui.nodes.push(Node::submit(
            Group::Profile,
            "profile",
            text::registration(),
        ));
        flow.ui.refill(&filled);
        for (name, message) in problems {
            flow.ui.add_message(&name, message);
        }
        return super::respond_with_errors(reg, ctx, flow).await;
    }
    for node in schema.trait_nodes(Group::Default) {
        if let Some(value) = crate::ui::lookup_dotted(&filled, node.name()).filter(|v| !v.is_null())
        {
            flow.ui
                .nodes
                .push(Node::input(Group::Default, node.name(), "hidden").value(value.clone()));
        }
    }
    flow.ui.nodes.push(
        Node::input(Group::Password, "password", "password")
            .required()
            .autocomplete("new-password")
            .label(text::label_password()),
    );
    flow.ui.nodes.push(Node::submit(
        Group::Password,
        "password",
        text::registration(),
    ));
    flow.ui.nodes.push(Node::button(
        Group::Profile,
        "screen",
        Value::String("previous".into()),
        text::back(),
    ));
    super::respond_with_flow(reg, ctx, flow).await
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
    // The other web hooks run once the identity is stored (and signed in).
    let post_persist: Vec<&hook::web_hook::WebHook> = reg
        .config
        .web_hooks
        .registration_after
        .iter()
        .filter(|h| !h.interrupts())
        .collect();
    let session_json = issued
        .as_ref()
        .map(|i| i.session.to_json(&reg.config.public_base_url, reg.now()));
    if let Err(e) = hook::after(
        reg,
        ctx,
        &flow,
        post_persist,
        Some(identity_json.clone()),
        session_json,
    )
    .await
    {
        return super::unrecoverable(reg, ctx, hook::failed(e)).await;
    }
    let mut body = json!({ "identity": identity_json });
    let mut continue_with: Vec<Value> = Vec::new();
    // Browsers get a new CSRF token with their session; the verification flow is bound to it.
    let new_csrf = (flow.flow_type == FlowType::Browser).then(csrf::generate);
    let mut verification_url = None;
    if reg.config.verification_enabled
        && (reg.config.code.enabled || reg.config.verification.use_link)
    {
        for address in verifiable_emails(&identity_json) {
            let vflow = match verification::create_sent(
                reg,
                ctx,
                flow.flow_type,
                new_csrf.as_deref(),
                &address,
            )
            .await
            {
                Ok(f) => f,
                Err(e) => return e.into_response(),
            };
            let url = vflow.ui_location(reg);
            continue_with.push(json!({
                "action": "show_verification_ui",
                "flow": {"id": vflow.id, "verifiable_address": address, "url": url},
            }));
            verification_url.get_or_insert(url);
        }
    }
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
    }
    if issued.is_some() || verification_url.is_some() {
        cookies.extend(new_csrf.as_deref().map(|c| reg.csrf_cookie(c)));
    }
    // `show_verification_ui` sends browsers to the verification flow instead of `return_to`.
    let to = match verification_url {
        Some(url) if reg.config.registration_show_verification_ui => url,
        _ => to,
    };
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

/// The e-mail addresses among an identity's verifiable addresses.
fn verifiable_emails(identity_json: &Value) -> Vec<String> {
    identity_json["verifiable_addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["via"] == "email")
        .filter_map(|a| a["value"].as_str().map(str::to_string))
        .collect()
}
