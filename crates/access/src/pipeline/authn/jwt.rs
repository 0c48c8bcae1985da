//! `jwt`: verifies a JSON Web Token against the keys at `jwks_urls`.
//!
//! Not responsible when there is no token or it is not three dot-separated parts. Then, as
//! Oathkeeper: the header's `alg` must be in `allowed_algorithms` (`["RS256"]` when empty),
//! `kid` is required and looked up among keys with `use: "sig"`, the signature and
//! `exp`/`nbf` (no leeway) must hold, every `target_audience` must be in `aud`, `iss` must
//! be one of `trusted_issuers` (when set), and every `required_scope` must be granted by
//! `scp`/`scope`/`scopes` (array or space-separated) under `scope_strategy`. Any failure is
//! 401. The subject is `sub`; the extra data is every claim, with the scopes re-stored as an
//! `scp` array.

use std::sync::Arc;

use jsonwebtoken::Validation;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Outcome;
use super::scope_strategy::ScopeStrategy;
use super::token_from::TokenFrom;
use crate::credentials::{self, Fetcher};
use crate::pipeline::{AuthenticationSession, CompileContext, PipelineError, RequestContext};

#[derive(Deserialize)]
struct Config {
    jwks_urls: Vec<String>,
    #[serde(default)]
    required_scope: Vec<String>,
    #[serde(default)]
    target_audience: Vec<String>,
    #[serde(default)]
    trusted_issuers: Vec<String>,
    #[serde(default)]
    allowed_algorithms: Vec<String>,
    #[serde(default)]
    scope_strategy: Option<String>,
    #[serde(default)]
    token_from: Option<TokenFrom>,
}

/// The `jwt` authenticator.
pub struct Jwt {
    jwks_urls: Vec<String>,
    required_scope: Vec<String>,
    target_audience: Vec<String>,
    trusted_issuers: Vec<String>,
    allowed_algorithms: Vec<String>,
    scope_strategy: ScopeStrategy,
    token_from: TokenFrom,
    fetcher: Arc<Fetcher>,
}

fn unauthorized(reason: impl Into<String>) -> PipelineError {
    PipelineError::unauthorized().with_reason(reason)
}

impl Jwt {
    /// Compiles the merged config.
    pub fn compile(config: &Value, ctx: &CompileContext) -> Result<Self, String> {
        let c: Config = serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        if c.jwks_urls.is_empty() {
            return Err("jwks_urls must list at least one key set".into());
        }
        let allowed_algorithms = if c.allowed_algorithms.is_empty() {
            vec!["RS256".to_string()]
        } else {
            c.allowed_algorithms
        };
        Ok(Self {
            jwks_urls: c.jwks_urls,
            required_scope: c.required_scope,
            target_audience: c.target_audience,
            trusted_issuers: c.trusted_issuers,
            allowed_algorithms,
            scope_strategy: ScopeStrategy::parse(c.scope_strategy.as_deref().unwrap_or("none")),
            token_from: c.token_from.unwrap_or_default(),
            fetcher: Arc::clone(&ctx.fetcher),
        })
    }

    /// Verifies the token and establishes the session from its claims.
    pub async fn authenticate(
        &self,
        request: &RequestContext,
        session: &mut AuthenticationSession,
    ) -> Result<Outcome, PipelineError> {
        let Some(token) = self.token_from.token(request) else {
            return Ok(Outcome::NotResponsible);
        };
        if token.split('.').count() != 3 {
            return Ok(Outcome::NotResponsible);
        }
        let mut claims = self.verify(&token).await?;
        self.check_claims(&mut claims)?;
        session.subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        session.extra = claims;
        Ok(Outcome::Authenticated)
    }

    async fn verify(&self, token: &str) -> Result<Map<String, Value>, PipelineError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| unauthorized(format!("malformed JSON Web Token: {e}")))?;
        let alg = serde_json::to_value(header.alg)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        if !self.allowed_algorithms.contains(&alg) {
            return Err(unauthorized(format!(
                "JSON Web Token uses algorithm {alg}, which is not allowed"
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| unauthorized("JSON Web Token has no kid header"))?;
        let mut sets = Vec::new();
        for url in &self.jwks_urls {
            match self.fetcher.resolve(url).await {
                Ok(set) => sets.push(set),
                Err(e) => tracing::warn!(error = %e, "jwt: skipping a key set"),
            }
        }
        let key =
            credentials::verification_key(&sets, &kid).map_err(|e| unauthorized(e.to_string()))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| unauthorized(format!("JSON Web Token is invalid: {e}")))
    }

    fn check_claims(&self, claims: &mut Map<String, Value>) -> Result<(), PipelineError> {
        let audiences = match claims.get("aud") {
            Some(Value::String(aud)) => vec![aud.clone()],
            other => strings(other),
        };
        if let Some(missing) = self
            .target_audience
            .iter()
            .find(|a| !audiences.contains(*a))
        {
            return Err(unauthorized(format!(
                "JSON Web Token is not intended for audience {missing:?}"
            )));
        }
        if !self.trusted_issuers.is_empty() {
            let iss = claims
                .get("iss")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !self.trusted_issuers.iter().any(|t| t == iss) {
                return Err(unauthorized(format!(
                    "JSON Web Token issuer {iss:?} is not trusted"
                )));
            }
        }
        let granted = ["scp", "scope", "scopes"]
            .iter()
            .map(|name| strings(claims.get(*name)))
            .find(|s| !s.is_empty())
            .unwrap_or_default();
        if !self.required_scope.is_empty() {
            if self.scope_strategy == ScopeStrategy::None {
                return Err(unauthorized(
                    "required_scope is set but scope_strategy is none: scopes cannot be checked",
                ));
            }
            if let Some(missing) = self
                .required_scope
                .iter()
                .find(|s| !self.scope_strategy.allows(&granted, s))
            {
                return Err(unauthorized(format!(
                    "JSON Web Token is missing required scope {missing:?}"
                )));
            }
        }
        claims.insert(
            "scp".into(),
            Value::Array(granted.into_iter().map(Value::String).collect()),
        );
        Ok(())
    }
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
