//! Issue 4 handlers over real HTTP: `bearer_token`, `jwt` (keys from the API's own
//! `/.well-known/jwks.json`, i.e. over http://), `remote_json`, `remote`, `cookie`,
//! `id_token` (signed with the Kratos quickstart's `id_token.jwks.json`, as file://) and
//! `hydrator`, each against a small fake service.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use portcullis_access::credentials::{KeySet, signing_key};
use portcullis_access::{Access, AccessConfig};
use serde_json::{Value, json};

mod common;
use common::*;

const ISSUER: &str = "https://issuer.example";

fn quickstart_jwks() -> String {
    reference("kratos/quickstart-oathkeeper/id_token.jwks.json")
        .display()
        .to_string()
}

/// The fake services the handlers talk to.
async fn services() -> SocketAddr {
    async fn check(headers: HeaderMap) -> Response {
        match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            Some("Bearer good-token") => {
                Json(json!({"sub": "token-user", "extra": {"plan": "pro"}})).into_response()
            }
            _ => StatusCode::UNAUTHORIZED.into_response(),
        }
    }
    async fn policy(Json(body): Json<Value>) -> Response {
        if body["resource"] == "open" && body["subject"] == "anonymous" {
            ([("x-policy", "ok"), ("x-secret", "no")], "").into_response()
        } else {
            StatusCode::FORBIDDEN.into_response()
        }
    }
    async fn body(headers: HeaderMap, body: String) -> StatusCode {
        let typed = headers
            .get("content-type")
            .is_some_and(|c| c == "text/plain");
        if body == "let me in" && typed {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        }
    }
    async fn hydrate(headers: HeaderMap, Json(mut session): Json<Value>) -> Response {
        if headers.get("authorization").and_then(|v| v.to_str().ok())
            != Some("Basic aHlkcmF0b3I6czNjcmV0")
        {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        session["extra"]["plan"] = json!("gold");
        session["extra"]["path"] = session["match_context"]["url"]["Path"].clone();
        session["header"] = json!({"X-Hydrated": ["yes"]});
        Json(session).into_response()
    }
    let (l, addr) = listener().await;
    serve(
        l,
        axum::Router::new()
            .route("/check", axum::routing::get(check))
            .route("/policy", post(policy))
            .route("/body", post(body))
            .route("/hydrate", post(hydrate)),
    );
    addr
}

struct Stack {
    proxy: SocketAddr,
    api: SocketAddr,
}

