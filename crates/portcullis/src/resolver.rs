//! The in-process bridge from the access proxy's `cookie_session` to the identity server:
//! inside `up`, checking a session is a store lookup instead of an HTTP round trip, and a
//! revoked session is refused on the very next request.

use async_trait::async_trait;
use portcullis_access::{ResolveError, SessionCredentials, SessionResolver};
use portcullis_identity::Identity;

/// Answers `whoami` by asking the identity server directly.
pub struct InProcessSessions {
    identity: Identity,
}

impl InProcessSessions {
    /// Wraps an identity server.
    pub fn new(identity: Identity) -> Self {
        Self { identity }
    }
}

#[async_trait]
impl SessionResolver for InProcessSessions {
    async fn whoami(
        &self,
        creds: &SessionCredentials,
    ) -> Result<Option<serde_json::Value>, ResolveError> {
        self.identity
            .whoami(
                creds.cookie.as_deref(),
                creds.session_token.as_deref(),
                creds.authorization.as_deref(),
            )
            .await
            .map_err(|e| ResolveError::Internal(e.to_string()))
    }
}
