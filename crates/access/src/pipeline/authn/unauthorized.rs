//! `unauthorized`: rejects every request with 401 (and, unlike "not responsible", stops the
//! chain).

use crate::pipeline::PipelineError;

/// The `unauthorized` authenticator.
pub struct Unauthorized;

impl Unauthorized {
    /// Always fails.
    pub fn authenticate(&self) -> PipelineError {
        PipelineError::unauthorized()
    }
}
