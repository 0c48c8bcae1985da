//! What `cookie_session` and `bearer_token` share: the session-store settings of their config,
//! the choice between the in-process [`SessionResolver`] and HTTP, the credentials sent along
//! (`forward_http_headers`) and reading subject and extra data from the store's answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderName, Method};
use serde::Deserialize;
use serde_json::Value;

use super::Outcome;
use crate::gjson;
use crate::pipeline::{AuthenticationSession, CompileContext, PipelineError, RequestContext};
use crate::session::{
    HttpCheckConfig, HttpSessionResolver, ResolveError, SessionCredentials, SessionResolver,
};

/// The session-store part of both handlers' config (flattened into each).
#[derive(Deserialize)]
pub(crate) struct CheckConfig {
    check_session_url: String,
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
    /// Unset: the handler's own default (`subject` for cookies, `sub` for tokens).
    #[serde(default)]
    subject_from: Option<String>,
}

fn yes() -> bool {
    true
}
fn extra() -> String {
    "extra".into()
}

/// A compiled session check.
pub(crate) struct SessionCheck {
    forward: Vec<HeaderName>,
    subject_from: gjson::Path,
    extra_from: gjson::Path,
    resolver: Arc<dyn SessionResolver>,
}

impl SessionCheck {
    /// Compiles `config`; `default_subject` applies when `subject_from` is unset.
    pub(crate) fn compile(
        config: CheckConfig,
        default_subject: &str,
        ctx: &CompileContext,
    ) -> Result<Self, String> {
        let url = url::Url::parse(&config.check_session_url).map_err(|e| {
            format!(
                "invalid check_session_url {:?}: {e}",
                config.check_session_url
            )
        })?;
        let forward = config
            .forward_http_headers
            .iter()
            .map(|h| {
                HeaderName::try_from(h.as_str())
                    .map_err(|_| format!("forward_http_headers: invalid header name {h:?}"))
            })
            .collect::<Result<_, _>>()?;
        let check = HttpCheckConfig {
            url: url.clone(),
            preserve_path: config.preserve_path,
            preserve_query: config.preserve_query,
            force_method: None,
            preserve_host: config.preserve_host,
            additional_headers: config.additional_headers,
        };
        let resolver = resolver(url, check, config.force_method.as_deref(), ctx)?;
        let subject_from = config.subject_from.as_deref().unwrap_or(default_subject);
        Ok(Self {
            forward,
            subject_from: gjson::Path::parse(subject_from),
            extra_from: gjson::Path::parse(&config.extra_from),
            resolver,
        })
    }

    /// The credentials for the store: `own` (the cookie or token the handler is responsible
    /// for, which `forward_http_headers` cannot replace), the request's path, query, method
    /// and host, and the `forward_http_headers`.
    pub(crate) fn credentials(
        &self,
        request: &RequestContext,
        own: SessionCredentials,
    ) -> SessionCredentials {
        let mut creds = SessionCredentials {
            path: request.path.clone(),
            query: request.query.clone(),
            method: request.method.clone(),
            host: Some(request.host.clone()).filter(|h| !h.is_empty()),
            ..own
        };
        for name in &self.forward {
            let value = || {
                request
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            if *name == AUTHORIZATION {
                if creds.authorization.is_none() {
                    creds.authorization = value();
                }
            } else if *name == COOKIE {
                if creds.cookie.is_none() {
                    creds.cookie = value();
                }
            } else if name.as_str() == "x-session-token" {
                creds.session_token = value();
            } else {
                for v in request.headers.get_all(name) {
                    creds.forwarded_headers.append(name.clone(), v.clone());
                }
            }
        }
        creds
    }

    /// Asks the store and, on a session, establishes subject and extra data.
    pub(crate) async fn authenticate(
        &self,
        creds: &SessionCredentials,
        session: &mut AuthenticationSession,
    ) -> Result<Outcome, PipelineError> {
        let body = whoami(self.resolver.as_ref(), creds).await?;
        establish(&body, &self.subject_from, &self.extra_from, session)?;
        Ok(Outcome::Authenticated)
    }
}

/// The session check for `check_session_url`: the in-process resolver registered for exactly
/// this URL, else HTTP with `check` (and `force_method`).
fn resolver(
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
async fn whoami(
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
fn establish(
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
