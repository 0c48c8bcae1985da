//! The session tokenizer (Kratos ≥ 1.1): `/sessions/whoami?tokenize_as=<template>` answers
//! the session with `tokenized`, a JWT built from `session.whoami.tokenizer.templates.<name>`:
//!
//! - signed with the first signing key of the template's `jwks_url` key set (a key with
//!   private material whose `use` is `sig` or unset), by the key's `alg` — RS256/384/512,
//!   PS256/384/512, ES256, ES384, EdDSA (Ed25519) or HS256/384/512 — with the header's `kid`
//!   set to the key's;
//! - claims `jti` (a fresh UUID), `iss` (the public base URL), `iat` and `nbf` (now), `exp`
//!   (now + `ttl`, default 1m), `sid` (the session id) and `sub` (the identity id, or its
//!   `external_id` with `subject_source: external_id`);
//! - with a `claims_mapper_url`, a Jsonnet mapper that reads `std.extVar('session')` (the
//!   whoami session JSON) and `std.extVar('claims')` (the claims above) and returns
//!   `{claims: {…}}`, merged over the claims — as in Kratos, every claim but `sub` can be
//!   replaced. A mapper written as `function(ctx)` is also called with
//!   `ctx = {session, claims}`.
//!
//! Key sets and mappers are read once, when the configuration loads (any URL
//! [`crate::fetcher`] reads), and the signing key is decoded then: a configuration whose
//! key cannot sign fails to load instead of failing requests.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::fetcher;

/// Why a session could not be tokenized: each is Kratos's 400.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    /// `tokenize_as` names no configured template.
    #[error("Unable to find tokenizer template \"{0}\".")]
    UnknownTemplate(String),
    /// `subject_source: external_id`, but the identity has none.
    #[error(
        "The session's identity does not have an external ID set, but it is required for the subject claim."
    )]
    NoExternalId,
    /// The claims mapper failed.
    #[error("Unable to execute tokenizer JsonNet.")]
    Mapper(String),
    /// The claims mapper did not return `{claims: {…}}`.
    #[error("Expected tokenizer JsonNet to return a claims object but it did not.")]
    NoClaims,
    /// Signing failed.
    #[error("Unable to sign JSON Web Token.")]
    Sign(String),
}

impl From<TokenizeError> for ApiError {
    fn from(e: TokenizeError) -> Self {
        if let TokenizeError::Mapper(detail) | TokenizeError::Sign(detail) = &e {
            tracing::info!(error = %e, detail, "session tokenization failed");
        }
        ApiError::bad_request(e.to_string())
    }
}

/// `subject_source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SubjectSource {
    Id,
    ExternalId,
}

/// One template as written.
#[derive(Debug, Deserialize)]
struct RawTemplate {
    ttl: Option<String>,
    jwks_url: String,
    claims_mapper_url: Option<String>,
    subject_source: Option<SubjectSource>,
}

/// A compiled template.
struct Template {
    ttl: time::Duration,
    key: SigningKey,
    /// The Jsonnet source of the claims mapper.
    mapper: Option<String>,
    subject_source: SubjectSource,
}

/// A key that signs: its `kid`, algorithm and decoded private key.
struct SigningKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: EncodingKey,
}

/// `session.whoami.tokenizer.templates`, compiled.
#[derive(Default)]
pub struct Tokenizer {
    templates: BTreeMap<String, Template>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs: only the names and algorithms.
        f.debug_map()
            .entries(
                self.templates
                    .iter()
                    .map(|(name, t)| (name, t.key.algorithm)),
            )
            .finish()
    }
}

/// What a session is tokenized from.
pub struct Subject<'a> {
    /// The session id (`sid`).
    pub session_id: uuid::Uuid,
    /// The identity id (`sub` by default).
    pub identity_id: uuid::Uuid,
    /// The identity's `external_id` (`sub` with `subject_source: external_id`).
    pub external_id: Option<&'a str>,
    /// The whoami session JSON, for the claims mapper.
    pub session: &'a Value,
}

