//! The registry (Kratos's `driver`): configuration, store and hasher shared by every handler,
//! plus the session operations all flows need — issuing, reading credentials off a request,
//! and writing the cookies.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use portcullis_core::Secret;
use time::OffsetDateTime;

use crate::config::IdentityConfig;
use crate::cookie;
use crate::csrf;
use crate::hash::Hasher;
use crate::identity::Identity;
use crate::persistence::{SessionStore, SqlStore, StoreError};
use crate::session::{self, Device, Issued, Session};
use crate::x::Ctx;

/// Everything a handler needs.
#[derive(Debug)]
pub(crate) struct Registry {
    pub config: IdentityConfig,
    pub store: SqlStore,
    pub hasher: Hasher,
    pub csrf_cookie_name: String,
    /// Nudges the courier worker when a message is queued.
    pub courier_wake: tokio::sync::Notify,
    /// Breached-password lookups (with their cache).
    pub breaches: crate::selfservice::strategy::password::breach::BreachChecker,
    /// The client for outbound calls (web hooks).
    pub http: portcullis_http::UpstreamClient,
}

impl Registry {
    /// The current time (one place to change for a clock abstraction).
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    /// The session token a request carries, in Kratos's order: `X-Session-Token`, the session
    /// cookie (signature checked), `Authorization: Bearer`.
    pub fn token_from(
        &self,
        cookie_header: Option<&str>,
        session_token: Option<&str>,
        authorization: Option<&str>,
    ) -> Option<String> {
        if let Some(t) = session_token.map(str::trim).filter(|t| !t.is_empty()) {
            return Some(t.to_string());
        }
        if let Some(value) = cookie_header
            .and_then(|h| cookie::get_in([h], &self.config.session_cookie_name))
            .and_then(|v| session::verify_cookie(&self.config.cookie_secrets, &v))
        {
            return Some(value);
        }
        authorization
            .and_then(|a| {
                a.strip_prefix("Bearer ")
                    .or_else(|| a.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    }

    /// The active session identified by the given credentials, if any.
    pub async fn active_session(
        &self,
        cookie_header: Option<&str>,
        session_token: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Option<Session>, StoreError> {
        let Some(token) = self.token_from(cookie_header, session_token, authorization) else {
            return Ok(None);
        };
        let now = self.now();
        Ok(self
            .store
            .session_by_token(&session::token_hash(&token))
            .await?
            .filter(|s| s.is_active(now)))
    }

    /// The active session of a request.
    pub async fn session_of(&self, ctx: &Ctx) -> Result<Option<Session>, StoreError> {
        let cookies: Vec<&str> = ctx
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let cookie_header = cookies.join("; ");
        self.active_session(
            Some(cookie_header.as_str()).filter(|c| !c.is_empty()),
            ctx.header("x-session-token"),
            ctx.header(header::AUTHORIZATION.as_str()),
        )
        .await
    }

    /// Issues and stores a session for `identity`, authenticated now by `method`.
    pub async fn issue_session(
        &self,
        identity: Identity,
        method: &str,
        ctx: &Ctx,
    ) -> Result<Issued, StoreError> {
        let device = Device {
            id: portcullis_core::new_id(),
            ip_address: ctx.peer.map(|p| p.ip().to_string()),
            user_agent: ctx.user_agent(),
        };
        let issued = Session::issue(
            identity,
            method,
            self.config.session_lifespan,
            device,
            self.now(),
        );
        self.store
            .create_session(
                &issued.session,
                &session::token_hash(issued.token.expose()),
                &session::token_hash(
                    session::logout_token(&self.config.cookie_secrets, issued.session.id).expose(),
                ),
            )
            .await?;
        Ok(issued)
    }

    /// `Set-Cookie` for a new session.
    pub fn session_cookie(&self, token: &Secret<String>, expires_at: OffsetDateTime) -> String {
        let max_age = self
            .config
            .session_cookie_persistent
            .then(|| (expires_at - self.now()).whole_seconds().max(1));
        self.config.session_cookie.set_cookie(
            &self.config.session_cookie_name,
            &session::sign_cookie(&self.config.cookie_secrets, token.expose()),
            max_age,
        )
    }

    /// `Set-Cookie` deleting the session cookie.
    pub fn clear_session_cookie(&self) -> String {
        self.config
            .session_cookie
            .set_cookie(&self.config.session_cookie_name, "", Some(0))
    }

    /// The CSRF cookie value a request carries.
    pub fn csrf_cookie_of(&self, ctx: &Ctx) -> Option<String> {
        cookie::get(&ctx.headers, &self.csrf_cookie_name).filter(|v| !v.is_empty())
    }

    /// `Set-Cookie` for a CSRF token (nosurf keeps it for a year).
    pub fn csrf_cookie(&self, value: &str) -> String {
        self.config
            .csrf_cookie
            .set_cookie(&self.csrf_cookie_name, value, Some(365 * 24 * 3600))
    }

    /// The request's CSRF cookie, or a new one with the `Set-Cookie` to send.
    pub fn ensure_csrf(&self, ctx: &Ctx) -> (String, Option<String>) {
        match self.csrf_cookie_of(ctx) {
            Some(v) => (v, None),
            None => {
                let v = csrf::generate();
                let set = self.csrf_cookie(&v);
                (v, Some(set))
            }
        }
    }
}

/// Appends `Set-Cookie` headers to a response.
pub(crate) fn with_cookies(
    mut res: Response,
    cookies: impl IntoIterator<Item = String>,
) -> Response {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

/// A 303 See Other to `location`.
pub(crate) fn see_other(location: &str) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, v);
    }
    let mut res = Response::new(axum::body::Body::empty());
    *res.status_mut() = http::StatusCode::SEE_OTHER;
    *res.headers_mut() = headers;
    res
}
