//! Mutators: turn the authenticated session into what the upstream receives (headers).

pub mod cookie;
pub mod header;
pub mod hydrator;
pub mod id_token;
pub mod noop;

use serde_json::Value;

use super::{AuthenticationSession, CompileContext, PipelineError, RequestContext};

/// A compiled mutator.
pub enum Mutator {
    /// `noop`.
    Noop(noop::Noop),
    /// `header`.
    Header(header::Header),
    /// `cookie`.
    Cookie(cookie::Cookie),
    /// `id_token`.
    IdToken(Box<id_token::IdToken>),
    /// `hydrator`.
    Hydrator(Box<hydrator::Hydrator>),
}

impl Mutator {
    /// Compiles the handler `id` from its merged config.
    pub fn compile(id: &str, config: &Value, ctx: &CompileContext) -> Result<Self, String> {
        match id {
            "noop" => Ok(Self::Noop(noop::Noop)),
            "header" => Ok(Self::Header(header::Header::compile(config)?)),
            "cookie" => Ok(Self::Cookie(cookie::Cookie::compile(config)?)),
            "id_token" => Ok(Self::IdToken(Box::new(id_token::IdToken::compile(
                config, ctx,
            )?))),
            "hydrator" => Ok(Self::Hydrator(Box::new(hydrator::Hydrator::compile(
                config, ctx,
            )?))),
            other => Err(format!("the {other} mutator is not implemented yet")),
        }
    }

    /// Applies the mutation to the session.
    pub async fn mutate(
        &self,
        request: &RequestContext,
        session: &mut AuthenticationSession,
    ) -> Result<(), PipelineError> {
        match self {
            Self::Noop(h) => {
                h.mutate(request, session);
                Ok(())
            }
            Self::Header(h) => h.mutate(request, session),
            Self::Cookie(h) => h.mutate(request, session),
            Self::IdToken(h) => h.mutate(request, session).await,
            Self::Hydrator(h) => h.mutate(request, session).await,
        }
    }
}
