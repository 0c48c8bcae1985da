//! `oauth2_introspection`: asks an RFC 7662 introspection endpoint about the bearer token.
//!
//! Not responsible when there is no token or it lacks `prefix`. The endpoint gets a form
//! POST `token=<t>` (plus `scope=<required scopes>` when `scope_strategy` is `none`, so the
//! endpoint checks them), `introspection_request_headers`, `X-Forwarded-Host` when
//! `preserve_host`, and with `pre_authorization` a bearer token from a client credentials
//! grant. Then, in Oathkeeper's order: `token_use` other than `access_token` → 403, not
//! `active` → 401, `exp` past → 401, a `target_audience` missing from `aud` → 403, `iss` not
//! among `trusted_issuers` → 403, a `required_scope` not granted under `scope_strategy` → 403.
//!
//! With `cache.enabled` the answer is cached under `token|introspection_url` (the endpoint is
//! part of the key: a token one endpoint accepts says nothing about another,
//! GHSA-4mq7-pvjg-xp2r) until `cache.ttl`, else until the token's `exp`; every check above runs
//! again on a cache hit (CVE-2021-32701). Nothing is cached when the endpoint checked the
//! scopes itself (strategy `none` with required scopes).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Outcome;
use super::oauth2::{Caches, Grant, GrantError, pass_on_headers};
use super::scope_strategy::ScopeStrategy;
use super::token_from::TokenFrom;
use crate::pipeline::{
    AuthenticationSession, CompileContext, PipelineError, RequestContext, parse_duration, remote,
};

#[derive(Deserialize)]
struct Config {
    introspection_url: String,
    #[serde(default)]
    scope_strategy: Option<String>,
    #[serde(default)]
    pre_authorization: Option<PreAuthorization>,
    #[serde(default)]
    required_scope: Vec<String>,
    #[serde(default)]
    target_audience: Vec<String>,
    #[serde(default)]
    trusted_issuers: Vec<String>,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    preserve_host: bool,
    #[serde(default)]
    introspection_request_headers: BTreeMap<String, Value>,
    #[serde(default)]
    token_from: Option<TokenFrom>,
    #[serde(default)]
    cache: Option<CacheConfig>,
}

#[derive(Deserialize)]
struct PreAuthorization {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    token_url: Option<String>,
    #[serde(default)]
    audience: Option<String>,
    #[serde(default)]
    scope: Vec<String>,
}

#[derive(Deserialize)]
struct CacheConfig {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    ttl: Option<String>,
    #[serde(default)]
    max_cost: Option<i64>,
}

/// Client credentials for the introspection call itself.
struct PreAuth {
    token_url: url::Url,
    client_id: String,
    client_secret: String,
    audience: Option<String>,
    scope: Vec<String>,
}

/// How answers are cached.
struct CachePolicy {
    ttl: Option<Duration>,
    limit: usize,
}

/// The `oauth2_introspection` authenticator.
pub struct Oauth2Introspection {
    url: url::Url,
    scope_strategy: ScopeStrategy,
    required_scope: Vec<String>,
    target_audience: Vec<String>,
    trusted_issuers: Vec<String>,
    prefix: String,
    preserve_host: bool,
    headers: Vec<(HeaderName, HeaderValue)>,
    token_from: TokenFrom,
    pre_auth: Option<PreAuth>,
    cache: Option<CachePolicy>,
    caches: Arc<Caches>,
    client: portcullis_http::UpstreamClient,
    timeout: Duration,
}

fn forbidden(reason: impl Into<String>) -> PipelineError {
    PipelineError::forbidden().with_reason(reason)
}

fn unauthorized(reason: impl Into<String>) -> PipelineError {
    PipelineError::unauthorized().with_reason(reason)
}

