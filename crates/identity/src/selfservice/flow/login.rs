//! The login flow: `GET /self-service/login/{browser,api}`, `GET /self-service/login/flows`,
//! `POST /self-service/login?flow=`. A successful login always issues a new session (and, for
//! browsers, a new CSRF token), so a session fixed before login is never promoted.

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Flow, FlowType, Kind};
use crate::csrf;
use crate::driver::{Registry, see_other, with_cookies};
use crate::error::ApiError;
use crate::persistence::{FlowStore, SessionStore};
use crate::selfservice::hook;
use crate::selfservice::strategy::password::{self, Failure};
use crate::text;
use crate::ui::{Container, Group, Node};
use crate::x::{self, Ctx};

/// The unified login form: identifier, password, submit.
pub(crate) fn nodes(reg: &Registry, ui: &mut Container, masked_csrf: Option<&str>) {
    if let Some(token) = masked_csrf {
        ui.nodes.push(Node::csrf(token));
    }
    let label = reg
        .config
        .schemas()
        .default_schema()
        .map_or_else(text::label_id, |s| s.identifier_label());
    ui.nodes.push(
        Node::input(Group::Default, "identifier", "text")
            .required()
            .value(Value::String(String::new()))
            .label(label),
    );
    ui.nodes.push(
        Node::input(Group::Password, "password", "password")
            .required()
            .autocomplete("current-password")
            .label(text::label_password()),
    );
    ui.nodes.push(Node::submit(
        Group::Password,
        "password",
        text::login_with_password(),
    ));
}

