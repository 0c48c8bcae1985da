//! `oauth2_introspection` and `oauth2_client_credentials` over real HTTP against a fake
//! authorization server that counts its calls, including the two security regressions:
//! a cached introspection still enforces each rule's scopes (CVE-2021-32701) and the cache
//! key includes the endpoint (GHSA-4mq7-pvjg-xp2r).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use portcullis_access::{Access, AccessConfig};
use serde_json::{Value, json};

mod common;
use common::*;

/// Calls per endpoint of the fake authorization server.
#[derive(Default)]
struct Calls {
    a: AtomicUsize,
    b: AtomicUsize,
    protected: AtomicUsize,
    token: AtomicUsize,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// What endpoint A knows about a token.
fn known(token: &str) -> Value {
    let base = json!({"active": true, "sub": "alice", "client_id": "app", "username": "al",
        "aud": ["api"], "iss": "https://idp-a", "exp": now() + 3600, "ext": {"plan": "pro"}});
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut v = base.clone();
        edit(&mut v);
        v
    };
    match token {
        "read-token" => with(&|v| v["scope"] = json!("read")),
        "rw-token" => with(&|v| v["scope"] = json!("read write")),
        "foreign-token" => with(&|v| {
            v["scope"] = json!("read");
            v["aud"] = json!(["other"]);
        }),
        "untrusted-token" => with(&|v| {
            v["scope"] = json!("read");
            v["iss"] = json!("https://evil");
        }),
        "refresh-token" => with(&|v| {
            v["scope"] = json!("read");
            v["token_use"] = json!("refresh_token");
        }),
        "expired-token" => with(&|v| {
            v["scope"] = json!("read");
            v["exp"] = json!(now() - 10);
        }),
        _ => json!({"active": false}),
    }
}

async fn authorization_server(calls: Arc<Calls>) -> SocketAddr {
    async fn a(
        State(calls): State<Arc<Calls>>,
        Form(form): Form<HashMap<String, String>>,
    ) -> Json<Value> {
        calls.a.fetch_add(1, Ordering::SeqCst);
        let token = form.get("token").map(String::as_str).unwrap_or_default();
        let mut answer = known(token);
        // With strategy `none` the proxy sends the required scopes: the endpoint checks them.
        if let Some(required) = form.get("scope") {
            let granted = answer["scope"].as_str().unwrap_or_default().to_string();
            if required
                .split(' ')
                .any(|s| !granted.split(' ').any(|g| g == s))
            {
                answer = json!({"active": false});
            }
        }
        Json(answer)
    }
    async fn b(State(calls): State<Arc<Calls>>) -> Json<Value> {
        calls.b.fetch_add(1, Ordering::SeqCst);
        Json(json!({"active": false}))
    }
    async fn protected(
        State(calls): State<Arc<Calls>>,
        headers: HeaderMap,
        Form(form): Form<HashMap<String, String>>,
    ) -> Response {
        calls.protected.fetch_add(1, Ordering::SeqCst);
        let header = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        if header("authorization") != "Bearer pre-token" || header("x-api-key") != "k3y" {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        if header("x-forwarded-host").is_empty() {
            return StatusCode::BAD_REQUEST.into_response();
        }
        Json(known(
            form.get("token").map(String::as_str).unwrap_or_default(),
        ))
        .into_response()
    }
    async fn token(
        State(calls): State<Arc<Calls>>,
        headers: HeaderMap,
        Form(form): Form<HashMap<String, String>>,
    ) -> Response {
        calls.token.fetch_add(1, Ordering::SeqCst);
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return StatusCode::BAD_REQUEST.into_response();
        }
        match auth {
            // introspector:s3cret, asking for the `introspect` scope.
            "Basic aW50cm9zcGVjdG9yOnMzY3JldA==" if form.get("scope").map(String::as_str) == Some("introspect") => {
                Json(json!({"access_token": "pre-token", "expires_in": 3600, "token_type": "bearer"})).into_response()
            }
            // svc:p%40ss (the proxy re-encodes `p@ss`), asking for `jobs`.
            "Basic c3ZjOnAlNDBzcw==" if form.get("scope").map(String::as_str) == Some("jobs") => {
                Json(json!({"access_token": "svc-token", "expires_in": 3600})).into_response()
            }
            "Basic bGltaXRlZDp4" => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "7")]).into_response(),
            _ => StatusCode::UNAUTHORIZED.into_response(),
        }
    }
    let (l, addr) = listener().await;
    serve(
        l,
        Router::new()
            .route("/a/introspect", post(a))
            .route("/b/introspect", post(b))
            .route("/protected/introspect", post(protected))
            .route("/token", post(token))
            .with_state(calls),
    );
    addr
}