impl Oauth2Introspection {
    /// Compiles the merged config.
    pub fn compile(config: &Value, ctx: &CompileContext) -> Result<Self, String> {
        let c: Config = serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        let url = url::Url::parse(&c.introspection_url)
            .map_err(|e| format!("invalid introspection_url {:?}: {e}", c.introspection_url))?;
        let headers = c
            .introspection_request_headers
            .iter()
            .map(|(name, value)| {
                let name = HeaderName::try_from(name.as_str()).map_err(|_| {
                    format!("introspection_request_headers: invalid header name {name:?}")
                })?;
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let value = HeaderValue::try_from(text).map_err(|_| {
                    format!("introspection_request_headers: invalid value for {name}")
                })?;
                Ok((name, value))
            })
            .collect::<Result<_, String>>()?;
        let pre_auth = match c.pre_authorization {
            Some(p) if p.enabled => {
                let token_url = p
                    .token_url
                    .as_deref()
                    .ok_or("pre_authorization.token_url is required when enabled")?;
                Some(PreAuth {
                    token_url: url::Url::parse(token_url).map_err(|e| {
                        format!("invalid pre_authorization.token_url {token_url:?}: {e}")
                    })?,
                    client_id: p.client_id,
                    client_secret: p.client_secret,
                    audience: p.audience,
                    scope: p.scope,
                })
            }
            _ => None,
        };
        let cache = match c.cache {
            Some(cache) if cache.enabled => Some(CachePolicy {
                ttl: cache
                    .ttl
                    .as_deref()
                    .map(parse_duration)
                    .transpose()
                    .map_err(|e| format!("cache.ttl: {e}"))?,
                // `max_cost` bounds ristretto's cost in Oathkeeper; here, the entry count.
                limit: cache
                    .max_cost
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(usize::MAX),
            }),
            _ => None,
        };
        Ok(Self {
            url,
            scope_strategy: ScopeStrategy::parse(c.scope_strategy.as_deref().unwrap_or("none")),
            required_scope: c.required_scope,
            target_audience: c.target_audience,
            trusted_issuers: c.trusted_issuers,
            prefix: c.prefix,
            preserve_host: c.preserve_host,
            headers,
            token_from: c.token_from.unwrap_or_default(),
            pre_auth,
            cache,
            caches: Arc::clone(&ctx.oauth2),
            client: ctx.client.clone(),
            timeout: remote::timeout(config)?,
        })
    }

    /// Introspects the token (or takes the cached answer) and checks it.
    pub async fn authenticate(
        &self,
        request: &RequestContext,
        session: &mut AuthenticationSession,
    ) -> Result<Outcome, PipelineError> {
        let Some(token) = self.token_from.token(request) else {
            return Ok(Outcome::NotResponsible);
        };
        if !token.starts_with(self.prefix.as_str()) {
            return Ok(Outcome::NotResponsible);
        }
        // The endpoint checked the scopes itself: its answer is only good for these scopes.
        let endpoint_checks_scope =
            self.scope_strategy == ScopeStrategy::None && !self.required_scope.is_empty();
        let cache = self.cache.as_ref().filter(|_| !endpoint_checks_scope);
        let key = format!("{token}|{}", self.url);
        let cached = cache.and_then(|_| self.caches.introspection.get(&key));
        let answer = match cached {
            Some(answer) => answer,
            None => {
                let answer = self.introspect(request, &token).await?;
                let active = answer.get("active").and_then(Value::as_bool) == Some(true);
                if let Some(policy) = cache.filter(|_| active) {
                    let until = policy
                        .ttl
                        .map(|ttl| Instant::now() + ttl)
                        .or_else(|| expires_at(&answer));
                    self.caches
                        .introspection
                        .put(key, answer.clone(), until, policy.limit);
                }
                answer
            }
        };
        // Always, cached or not: the rule's own requirements (CVE-2021-32701).
        self.check(&answer)?;
        establish(&answer, session);
        Ok(Outcome::Authenticated)
    }

