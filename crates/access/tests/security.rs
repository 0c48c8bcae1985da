//! Issue 4 §5: the security advisories Oathkeeper fixed, each pinned by a test over real HTTP.
//!
//! - GHSA-p224-6x5r-fjpm: `/public/../admin` and its encoded spellings are matched as the
//!   path the upstream will see, never as the permissive rule they start in;
//! - GHSA-vhr5-ggp3-qq85: `X-Forwarded-Proto` selects `https://` rules only when
//!   `trust_forwarded_headers` is set, and untrusted `X-Forwarded-*` never reach upstreams;
//! - Oathkeeper PR #1098 (golang/go#50580): a client naming mutator headers in `Connection`
//!   cannot make the proxy drop them.

use std::net::SocketAddr;

use portcullis_access::{Access, AccessConfig};
use serde_json::{Value, json};

mod common;
use common::*;

struct Stack {
    proxy: SocketAddr,
    api: SocketAddr,
}

async fn stack(trust_forwarded_headers: bool) -> Stack {
    let upstream = upstream().await;
    let (proxy_l, proxy) = listener().await;
    let (api_l, api) = listener().await;
    let rule = |id: &str, url: String, authenticator: &str, mutator: Value| {
        json!({
            "id": id,
            "match": {"url": url, "methods": ["GET"]},
            "authenticators": [{"handler": authenticator}],
            "authorizer": {"handler": "allow"},
            "mutators": [mutator],
            "upstream": {"url": format!("http://{upstream}")}
        })
    };
    let noop = json!({"handler": "noop"});
    let rules = json!([
        rule(
            "public",
            format!("http://{proxy}/public/<**>"),
            "noop",
            noop.clone()
        ),
        rule(
            "admin",
            format!("http://{proxy}/admin/<**>"),
            "unauthorized",
            noop.clone()
        ),
        rule(
            "tls-only",
            format!("https://{proxy}/tls/<**>"),
            "noop",
            noop
        ),
        rule(
            "me",
            format!("http://{proxy}/me"),
            "anonymous",
            json!({"handler": "header", "config": {
            "headers": {"X-User": "{{ print .Subject }}", "X-Auth-Source": "portcullis"}}})
        ),
    ]);
    let config = json!({
        "serve": {"proxy": {"trust_forwarded_headers": trust_forwarded_headers}},
        "access_rules": {"matching_strategy": "glob", "repositories": [inline(&rules)]},
        "authenticators": {
            "noop": {"enabled": true},
            "anonymous": {"enabled": true},
            "unauthorized": {"enabled": true}
        },
        "authorizers": {"allow": {"enabled": true}},
        "mutators": {"noop": {"enabled": true}, "header": {"enabled": true, "config": {"headers": {}}}}
    });
    let access = Access::new(AccessConfig::from_value(config, "in-code").expect("config"))
        .await
        .expect("rules");
    serve(proxy_l, access.proxy_router());
    serve(api_l, access.api_router());
    Stack { proxy, api }
}

/// Ways to spell "go up from /public to /admin/x"; every one must land on the admin rule.
const TRAVERSALS: &[&str] = &[
    "/public/../admin/x",
    "/public/%2e%2e/admin/x",
    "/public/%2E%2E/admin/x",
    "/public/.%2e/admin/x",
    "/public/..%2Fadmin/x",
    "/public%2F..%2Fadmin%2Fx",
    "/public/./../admin/x",
    "/public//../admin/x",
    "/public/a/b/../../../admin/x",
    "/public/../admin/x/",
];

#[tokio::test]
async fn path_traversal_cannot_escape_a_permissive_rule() {
    let s = stack(false).await;
    assert_eq!(raw_get(s.proxy, "/public/ok").await, 200);
    assert_eq!(raw_get(s.proxy, "/admin/x").await, 401);
    for target in TRAVERSALS {
        // Sent raw: HTTP clients would resolve the dot segments themselves.
        assert_eq!(raw_get(s.proxy, target).await, 401, "proxy {target}");
    }
    // The decision API reads the path from X-Forwarded-Uri (or after /decisions).
    for target in TRAVERSALS {
        let res = client()
            .get(format!("http://{}/decisions", s.api))
            .header("x-forwarded-host", s.proxy.to_string())
            .header("x-forwarded-uri", *target)
            .send()
            .await
            .expect("decision");
        assert_eq!(res.status(), 401, "decisions {target}");
        assert_eq!(
            raw_get(s.api, &format!("/decisions{target}")).await,
            // The API's own Host is not the rule's; the point is: never 200.
            404,
            "decisions path {target}"
        );
    }
    // Double encoding decodes once: `%2e%2e` is then a literal segment, not a traversal, and
    // the upstream receives exactly the bytes the client sent (no second decode anywhere).
    let res = client()
        .get(format!("http://{}/public/%252e%252e/admin/x", s.proxy))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["path"], "/public/%252e%252e/admin/x");
    let res = client()
        .get(format!("http://{}/public/..%252Fadmin", s.proxy))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["path"], "/public/..%252Fadmin");
}

#[tokio::test]
async fn spoofed_forwarded_proto_cannot_select_https_rules() {
    let s = stack(false).await;
    let res = client()
        .get(format!("http://{}/tls/x", s.proxy))
        .header("x-forwarded-proto", "https")
        .header("forwarded", "proto=https")
        .send()
        .await
        .expect("request");
    assert_eq!(
        res.status(),
        404,
        "plain HTTP never matches an https:// rule"
    );
    // Untrusted forwarded headers are dropped before the upstream sees them.
    let res = client()
        .get(format!("http://{}/public/ok", s.proxy))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-for", "10.0.0.1")
        .header("forwarded", "for=10.0.0.1;proto=https")
        .send()
        .await
        .expect("request");
    let body: Value = res.json().await.expect("json");
    let headers = body["headers"].as_object().expect("headers");
    for name in [
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-for",
        "forwarded",
    ] {
        assert!(!headers.contains_key(name), "{name} leaked: {headers:?}");
    }

    // Behind a trusted TLS terminator the header selects the https:// rule and is passed on.
    let trusted = stack(true).await;
    let res = client()
        .get(format!("http://{}/tls/x", trusted.proxy))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["headers"]["x-forwarded-proto"], "https");
    let res = client()
        .get(format!("http://{}/tls/x", trusted.proxy))
        .header("x-forwarded-proto", "gopher")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 404, "only http/https are honoured");
}

#[tokio::test]
async fn connection_header_cannot_drop_mutator_headers() {
    let s = stack(false).await;
    for connection in [
        "X-User",
        "x-user, X-Auth-Source",
        "keep-alive, X-AUTH-SOURCE, x-user",
        "close, x-user",
    ] {
        let res = client()
            .get(format!("http://{}/me", s.proxy))
            .header("connection", connection)
            .header("x-user", "admin")
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200, "{connection}");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["headers"]["x-user"], "anonymous", "{connection}");
        assert_eq!(
            body["headers"]["x-auth-source"], "portcullis",
            "{connection}"
        );
        assert!(
            body["headers"]
                .get("connection")
                .is_none_or(|c| c != connection),
            "the client's Connection header is hop-by-hop"
        );
    }
}