impl Tokenizer {
    /// Compiles `session.whoami.tokenizer.templates` (`templates` is that object or null);
    /// the error is `(JSON pointer below templates, message)`.
    pub fn compile(templates: &Value, base_dir: &Path) -> Result<Self, (String, String)> {
        let mut out = BTreeMap::new();
        let Some(map) = templates.as_object() else {
            return Ok(Self::default());
        };
        for (name, raw) in map {
            let at = |key: &str| format!("/{name}/{key}");
            let raw: RawTemplate = serde_json::from_value(raw.clone())
                .map_err(|e| (format!("/{name}"), e.to_string()))?;
            let ttl = crate::config::parse_duration(raw.ttl.as_deref().unwrap_or("1m"))
                .filter(|d| d.is_positive())
                .ok_or_else(|| (at("ttl"), "invalid duration".to_string()))?;
            let set = fetcher::fetch(&raw.jwks_url, base_dir)
                .map_err(|e| (at("jwks_url"), e.to_string()))?;
            let key = signing_key(&set).map_err(|e| (at("jwks_url"), e))?;
            let mapper = raw
                .claims_mapper_url
                .as_deref()
                .filter(|u| !u.is_empty())
                .map(|u| fetcher::fetch_text(u, base_dir))
                .transpose()
                .map_err(|e| (at("claims_mapper_url"), e.to_string()))?;
            out.insert(
                name.clone(),
                Template {
                    ttl,
                    key,
                    mapper,
                    subject_source: raw.subject_source.unwrap_or(SubjectSource::Id),
                },
            );
        }
        Ok(Self { templates: out })
    }

    /// The JWT for `subject` by template `name`, issued by `issuer` at `now`.
    pub fn tokenize(
        &self,
        name: &str,
        subject: &Subject<'_>,
        issuer: &str,
        now: OffsetDateTime,
    ) -> Result<String, TokenizeError> {
        let template = self
            .templates
            .get(name)
            .ok_or_else(|| TokenizeError::UnknownTemplate(name.to_string()))?;
        let sub = match template.subject_source {
            SubjectSource::Id => subject.identity_id.to_string(),
            SubjectSource::ExternalId => subject
                .external_id
                .filter(|e| !e.is_empty())
                .ok_or(TokenizeError::NoExternalId)?
                .to_string(),
        };
        let iat = now.unix_timestamp();
        let mut claims = Map::new();
        claims.insert("jti".into(), json!(portcullis_core::new_id()));
        claims.insert("iss".into(), json!(issuer));
        claims.insert("exp".into(), json!((now + template.ttl).unix_timestamp()));
        claims.insert("sid".into(), json!(subject.session_id));
        claims.insert("nbf".into(), json!(iat));
        claims.insert("iat".into(), json!(iat));
        claims.insert("sub".into(), json!(sub));
        if let Some(mapper) = &template.mapper {
            let defaults = Value::Object(claims.clone());
            let ctx = json!({"session": subject.session, "claims": defaults});
            let result = crate::selfservice::hook::jsonnet::evaluate(
                mapper,
                &ctx,
                &[("session", subject.session), ("claims", &defaults)],
            )
            .map_err(TokenizeError::Mapper)?;
            let Some(Value::Object(mapped)) = result.get("claims") else {
                return Err(TokenizeError::NoClaims);
            };
            claims.extend(mapped.clone());
            // The subject is the one claim a mapper cannot change.
            claims.insert("sub".into(), json!(sub));
        }
        let mut header = Header::new(template.key.algorithm);
        header.kid = template.key.kid.clone();
        jsonwebtoken::encode(&header, &claims, &template.key.key)
            .map_err(|e| TokenizeError::Sign(e.to_string()))
    }
}