async fn stack() -> Stack {
    let upstream = upstream().await;
    let services = services().await;
    let (proxy_l, proxy) = listener().await;
    let (api_l, api) = listener().await;
    let up = json!({"url": format!("http://{upstream}")});
    let rules = json!([
        {
            "id": "jwt", "match": {"url": format!("http://{proxy}/jwt/<.*>"), "methods": ["GET"]},
            "authenticators": [{"handler": "jwt", "config": {
                "target_audience": ["api"], "trusted_issuers": [ISSUER],
                "required_scope": ["read.things"], "scope_strategy": "hierarchic"}}],
            "authorizer": {"handler": "allow"},
            "mutators": [{"handler": "header", "config": {"headers": {
                "X-User": "{{ print .Subject }}", "X-Scopes": "{{ join \" \" .Extra.scp }}"}}}],
            "upstream": up
        },
        {
            "id": "bearer", "match": {"url": format!("http://{proxy}/bearer"), "methods": ["GET"]},
            "authenticators": [{"handler": "bearer_token"}],
            "authorizer": {"handler": "allow"},
            "mutators": [{"handler": "header", "config": {"headers": {
                "X-User": "{{ print .Subject }}", "X-Plan": "{{ print .Extra.plan }}"}}}],
            "upstream": up
        },
        {
            "id": "remote-json", "match": {"url": format!("http://{proxy}/authz/<[a-z]+>"), "methods": ["GET"]},
            "authenticators": [{"handler": "anonymous"}],
            "authorizer": {"handler": "remote_json", "config": {
                "remote": format!("http://{services}/policy"),
                "payload": "{\"subject\": \"{{ print .Subject }}\", \"resource\": \"{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}\"}",
                "forward_response_headers_to_upstream": ["X-Policy"]}},
            "mutators": [{"handler": "noop"}],
            "upstream": up
        },
        {
            "id": "remote", "match": {"url": format!("http://{proxy}/remote"), "methods": ["POST"]},
            "authenticators": [{"handler": "anonymous"}],
            "authorizer": {"handler": "remote", "config": {"remote": format!("http://{services}/body")}},
            "mutators": [{"handler": "noop"}],
            "upstream": up
        },
        {
            "id": "cookie", "match": {"url": format!("http://{proxy}/cookie"), "methods": ["GET"]},
            "authenticators": [{"handler": "anonymous"}],
            "authorizer": {"handler": "allow"},
            "mutators": [{"handler": "cookie", "config": {"cookies": {"user": "{{ print .Subject }}"}}}],
            "upstream": up
        },
        {
            "id": "id-token", "match": {"url": format!("http://{proxy}/idt"), "methods": ["GET"]},
            "authenticators": [{"handler": "anonymous"}],
            "authorizer": {"handler": "allow"},
            "mutators": [{"handler": "id_token"}],
            "upstream": up
        },
        {
            "id": "hydrator", "match": {"url": format!("http://{proxy}/hydrate/<.*>"), "methods": ["GET"]},
            "authenticators": [{"handler": "anonymous"}],
            "authorizer": {"handler": "allow"},
            "mutators": [
                {"handler": "hydrator", "config": {"api": {
                    "url": format!("http://{services}/hydrate"),
                    "auth": {"basic": {"username": "hydrator", "password": "s3cret"}}}}},
                {"handler": "header", "config": {"headers": {
                    "X-Plan": "{{ print .Extra.plan }}", "X-Path": "{{ print .Extra.path }}"}}}
            ],
            "upstream": up
        }
    ]);
    let config = json!({
        "access_rules": {"repositories": [inline(&rules)]},
        "authenticators": {
            "anonymous": {"enabled": true},
            "bearer_token": {"enabled": true, "config": {
                "check_session_url": format!("http://{services}/check"), "preserve_path": true}},
            "jwt": {"enabled": true, "config": {
                "jwks_urls": [format!("http://{api}/.well-known/jwks.json")]}}
        },
        "authorizers": {
            "allow": {"enabled": true},
            "remote": {"enabled": true, "config": {"remote": "http://unused.invalid/"}},
            "remote_json": {"enabled": true, "config": {"remote": "http://unused.invalid/", "payload": "{}"}}
        },
        "mutators": {
            "noop": {"enabled": true},
            "header": {"enabled": true, "config": {"headers": {}}},
            "cookie": {"enabled": true, "config": {"cookies": {}}},
            "hydrator": {"enabled": true, "config": {"api": {"url": "http://unused.invalid/"}}},
            "id_token": {"enabled": true, "config": {
                "issuer_url": "http://127.0.0.1:4455/",
                "jwks_url": format!("file://{}", quickstart_jwks()),
                "claims": "{\"session\": {{ .Extra | toJson }}, \"who\": \"{{ print .Subject }}\"}",
                "ttl": "1m"}}
        }
    });
    let access = Access::new(AccessConfig::from_value(config, "in-code").expect("config"))
        .await
        .expect("rules");
    let invalid: Vec<_> = access
        .rules()
        .iter()
        .filter_map(|r| {
            r.pipeline
                .as_ref()
                .err()
                .map(|e| format!("{}: {e}", r.raw.id))
        })
        .collect();
    assert!(invalid.is_empty(), "{invalid:?}");
    serve(proxy_l, access.proxy_router());
    serve(api_l, access.api_router());
    Stack { proxy, api }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A token signed with the quickstart key (kid and alg from the key set).
fn token(claims: Value, edit_header: impl FnOnce(&mut jsonwebtoken::Header)) -> String {
    let set: Value =
        serde_json::from_str(&std::fs::read_to_string(quickstart_jwks()).expect("jwks"))
            .expect("json");
    let keys = set["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k.as_object().cloned())
        .collect();
    let key = signing_key(&KeySet { keys }).expect("signing key");
    let mut header = jsonwebtoken::Header::new(key.algorithm);
    header.kid = Some(key.kid.clone());
    edit_header(&mut header);
    jsonwebtoken::encode(&header, &claims, &key.key).expect("sign")
}

async fn get(url: String, token: Option<&str>) -> (u16, Value) {
    let mut req = client().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn jwt_verifies_keys_claims_and_scopes() {
    let s = stack().await;
    let url = format!("http://{}/jwt/things", s.proxy);
    let good = json!({"sub": "jwt-user", "aud": ["api", "other"], "iss": ISSUER,
        "exp": now() + 600, "scp": ["read.things", "write"]});
    let (status, body) = get(url.clone(), Some(&token(good.clone(), |_| {}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["headers"]["x-user"], "jwt-user");
    assert_eq!(body["headers"]["x-scopes"], "read.things write");
    // Hierarchic: `read` grants `read.things`; a space-separated `scope` claim works too.
    let mut parent = good.clone();
    parent.as_object_mut().expect("obj").remove("scp");
    parent["scope"] = json!("read profile");
    assert_eq!(get(url.clone(), Some(&token(parent, |_| {}))).await.0, 200);

    let bad = |edit: fn(&mut Value)| {
        let mut c = good.clone();
        edit(&mut c);
        token(c, |_| {})
    };
    for (why, t) in [
        ("audience", bad(|c| c["aud"] = json!("other"))),
        ("issuer", bad(|c| c["iss"] = json!("https://evil.example"))),
        ("scope", bad(|c| c["scp"] = json!(["read.other"]))),
        ("expired", bad(|c| c["exp"] = json!(now() - 10))),
        ("not yet valid", bad(|c| c["nbf"] = json!(now() + 600))),
        (
            "unknown kid",
            token(good.clone(), |h| h.kid = Some("nope".into())),
        ),
        ("no kid", token(good.clone(), |h| h.kid = None)),
    ] {
        assert_eq!(get(url.clone(), Some(&t)).await.0, 401, "{why}");
    }
    // An algorithm outside allowed_algorithms (default RS256) is refused before any key.
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some("a2aa9739-d753-4a0d-87ee-61f101050277".into()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &good,
        &jsonwebtoken::EncodingKey::from_secret(b"guess"),
    )
    .expect("sign");
    assert_eq!(get(url.clone(), Some(&hs)).await.0, 401, "HS256");
    // A tampered payload fails the signature.
    let t = token(good.clone(), |_| {});
    let mut parts: Vec<&str> = t.split('.').collect();
    let forged = token(
        json!({"sub": "admin", "aud": "api", "iss": ISSUER, "scp": ["read"]}),
        |_| {},
    );
    parts[1] = forged.split('.').nth(1).expect("payload");
    assert_eq!(
        get(url.clone(), Some(&parts.join("."))).await.0,
        401,
        "tampered"
    );
    // Not a JWT: not responsible, so no authenticator handles it: 401.
    assert_eq!(get(url.clone(), Some("opaque")).await.0, 401);
    assert_eq!(get(url, None).await.0, 401);
}

#[tokio::test]
async fn bearer_token_asks_the_session_store() {
    let s = stack().await;
    let url = format!("http://{}/bearer", s.proxy);
    let (status, body) = get(url.clone(), Some("good-token")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["headers"]["x-user"], "token-user");
    assert_eq!(body["headers"]["x-plan"], "pro");
    assert_eq!(get(url.clone(), Some("bad-token")).await.0, 401);
    assert_eq!(get(url, None).await.0, 401);
}

#[tokio::test]
async fn remote_authorizers_ask_the_policy_service() {
    let s = stack().await;
    let (status, body) = get(format!("http://{}/authz/open", s.proxy), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["headers"]["x-policy"], "ok",
        "forwarded response header"
    );
    assert!(
        body["headers"].get("x-secret").is_none(),
        "not listed, not forwarded"
    );
    assert_eq!(
        get(format!("http://{}/authz/closed", s.proxy), None)
            .await
            .0,
        403
    );

    let post = |text: &'static str| {
        client()
            .post(format!("http://{}/remote", s.proxy))
            .header("content-type", "text/plain")
            .body(text)
            .send()
    };
    let res = post("let me in").await.expect("request");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        body["body"], "let me in",
        "the upstream still gets the body"
    );
    assert_eq!(post("nope").await.expect("request").status(), 403);
}

#[tokio::test]
async fn cookie_mutator_overrides_and_keeps_cookies() {
    let s = stack().await;
    let res = client()
        .get(format!("http://{}/cookie", s.proxy))
        .header("cookie", "a=1; user=spoofed")
        .send()
        .await
        .expect("request");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["headers"]["cookie"], "user=anonymous; a=1");
}

#[tokio::test]
async fn id_token_is_signed_and_verifiable_with_the_published_keys() {
    let s = stack().await;
    let (status, body) = get(format!("http://{}/idt", s.proxy), None).await;
    assert_eq!(status, 200, "{body}");
    let auth = body["headers"]["authorization"]
        .as_str()
        .expect("authorization");
    let jwt = auth.strip_prefix("Bearer ").expect("bearer");
    let (_, again) = get(format!("http://{}/idt", s.proxy), None).await;
    assert_eq!(
        again["headers"]["authorization"], auth,
        "cached token reused"
    );

    let (status, jwks) = get(format!("http://{}/.well-known/jwks.json", s.api), None).await;
    assert_eq!(status, 200);
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    assert!(
        keys[0].get("d").is_none() && keys[0].get("p").is_none(),
        "public only"
    );
    let header = jsonwebtoken::decode_header(jwt).expect("header");
    assert_eq!(header.kid.as_deref(), keys[0]["kid"].as_str());
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(keys[0].clone()).expect("jwk");
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .expect("verifies")
        .claims;
    assert_eq!(claims["iss"], "http://127.0.0.1:4455/");
    assert_eq!(claims["sub"], "anonymous");
    assert_eq!(claims["who"], "anonymous");
    assert_eq!(claims["session"], json!({}));
    assert_eq!(
        claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
        60
    );
    assert!(claims["jti"].is_string());
}

#[tokio::test]
async fn hydrator_replaces_extra_and_headers() {
    let s = stack().await;
    let (status, body) = get(format!("http://{}/hydrate/me", s.proxy), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["headers"]["x-plan"], "gold");
    assert_eq!(body["headers"]["x-path"], "/hydrate/me");
    assert_eq!(body["headers"]["x-hydrated"], "yes");
}
