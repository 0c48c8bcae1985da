//! `bearer_token`: like `cookie_session`, but for a token (`Authorization: Bearer …` unless
//! `token_from` says otherwise): the session store at `check_session_url` gets the request's
//! `Authorization` header (plus `forward_http_headers`) and answers with the session.
//!
//! Not responsible when there is no token or it lacks `prefix`. The subject is read from
//! `subject_from` (default `sub`), extra data from `extra_from` (default `extra`).

use http::header::AUTHORIZATION;
use serde::Deserialize;
use serde_json::Value;

use super::Outcome;
use super::session_check::{CheckConfig, SessionCheck};
use super::token_from::TokenFrom;
use crate::pipeline::{AuthenticationSession, CompileContext, PipelineError, RequestContext};
use crate::session::SessionCredentials;

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    token_from: Option<TokenFrom>,
    #[serde(default)]
    prefix: String,
    #[serde(flatten)]
    check: CheckConfig,
}

/// The `bearer_token` authenticator.
pub struct BearerToken {
    token_from: TokenFrom,
    prefix: String,
    check: SessionCheck,
}

impl BearerToken {
    /// Compiles the merged config.
    pub fn compile(config: &Value, ctx: &CompileContext) -> Result<Self, String> {
        let c: Config = serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        Ok(Self {
            token_from: c.token_from.unwrap_or_default(),
            prefix: c.prefix,
            check: SessionCheck::compile(c.check, "sub", ctx)?,
        })
    }

    /// Checks the token with the session store.
    pub async fn authenticate(
        &self,
        request: &RequestContext,
        session: &mut AuthenticationSession,
    ) -> Result<Outcome, PipelineError> {
        match self.token_from.token(request) {
            Some(token) if token.starts_with(&self.prefix) => {}
            _ => return Ok(Outcome::NotResponsible),
        }
        // Oathkeeper forwards the request's `Authorization` header as it is.
        let own = SessionCredentials {
            authorization: request
                .headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            ..SessionCredentials::default()
        };
        let creds = self.check.credentials(request, own);
        self.check.authenticate(&creds, session).await
    }
}
