//! `cookie_session`: asks a session store (Kratos' `/sessions/whoami`) whether the request's
//! cookies belong to a session, and takes the subject and extra data from its answer.
//!
//! Not responsible when the request has no cookies, or none of those listed in `only`; only
//! the listed cookies are forwarded. The check goes to an in-process
//! [`SessionResolver`](crate::SessionResolver) when one is registered for exactly this
//! `check_session_url`, otherwise over HTTP (see [`super::session_check`]).

use http::HeaderMap;
use http::header::COOKIE;
use serde::Deserialize;
use serde_json::Value;

use super::Outcome;
use super::session_check::{CheckConfig, SessionCheck};
use crate::pipeline::{AuthenticationSession, CompileContext, PipelineError, RequestContext};
use crate::session::SessionCredentials;

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    only: Vec<String>,
    #[serde(flatten)]
    check: CheckConfig,
}

/// The `cookie_session` authenticator.
pub struct CookieSession {
    only: Vec<String>,
    check: SessionCheck,
}

impl CookieSession {
    /// Compiles the merged config, choosing the in-process resolver when one is registered
    /// for this `check_session_url`.
    pub fn compile(config: &Value, ctx: &CompileContext) -> Result<Self, String> {
        let c: Config = serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        Ok(Self {
            only: c.only,
            check: SessionCheck::compile(c.check, "subject", ctx)?,
        })
    }

    /// Checks the session behind the request's cookies.
    pub async fn authenticate(
        &self,
        request: &RequestContext,
        session: &mut AuthenticationSession,
    ) -> Result<Outcome, PipelineError> {
        let Some(cookie) = self.cookies(&request.headers) else {
            return Ok(Outcome::NotResponsible);
        };
        let own = SessionCredentials {
            cookie: Some(cookie),
            ..SessionCredentials::default()
        };
        let creds = self.check.credentials(request, own);
        self.check.authenticate(&creds, session).await
    }

    /// The `Cookie` header to forward: the cookies named in `only` (all when unset), or `None`
    /// when there is nothing this authenticator is responsible for.
    fn cookies(&self, headers: &HeaderMap) -> Option<String> {
        let pairs: Vec<&str> = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let name = p.split_once('=').map_or(*p, |(n, _)| n).trim();
                self.only.is_empty() || self.only.iter().any(|o| o == name)
            })
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }
}
