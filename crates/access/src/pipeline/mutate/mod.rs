//! Mutators: turn the authenticated session into what the upstream receives (headers).

pub mod header;
pub mod noop;

use serde_json::Value;

use super::{AuthenticationSession, PipelineError, RequestContext};

/// A compiled mutator.
pub enum Mutator {
    /// `noop`.
    Noop(noop::Noop),
    /// `header`.
    Header(header::Header),
}

impl Mutator {
    /// Compiles the handler `id` from its merged config.
    pub fn compile(id: &str, config: &Value) -> Result<Self, String> {
        match id {
            "noop" => Ok(Self::Noop(noop::Noop)),
            "header" => Ok(Self::Header(header::Header::compile(config)?)),
            other => Err(format!("the {other} mutator is not implemented yet")),
        }
    }

    /// Applies the mutation to the session.
    pub fn mutate(
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
        }
    }
}
