//! `allow`: every authenticated request is allowed.

use crate::pipeline::PipelineError;

/// The `allow` authorizer.
pub struct Allow;

impl Allow {
    /// Always allows.
    pub fn authorize(&self) -> Result<(), PipelineError> {
        Ok(())
    }
}
