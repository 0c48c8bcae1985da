//! `id_token`: replaces the credentials the upstream sees with a JWT signed by the access
//! proxy: `Authorization: Bearer <jwt>`. Claims are the rendered `claims` template (a JSON
//! object, optional), then `iss` = `issuer_url`, `sub` = the session subject, `iat`/`nbf` =
//! now, `exp` = now + `ttl`, `jti` = a fresh UUID. The key is the first private signing key of
//! the JWKS at `jwks_url` (RSA or HMAC; its `alg` and `kid` go into the header); upstreams
//! verify with `/.well-known/jwks.json`.
//!
//! Tokens are reused for the same claims and subject until less than 10 % of `ttl` remains
//! (Oathkeeper's cache, which keeps RS256 signing off the hot path).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use http::header::AUTHORIZATION;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::credentials::{self, Fetcher};
use crate::pipeline::{
    AuthenticationSession, CompileContext, PipelineError, RequestContext, parse_duration,
};
use crate::template::Template;

/// Beyond this many cached tokens the cache starts over (bounded memory).
const CACHE_LIMIT: usize = 10_000;

#[derive(Deserialize)]
struct Config {
    issuer_url: String,
    jwks_url: String,
    #[serde(default)]
    claims: Option<String>,
    #[serde(default = "ttl")]
    ttl: String,
}

fn ttl() -> String {
    "15m".into()
}

/// The `id_token` mutator.
pub struct IdToken {
    issuer_url: String,
    jwks_url: String,
    claims: Option<Template>,
    ttl: Duration,
    fetcher: Arc<Fetcher>,
    cache: Mutex<HashMap<String, (Instant, String)>>,
}

impl IdToken {
    /// Compiles the merged config.
    pub fn compile(config: &Value, ctx: &CompileContext) -> Result<Self, String> {
        let c: Config = serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        let claims = c
            .claims
            .filter(|t| !t.trim().is_empty())
            .map(|t| Template::parse(&t).map_err(|e| format!("claims: {e}")))
            .transpose()?;
        Ok(Self {
            issuer_url: c.issuer_url,
            jwks_url: c.jwks_url,
            claims,
            ttl: parse_duration(&c.ttl).map_err(|e| format!("ttl: {e}"))?,
            fetcher: Arc::clone(&ctx.fetcher),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The key set this mutator signs with (published by `/.well-known/jwks.json`).
    pub fn jwks_url(&self) -> &str {
        &self.jwks_url
    }

    /// Signs (or reuses) the token and sets `Authorization` on the session.
    pub async fn mutate(
        &self,
        request: &RequestContext,
        session: &mut AuthenticationSession,
    ) -> Result<(), PipelineError> {
        let mut claims = match &self.claims {
            None => Map::new(),
            Some(template) => {
                let rendered = template
                    .render(&session.template_data(request))
                    .map_err(|e| PipelineError::internal(format!("claims: {e}")))?;
                match serde_json::from_str::<Value>(&rendered) {
                    Ok(Value::Object(map)) => map,
                    Ok(_) | Err(_) => {
                        return Err(PipelineError::internal(
                            "id_token: claims did not render to a JSON object",
                        ));
                    }
                }
            }
        };
        let cache_key = format!(
            "{}|{}|{}|{}|{}",
            self.issuer_url,
            self.ttl.as_millis(),
            self.jwks_url,
            Value::Object(claims.clone()),
            session.subject
        );
        if let Some(token) = self.cached(&cache_key) {
            return set_bearer(session, &token);
        }
        let set = self
            .fetcher
            .resolve(&self.jwks_url)
            .await
            .map_err(|e| PipelineError::internal(e.to_string()))?;
        let key =
            credentials::signing_key(&set).map_err(|e| PipelineError::internal(e.to_string()))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        claims.insert("iss".into(), Value::from(self.issuer_url.clone()));
        claims.insert("sub".into(), Value::from(session.subject.clone()));
        claims.insert("iat".into(), Value::from(now));
        claims.insert("nbf".into(), Value::from(now));
        claims.insert("exp".into(), Value::from(now + self.ttl.as_secs()));
        claims.insert("jti".into(), Value::from(uuid::Uuid::new_v4().to_string()));
        let mut header = jsonwebtoken::Header::new(key.algorithm);
        header.kid = Some(key.kid.clone()).filter(|k| !k.is_empty());
        let token = jsonwebtoken::encode(&header, &claims, &key.key)
            .map_err(|e| PipelineError::internal(format!("id_token: signing failed: {e}")))?;
        self.remember(cache_key, &token);
        set_bearer(session, &token)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, String)>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cached(&self, key: &str) -> Option<String> {
        let cache = self.lock();
        let (issued, token) = cache.get(key)?;
        (issued.elapsed() < self.ttl.mul_f64(0.9)).then(|| token.clone())
    }

    fn remember(&self, key: String, token: &str) {
        let mut cache = self.lock();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), token.to_string()));
    }
}

fn set_bearer(session: &mut AuthenticationSession, token: &str) -> Result<(), PipelineError> {
    let value = HeaderValue::try_from(format!("Bearer {token}"))
        .map_err(|_| PipelineError::internal("id_token: token is not a valid header value"))?;
    session.header.insert(AUTHORIZATION, value);
    Ok(())
}
