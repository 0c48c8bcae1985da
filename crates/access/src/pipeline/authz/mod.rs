//! Authorizers: the one decision a rule makes after authentication.

pub mod allow;
pub mod deny;
pub mod remote_json;

use serde_json::Value;

use super::{AuthenticationSession, CompileContext, PipelineError, RequestContext};

/// A compiled authorizer.
pub enum Authorizer {
    /// `allow`.
    Allow(allow::Allow),
    /// `deny`.
    Deny(deny::Deny),
    /// `remote_json` (templated JSON payload) or `remote` (the request's own body).
    Remote(Box<remote_json::RemoteJson>),
}

impl Authorizer {
    /// Compiles the handler `id` from its merged config.
    pub fn compile(id: &str, config: &Value, ctx: &CompileContext) -> Result<Self, String> {
        match id {
            "allow" => Ok(Self::Allow(allow::Allow)),
            "deny" => Ok(Self::Deny(deny::Deny)),
            "remote_json" => Ok(Self::Remote(Box::new(remote_json::RemoteJson::compile(
                config, ctx, true,
            )?))),
            "remote" => Ok(Self::Remote(Box::new(remote_json::RemoteJson::compile(
                config, ctx, false,
            )?))),
            other => Err(format!("the {other} authorizer is not implemented yet")),
        }
    }

    /// Whether the authorizer needs the request body (`remote` forwards it).
    pub fn needs_body(&self) -> bool {
        matches!(self, Self::Remote(r) if r.forwards_body())
    }

    /// Allows the request or fails it; `body` is the buffered request body when
    /// [`Authorizer::needs_body`].
    pub async fn authorize(
        &self,
        request: &RequestContext,
        session: &mut AuthenticationSession,
        body: Option<bytes::Bytes>,
    ) -> Result<(), PipelineError> {
        match self {
            Self::Allow(h) => h.authorize(),
            Self::Deny(h) => h.authorize(),
            Self::Remote(h) => h.authorize(request, session, body).await,
        }
    }
}
