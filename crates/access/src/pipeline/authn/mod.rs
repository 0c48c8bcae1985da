//! Authenticators: each either establishes the session's subject, declares itself not
//! responsible (the next one is tried) or fails the request.

pub mod anonymous;
pub mod bearer_token;
pub mod cookie_session;
pub mod jwt;
pub mod noop;
pub mod oauth2;
pub mod oauth2_client_credentials;
pub mod oauth2_introspection;
pub mod scope_strategy;
mod session_check;
pub mod token_from;
pub mod unauthorized;

use serde_json::Value;

use super::{AuthenticationSession, CompileContext, PipelineError, RequestContext};

/// What an authenticator concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The session is established.
    Authenticated,
    /// The credentials this authenticator handles are absent; try the next one.
    NotResponsible,
}

/// A compiled authenticator.
pub enum Authenticator {
    /// `noop`.
    Noop(noop::Noop),
    /// `anonymous`.
    Anonymous(anonymous::Anonymous),
    /// `cookie_session`.
    CookieSession(cookie_session::CookieSession),
    /// `bearer_token`.
    BearerToken(bearer_token::BearerToken),
    /// `jwt`.
    Jwt(jwt::Jwt),
    /// `oauth2_introspection`.
    Oauth2Introspection(Box<oauth2_introspection::Oauth2Introspection>),
    /// `oauth2_client_credentials`.
    Oauth2ClientCredentials(Box<oauth2_client_credentials::Oauth2ClientCredentials>),
    /// `unauthorized`.
    Unauthorized(unauthorized::Unauthorized),
}

impl Authenticator {
    /// Compiles the handler `id` from its merged, schema-valid config.
    pub fn compile(id: &str, config: &Value, ctx: &CompileContext) -> Result<Self, String> {
        match id {
            "noop" => Ok(Self::Noop(noop::Noop)),
            "anonymous" => Ok(Self::Anonymous(anonymous::Anonymous::compile(config))),
            "cookie_session" => Ok(Self::CookieSession(cookie_session::CookieSession::compile(
                config, ctx,
            )?)),
            "bearer_token" => Ok(Self::BearerToken(bearer_token::BearerToken::compile(
                config, ctx,
            )?)),
            "jwt" => Ok(Self::Jwt(jwt::Jwt::compile(config, ctx)?)),
            "oauth2_introspection" => Ok(Self::Oauth2Introspection(Box::new(
                oauth2_introspection::Oauth2Introspection::compile(config, ctx)?,
            ))),
            "oauth2_client_credentials" => Ok(Self::Oauth2ClientCredentials(Box::new(
                oauth2_client_credentials::Oauth2ClientCredentials::compile(config, ctx)?,
            ))),
            "unauthorized" => Ok(Self::Unauthorized(unauthorized::Unauthorized)),
            other => Err(format!("the {other} authenticator is not implemented yet")),
        }
    }

    /// Runs the authenticator.
    pub async fn authenticate(
        &self,
        request: &RequestContext,
        session: &mut AuthenticationSession,
    ) -> Result<Outcome, PipelineError> {
        match self {
            Self::Noop(h) => Ok(h.authenticate(session)),
            Self::Anonymous(h) => Ok(h.authenticate(request, session)),
            Self::CookieSession(h) => h.authenticate(request, session).await,
            Self::BearerToken(h) => h.authenticate(request, session).await,
            Self::Jwt(h) => h.authenticate(request, session).await,
            Self::Oauth2Introspection(h) => h.authenticate(request, session).await,
            Self::Oauth2ClientCredentials(h) => h.authenticate(request, session).await,
            Self::Unauthorized(h) => Err(h.authenticate()),
        }
    }
}