/// `GET /self-service/login/browser` and `/api`.
pub(crate) async fn init(reg: Arc<Registry>, ctx: Ctx, flow_type: FlowType) -> Response {
    let refresh = ctx.query("refresh").is_some_and(|r| r == "true");
    let signed_in = match reg.session_of(&ctx).await {
        Ok(Some(_)) if !refresh => {
            if flow_type == FlowType::Browser && !ctx.is_json() {
                let to = x::secure_redirect(
                    ctx.query("return_to").as_deref(),
                    &reg.config.default_return_url,
                    &reg.config.allowed_return_urls,
                    &reg.config.public_base_url,
                )
                .unwrap_or_else(|_| reg.config.default_return_url.clone());
                return see_other(to.as_str());
            }
            return session_already_available().into_response();
        }
        Ok(s) => s.is_some(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let before = &reg.config.web_hooks.login_before;
    super::init_flow(
        &reg,
        &ctx,
        Kind::Login,
        flow_type,
        before,
        |reg, ui, csrf| {
            nodes(reg, ui, csrf);
            if refresh && signed_in {
                ui.messages.push(text::login_re_auth());
            }
        },
    )
    .await
}

fn session_already_available() -> ApiError {
    ApiError::bad_request(
        "A valid session was detected and thus login is not possible. Did you forget to set `?refresh=true`?",
    )
    .id("session_already_available")
}

/// `POST /self-service/login?flow=`.
pub(crate) async fn submit(reg: Arc<Registry>, ctx: Ctx, body: bytes::Bytes) -> Response {
    let mut flow = match super::load(&reg, &ctx, Kind::Login, "flow").await {
        Ok(f) => f,
        Err(e) => return super::unrecoverable(&reg, &ctx, e).await,
    };
    let body = match x::parse_body(&ctx, &body) {
        Ok(b) => b,
        Err(e) => return super::unrecoverable(&reg, &ctx, e).await,
    };
    if flow.expires_at <= reg.now() {
        return super::expired(&reg, &ctx, &flow, nodes, text::login_flow_expired).await;
    }
    if let Err(e) = super::check_csrf(&reg, &ctx, &flow, &body) {
        return super::unrecoverable(&reg, &ctx, e).await;
    }
    if x::body_str(&body, "method") != Some("password") || !reg.config.password_enabled {
        flow.ui.reset_messages();
        flow.ui.messages.push(text::no_strategy_login());
        return super::respond_with_errors(&reg, &ctx, flow).await;
    }
    match password::login(&reg, &mut flow, &body, ctx.peer.map(|p| p.ip())).await {
        Ok(identity)
            if reg.config.login_require_verified_address && !verified(&identity, &body) =>
        {
            flow.ui.messages.push(text::address_not_verified());
            super::respond_with_errors(&reg, &ctx, flow).await
        }
        Ok(identity) => succeed(&reg, &ctx, flow, identity).await,
        Err(Failure::Form) => {
            tracing::debug!(flow = %flow.id, "login refused");
            super::respond_with_errors(&reg, &ctx, flow).await
        }
        Err(Failure::Locked(wait)) => {
            tracing::info!(flow = %flow.id, retry_after = wait, "login refused: locked");
            let mut res = super::respond_with_errors(&reg, &ctx, flow).await;
            res.headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(wait));
            res
        }
        Err(Failure::Error(e)) => super::unrecoverable(&reg, &ctx, e).await,
    }
}

async fn succeed(
    reg: &Registry,
    ctx: &Ctx,
    mut flow: Flow,
    identity: crate::identity::Identity,
) -> Response {
    if flow.refresh
        && let Some(response) = refresh_session(reg, ctx, &mut flow, &identity).await
    {
        return response;
    }
    let identity_json = identity.to_json(&reg.config.public_base_url, crate::identity::View::Admin);
    let issued = match reg.issue_session(identity, "password", ctx).await {
        Ok(i) => i,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let hooks = &reg.config.web_hooks.login_after;
    if !hooks.is_empty() {
        let session_json = issued
            .session
            .to_json(&reg.config.public_base_url, reg.now());
        let ran = hook::after(
            reg,
            ctx,
            &flow,
            hooks,
            Some(identity_json),
            Some(session_json),
        );
        if let Err(e) = ran.await {
            // The hook refused the login: the session just issued never reaches the client.
            if let Err(e) = reg.store.revoke_session(issued.session.id).await {
                return ApiError::from(e).into_response();
            }
            return match hook::apply(&mut flow, e) {
                Ok(()) => super::respond_with_errors(reg, ctx, flow).await,
                Err(e) => super::unrecoverable(reg, ctx, e).await,
            };
        }
    }
    tracing::info!(identity = %issued.session.identity_id, session = %issued.session.id, flow_type = flow.flow_type.as_str(), "login succeeded");
    if reg.config.login_revoke_active_sessions {
        match reg
            .store
            .revoke_sessions_of(issued.session.identity_id, Some(issued.session.id))
            .await
        {
            Ok(n) => tracing::info!(revoked = n, "revoke_active_sessions hook"),
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    flow.state = "passed_challenge".into();
    flow.active = Some("password".into());
    flow.ui.reset_messages();
    flow.updated_at = reg.now();
    if let Err(e) = reg.store.update_flow(&flow).await {
        return ApiError::from(e).into_response();
    }
    let session_json = issued
        .session
        .to_json(&reg.config.public_base_url, reg.now());
    if flow.flow_type == FlowType::Api {
        return (
            StatusCode::OK,
            Json(json!({
                "session": session_json,
                "session_token": issued.token.expose(),
            })),
        )
            .into_response();
    }
    let to = super::return_url(reg, &flow, reg.config.login.after_return_url.as_ref());
    let cookies = [
        reg.session_cookie(&issued.token, issued.session.expires_at),
        reg.csrf_cookie(&csrf::generate()),
    ];
    let res = if ctx.is_json() {
        Json(json!({
            "session": session_json,
            "continue_with": [{"action": "redirect_browser_to", "redirect_browser_to": to}],
        }))
        .into_response()
    } else {
        see_other(&to)
    };
    with_cookies(res, cookies)
}

/// A `refresh=true` login by the identity already signed in re-authenticates the existing
/// session (new `authenticated_at`, the method appended) instead of issuing another, so the
/// session becomes privileged again. `None` when there is no such session to refresh.
async fn refresh_session(
    reg: &Registry,
    ctx: &Ctx,
    flow: &mut Flow,
    identity: &crate::identity::Identity,
) -> Option<Response> {
    let mut session = match reg.session_of(ctx).await {
        Ok(Some(s)) if s.identity_id == identity.id => s,
        Ok(_) => return None,
        Err(e) => return Some(ApiError::from(e).into_response()),
    };
    let now = reg.now();
    session.authenticated_at = now;
    session
        .authentication_methods
        .push(crate::session::AuthenticationMethod {
            method: "password".into(),
            aal: "aal1".into(),
            completed_at: portcullis_core::timefmt::rfc3339(now),
        });
    if let Err(e) = reg.store.refresh_session(&session).await {
        return Some(ApiError::from(e).into_response());
    }
    tracing::info!(session = %session.id, "session re-authenticated");
    flow.state = "passed_challenge".into();
    flow.active = Some("password".into());
    flow.ui.reset_messages();
    flow.updated_at = now;
    if let Err(e) = reg.store.update_flow(flow).await {
        return Some(ApiError::from(e).into_response());
    }
    let session_json = session.to_json(&reg.config.public_base_url, now);
    if flow.flow_type == FlowType::Api {
        let mut body = json!({ "session": session_json });
        if let (Some(token), Some(map)) = (ctx.header("x-session-token"), body.as_object_mut()) {
            map.insert("session_token".into(), json!(token));
        }
        return Some(Json(body).into_response());
    }
    let to = super::return_url(reg, flow, reg.config.login.after_return_url.as_ref());
    Some(if ctx.is_json() {
        Json(json!({
            "session": session_json,
            "continue_with": [{"action": "redirect_browser_to", "redirect_browser_to": to}],
        }))
        .into_response()
    } else {
        see_other(&to)
    })
}

/// `require_verified_address`: the address the user signed in with (or, when the identifier is
/// not an address, any address) must be verified.
fn verified(identity: &crate::identity::Identity, body: &Value) -> bool {
    let identifier = crate::schema::normalize_identifier(
        x::body_str(body, "identifier")
            .or_else(|| x::body_str(body, "password_identifier"))
            .unwrap_or_default(),
    );
    let matching: Vec<_> = identity
        .verifiable_addresses
        .iter()
        .filter(|a| a.value == identifier)
        .collect();
    if matching.is_empty() {
        identity.verifiable_addresses.iter().any(|a| a.verified)
    } else {
        matching.iter().all(|a| a.verified)
    }
}
