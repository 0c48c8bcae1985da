//! `deny`: every request is forbidden (403).

use crate::pipeline::PipelineError;

/// The `deny` authorizer.
pub struct Deny;

impl Deny {
    /// Always forbids.
    pub fn authorize(&self) -> Result<(), PipelineError> {
        Err(PipelineError::forbidden())
    }
}
