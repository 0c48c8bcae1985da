//! `GET /sessions/whoami?tokenize_as=<template>`: the session JSON plus `tokenized`, a JWT
//! signed with the first signing key of the template's key set (ES256 served over real HTTP,
//! RS256 from a file, EdDSA inline as base64), verified here with the public key; its claims,
//! TTL and claims-mapper output; `subject_source: external_id`; and Kratos's 400 for unknown
//! templates, a missing external id and a mapper without `claims`. On SQLite and PostgreSQL.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;
mod served;

use std::path::{Path, PathBuf};

use base64::Engine;
use common::{PASSWORD, Server, assert_schema, native, start_config};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portcullis_db::testing::TestDb;
use portcullis_identity::IdentityConfig;
use serde_json::{Map, Value, json};
use served::Served;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer")
}

fn key_set(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(format!("{name}.jwks.json"))).unwrap()
}

fn b64(text: &str) -> String {
    format!(
        "base64://{}",
        base64::engine::general_purpose::STANDARD.encode(text)
    )
}

/// The Kratos-documented mapper shape: ext vars `session` and `claims`, result `{claims}`.
const MAPPER: &str = r#"
local claims = std.extVar('claims');
local session = std.extVar('session');
{
  claims: {
    email: session.identity.traits.email,
    aal: session.authenticator_assurance_level,
    iss: claims.iss + 'tokens',
    sub: 'a mapper cannot change the subject',
    copied_exp: claims.exp,
  }
}
"#;

async fn start(db: TestDb, served: &Served) -> Server {
    let jwks = served.put("/keys/es256.json", &key_set("es256"));
    let mapper = served.put("/mappers/claims.jsonnet", MAPPER);
    start_config(db, move |public, admin| {
        let mut v = common::config_value(public, admin, "10m");
        v["session"] = json!({"whoami": {"tokenizer": {"templates": {
            "es": {"jwks_url": jwks, "claims_mapper_url": mapper, "ttl": "10m"},
            "rs": {"jwks_url": "file://rs256.jwks.json"},
            "ed": {"jwks_url": b64(&key_set("eddsa")), "subject_source": "external_id",
                   "ttl": "90s"},
            "fn": {"jwks_url": "file://rs256.jwks.json",
                   "claims_mapper_url": b64("function(ctx) { claims: { sid_copy: ctx.claims.sid } }")},
            "bad": {"jwks_url": "file://rs256.jwks.json",
                    "claims_mapper_url": b64("{ nope: 1 }")}
        }}}});
        IdentityConfig::from_value(v, "test kratos.yml", &fixtures(), true).expect("config")
    })
    .await
}

/// Creates an identity (with `external_id` when given), logs in natively; the session token.
async fn login(s: &Server, email: &str, external_id: Option<&str>) -> String {
    let mut body = json!({"schema_id": "default", "traits": {"email": email},
        "credentials": {"password": {"config": {"password": PASSWORD}}}});
    if let Some(e) = external_id {
        body["external_id"] = json!(e);
    }
    let res = native()
        .post(format!("{}/admin/identities", s.admin))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = common::native_login(s, email, PASSWORD).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["session_token"].as_str().unwrap().to_string()
}

async fn whoami(s: &Server, token: &str, template: Option<&str>) -> (u16, Value) {
    let mut url = format!("{}/sessions/whoami", s.public);
    if let Some(t) = template {
        url.push_str(&format!("?tokenize_as={t}"));
    }
    let res = native()
        .get(url)
        .header("X-Session-Token", token)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// Verifies `jwt` with the public part of the signing key (`kid`) of fixture set `set`.
fn verify(jwt: &str, set: &str, kid: &str, algorithm: Algorithm) -> Map<String, Value> {
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, algorithm);
    assert_eq!(header.kid.as_deref(), Some(kid));
    let keys: Value = serde_json::from_str(&key_set(set)).unwrap();
    let mut public = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap()
        .clone();
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        public.as_object_mut().unwrap().remove(private);
    }
    let jwk: Jwk = serde_json::from_value(public).unwrap();
    let mut validation = Validation::new(algorithm);
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "sub"]);
    jsonwebtoken::decode::<Map<String, Value>>(
        jwt,
        &DecodingKey::from_jwk(&jwk).unwrap(),
        &validation,
    )
    .expect("the signature and times verify")
    .claims
}

fn int(claims: &Map<String, Value>, name: &str) -> i64 {
    claims[name].as_i64().unwrap_or_else(|| panic!("{name}"))
}

