//! Authorizers: the one decision a rule makes after authentication.

pub mod allow;
pub mod deny;

use serde_json::Value;

use super::PipelineError;

/// A compiled authorizer.
pub enum Authorizer {
    /// `allow`.
    Allow(allow::Allow),
    /// `deny`.
    Deny(deny::Deny),
}

impl Authorizer {
    /// Compiles the handler `id` from its merged config.
    pub fn compile(id: &str, _config: &Value) -> Result<Self, String> {
        match id {
            "allow" => Ok(Self::Allow(allow::Allow)),
            "deny" => Ok(Self::Deny(deny::Deny)),
            other => Err(format!("the {other} authorizer is not implemented yet")),
        }
    }

    /// Allows the request or fails it.
    pub fn authorize(&self) -> Result<(), PipelineError> {
        match self {
            Self::Allow(h) => h.authorize(),
            Self::Deny(h) => h.authorize(),
        }
    }
}
