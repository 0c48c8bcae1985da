//! `bearer_token`: like `cookie_session`, but for a token (`Authorization: Bearer …` unless
//! `token_from` says otherwise): the session store at `check_session_url` gets the request's
//! `Authorization` header (plus `forward_http_headers`) and answers with the session.
//!
//! Not responsible when there is no token or it lacks `prefix`. The subject is read from
//! `subject_from` (default `sub`), extra data from `extra_from` (default `extra`).

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderName;
use http::header::{AUTHORIZATION, COOKIE};
use serde::Deserialize;
use serde_json::Value;

use super::Outcome;
use super::cookie_session::{establish, resolver, whoami};
use super::token_from::TokenFrom;
use crate::gjson;
use crate::pipeline::{AuthenticationSession, CompileContext, PipelineError, RequestContext};
use crate::session::{HttpCheckConfig, SessionCredentials, SessionResolver};

#[derive(Deserialize)]
struct Config {
    check_session_url: String,
    #[serde(default)]
    token_from: Option<TokenFrom>,
    #[serde(default)]
    prefix: String,
    #[serde(default = "yes")]
    preserve_query: bool,
    #[serde(default)]
    preserve_path: bool,
    #[serde(default)]
    preserve_host: bool,
    #[serde(default)]
    force_method: Option<String>,
    #[serde(default)]
    forward_http_headers: Vec<String>,
    #[serde(default)]
    additional_headers: BTreeMap<String, String>,
    #[serde(default = "extra")]
    extra_from: String,
    #[serde(default = "sub")]
    subject_from: String,
}

fn yes() -> bool {
    true
}
fn extra() -> String {
    "extra".into()
}
fn sub() -> String {
    "sub".into()
}

/// The `bearer_token` authenticator.
pub struct BearerToken {
    token_from: TokenFrom,
    prefix: String,
    forward: Vec<HeaderName>,
    subject_from: gjson::Path,
    extra_from: gjson::Path,
    resolver: Arc<dyn SessionResolver>,
}

impl BearerToken {
    /// Compiles the merged config.
    pub fn compile(config: &Value, ctx: &CompileContext) -> Result<Self, String> {
        let c: Config = serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        let url = url::Url::parse(&c.check_session_url)
            .map_err(|e| format!("invalid check_session_url {:?}: {e}", c.check_session_url))?;
        let forward = c
            .forward_http_headers
            .iter()
            .map(|h| {
                HeaderName::try_from(h.as_str())
                    .map_err(|_| format!("forward_http_headers: invalid header name {h:?}"))
            })
            .collect::<Result<_, _>>()?;
        let resolver = resolver(
            url.clone(),
            HttpCheckConfig {
                url,
                preserve_path: c.preserve_path,
                preserve_query: c.preserve_query,
                force_method: None,
                preserve_host: c.preserve_host,
                additional_headers: c.additional_headers,
            },
            c.force_method.as_deref(),
            ctx,
        )?;
        Ok(Self {
            token_from: c.token_from.unwrap_or_default(),
            prefix: c.prefix,
            forward,
            subject_from: gjson::Path::parse(&c.subject_from),
            extra_from: gjson::Path::parse(&c.extra_from),
            resolver,
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
        let body = whoami(self.resolver.as_ref(), &self.credentials(request)).await?;
        establish(&body, &self.subject_from, &self.extra_from, session)?;
        Ok(Outcome::Authenticated)
    }

    /// `forward_http_headers` plus `Authorization`, as Oathkeeper forwards them.
    fn credentials(&self, request: &RequestContext) -> SessionCredentials {
        let value = |name: &HeaderName| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let mut creds = SessionCredentials {
            authorization: value(&AUTHORIZATION),
            path: request.path.clone(),
            query: request.query.clone(),
            method: request.method.clone(),
            host: Some(request.host.clone()).filter(|h| !h.is_empty()),
            ..SessionCredentials::default()
        };
        for name in &self.forward {
            match name.as_str() {
                "authorization" => {}
                "cookie" => creds.cookie = value(&COOKIE),
                "x-session-token" => creds.session_token = value(name),
                _ => {
                    for v in request.headers.get_all(name) {
                        creds.forwarded_headers.append(name.clone(), v.clone());
                    }
                }
            }
        }
        creds
    }
}
