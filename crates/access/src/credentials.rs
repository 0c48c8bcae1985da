//! JSON Web Key Sets, shared by the `jwt` authenticator (verification), the `id_token`
//! mutator (signing) and `/.well-known/jwks.json` (publication) — Oathkeeper's `credentials`
//! package.
//!
//! One [`Fetcher`] per access proxy caches every set by URL (`file://…`, `http://…` or `https://…`) for
//! `authenticators.jwt.config.jwks_ttl` (Oathkeeper reads it and `jwks_max_wait` only from
//! the global config, as here). An expired set is refreshed, but a request waits at most
//! `jwks_max_wait` for that: past it the stale set answers and the refresh completes in the
//! background (Oathkeeper PR #726, after cold fetches caused 403s). A failed refresh keeps
//! the stale set and is logged: a key server hiccup must not turn every request into a 401. Keys are kept as raw
//! JSON so private parts (`d`, `p`, `q`) stay available for signing and can be left out when
//! publishing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, jwk::Jwk};
use serde_json::{Map, Value};

/// Why a key set or key is unusable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyError {
    /// The set could not be fetched or parsed.
    #[error("JSON Web Key Set {url}: {reason}")]
    Fetch {
        /// Where from.
        url: String,
        /// Why.
        reason: String,
    },
    /// No key fits.
    #[error("{0}")]
    NotFound(String),
    /// The key exists but cannot be used.
    #[error("JSON Web Key {kid:?}: {reason}")]
    Invalid {
        /// The key id.
        kid: String,
        /// Why.
        reason: String,
    },
}

/// A fetched key set: the raw keys, in order.
#[derive(Debug, Clone)]
pub struct KeySet {
    /// The `keys` array members.
    pub keys: Vec<Map<String, Value>>,
}

type Cache = Arc<Mutex<HashMap<String, (Instant, Arc<KeySet>)>>>;

/// Fetches and caches key sets by URL.
pub struct Fetcher {
    client: portcullis_http::UpstreamClient,
    ttl: Duration,
    max_wait: Duration,
    cache: Cache,
}

impl Fetcher {
    /// A fetcher whose sets are fresh for `ttl`; requests wait at most `max_wait` for the
    /// refresh of an expired set.
    pub fn new(client: portcullis_http::UpstreamClient, ttl: Duration, max_wait: Duration) -> Self {
        Self {
            client,
            ttl,
            max_wait,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The set at `url`: from the cache while fresh; else refreshed, or the stale set when
    /// the refresh fails or takes longer than `max_wait`.
    pub async fn resolve(&self, url: &str) -> Result<Arc<KeySet>, KeyError> {
        let cached = lock(&self.cache).get(url).cloned();
        if let Some((at, set)) = &cached
            && at.elapsed() < self.ttl
        {
            return Ok(Arc::clone(set));
        }
        let (client, cache, key) = (
            self.client.clone(),
            Arc::clone(&self.cache),
            url.to_string(),
        );
        let refresh = tokio::spawn(async move {
            let set = Arc::new(fetch(&client, &key).await?);
            lock(&cache).insert(key, (Instant::now(), Arc::clone(&set)));
            Ok::<_, KeyError>(set)
        });
        let Some((_, stale)) = cached else {
            return refresh.await.map_err(|e| KeyError::Fetch {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        };
        match tokio::time::timeout(self.max_wait, refresh).await {
            Ok(Ok(Ok(set))) => Ok(set),
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "serving stale JSON Web Keys");
                Ok(stale)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, url, "serving stale JSON Web Keys");
                Ok(stale)
            }
            Err(_) => {
                tracing::warn!(
                    url,
                    "JSON Web Key refresh is slow; serving stale keys meanwhile"
                );
                Ok(stale)
            }
        }
    }
}

fn lock(cache: &Cache) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Arc<KeySet>)>> {
    cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn fetch(client: &portcullis_http::UpstreamClient, url: &str) -> Result<KeySet, KeyError> {
    let fail = |reason: String| KeyError::Fetch {
        url: url.to_string(),
        reason,
    };
    let bytes = if let Some(path) = url.strip_prefix("file://") {
        tokio::fs::read(path)
            .await
            .map_err(|e| fail(e.to_string()))?
    } else if url.starts_with("http://") || url.starts_with("https://") {
        let uri: http::Uri = url.parse().map_err(|e| fail(format!("invalid URL: {e}")))?;
        let response = client.get(uri).await.map_err(|e| fail(e.to_string()))?;
        if response.status() != http::StatusCode::OK {
            return Err(fail(format!("status {}", response.status())));
        }
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(e.to_string()))?
            .to_bytes()
            .to_vec()
    } else {
        return Err(fail(
            "unsupported location (use file://, http:// or https://)".into(),
        ));
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))?;
    let keys = value
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| fail("no \"keys\" array".into()))?
        .iter()
        .filter_map(|k| k.as_object().cloned())
        .collect();
    Ok(KeySet { keys })
}

fn str_of<'a>(key: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    key.get(name).and_then(Value::as_str)
}

