//! `oauth2_client_credentials`: the client's HTTP Basic credentials (each part URL-unescaped)
//! must obtain a token from `token_url` by the client credentials grant, asking for
//! `required_scope`; the subject is then the client id.
//!
//! Not responsible without Basic credentials. The token endpoint's 429 is passed through
//! with its rate-limit headers; 404, 500, 503 and 504 keep their status; any other refusal is
//! 401 and an unreachable endpoint is 503. With `cache.enabled`, a success is remembered under
//! `token_url|scopes|id:secret` until the earlier of `cache.ttl` and the token's expiry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::StatusCode;
use http::header::AUTHORIZATION;
use serde::Deserialize;
use serde_json::Value;

use super::Outcome;
use super::oauth2::{Caches, Grant, GrantError};
use crate::pipeline::{
    AuthenticationSession, CompileContext, PipelineError, RequestContext, parse_duration, remote,
};

#[derive(Deserialize)]
struct Config {
    token_url: String,
    #[serde(default)]
    required_scope: Vec<String>,
    #[serde(default)]
    cache: Option<CacheConfig>,
}

#[derive(Deserialize)]
struct CacheConfig {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    ttl: Option<String>,
    #[serde(default)]
    max_tokens: Option<i64>,
}

/// How successes are cached.
struct CachePolicy {
    ttl: Option<Duration>,
    limit: usize,
}

/// The `oauth2_client_credentials` authenticator.
pub struct Oauth2ClientCredentials {
    token_url: url::Url,
    required_scope: Vec<String>,
    cache: Option<CachePolicy>,
    caches: Arc<Caches>,
    client: portcullis_http::UpstreamClient,
    timeout: Duration,
}

impl Oauth2ClientCredentials {
    /// Compiles the merged config.
    pub fn compile(config: &Value, ctx: &CompileContext) -> Result<Self, String> {
        let c: Config = serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        let token_url = url::Url::parse(&c.token_url)
            .map_err(|e| format!("invalid token_url {:?}: {e}", c.token_url))?;
        let cache = match c.cache {
            Some(cache) if cache.enabled => Some(CachePolicy {
                ttl: cache
                    .ttl
                    .as_deref()
                    .map(parse_duration)
                    .transpose()
                    .map_err(|e| format!("cache.ttl: {e}"))?,
                limit: cache
                    .max_tokens
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(1000),
            }),
            _ => None,
        };
        Ok(Self {
            token_url,
            required_scope: c.required_scope,
            cache,
            caches: Arc::clone(&ctx.oauth2),
            client: ctx.client.clone(),
            timeout: remote::timeout(config)?,
        })
    }

    /// Performs the grant with the request's credentials.
    pub async fn authenticate(
        &self,
        request: &RequestContext,
        session: &mut AuthenticationSession,
    ) -> Result<Outcome, PipelineError> {
        let Some((id, secret)) = basic_credentials(request) else {
            return Ok(Outcome::NotResponsible);
        };
        let grant = Grant {
            token_url: &self.token_url,
            client_id: &id,
            client_secret: &secret,
            scope: &self.required_scope,
            audience: None,
        };
        let key = grant.cache_key();
        if self.cache.is_some() && self.caches.tokens.get(&key).is_some() {
            session.subject = id;
            return Ok(Outcome::Authenticated);
        }
        let (token, lifetime) = grant
            .perform(&self.client, self.timeout)
            .await
            .map_err(refusal)?;
        if let Some(policy) = &self.cache {
            let ttl = match (policy.ttl, lifetime) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(ttl) = ttl {
                self.caches
                    .tokens
                    .put(key, token, Some(Instant::now() + ttl), policy.limit);
            }
        }
        session.subject = id;
        Ok(Outcome::Authenticated)
    }
}

/// Oathkeeper's mapping of a failed grant.
fn refusal(error: GrantError) -> PipelineError {
    match error {
        GrantError::Refused(StatusCode::TOO_MANY_REQUESTS, headers) => {
            PipelineError::too_many_requests(headers)
        }
        GrantError::Refused(
            status @ (StatusCode::NOT_FOUND
            | StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT),
            _,
        ) => PipelineError::new(status, "The token endpoint could not process the request")
            .with_reason(format!("token endpoint answered {status}")),
        GrantError::Transport(reason) => PipelineError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The token endpoint could not be reached",
        )
        .with_reason(reason),
        other => PipelineError::unauthorized().with_reason(other.to_string()),
    }
}

/// `Authorization: Basic` user and password, each URL-unescaped as RFC 6749 §2.3.1 asks.
fn basic_credentials(request: &RequestContext) -> Option<(String, String)> {
    let value = request.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}