async fn tokenized_sessions(db: TestDb) {
    let served = Served::start();
    let s = start(db, &served).await;
    let token = login(&s, "tess@example.com", Some("ext-tess-1")).await;
    let issuer = format!("{}/", s.public);

    let (status, plain) = whoami(&s, &token, None).await;
    assert_eq!(status, 200);
    assert!(plain.get("tokenized").is_none());
    let session_id = plain["id"].as_str().unwrap().to_string();
    let identity_id = plain["identity"]["id"].as_str().unwrap().to_string();

    // ES256 key set over HTTP, with the mapper (also over HTTP) and a 10 minute TTL.
    let (status, body) = whoami(&s, &token, Some("es")).await;
    assert_eq!(status, 200, "{body}");
    assert_schema("session", &body);
    assert_eq!(body["id"], plain["id"]);
    let claims = verify(
        body["tokenized"].as_str().unwrap(),
        "es256",
        "es-1",
        Algorithm::ES256,
    );
    assert_eq!(claims["sub"], json!(identity_id), "the subject is kept");
    assert_eq!(claims["sid"], json!(session_id));
    let iat = int(&claims, "iat");
    assert_eq!(int(&claims, "exp") - iat, 600);
    assert_eq!(int(&claims, "nbf"), iat);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((iat - now).abs() < 60, "iat {iat} is now ({now})");
    assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
    assert_eq!(claims["email"], "tess@example.com");
    assert_eq!(claims["aal"], "aal1");
    assert_eq!(claims["copied_exp"], claims["exp"]);
    // As in Kratos, a mapper may replace claims other than `sub`.
    assert_eq!(claims["iss"], json!(format!("{issuer}tokens")));
    let (_, again) = whoami(&s, &token, Some("es")).await;
    let again = verify(
        again["tokenized"].as_str().unwrap(),
        "es256",
        "es-1",
        Algorithm::ES256,
    );
    assert_ne!(again["jti"], claims["jti"], "every token has its own id");

    // RS256 from a file, no mapper, the default TTL of one minute.
    let (status, body) = whoami(&s, &token, Some("rs")).await;
    assert_eq!(status, 200, "{body}");
    let claims = verify(
        body["tokenized"].as_str().unwrap(),
        "rs256",
        "rs-1",
        Algorithm::RS256,
    );
    assert_eq!(int(&claims, "exp") - int(&claims, "iat"), 60);
    assert_eq!(claims["iss"], json!(issuer));
    assert_eq!(claims["sub"], json!(identity_id));
    let mut names: Vec<&str> = claims.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["exp", "iat", "iss", "jti", "nbf", "sid", "sub"]);

    // EdDSA inline, with the external id as the subject.
    let (status, body) = whoami(&s, &token, Some("ed")).await;
    assert_eq!(status, 200, "{body}");
    let claims = verify(
        body["tokenized"].as_str().unwrap(),
        "eddsa",
        "ed-1",
        Algorithm::EdDSA,
    );
    assert_eq!(claims["sub"], "ext-tess-1");
    assert_eq!(int(&claims, "exp") - int(&claims, "iat"), 90);

    // A mapper written as a function gets ctx.claims and ctx.session.
    let (status, body) = whoami(&s, &token, Some("fn")).await;
    assert_eq!(status, 200, "{body}");
    let claims = verify(
        body["tokenized"].as_str().unwrap(),
        "rs256",
        "rs-1",
        Algorithm::RS256,
    );
    assert_eq!(claims["sid_copy"], json!(session_id));

    // Kratos's 400s, never a 500.
    for (template, reason) in [
        ("nope", "Unable to find tokenizer template \"nope\"."),
        (
            "bad",
            "Expected tokenizer JsonNet to return a claims object but it did not.",
        ),
    ] {
        let (status, body) = whoami(&s, &token, Some(template)).await;
        assert_eq!(status, 400, "{body}");
        assert_schema("errorGeneric", &body);
        assert_eq!(body["error"]["reason"], reason);
        assert_eq!(body["error"]["code"], 400);
    }
    let without = login(&s, "noext@example.com", None).await;
    let (status, body) = whoami(&s, &without, Some("ed")).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("does not have an external ID"),
        "{body}"
    );
    // Without a session the answer stays the 401, whatever the template.
    let (status, _) = whoami(&s, "ory_st_invalid", Some("es")).await;
    assert_eq!(status, 401);

    // Key set and mapper were fetched once, at load.
    assert_eq!(served.requests("/keys/es256.json").len(), 1);
    assert_eq!(served.requests("/mappers/claims.jsonnet").len(), 1);
}
on_both!(tokenized_sessions);

#[test]
fn unusable_templates_fail_the_load() {
    let load = |template: Value| {
        let mut v = common::config_value("http://127.0.0.1:4433/", "http://127.0.0.1:4434/", "1m");
        v["session"] = json!({"whoami": {"tokenizer": {"templates": {"t": template}}}});
        IdentityConfig::from_value(v, "test kratos.yml", &fixtures(), true)
            .expect_err("refused")
            .to_string()
    };
    let err = load(json!({"jwks_url": "file://missing.json"}));
    assert!(
        err.contains("session.whoami.tokenizer.templates.t.jwks_url"),
        "{err}"
    );
    let public_only = json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256",
        "x": "AA", "y": "AA"}]});
    let err = load(json!({"jwks_url": b64(&public_only.to_string())}));
    assert!(err.contains("no private signing key"), "{err}");
    let err = load(json!({"jwks_url": "file://rs256.jwks.json",
        "claims_mapper_url": "file://missing.jsonnet"}));
    assert!(err.contains("claims_mapper_url"), "{err}");
    // Kratos's schema requires jwks_url.
    let err = load(json!({"ttl": "1m"}));
    assert!(err.contains("jwks_url"), "{err}");
}