/// The first key of the set that can sign, decoded.
fn signing_key(set: &[u8]) -> Result<SigningKey, String> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<Map<String, Value>>,
    }
    let set: Set =
        serde_json::from_slice(set).map_err(|e| format!("not a JSON Web Key Set: {e}"))?;
    let key = set
        .keys
        .iter()
        .find(|k| {
            matches!(str_of(k, "use"), None | Some("sig"))
                && (k.contains_key("d") || str_of(k, "kty") == Some("oct"))
        })
        .ok_or("the JSON Web Key Set has no private signing key")?;
    let kid = str_of(key, "kid").map(str::to_string);
    let alg = str_of(key, "alg").ok_or("the signing key has no \"alg\"")?;
    let algorithm: Algorithm = alg
        .parse()
        .map_err(|_| format!("the signing key's \"alg\" {alg:?} is not supported"))?;
    let bytes = |name: &str| -> Result<Vec<u8>, String> {
        let text = str_of(key, name).ok_or_else(|| format!("the key has no {name:?}"))?;
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| format!("the key's {name:?} is not base64url"))
    };
    let kty = str_of(key, "kty").unwrap_or_default();
    let encoding = match (kty, algorithm) {
        (
            "RSA",
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => {
            let n = |name: &str| bytes(name).map(|b| rsa::BigUint::from_bytes_be(&b));
            let private = rsa::RsaPrivateKey::from_components(
                n("n")?,
                n("e")?,
                n("d")?,
                vec![n("p")?, n("q")?],
            )
            .map_err(|e| format!("invalid RSA key: {e}"))?;
            let der = rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_der(&private)
                .map_err(|e| format!("invalid RSA key: {e}"))?;
            EncodingKey::from_rsa_der(der.as_bytes())
        }
        ("EC", Algorithm::ES256 | Algorithm::ES384) => {
            let (curve, size, oid): (&str, usize, &[u8]) = if algorithm == Algorithm::ES256 {
                ("P-256", 32, P256_OID)
            } else {
                ("P-384", 48, P384_OID)
            };
            if str_of(key, "crv") != Some(curve) {
                return Err(format!("{alg} needs a {curve} key"));
            }
            let d = bytes("d")?;
            if d.len() != size {
                return Err(format!("the {curve} key's \"d\" must be {size} bytes"));
            }
            EncodingKey::from_ec_der(&ec_pkcs8(oid, &d))
        }
        ("OKP", Algorithm::EdDSA) => {
            if str_of(key, "crv") != Some("Ed25519") {
                return Err("EdDSA keys must be Ed25519".into());
            }
            let d = bytes("d")?;
            if d.len() != 32 {
                return Err("the Ed25519 key's \"d\" must be 32 bytes".into());
            }
            EncodingKey::from_ed_der(&[ED25519_PKCS8_PREFIX, d.as_slice()].concat())
        }
        ("oct", Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) => {
            EncodingKey::from_secret(&bytes("k")?)
        }
        _ => return Err(format!("a {kty:?} key cannot sign with {alg}")),
    };
    Ok(SigningKey {
        kid,
        algorithm,
        key: encoding,
    })
}

fn str_of<'a>(key: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    key.get(name).and_then(Value::as_str)
}

/// DER of the curve OIDs prime256v1 (1.2.840.10045.3.1.7) and secp384r1 (1.3.132.0.34).
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// PKCS#8 v1 for an Ed25519 seed: the fixed header, then the 32 seed bytes.
const ED25519_PKCS8_PREFIX: &[u8] = &[
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// PKCS#8 (RFC 5208) around a SEC1 `ECPrivateKey` (RFC 5915) holding only the scalar `d`:
/// what the ECDSA signer decodes. All lengths are below 128, so they are single bytes.
fn ec_pkcs8(curve_oid: &[u8], d: &[u8]) -> Vec<u8> {
    // id-ecPublicKey (1.2.840.10045.2.1).
    const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let tlv = |tag: u8, content: &[u8]| -> Vec<u8> {
        // Lengths here are at most 2 + 3 + 2 + 48 + 2 + 18 + 2 + 3 < 128.
        let mut out = vec![tag, u8::try_from(content.len()).unwrap_or(u8::MAX)];
        out.extend_from_slice(content);
        out
    };
    let ec_private_key = tlv(0x30, &[&[0x02, 0x01, 0x01][..], &tlv(0x04, d)].concat());
    let algorithm = tlv(0x30, &[EC_PUBLIC_KEY, curve_oid].concat());
    tlv(
        0x30,
        &[
            &[0x02, 0x01, 0x00][..],
            &algorithm,
            &tlv(0x04, &ec_private_key),
        ]
        .concat(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p256_pkcs8_has_the_standard_layout() {
        let der = ec_pkcs8(P256_OID, &[7u8; 32]);
        assert_eq!(der.len(), 67);
        assert_eq!(&der[..2], &[0x30, 0x41]);
        assert_eq!(&der[der.len() - 32..], &[7u8; 32]);
        let der = ec_pkcs8(P384_OID, &[7u8; 48]);
        assert_eq!(&der[..2], &[0x30, 0x4e]);
    }

    #[test]
    fn unusable_key_sets_are_refused() {
        for (set, needle) in [
            (json!({"keys": []}), "no private signing key"),
            (
                json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
                "no \"alg\"",
            ),
            (
                json!({"keys": [{"kty": "oct", "alg": "ES512", "k": "c2VjcmV0"}]}),
                "not supported",
            ),
            (
                json!({"keys": [{"kty": "oct", "alg": "RS256", "k": "c2VjcmV0"}]}),
                "cannot sign with RS256",
            ),
            (
                json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "d": "AQ"}]}),
                "32 bytes",
            ),
        ] {
            let err = signing_key(set.to_string().as_bytes())
                .err()
                .unwrap_or_default();
            assert!(err.contains(needle), "{err} lacks {needle}");
        }
        assert!(signing_key(b"[]").is_err());
    }
}
