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
        let body = whoami(self.resolver.as_ref(), &creds).await?;
        establish(&body, &self.subject_from, &self.extra_from, session)?;
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

/// The session check for `check_session_url`: the in-process resolver registered for exactly
/// this URL, else HTTP with `check` (and `force_method`).
pub(crate) fn resolver(
    url: url::Url,
    mut check: HttpCheckConfig,
    force_method: Option<&str>,
    ctx: &CompileContext,
) -> Result<Arc<dyn SessionResolver>, String> {
    if let Some((_, local)) = ctx.resolvers.iter().find(|(u, _)| *u == url) {
        return Ok(Arc::clone(local));
    }
    check.force_method = force_method
        .filter(|m| !m.is_empty())
        .map(|m| {
            Method::from_bytes(m.as_bytes())
                .map_err(|_| format!("force_method: invalid method {m:?}"))
        })
        .transpose()?;
    Ok(Arc::new(HttpSessionResolver::new(
        ctx.client.clone(),
        check,
    )?))
}

/// Asks the session store; maps its failures to Oathkeeper's statuses (401 no session, 403
/// unreachable, 429 passed through, 500 garbage).
pub(crate) async fn whoami(
    resolver: &dyn SessionResolver,
    creds: &SessionCredentials,
) -> Result<Value, PipelineError> {
    match resolver.whoami(creds).await {
        Ok(Some(body)) => Ok(body),
        Ok(None) => Err(PipelineError::unauthorized()),
        Err(ResolveError::Transport(e)) => Err(PipelineError::forbidden().with_reason(e)),
        Err(ResolveError::RateLimited(headers)) => Err(PipelineError::too_many_requests(headers)),
        Err(e @ ResolveError::Internal(_)) => Err(PipelineError::internal(e.to_string())),
    }
}

/// Takes subject (must be a string) and extra (must be an object) from the session store's
/// answer; a type mismatch is 403.
pub(crate) fn establish(
    body: &Value,
    subject_from: &gjson::Path,
    extra_from: &gjson::Path,
    session: &mut AuthenticationSession,
) -> Result<(), PipelineError> {
    session.subject = match subject_from.get(body) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(PipelineError::forbidden()
                .with_reason("the session's subject (subject_from) is not a string"));
        }
    };
    session.extra = match extra_from.get(body) {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            return Err(PipelineError::forbidden()
                .with_reason("the session's extra data (extra_from) is not an object"));
        }
    };
    Ok(())
}
