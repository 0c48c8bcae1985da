//! `anonymous`: a request without an `Authorization` header becomes the configured subject.

use http::header::AUTHORIZATION;
use serde_json::Value;

use super::Outcome;
use crate::pipeline::{AuthenticationSession, RequestContext};

/// The `anonymous` authenticator.
pub struct Anonymous {
    subject: String,
}

impl Anonymous {
    /// Compiles `{subject}` (empty or absent → `anonymous`).
    pub fn compile(config: &Value) -> Self {
        let subject = config
            .get("subject")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("anonymous");
        Self {
            subject: subject.to_string(),
        }
    }

    /// Not responsible when the request carries `Authorization`.
    pub fn authenticate(
        &self,
        request: &RequestContext,
        session: &mut AuthenticationSession,
    ) -> Outcome {
        if request.headers.contains_key(AUTHORIZATION) {
            return Outcome::NotResponsible;
        }
        session.subject.clone_from(&self.subject);
        Outcome::Authenticated
    }
}