/// The verification key with id `kid` and `use: sig` in any of the sets (Oathkeeper ignores
/// keys without `use`).
pub fn verification_key(sets: &[Arc<KeySet>], kid: &str) -> Result<DecodingKey, KeyError> {
    let key = sets
        .iter()
        .flat_map(|s| s.keys.iter())
        .find(|k| str_of(k, "kid") == Some(kid) && str_of(k, "use") == Some("sig"))
        .ok_or_else(|| {
            KeyError::NotFound(format!(
                "no JSON Web Key with kid {kid:?} and use \"sig\" was found"
            ))
        })?;
    let invalid = |reason: String| KeyError::Invalid {
        kid: kid.to_string(),
        reason,
    };
    if str_of(key, "kty") == Some("oct") {
        let secret = b64(key, "k").map_err(invalid)?;
        return Ok(DecodingKey::from_secret(&secret));
    }
    let public = public_part(key).ok_or_else(|| invalid("unsupported key type".into()))?;
    let jwk: Jwk =
        serde_json::from_value(Value::Object(public)).map_err(|e| invalid(e.to_string()))?;
    DecodingKey::from_jwk(&jwk).map_err(|e| invalid(e.to_string()))
}

/// A key that can sign: its id, algorithm and encoding key.
pub struct SigningKey {
    /// `kid`.
    pub kid: String,
    /// The key's `alg`.
    pub algorithm: Algorithm,
    /// The private key.
    pub key: EncodingKey,
}

/// The first private key of the set meant for signatures (`use` `sig` or unset): RSA (RS*,
/// PS*) or symmetric (HS*).
pub fn signing_key(set: &KeySet) -> Result<SigningKey, KeyError> {
    let key = set
        .keys
        .iter()
        .find(|k| {
            matches!(str_of(k, "use"), None | Some("sig"))
                && (k.contains_key("d") || str_of(k, "kty") == Some("oct"))
        })
        .ok_or_else(|| {
            KeyError::NotFound("the JSON Web Key Set has no private signing key".into())
        })?;
    let kid = str_of(key, "kid").unwrap_or_default().to_string();
    let invalid = |reason: String| KeyError::Invalid {
        kid: kid.clone(),
        reason,
    };
    let algorithm: Algorithm = str_of(key, "alg")
        .unwrap_or("RS256")
        .parse()
        .map_err(|e: jsonwebtoken::errors::Error| invalid(e.to_string()))?;
    let encoding = match str_of(key, "kty") {
        Some("RSA") => {
            let n = |name: &str| b64(key, name).map(|b| rsa::BigUint::from_bytes_be(&b));
            let private = rsa::RsaPrivateKey::from_components(
                n("n").map_err(&invalid)?,
                n("e").map_err(&invalid)?,
                n("d").map_err(&invalid)?,
                vec![n("p").map_err(&invalid)?, n("q").map_err(&invalid)?],
            )
            .map_err(|e| invalid(e.to_string()))?;
            let der = rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_der(&private)
                .map_err(|e| invalid(e.to_string()))?;
            EncodingKey::from_rsa_der(der.as_bytes())
        }
        Some("oct") => EncodingKey::from_secret(&b64(key, "k").map_err(&invalid)?),
        other => {
            return Err(invalid(format!(
                "key type {other:?} cannot sign here (RSA and oct keys can)"
            )));
        }
    };
    Ok(SigningKey {
        kid,
        algorithm,
        key: encoding,
    })
}

/// The public members of a key, as `/.well-known/jwks.json` serves it; `None` for symmetric
/// keys, which are never published.
pub fn public_part(key: &Map<String, Value>) -> Option<Map<String, Value>> {
    let public: &[&str] = match str_of(key, "kty")? {
        "RSA" => &["n", "e"],
        "EC" => &["crv", "x", "y"],
        "OKP" => &["crv", "x"],
        _ => return None,
    };
    let mut out = Map::new();
    for name in ["kty", "kid", "use", "alg", "x5c", "x5t", "x5t#S256"]
        .iter()
        .chain(public)
    {
        if let Some(v) = key.get(*name) {
            out.insert((*name).to_string(), v.clone());
        }
    }
    Some(out)
}

fn b64(key: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = str_of(key, name).ok_or_else(|| format!("missing {name:?}"))?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|e| format!("{name:?} is not base64url: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &std::path::Path, kid: &str) {
        let set = serde_json::json!({"keys": [{"kty": "oct", "kid": kid, "use": "sig", "k": "c2VjcmV0"}]});
        std::fs::write(path, set.to_string()).expect("write");
    }

    #[tokio::test]
    async fn sets_are_cached_for_the_ttl_and_stale_ones_survive_failures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jwks.json");
        let url = format!("file://{}", path.display());
        write(&path, "one");
        let client = portcullis_http::upstream_client();
        let cached = Fetcher::new(
            client.clone(),
            Duration::from_secs(60),
            Duration::from_secs(1),
        );
        let expiring = Fetcher::new(client, Duration::ZERO, Duration::from_secs(1));
        let kid = |set: Arc<KeySet>| set.keys[0]["kid"].clone();
        assert_eq!(kid(cached.resolve(&url).await.expect("set")), "one");
        assert_eq!(kid(expiring.resolve(&url).await.expect("set")), "one");
        write(&path, "two");
        assert_eq!(
            kid(cached.resolve(&url).await.expect("set")),
            "one",
            "fresh: cached"
        );
        assert_eq!(
            kid(expiring.resolve(&url).await.expect("set")),
            "two",
            "expired: refetched"
        );
        std::fs::remove_file(&path).expect("rm");
        assert_eq!(
            kid(expiring.resolve(&url).await.expect("stale")),
            "two",
            "stale on failure"
        );
        let cold = Fetcher::new(
            portcullis_http::upstream_client(),
            Duration::ZERO,
            Duration::ZERO,
        );
        assert!(
            cold.resolve(&url).await.is_err(),
            "nothing cached: the error"
        );
    }
}
