//! Errors loading the access proxy (config, rules); request-time errors are
//! [`crate::pipeline::PipelineError`]s written by the error handlers.

use portcullis_config::{ConfigError, join_errors};

/// Why the access proxy could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The config file is invalid; every problem names file, line and key.
    #[error("{}", join_errors(.0))]
    Config(Vec<ConfigError>),
    /// An access rule repository could not be read or is invalid.
    #[error("{0}")]
    Rules(ConfigError),
    /// A session resolver was registered for something that is not a URL.
    #[error("invalid session resolver URL {url:?}: {reason}")]
    ResolverUrl {
        /// The URL given.
        url: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The `file://` rule repositories cannot be watched for changes.
    #[error("cannot watch access rule files: {0}")]
    Watch(String),
    /// The embedded Oathkeeper schema could not be prepared (a build defect).
    #[error("built-in Oathkeeper config schema: {0}")]
    Schema(String),
}

impl From<ConfigError> for AccessError {
    fn from(e: ConfigError) -> Self {
        Self::Config(vec![e])
    }
}
