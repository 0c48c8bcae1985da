//! What `oauth2_introspection` and `oauth2_client_credentials` share: the client credentials
//! grant (RFC 6749 §4.4) and the expiring caches, which live for the whole access proxy (not
//! per rule) so that every rule sees the same entries — which is why every key names the
//! endpoint it came from.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use base64::Engine as _;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::pipeline::remote;

/// Beyond this many entries a cache starts over (bounded memory).
const DEFAULT_LIMIT: usize = 10_000;

/// A map whose entries expire at their own deadline (or never).
pub struct ExpiringCache<V> {
    entries: Mutex<HashMap<String, (Option<Instant>, V)>>,
}

impl<V: Clone> Default for ExpiringCache<V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone> ExpiringCache<V> {
    /// The live entry under `key`.
    pub fn get(&self, key: &str) -> Option<V> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some((Some(until), _)) if *until <= Instant::now() => {
                entries.remove(key);
                None
            }
            Some((_, value)) => Some(value.clone()),
            None => None,
        }
    }

    /// Stores `value` until `until` (`None`: until evicted), keeping at most `limit` entries.
    pub fn put(&self, key: String, value: V, until: Option<Instant>, limit: usize) {
        let mut entries = self.lock();
        if entries.len() >= limit.clamp(1, DEFAULT_LIMIT) {
            let now = Instant::now();
            entries.retain(|_, (u, _)| u.is_none_or(|u| u > now));
            if entries.len() >= limit.clamp(1, DEFAULT_LIMIT) {
                entries.clear();
            }
        }
        entries.insert(key, (until, value));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Option<Instant>, V)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The caches shared by every rule of one access proxy.
#[derive(Default)]
pub struct Caches {
    /// Introspection answers keyed by `token|introspection_url`.
    pub introspection: ExpiringCache<Map<String, Value>>,
    /// Access tokens keyed by `token_url|scopes|audience|client_id:client_secret`.
    pub tokens: ExpiringCache<String>,
}

/// A client credentials grant to perform.
pub struct Grant<'a> {
    /// The token endpoint.
    pub token_url: &'a url::Url,
    /// The client id.
    pub client_id: &'a str,
    /// The client secret.
    pub client_secret: &'a str,
    /// The scopes to ask for.
    pub scope: &'a [String],
    /// The audience to ask for, if any.
    pub audience: Option<&'a str>,
}

/// Why a grant failed.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The token endpoint could not be reached.
    #[error("token endpoint unreachable: {0}")]
    Transport(String),
    /// The token endpoint refused, with its status and the headers worth passing on.
    #[error("token endpoint answered {0}")]
    Refused(StatusCode, Vec<(http::HeaderName, HeaderValue)>),
    /// The answer was not a token response.
    #[error("token endpoint answered an invalid token response: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl Grant<'_> {
    /// The cache key: every input of the grant.
    pub fn cache_key(&self) -> String {
        format!(
            "{}|{}|{}|{}:{}",
            self.token_url,
            self.scope.join(" "),
            self.audience.unwrap_or_default(),
            self.client_id,
            self.client_secret
        )
    }

    /// Performs the grant (credentials in HTTP Basic, form-encoded as RFC 6749 asks: each
    /// part URL-encoded first) and returns the access token with its lifetime, if given.
    pub async fn perform(
        &self,
        client: &portcullis_http::UpstreamClient,
        deadline: Duration,
    ) -> Result<(String, Option<Duration>), GrantError> {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(self.client_id),
            enc(self.client_secret)
        ));
        // The serializer is not `Send`: it must not live across an await.
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if !self.scope.is_empty() {
                form.append_pair("scope", &self.scope.join(" "));
            }
            if let Some(audience) = self.audience.filter(|a| !a.is_empty()) {
                form.append_pair("audience", audience);
            }
            form.finish()
        };
        let request = http::Request::builder()
            .method(Method::POST)
            .uri(self.token_url.as_str())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, format!("Basic {basic}"))
            .body(Body::from(form))
            .map_err(|e| GrantError::Transport(e.to_string()))?;
        let (parts, body) = remote::call(client, request, deadline)
            .await
            .map_err(GrantError::Transport)?;
        if parts.status != StatusCode::OK {
            return Err(GrantError::Refused(
                parts.status,
                pass_on_headers(&parts.headers),
            ));
        }
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| GrantError::Invalid(e.to_string()))?;
        Ok((
            token.access_token,
            token.expires_in.map(Duration::from_secs),
        ))
    }
}

/// `Retry-After` and the rate-limit headers of a 429, passed through to the client.
pub fn pass_on_headers(headers: &http::HeaderMap) -> Vec<(http::HeaderName, HeaderValue)> {
    headers
        .iter()
        .filter(|(name, _)| {
            *name == http::header::RETRY_AFTER || name.as_str().starts_with("x-ratelimit-")
        })
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_at_their_deadline() {
        let cache = ExpiringCache::<u8>::default();
        cache.put("a".into(), 1, None, 10);
        cache.put(
            "b".into(),
            2,
            Some(Instant::now() - Duration::from_secs(1)),
            10,
        );
        assert_eq!(cache.get("a"), Some(1));
        assert_eq!(cache.get("b"), None);
        cache.put("c".into(), 3, None, 1);
        assert_eq!(cache.get("a"), None);
        assert_eq!(cache.get("c"), Some(3));
    }
}