struct Stack {
    proxy: SocketAddr,
    calls: Arc<Calls>,
}

async fn stack() -> Stack {
    let calls = Arc::new(Calls::default());
    let idp = authorization_server(Arc::clone(&calls)).await;
    let upstream = upstream().await;
    let (proxy_l, proxy) = listener().await;
    let up = json!({"url": format!("http://{upstream}")});
    let a = format!("http://{idp}/a/introspect");
    let rule = |id: &str, path: &str, authn: Value| {
        json!({
            "id": id, "match": {"url": format!("http://{proxy}{path}"), "methods": ["GET"]},
            "authenticators": [authn],
            "authorizer": {"handler": "allow"},
            "mutators": [{"handler": "header", "config": {"headers": {
                "X-User": "{{ print .Subject }}", "X-Plan": "{{ print .Extra.plan }}",
                "X-Client": "{{ print .Extra.client_id }}"}}}],
            "upstream": up
        })
    };
    let introspect = |config: Value| json!({"handler": "oauth2_introspection", "config": config});
    let rules = json!([
        rule(
            "read",
            "/read",
            introspect(json!({"required_scope": ["read"], "scope_strategy": "exact"}))
        ),
        rule(
            "write",
            "/write",
            introspect(json!({"required_scope": ["write"], "scope_strategy": "exact"}))
        ),
        rule(
            "idp-b",
            "/b",
            introspect(json!({"introspection_url": format!("http://{idp}/b/introspect")}))
        ),
        rule(
            "endpoint-scopes",
            "/none",
            introspect(json!({"required_scope": ["write"]}))
        ),
        rule(
            "query",
            "/query",
            introspect(json!({"token_from": {"query_parameter": "access_token"},
            "prefix": "rw-"}))
        ),
        rule(
            "pre",
            "/pre",
            introspect(json!({
            "introspection_url": format!("http://{idp}/protected/introspect"),
            "preserve_host": true,
            "introspection_request_headers": {"x-api-key": "k3y"},
            "pre_authorization": {"enabled": true, "client_id": "introspector",
                "client_secret": "s3cret", "token_url": format!("http://{idp}/token"),
                "scope": ["introspect"]}}))
        ),
        rule("cc", "/cc", json!({"handler": "oauth2_client_credentials"})),
    ]);
    let config = json!({
        "access_rules": {"repositories": [inline(&rules)]},
        "authenticators": {
            "oauth2_introspection": {"enabled": true, "config": {
                "introspection_url": a,
                "target_audience": ["api"], "trusted_issuers": ["https://idp-a"],
                "cache": {"enabled": true, "ttl": "1m"}}},
            "oauth2_client_credentials": {"enabled": true, "config": {
                "token_url": format!("http://{idp}/token"), "required_scope": ["jobs"],
                "cache": {"enabled": true}}}
        },
        "authorizers": {"allow": {"enabled": true}},
        "mutators": {"header": {"enabled": true, "config": {"headers": {}}}}
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
    Stack { proxy, calls }
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

fn count(c: &AtomicUsize) -> usize {
    c.load(Ordering::SeqCst)
}

#[tokio::test]
async fn introspection_establishes_the_session_and_checks_the_answer() {
    let s = stack().await;
    let url = format!("http://{}/read", s.proxy);
    let (status, body) = get(url.clone(), Some("read-token")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["headers"]["x-user"], "alice");
    assert_eq!(body["headers"]["x-plan"], "pro");
    assert_eq!(body["headers"]["x-client"], "app");
    for (token, expected) in [
        ("unknown-token", 401),
        ("expired-token", 401),
        ("foreign-token", 403),
        ("untrusted-token", 403),
        ("refresh-token", 403),
    ] {
        assert_eq!(get(url.clone(), Some(token)).await.0, expected, "{token}");
    }
    // No token at all: the only authenticator is not responsible.
    assert_eq!(get(url, None).await.0, 401);
}

#[tokio::test]
async fn cached_introspection_still_enforces_scopes() {
    // CVE-2021-32701: a token cached by a rule requiring `read` must not pass a rule
    // requiring `write`.
    let s = stack().await;
    assert_eq!(
        get(format!("http://{}/read", s.proxy), Some("read-token"))
            .await
            .0,
        200
    );
    assert_eq!(
        get(format!("http://{}/read", s.proxy), Some("read-token"))
            .await
            .0,
        200
    );
    assert_eq!(count(&s.calls.a), 1, "the second request is a cache hit");
    assert_eq!(
        get(format!("http://{}/write", s.proxy), Some("read-token"))
            .await
            .0,
        403
    );
    assert_eq!(
        count(&s.calls.a),
        1,
        "the refusal came from the cached answer"
    );
    assert_eq!(
        get(format!("http://{}/write", s.proxy), Some("rw-token"))
            .await
            .0,
        200
    );
    assert_eq!(count(&s.calls.a), 2);
    // Inactive answers are not cached.
    get(format!("http://{}/read", s.proxy), Some("unknown-token")).await;
    get(format!("http://{}/read", s.proxy), Some("unknown-token")).await;
    assert_eq!(count(&s.calls.a), 4);
}

#[tokio::test]
async fn the_cache_key_includes_the_endpoint() {
    // GHSA-4mq7-pvjg-xp2r: a token endpoint A accepted (and cached) says nothing to a rule
    // that asks endpoint B.
    let s = stack().await;
    assert_eq!(
        get(format!("http://{}/read", s.proxy), Some("read-token"))
            .await
            .0,
        200
    );
    assert_eq!(
        get(format!("http://{}/b", s.proxy), Some("read-token"))
            .await
            .0,
        401
    );
    assert_eq!(count(&s.calls.b), 1);
    assert_eq!(
        get(format!("http://{}/b", s.proxy), Some("read-token"))
            .await
            .0,
        401
    );
    assert_eq!(count(&s.calls.b), 2);
}

#[tokio::test]
async fn strategy_none_lets_the_endpoint_check_scopes_and_bypasses_the_cache() {
    let s = stack().await;
    let url = format!("http://{}/none", s.proxy);
    assert_eq!(get(url.clone(), Some("read-token")).await.0, 401);
    assert_eq!(get(url.clone(), Some("rw-token")).await.0, 200);
    assert_eq!(get(url, Some("rw-token")).await.0, 200);
    assert_eq!(
        count(&s.calls.a),
        3,
        "never cached: the answer depends on the scopes asked"
    );
}

#[tokio::test]
async fn token_from_and_prefix_select_the_token() {
    let s = stack().await;
    let url = format!("http://{}/query", s.proxy);
    assert_eq!(
        get(format!("{url}?access_token=rw-token"), None).await.0,
        200
    );
    // Without the prefix the authenticator is not responsible (and nothing is asked).
    let before = count(&s.calls.a);
    assert_eq!(
        get(format!("{url}?access_token=read-token"), None).await.0,
        401
    );
    assert_eq!(count(&s.calls.a), before);
}

#[tokio::test]
async fn pre_authorization_and_request_headers_reach_the_endpoint() {
    let s = stack().await;
    let url = format!("http://{}/pre", s.proxy);
    let (status, body) = get(url.clone(), Some("read-token")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(url, Some("rw-token")).await.0, 200);
    assert_eq!(count(&s.calls.protected), 2);
    assert_eq!(
        count(&s.calls.token),
        1,
        "the pre-authorization token is reused"
    );
}

#[tokio::test]
async fn client_credentials_grant_authenticates_the_client() {
    let s = stack().await;
    let url = format!("http://{}/cc", s.proxy);
    let basic = |user: &str, pass: &str| client().get(url.clone()).basic_auth(user, Some(pass));
    let res = basic("svc", "p%40ss").send().await.expect("request");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["headers"]["x-user"], "svc");
    assert_eq!(
        basic("svc", "p%40ss")
            .send()
            .await
            .expect("request")
            .status(),
        200
    );
    assert_eq!(
        count(&s.calls.token),
        1,
        "the second request is a cache hit"
    );
    assert_eq!(
        basic("svc", "wrong")
            .send()
            .await
            .expect("request")
            .status(),
        401
    );
    let limited = basic("limited", "x").send().await.expect("request");
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");
    // Not responsible without Basic credentials.
    assert_eq!(get(url, Some("read-token")).await.0, 401);
}
