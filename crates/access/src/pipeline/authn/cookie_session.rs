//! `cookie_session`: asks a session store (Kratos' `/sessions/whoami`) whether the request's
//! cookies belong to a session, and takes the subject and extra data from its answer.
//!
//! Not responsible when the request has no cookies, or none of those listed in `only`; only
//! the listed cookies are forwarded. The check goes to an in-process [`SessionResolver`] when
//! one is registered for exactly this `check_session_url`, otherwise over HTTP.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, Method, header::COOKIE};
use serde::Deserialize;
use serde_json::Value;

use super::Outcome;
use crate::gjson;
use crate::pipeline::{AuthenticationSession, CompileContext, PipelineError, RequestContext};
use crate::session::{
    HttpCheckConfig, HttpSessionResolver, ResolveError, SessionCredentials, SessionResolver,
};

#[derive(Deserialize)]
struct Config {
    check_session_url: String,
    #[serde(default)]
    only: Vec<String>,
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
    #[serde(default = "subject")]
    subject_from: String,
}

fn yes() -> bool {
    true
}
fn extra() -> String {
    "extra".into()
}
fn subject() -> String {
    "subject".into()
}

/// The `cookie_session` authenticator.
pub struct CookieSession {
    only: Vec<String>,
    forward: Vec<HeaderName>,
    subject_from: gjson::Path,
    extra_from: gjson::Path,
    resolver: Arc<dyn SessionResolver>,
}

impl CookieSession {
    /// Compiles the merged config, choosing the in-process resolver when one is registered
    /// for this `check_session_url`.
    pub fn compile(config: &Value, ctx: &CompileContext) -> Result<Self, String> {
        let c: Config = serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        let url = url::Url::parse(&c.check_session_url)
            .map_err(|e| format!("invalid check_session_url {:?}: {e}", c.check_session_url))?;
        let forward = c
            .forward_http_headers
            .iter()
            .filter(|h| !h.eq_ignore_ascii_case("cookie"))
            .map(|h| {
                HeaderName::try_from(h.as_str())
                    .map_err(|_| format!("forward_http_headers: invalid header name {h:?}"))
            })
            .collect::<Result<_, _>>()?;
        let local = ctx
            .resolvers
            .iter()
            .find(|(u, _)| *u == url)
            .map(|(_, r)| Arc::clone(r));
        let resolver = match local {
            Some(r) => r,
            None => {
                let force_method = c
                    .force_method
                    .as_deref()
                    .filter(|m| !m.is_empty())
                    .map(|m| {
                        Method::from_bytes(m.as_bytes())
                            .map_err(|_| format!("force_method: invalid method {m:?}"))
                    })
                    .transpose()?;
                Arc::new(HttpSessionResolver::new(
                    ctx.client.clone(),
                    HttpCheckConfig {
                        url,
                        preserve_path: c.preserve_path,
                        preserve_query: c.preserve_query,
                        force_method,
                        preserve_host: c.preserve_host,
                        additional_headers: c.additional_headers,
                    },
                )?) as Arc<dyn SessionResolver>
            }
        };
        Ok(Self {
            only: c.only,
            forward,
            subject_from: gjson::Path::parse(&c.subject_from),
            extra_from: gjson::Path::parse(&c.extra_from),
            resolver,
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
        let creds = self.credentials(request, cookie);
        let body = match self.resolver.whoami(&creds).await {
            Ok(Some(body)) => body,
            Ok(None) => return Err(PipelineError::unauthorized()),
            Err(ResolveError::Transport(e)) => {
                return Err(PipelineError::forbidden().with_reason(e));
            }
            Err(ResolveError::RateLimited(headers)) => {
                return Err(PipelineError::too_many_requests(headers));
            }
            Err(e @ ResolveError::Internal(_)) => {
                return Err(PipelineError::internal(e.to_string()));
            }
        };
        session.subject = match self.subject_from.get(&body) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(PipelineError::forbidden()
                    .with_reason("the session's subject (subject_from) is not a string"));
            }
        };
        session.extra = match self.extra_from.get(&body) {
            None | Some(Value::Null) => serde_json::Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(_) => {
                return Err(PipelineError::forbidden()
                    .with_reason("the session's extra data (extra_from) is not an object"));
            }
        };
        Ok(Outcome::Authenticated)
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

    fn credentials(&self, request: &RequestContext, cookie: String) -> SessionCredentials {
        let mut creds = SessionCredentials {
            cookie: Some(cookie),
            path: request.path.clone(),
            query: request.query.clone(),
            method: request.method.clone(),
            host: Some(request.host.clone()).filter(|h| !h.is_empty()),
            ..SessionCredentials::default()
        };
        for name in &self.forward {
            let value = request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match name.as_str() {
                "authorization" => creds.authorization = value,
                "x-session-token" => creds.session_token = value,
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
