//! Logout: browsers ask for a logout URL carrying a per-session token
//! (`GET /self-service/logout/browser`) and follow it (`GET /self-service/logout?token=`);
//! native apps revoke their session token (`DELETE /self-service/logout/api`). Revocation is
//! a store write, so every check after it — including the in-process whoami — sees it at once.

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::config::join_url;
use crate::csrf;
use crate::driver::{Registry, see_other, with_cookies};
use crate::error::ApiError;
use crate::persistence::SessionStore;
use crate::session;
use crate::x::{self, Ctx};

/// `GET /self-service/logout/browser`: `{logout_url, logout_token}` for the cookie's session.
pub(crate) async fn create_browser(reg: Arc<Registry>, ctx: Ctx) -> Response {
    let session = match reg.session_of(&ctx).await {
        Ok(Some(s)) => s,
        Ok(None) => return ApiError::session_inactive().into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let return_to = match ctx.query("return_to").filter(|r| !r.is_empty()) {
        Some(r) => match x::secure_redirect(
            Some(&r),
            &reg.config.logout_return_url,
            &reg.config.allowed_return_urls,
            &reg.config.public_base_url,
        ) {
            Ok(u) => Some(u.to_string()),
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    let token = session::logout_token(&reg.config.cookie_secrets, session.id);
    let mut url = join_url(&reg.config.public_base_url, "/self-service/logout");
    url.push_str("?token=");
    url.push_str(token.expose());
    if let Some(r) = return_to {
        url.push_str("&return_to=");
        url.extend(form_urlencoded::byte_serialize(r.as_bytes()));
    }
    Json(json!({"logout_url": url, "logout_token": token.expose()})).into_response()
}

/// `GET /self-service/logout?token=`: revokes the session, clears the cookie, rotates the
/// CSRF token and sends the browser to `return_to` or the logout default (204 for JSON).
pub(crate) async fn update(reg: Arc<Registry>, ctx: Ctx) -> Response {
    let Some(token) = ctx.query("token").filter(|t| !t.is_empty()) else {
        return super::unrecoverable(
            &reg,
            &ctx,
            ApiError::bad_request("Please include a token in the URL query."),
        )
        .await;
    };
    let to = match x::secure_redirect(
        ctx.query("return_to").as_deref(),
        &reg.config.logout_return_url,
        &reg.config.allowed_return_urls,
        &reg.config.public_base_url,
    ) {
        Ok(u) => u,
        Err(e) => return super::unrecoverable(&reg, &ctx, e).await,
    };
    let session = match reg
        .store
        .session_by_logout_token(&session::token_hash(&token))
        .await
    {
        Ok(Some(s)) if s.active => s,
        Ok(_) => {
            let err = ApiError::new(StatusCode::UNAUTHORIZED)
                .id("session_inactive")
                .reason("Unable to log out because the logout token in the URL query does not match the session cookie.");
            return super::unrecoverable(&reg, &ctx, err).await;
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    if let Err(e) = reg.store.revoke_session(session.id).await {
        return ApiError::from(e).into_response();
    }
    tracing::info!(session = %session.id, "session revoked by browser logout");
    let cookies = [
        reg.clear_session_cookie(),
        reg.csrf_cookie(&csrf::generate()),
    ];
    let res = if ctx.is_json() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        see_other(to.as_str())
    };
    with_cookies(res, cookies)
}

/// `DELETE /self-service/logout/api` with `{"session_token": "..."}`.
pub(crate) async fn perform_native(reg: Arc<Registry>, ctx: Ctx, body: bytes::Bytes) -> Response {
    let body = match x::parse_body(&ctx, &body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let Some(token) = x::body_str(&body, "session_token").filter(|t| !t.is_empty()) else {
        return ApiError::bad_request("The session_token is missing from the request body.")
            .into_response();
    };
    match reg.store.session_by_token(&session::token_hash(token)).await {
        Ok(Some(s)) if s.active => match reg.store.revoke_session(s.id).await {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => ApiError::from(e).into_response(),
        },
        Ok(_) => ApiError::new(StatusCode::FORBIDDEN)
            .reason("The provided Ory Session Token could not be found, is invalid, or otherwise malformed.")
            .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