    async fn introspect(
        &self,
        request: &RequestContext,
        token: &str,
    ) -> Result<Map<String, Value>, PipelineError> {
        // The serializer is not `Send`: it must not live across an await.
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", token);
            if self.scope_strategy == ScopeStrategy::None && !self.required_scope.is_empty() {
                form.append_pair("scope", &self.required_scope.join(" "));
            }
            form.finish()
        };
        let mut builder = http::Request::builder()
            .method(Method::POST)
            .uri(self.url.as_str());
        if let Some(headers) = builder.headers_mut() {
            for (name, value) in &self.headers {
                headers.insert(name.clone(), value.clone());
            }
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
            if self.preserve_host
                && let Ok(host) = HeaderValue::try_from(request.host.as_str())
            {
                headers.insert(HeaderName::from_static("x-forwarded-host"), host);
            }
            if let Some(bearer) = self.pre_authorization().await? {
                headers.insert(AUTHORIZATION, bearer);
            }
        }
        let call = builder
            .body(Body::from(form))
            .map_err(|e| PipelineError::internal(e.to_string()))?;
        let (parts, body) = remote::call(&self.client, call, self.timeout)
            .await
            .map_err(|e| PipelineError::internal(format!("token introspection failed: {e}")))?;
        match parts.status {
            StatusCode::OK => serde_json::from_slice(&body).map_err(|e| {
                PipelineError::internal(format!("introspection answer is not a JSON object: {e}"))
            }),
            StatusCode::TOO_MANY_REQUESTS => Err(PipelineError::too_many_requests(
                pass_on_headers(&parts.headers),
            )),
            other => Err(PipelineError::internal(format!(
                "introspection endpoint answered {other}"
            ))),
        }
    }

    /// The `Authorization` header of the introspection call under `pre_authorization`.
    async fn pre_authorization(&self) -> Result<Option<HeaderValue>, PipelineError> {
        let Some(p) = &self.pre_auth else {
            return Ok(None);
        };
        let grant = Grant {
            token_url: &p.token_url,
            client_id: &p.client_id,
            client_secret: &p.client_secret,
            scope: &p.scope,
            audience: p.audience.as_deref(),
        };
        let key = grant.cache_key();
        let token = match self.caches.tokens.get(&key) {
            Some(token) => token,
            None => {
                let (token, lifetime) =
                    grant
                        .perform(&self.client, self.timeout)
                        .await
                        .map_err(|e| match e {
                            GrantError::Refused(StatusCode::TOO_MANY_REQUESTS, headers) => {
                                PipelineError::too_many_requests(headers)
                            }
                            other => PipelineError::internal(format!("pre_authorization: {other}")),
                        })?;
                if let Some(lifetime) = lifetime {
                    self.caches.tokens.put(
                        key,
                        token.clone(),
                        Some(Instant::now() + lifetime),
                        usize::MAX,
                    );
                }
                token
            }
        };
        HeaderValue::try_from(format!("Bearer {token}"))
            .map(Some)
            .map_err(|_| PipelineError::internal("pre_authorization: unusable access token"))
    }

    /// Oathkeeper's checks, in its order.
    fn check(&self, answer: &Map<String, Value>) -> Result<(), PipelineError> {
        if let Some(token_use) = answer.get("token_use").and_then(Value::as_str)
            && !token_use.is_empty()
            && token_use != "access_token"
        {
            return Err(forbidden(format!(
                "token is used as {token_use:?}, not as an access token"
            )));
        }
        if answer.get("active").and_then(Value::as_bool) != Some(true) {
            return Err(unauthorized("access token is not active"));
        }
        if let Some(exp) = answer.get("exp").and_then(Value::as_i64)
            && exp > 0
            && exp <= now()
        {
            return Err(unauthorized("access token expired"));
        }
        let audiences = strings(answer.get("aud"));
        if let Some(missing) = self
            .target_audience
            .iter()
            .find(|a| !audiences.contains(*a))
        {
            return Err(forbidden(format!(
                "token audience is not intended for target audience {missing:?}"
            )));
        }
        if !self.trusted_issuers.is_empty() {
            let iss = answer
                .get("iss")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !self.trusted_issuers.iter().any(|t| t == iss) {
                return Err(forbidden(format!("token issuer {iss:?} is not trusted")));
            }
        }
        if self.scope_strategy != ScopeStrategy::None {
            let granted = strings(answer.get("scope"));
            if let Some(missing) = self
                .required_scope
                .iter()
                .find(|s| !self.scope_strategy.allows(&granted, s))
            {
                return Err(forbidden(format!(
                    "scope {missing:?} was not granted to the access token"
                )));
            }
        }
        Ok(())
    }
}

/// The session Oathkeeper builds: subject `sub`; extra = `ext` plus `username`,
/// `client_id`, `scope` and (when present) `aud`.
fn establish(answer: &Map<String, Value>, session: &mut AuthenticationSession) {
    let text = |name: &str| {
        answer
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut extra = answer
        .get("ext")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    extra.insert("username".into(), Value::String(text("username")));
    extra.insert("client_id".into(), Value::String(text("client_id")));
    extra.insert("scope".into(), Value::String(text("scope")));
    let audiences = strings(answer.get("aud"));
    if !audiences.is_empty() {
        extra.insert(
            "aud".into(),
            Value::Array(audiences.into_iter().map(Value::String).collect()),
        );
    }
    session.subject = text("sub");
    session.extra = extra;
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// When the token expires, from `exp`, as an `Instant`.
fn expires_at(answer: &Map<String, Value>) -> Option<Instant> {
    let exp = answer.get("exp").and_then(Value::as_i64)?;
    let left = u64::try_from(exp.checked_sub(now())?).ok()?;
    Some(Instant::now() + Duration::from_secs(left))
}

/// A claim that is a string (space-separated) or an array of strings.
fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}
