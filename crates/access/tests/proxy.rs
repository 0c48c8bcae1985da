//! The access proxy over real HTTP: an upstream, a fake Kratos whoami endpoint, the proxy and
//! the API, all on 127.0.0.1:0, configured from the tutorial's own files.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_access::{Access, AccessConfig, ResolveError, SessionCredentials, SessionResolver};
use serde_json::{Value, json};

mod common;
use common::*;

fn kratos_session(id: &str) -> Value {
    json!({
        "id": "5f2b7c3e-0000-4000-8000-000000000001",
        "active": true,
        "identity": {"id": id, "schema_id": "default", "traits": {"email": "alice@example.com"}},
        "authentication_methods": [{"method": "password"}]
    })
}

#[derive(Default)]
struct Whoami {
    hits: AtomicUsize,
    last_cookie: std::sync::Mutex<Option<String>>,
}

/// A fake Kratos `/sessions/whoami`: a session for `ory_kratos_session=valid`, 401 otherwise.
async fn whoami() -> (SocketAddr, Arc<Whoami>) {
    async fn handler(State(state): State<Arc<Whoami>>, headers: HeaderMap) -> Response {
        state.hits.fetch_add(1, Ordering::SeqCst);
        let cookie = headers
            .get("cookie")
            .and_then(|c| c.to_str().ok())
            .map(str::to_string);
        *state.last_cookie.lock().expect("lock") = cookie.clone();
        let valid = cookie
            .unwrap_or_default()
            .split("; ")
            .any(|c| c == "ory_kratos_session=valid");
        if valid {
            Json(kratos_session("identity-1")).into_response()
        } else {
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": {"code": 401}})),
            )
                .into_response()
        }
    }
    let state = Arc::new(Whoami::default());
    let (l, addr) = listener().await;
    serve(
        l,
        axum::Router::new()
            .route("/sessions/whoami", axum::routing::any(handler))
            .with_state(Arc::clone(&state)),
    );
    (addr, state)
}

struct Stack {
    proxy: SocketAddr,
    api: SocketAddr,
    whoami: Arc<Whoami>,
    whoami_url: String,
    _dir: tempfile::TempDir,
}

/// The tutorial's oathkeeper.yml and access-rules.yml, with only hostnames rewritten.
async fn tutorial_stack(
    edit_rules: impl FnOnce(String) -> String,
    resolver: Option<Arc<dyn SessionResolver>>,
) -> Stack {
    let upstream = upstream().await;
    let (whoami_addr, whoami) = whoami().await;
    let (proxy_l, proxy) = listener().await;
    let (api_l, api) = listener().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rules_path = dir.path().join("access-rules.yml");
    let rules = read_reference("tutorial/oathkeeper/access-rules.yml")
        .replace("http://hello:8090", &format!("http://{upstream}"))
        .replace("http://world:8090", &format!("http://{upstream}"))
        .replace("oathkeeper:4455", &proxy.to_string());
    std::fs::write(&rules_path, edit_rules(rules)).expect("write rules");
    let whoami_url = format!("http://{whoami_addr}/sessions/whoami");
    let config = read_reference("tutorial/oathkeeper/oathkeeper.yml")
        .replace("http://kratos:4433/sessions/whoami", &whoami_url)
        .replace(
            "/etc/config/oathkeeper/access-rules.yml",
            &rules_path.display().to_string(),
        );
    let config_path = dir.path().join("oathkeeper.yml");
    std::fs::write(&config_path, config).expect("write config");
    let config = AccessConfig::load_with_env(&config_path, std::iter::empty())
        .expect("tutorial config loads");
    let mut access = Access::new(config).await.expect("tutorial rules load");
    if let Some(r) = resolver {
        access = access
            .with_session_resolver(&whoami_url, r)
            .expect("resolver registers");
    }
    serve(proxy_l, access.proxy_router());
    serve(api_l, access.api_router());
    Stack {
        proxy,
        api,
        whoami,
        whoami_url,
        _dir: dir,
    }
}

#[tokio::test]
async fn valid_session_cookie_is_forwarded_to_the_upstream() {
    let stack = tutorial_stack(|r| r, None).await;
    let res = client()
        .get(format!("http://{}/hello?x=1", stack.proxy))
        .header("cookie", "other=1; ory_kratos_session=valid; tracking=2")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["message"], "Hello microservice");
    assert_eq!(body["path"], "/hello");
    assert_eq!(body["query"], "x=1");
    // preserve_host: true keeps the Host the client used.
    assert_eq!(body["headers"]["host"], stack.proxy.to_string());
    // Untrusted forwarded headers neither select the https scheme nor reach the upstream,
    // even through the noop mutator (which copies the request headers).
    assert!(body["headers"].get("x-forwarded-host").is_none(), "{body}");
    assert!(body["headers"].get("x-forwarded-proto").is_none(), "{body}");
    assert_eq!(stack.whoami.hits.load(Ordering::SeqCst), 1);
    let ready = client()
        .get(format!("http://{}/health/ready", stack.api))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200);
    // Only the cookies listed in `only` reach the session store.
    assert_eq!(
        stack.whoami.last_cookie.lock().expect("lock").as_deref(),
        Some("ory_kratos_session=valid")
    );
}

#[tokio::test]
async fn browsers_without_a_session_are_redirected_to_login() {
    let stack = tutorial_stack(|r| r, None).await;
    let res = client()
        .get(format!("http://{}/hello", stack.proxy))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()["location"], "http://127.0.0.1:4455/login");
    // An unknown session cookie is also unauthorized, and a browser is redirected too.
    let res = client()
        .get(format!("http://{}/world", stack.proxy))
        .header("accept", "text/html")
        .header("cookie", "ory_kratos_session=expired")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 302);
    assert_eq!(stack.whoami.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn redirect_carries_return_to_from_forwarded_headers() {
    let stack = tutorial_stack(
        |r| {
            r.replace(
                "to: http://127.0.0.1:4455/login",
                "to: http://127.0.0.1:4455/login\n        return_to_query_param: return_to",
            )
        },
        None,
    )
    .await;
    let res = client()
        .get(format!("http://{}/hello?a=b", stack.proxy))
        .header("accept", "text/html")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "127.0.0.1")
        .header("x-forwarded-port", "8000")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_string();
    let url = url::Url::parse(&location).expect("absolute");
    let return_to: Vec<_> = url
        .query_pairs()
        .filter(|(k, _)| k == "return_to")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(
        return_to,
        vec!["http://127.0.0.1:8000/hello?a=b".to_string()]
    );
}

#[tokio::test]
async fn api_clients_without_a_session_get_401_json() {
    let stack = tutorial_stack(|r| r, None).await;
    let res = client()
        .get(format!("http://{}/hello", stack.proxy))
        .header("accept", "application/json")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], 401);
    assert_eq!(body["error"]["status"], "Unauthorized");
    assert_eq!(body["error"]["message"], "Access credentials are invalid");
    assert_eq!(
        stack.whoami.hits.load(Ordering::SeqCst),
        0,
        "no cookie, no session check"
    );
}

#[tokio::test]
async fn unmatched_requests_get_404_and_wrong_methods_do_not_match() {
    let stack = tutorial_stack(|r| r, None).await;
    for (method, path) in [
        (reqwest::Method::GET, "/nope"),
        (reqwest::Method::POST, "/hello"),
        (reqwest::Method::GET, "/hello/x"),
    ] {
        let res = client()
            .request(method, format!("http://{}{path}", stack.proxy))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 404, "{path}");
        let body: Value = res.json().await.expect("json");
        assert_eq!(
            body["error"]["message"],
            "Requested url does not match any rules"
        );
    }
    // The path is cleaned before matching: /world/../hello is /hello.
    let res = client()
        .get(format!("http://{}/world/%2e%2e/hello", stack.proxy))
        .header("cookie", "ory_kratos_session=valid")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["path"], "/hello");
}

struct CountingResolver {
    calls: AtomicUsize,
}

#[async_trait]
impl SessionResolver for CountingResolver {
    async fn whoami(&self, creds: &SessionCredentials) -> Result<Option<Value>, ResolveError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(
            (creds.cookie.as_deref() == Some("ory_kratos_session=valid"))
                .then(|| kratos_session("in-process")),
        )
    }
}

#[tokio::test]
async fn in_process_resolver_replaces_the_http_check() {
    let resolver = Arc::new(CountingResolver {
        calls: AtomicUsize::new(0),
    });
    let stack = tutorial_stack(
        |r| {
            r.replace("    - handler: noop", "    - handler: header\n      config:\n        headers:\n          X-User: \"{{ print .Subject }}\"")
        },
        Some(resolver.clone()),
    )
    .await;
    let res = client()
        .get(format!("http://{}/hello", stack.proxy))
        .header("cookie", "ory_kratos_session=valid")
        .send()
        .await
        .expect("request");
    // The rule uses the header mutator, which is disabled in the tutorial config: 500.
    assert_eq!(res.status(), 500, "disabled handler makes the rule invalid");
    let res = client()
        .get(format!("http://{}/world", stack.proxy))
        .header("cookie", "ory_kratos_session=valid")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 500);
    assert_eq!(resolver.calls.load(Ordering::SeqCst), 0);

    let resolver = Arc::new(CountingResolver {
        calls: AtomicUsize::new(0),
    });
    let stack = tutorial_stack(|r| r, Some(resolver.clone())).await;
    let res = client()
        .get(format!("http://{}/hello", stack.proxy))
        .header("cookie", "ory_kratos_session=valid")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let res = client()
        .get(format!("http://{}/hello", stack.proxy))
        .header("cookie", "ory_kratos_session=nope")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 401);
    assert_eq!(resolver.calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        stack.whoami.hits.load(Ordering::SeqCst),
        0,
        "no HTTP session check happened"
    );
    assert!(stack.whoami_url.ends_with("/sessions/whoami"));
}

/// A config built in code with the header mutator and inline rules.
async fn header_stack() -> (SocketAddr, SocketAddr, SocketAddr) {
    let upstream = upstream().await;
    let (whoami_addr, _whoami) = whoami().await;
    let (proxy_l, proxy) = listener().await;
    let (api_l, api) = listener().await;
    let rules = json!([
        {
            "id": "public",
            "match": {"url": format!("http://{proxy}/public/<**>"), "methods": ["GET"]},
            "authenticators": [{"handler": "noop"}],
            "authorizer": {"handler": "allow"},
            "mutators": [{"handler": "noop"}],
            "upstream": {"url": format!("http://{upstream}")}
        },
        {
            "id": "headers",
            "match": {"url": format!("http://{proxy}/api/<**>"), "methods": ["get", "POST"]},
            "authenticators": [{"handler": "cookie_session"}, {"handler": "anonymous"}],
            "authorizer": {"handler": "allow"},
            "mutators": [{"handler": "header", "config": {"headers": {
                "X-User": "{{ print .Subject }}",
                "X-Email": "{{ print .Extra.identity.traits.email }}"
            }}}],
            "upstream": {"url": format!("http://{upstream}/base"), "strip_path": "/api"}
        },
        {
            "id": "denied",
            "match": {"url": format!("http://{proxy}/denied"), "methods": ["GET"]},
            "authenticators": [{"handler": "noop"}],
            "authorizer": {"handler": "deny"},
            "mutators": [{"handler": "noop"}],
            "upstream": {"url": format!("http://{upstream}")}
        },
        {
            "id": "down",
            "match": {"url": format!("http://{proxy}/down"), "methods": ["GET"]},
            "authenticators": [{"handler": "noop"}],
            "authorizer": {"handler": "allow"},
            "mutators": [{"handler": "noop"}],
            "upstream": {"url": "http://127.0.0.1:1"}
        },
        {
            "id": "basic",
            "match": {"url": format!("http://{proxy}/basic"), "methods": ["GET"]},
            "authenticators": [{"handler": "unauthorized"}],
            "authorizer": {"handler": "allow"},
            "mutators": [{"handler": "noop"}],
            "errors": [{"handler": "www_authenticate", "config": {"realm": "Portcullis"}}]
        },
        {
            "id": "overlap",
            "match": {"url": format!("http://{proxy}/api/overlap"), "methods": ["GET"]},
            "authenticators": [{"handler": "noop"}],
            "authorizer": {"handler": "allow"},
            "mutators": [{"handler": "noop"}]
        },
        {
            "id": "prio-any",
            "match": {"url": format!("http://{proxy}/prio/<**>"), "methods": ["GET"]},
            "authenticators": [{"handler": "noop"}],
            "authorizer": {"handler": "allow"},
            "mutators": [{"handler": "noop"}],
            "upstream": {"url": format!("http://{upstream}")}
        },
        {
            "id": "prio-admin",
            "priority": 10,
            "match": {"url": format!("http://{proxy}/prio/admin<**>"), "methods": ["GET"]},
            "authenticators": [{"handler": "noop"}],
            "authorizer": {"handler": "deny"},
            "mutators": [{"handler": "noop"}]
        },
        {
            "id": "prio-tie",
            "priority": 10,
            "match": {"url": format!("http://{proxy}/prio/admin/tie"), "methods": ["GET"]},
            "authenticators": [{"handler": "noop"}],
            "authorizer": {"handler": "allow"},
            "mutators": [{"handler": "noop"}]
        }
    ]);
    let config = json!({
        "access_rules": {"matching_strategy": "glob", "repositories": [inline(&rules)]},
        "authenticators": {
            "cookie_session": {"enabled": true, "config": {
                "check_session_url": format!("http://{whoami_addr}/sessions/whoami"),
                "preserve_path": true, "extra_from": "@this", "subject_from": "identity.id",
                "only": ["ory_kratos_session"]}},
            "anonymous": {"enabled": true, "config": {"subject": "guest"}},
            "noop": {"enabled": true},
            "unauthorized": {"enabled": true}
        },
        "authorizers": {"allow": {"enabled": true}, "deny": {"enabled": true}},
        "errors": {"handlers": {"www_authenticate": {"enabled": true, "config": {}}}},
        "mutators": {"header": {"enabled": true, "config": {"headers": {}}}, "noop": {"enabled": true}}
    });
    let access = Access::new(AccessConfig::from_value(config, "in-code").expect("config"))
        .await
        .expect("rules");
    serve(proxy_l, access.proxy_router());
    serve(api_l, access.api_router());
    (proxy, api, upstream)
}

#[tokio::test]
async fn header_mutator_sets_headers_clients_cannot_spoof() {
    let (proxy, _, upstream) = header_stack().await;
    let res = client()
        .get(format!("http://{proxy}/api/things?q=1"))
        .header("cookie", "ory_kratos_session=valid")
        .header("x-user", "spoofed")
        .header("connection", "x-user")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["headers"]["x-user"], "identity-1");
    assert_eq!(body["headers"]["x-email"], "alice@example.com");
    assert_eq!(
        body["path"], "/base/things",
        "upstream path joined, /api stripped"
    );
    assert_eq!(body["query"], "q=1");
    assert_eq!(
        body["headers"]["host"],
        upstream.to_string(),
        "Host is the upstream's without preserve_host"
    );
    // Request bodies are forwarded.
    let res = client()
        .post(format!("http://{proxy}/api/upload"))
        .header("cookie", "ory_kratos_session=valid")
        .body("payload=1")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        (body["method"].as_str(), body["body"].as_str()),
        (Some("POST"), Some("payload=1"))
    );
    // No session cookie: cookie_session is not responsible, anonymous takes over.
    let res = client()
        .get(format!("http://{proxy}/api/things"))
        .header("x-user", "spoofed")
        .send()
        .await
        .expect("request");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["headers"]["x-user"], "guest");
    assert_eq!(body["headers"]["x-email"], "");
    // An invalid session is not "not responsible": it is 401, anonymous is not tried.
    let res = client()
        .get(format!("http://{proxy}/api/things"))
        .header("cookie", "ory_kratos_session=bad")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        body["error"]["message"], "The request could not be authorized",
        "json handler is not verbose by default"
    );
}

#[tokio::test]
async fn deny_overlap_and_unreachable_upstreams_map_to_oathkeeper_statuses() {
    let (proxy, _, _) = header_stack().await;
    let get = |path: &str| client().get(format!("http://{proxy}{path}")).send();
    assert_eq!(get("/denied").await.expect("request").status(), 403);
    assert_eq!(get("/down").await.expect("request").status(), 502);
    let res = get("/basic").await.expect("request");
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Basic realm=Portcullis");
    let res = get("/api/overlap").await.expect("request");
    assert_eq!(res.status(), 500, "two rules match");
    // The priority extension: the higher-priority rule wins an overlap; a tie at the top
    // is still Oathkeeper's 500.
    assert_eq!(get("/prio/page").await.expect("request").status(), 200);
    assert_eq!(
        get("/prio/admin/users").await.expect("request").status(),
        403
    );
    assert_eq!(get("/prio/admin/tie").await.expect("request").status(), 500);
    // GHSA-p224-6x5r-fjpm: a traversal out of a permissive rule is matched as its target.
    assert_eq!(get("/public/ok").await.expect("request").status(), 200);
    // Sent raw: HTTP clients would resolve the dot segments themselves.
    for sneaky in [
        "/public/../denied",
        "/public/%2e%2e/denied",
        "/public%2F..%2Fdenied",
        "/public/./../denied/",
    ] {
        assert_eq!(raw_get(proxy, sneaky).await, 403, "{sneaky}");
    }
}

#[tokio::test]
async fn api_serves_health_rules_and_decisions() {
    let (proxy, api, _) = header_stack().await;
    let c = client();
    let alive: Value = c
        .get(format!("http://{api}/health/alive"))
        .send()
        .await
        .expect("alive")
        .json()
        .await
        .expect("json");
    assert_eq!(alive, json!({"status": "ok"}));
    let ready = c
        .get(format!("http://{api}/health/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<Value>().await.expect("json"),
        json!({"status": "ok"})
    );
    let rules: Value = c
        .get(format!("http://{api}/rules"))
        .send()
        .await
        .expect("rules")
        .json()
        .await
        .expect("json");
    assert_eq!(rules.as_array().map(Vec::len), Some(9));
    assert_eq!(rules[1]["id"], "headers");
    // The priority extension is served back only on rules that set it.
    assert_eq!(rules[1].get("priority"), None);
    assert_eq!(rules[7]["priority"], 10);
    assert_eq!(rules[1]["match"]["methods"], json!(["get", "POST"]));
    let page: Value = c
        .get(format!("http://{api}/rules?limit=1&offset=1"))
        .send()
        .await
        .expect("rules")
        .json()
        .await
        .expect("json");
    assert_eq!(page.as_array().map(Vec::len), Some(1));
    assert_eq!(page[0]["id"], "headers");
    let one = c
        .get(format!("http://{api}/rules/denied"))
        .send()
        .await
        .expect("rule");
    assert_eq!(one.status(), 200);
    assert_eq!(
        c.get(format!("http://{api}/rules/nope"))
            .send()
            .await
            .expect("rule")
            .status(),
        404
    );
    let version: Value = c
        .get(format!("http://{api}/version"))
        .send()
        .await
        .expect("v")
        .json()
        .await
        .expect("json");
    assert!(version["version"].is_string());

    let res = c
        .get(format!("http://{api}/decisions"))
        .header("x-forwarded-method", "POST")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", proxy.to_string())
        .header("x-forwarded-uri", "/api/x?y=1")
        .header("cookie", "ory_kratos_session=valid")
        .send()
        .await
        .expect("decision");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-user"], "identity-1");
    let res = c
        .get(format!("http://{api}/decisions/denied"))
        .header("host", proxy.to_string())
        .send()
        .await
        .expect("decision");
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn ready_is_503_without_rules() {
    let access = Access::new(AccessConfig::from_value(json!({}), "empty").expect("config"))
        .await
        .expect("no rules");
    let (l, api) = listener().await;
    serve(l, access.api_router());
    let res = client()
        .get(format!("http://{api}/health/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.expect("json");
    assert!(body["errors"]["rules_loaded"].is_string());
}

#[tokio::test]
async fn bad_rule_files_are_reported_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let load = |rules: &str| {
        let path = dir.path().join("broken-rules.yml");
        std::fs::write(&path, rules).expect("write");
        let config = json!({
            "access_rules": {"repositories": [format!("file://{}", path.display())]},
            "authenticators": {"noop": {"enabled": true}},
        });
        AccessConfig::from_value(config, "in-code").expect("config")
    };
    let err = Access::new(load("- id: a\n  match: [unclosed\n"))
        .await
        .err()
        .expect("syntax error");
    let msg = err.to_string();
    assert!(msg.contains("broken-rules.yml:"), "{msg}");

    let err = Access::new(load("- id: a\n  upstream:\n    url: http://x\n"))
        .await
        .err()
        .expect("no match");
    let msg = err.to_string();
    assert!(msg.contains("broken-rules.yml:1"), "{msg}");
    assert!(msg.contains("match"), "{msg}");

    let err = Access::new(load(
        "- id: a\n  match:\n    url: http://h/<a\n    methods: [GET]\n",
    ))
    .await
    .err()
    .expect("bad pattern");
    let msg = err.to_string();
    assert!(msg.contains("broken-rules.yml:3"), "{msg}");
    assert!(msg.contains("match.url"), "{msg}");

    let missing = json!({"access_rules": {"repositories": ["file:///nonexistent/rules.json"]}});
    let err = Access::new(AccessConfig::from_value(missing, "x").expect("config"))
        .await
        .err()
        .expect("missing");
    assert!(err.to_string().contains("/nonexistent/rules.json"), "{err}");
}

#[tokio::test]
async fn reload_keeps_the_last_good_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rules.json");
    let rule = |id: &str| {
        json!({"id": id, "match": {"url": format!("http://h/{id}"), "methods": ["GET"]},
        "authenticators": [{"handler": "noop"}], "authorizer": {"handler": "allow"}, "mutators": [{"handler": "noop"}]})
    };
    std::fs::write(&path, json!([rule("a")]).to_string()).expect("write");
    let config = json!({
        "access_rules": {"repositories": [format!("file://{}", path.display())]},
        "authenticators": {"noop": {"enabled": true}},
        "authorizers": {"allow": {"enabled": true}},
        "mutators": {"noop": {"enabled": true}},
    });
    let access = Access::new(AccessConfig::from_value(config, "x").expect("config"))
        .await
        .expect("rules");
    std::fs::write(&path, "[{\"id\": ").expect("write");
    let err = access.reload_rules().await.expect_err("broken file");
    assert!(err.to_string().contains("rules.json"), "{err}");
    assert_eq!(access.rules().len(), 1, "last good rules stay");
    std::fs::write(&path, json!([rule("a"), rule("b")]).to_string()).expect("write");
    assert_eq!(access.reload_rules().await.expect("valid file"), 2);
    assert_eq!(access.rules().len(), 2);
}

#[tokio::test]
async fn quickstart_config_and_rules_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("access-rules.yml");
    std::fs::write(
        &rules,
        read_reference("kratos/quickstart-oathkeeper/access-rules.yml"),
    )
    .expect("write");
    let config = read_reference("kratos/quickstart-oathkeeper/oathkeeper.yml").replace(
        "/etc/config/oathkeeper/access-rules.yml",
        &rules.display().to_string(),
    );
    let config = AccessConfig::parse(&config, "quickstart oathkeeper.yml")
        .expect("quickstart config is valid");
    let access = Access::new(config).await.expect("quickstart rules load");
    let all = access.rules();
    assert_eq!(all.len(), 3);
    // Every rule compiles, including the id_token one with its `{{ .Extra | toJson }}` claims.
    let invalid: Vec<_> = all
        .iter()
        .filter_map(|r| {
            r.pipeline
                .as_ref()
                .err()
                .map(|e| format!("{}: {e}", r.raw.id))
        })
        .collect();
    assert!(invalid.is_empty(), "{invalid:?}");
}

#[tokio::test]
async fn watched_rule_files_hot_reload_and_keep_the_last_good_rules() {
    let upstream = upstream().await;
    let (proxy_l, proxy) = listener().await;
    let (api_l, api) = listener().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access-rules.yml");
    let location = format!("file://{}", path.display());
    let rules = |ids: &[&str]| {
        ids.iter()
            .map(|id| {
                format!(
                    "- id: {id}\n  match:\n    url: http://{proxy}/{id}\n    methods: [GET]\n  \
                     authenticators: [{{handler: noop}}]\n  authorizer: {{handler: allow}}\n  \
                     mutators: [{{handler: noop}}]\n  upstream: {{url: \"http://{upstream}\"}}\n"
                )
            })
            .collect::<String>()
    };
    std::fs::write(&path, rules(&["a"])).expect("write");
    let config = json!({
        "access_rules": {"repositories": [location]},
        "authenticators": {"noop": {"enabled": true}},
        "authorizers": {"allow": {"enabled": true}},
        "mutators": {"noop": {"enabled": true}},
    });
    let access = Access::new(AccessConfig::from_value(config, "x").expect("config"))
        .await
        .expect("rules");
    serve(proxy_l, access.proxy_router());
    serve(api_l, access.api_router());
    let status = |path: &'static str| async move {
        client()
            .get(format!("http://{proxy}/{path}"))
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    };
    let ready = || async move {
        let res = client()
            .get(format!("http://{api}/health/ready"))
            .send()
            .await
            .expect("ready");
        let code = res.status().as_u16();
        (code, res.json::<Value>().await.expect("json"))
    };
    assert_eq!(status("a").await, 200);
    assert_eq!(status("b").await, 404);

    // An edit in place goes live.
    std::fs::write(&path, rules(&["a", "b"])).expect("write");
    eventually("rule b is live", || async { status("b").await == 200 }).await;

    // A broken edit: the last good rules stay, the error names file, line and rule.
    std::fs::write(
        &path,
        format!(
            "{}- id: broken-rule\n  match:\n    url: http://h/<a\n    methods: [GET]\n",
            rules(&["a"])
        ),
    )
    .expect("write");
    eventually("the failure is reported", || async {
        ready().await.1["errors"].get(&location).is_some()
    })
    .await;
    let (code, body) = ready().await;
    assert_eq!(code, 200, "still serving the last good rules: {body}");
    assert_eq!(body["status"], "ok");
    let error = body["errors"][&location].as_str().expect("message");
    assert!(error.contains("access-rules.yml:11"), "{error}");
    assert!(error.contains("broken-rule"), "{error}");
    assert_eq!(status("b").await, 200, "old rules still served");

    // Unparseable YAML, saved the way editors do it (write elsewhere, rename over).
    let tmp = dir.path().join(".access-rules.yml.swp");
    std::fs::write(&tmp, "- id: c\n  match: [unclosed\n").expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    eventually("the syntax error is reported", || async {
        ready().await.1["errors"][&location]
            .as_str()
            .is_some_and(|e| e.contains("access-rules.yml:"))
    })
    .await;
    assert_eq!(status("b").await, 200, "old rules still served");

    // Fixed (again by rename): the new rules are live, the error is gone.
    std::fs::write(&tmp, rules(&["a", "c"])).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    eventually("rule c is live", || async { status("c").await == 200 }).await;
    assert_eq!(status("b").await, 404);
    let (code, body) = ready().await;
    assert_eq!((code, body), (200, json!({"status": "ok"})));
}

#[tokio::test]
async fn tutorial_cors_answers_preflights_before_rules() {
    let stack = tutorial_stack(|r| r, None).await;
    let res = client()
        .request(
            reqwest::Method::OPTIONS,
            format!("http://{}/hello", stack.proxy),
        )
        .header("origin", "http://app.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .expect("preflight");
    assert_eq!(res.status(), 200, "no rule matches OPTIONS, CORS answers");
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "http://app.example");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .expect("methods")
            .contains("GET")
    );
    assert_eq!(stack.whoami.hits.load(Ordering::SeqCst), 0);
    // Simple requests carry the CORS response headers too.
    let res = client()
        .get(format!("http://{}/hello", stack.proxy))
        .header("origin", "http://app.example")
        .header("cookie", "ory_kratos_session=valid")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://app.example"
    );
    assert_eq!(
        res.headers()["access-control-expose-headers"],
        "content-type"
    );
}

#[tokio::test]
async fn metrics_count_requests_and_decisions_by_rule() {
    let stack = tutorial_stack(|r| r, None).await;
    for cookie in ["ory_kratos_session=valid", "ory_kratos_session=bad"] {
        client()
            .get(format!("http://{}/hello/", stack.proxy))
            .header("cookie", cookie)
            .send()
            .await
            .expect("request");
    }
    client()
        .get(format!("http://{}/nowhere", stack.proxy))
        .send()
        .await
        .expect("request");
    let res = client()
        .get(format!("http://{}/metrics", stack.api))
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status(), 200);
    let text = res.text().await.expect("text");
    for line in [
        r#"ory_oathkeeper_requests_total{service="oathkeeper-proxy",method="GET",request="/hello",status_code="200"} 1"#,
        r#"ory_oathkeeper_requests_total{service="oathkeeper-proxy",method="GET",request="/hello",status_code="401"} 1"#,
        r#"ory_oathkeeper_requests_duration_seconds_count{service="oathkeeper-proxy",method="GET",request="/hello"} 2"#,
        r#"ory_oathkeeper_decisions_total{service="oathkeeper-proxy",rule="api:hello-protected",decision="allowed"} 1"#,
        r#"ory_oathkeeper_decisions_total{service="oathkeeper-proxy",rule="api:hello-protected",decision="unauthorized"} 1"#,
        r#"ory_oathkeeper_decisions_total{service="oathkeeper-proxy",rule="",decision="not_found"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(text.contains("# TYPE ory_oathkeeper_requests_duration_seconds histogram"));
}

#[tokio::test]
async fn config_file_changes_swap_rules_and_handlers_together() {
    let upstream = upstream().await;
    let (proxy_l, proxy) = listener().await;
    let (api_l, api) = listener().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rules_file = |id: &str| {
        let path = dir.path().join(format!("rules-{id}.json"));
        let rules = json!([{
            "id": id,
            "match": {"url": format!("http://{proxy}/{id}"), "methods": ["GET"]},
            "authenticators": [{"handler": "anonymous"}],
            "authorizer": {"handler": "allow"},
            "mutators": [{"handler": "header", "config": {"headers": {"X-User": "{{ print .Subject }}"}}}],
            "upstream": {"url": format!("http://{upstream}")}
        }]);
        std::fs::write(&path, rules.to_string()).expect("write rules");
        format!("file://{}", path.display())
    };
    let (rules_a, rules_b) = (rules_file("a"), rules_file("b"));
    let config_text = |repository: &str, subject: &str| {
        json!({
            "access_rules": {"repositories": [repository]},
            "authenticators": {"anonymous": {"enabled": true, "config": {"subject": subject}}},
            "authorizers": {"allow": {"enabled": true}},
            "mutators": {"header": {"enabled": true, "config": {"headers": {}}}}
        })
        .to_string()
    };
    let path = dir.path().join("oathkeeper.yml");
    std::fs::write(&path, config_text(&rules_a, "first")).expect("write config");
    let access = Access::new(AccessConfig::load(&path).expect("config"))
        .await
        .expect("rules");
    access.watch_config(&path).expect("watch");
    serve(proxy_l, access.proxy_router());
    serve(api_l, access.api_router());

    let get = |p: &'static str| async move {
        let res = client()
            .get(format!("http://{proxy}{p}"))
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        (
            status,
            body["headers"]["x-user"].as_str().unwrap_or("").to_string(),
        )
    };
    let ready = || async move {
        client()
            .get(format!("http://{api}/health/ready"))
            .send()
            .await
            .expect("ready")
            .json::<Value>()
            .await
            .expect("json")
    };
    let key = path.display().to_string();
    assert_eq!(get("/a").await, (200, "first".to_string()));
    assert_eq!(get("/b").await.0, 404);

    // New repositories and new handler config arrive together.
    std::fs::write(&path, config_text(&rules_b, "second")).expect("write config");
    eventually("the new config is in force", || async {
        get("/b").await.0 == 200
    })
    .await;
    assert_eq!(get("/b").await, (200, "second".to_string()));
    assert_eq!(get("/a").await.0, 404);

    // A broken file (YAML syntax), then a valid file whose repository is missing: the last
    // good config stays, and /health/ready names the file while staying ready.
    for broken in [
        "access_rules: [unclosed\n".to_string(),
        config_text("file:///nonexistent/rules.json", "broken"),
    ] {
        std::fs::write(&path, &broken).expect("write config");
        eventually("the failure is reported", || async {
            ready().await["errors"][key.as_str()]
                .as_str()
                .is_some_and(|e| {
                    e.contains(if broken.contains("nonexistent") {
                        "nonexistent"
                    } else {
                        "oathkeeper.yml"
                    })
                })
        })
        .await;
        assert_eq!(ready().await["status"], "ok");
        assert_eq!(get("/b").await, (200, "second".to_string()));
    }

    std::fs::write(&path, config_text(&rules_a, "third")).expect("write config");
    eventually("the fixed config is in force", || async {
        get("/a").await.0 == 200
    })
    .await;
    assert_eq!(get("/a").await, (200, "third".to_string()));
    assert!(ready().await.get("errors").is_none(), "failure cleared");
}

#[tokio::test]
async fn regexp_rules_with_lookahead_match_as_in_oathkeeper() {
    let upstream = upstream().await;
    let (proxy_l, proxy) = listener().await;
    let rules = json!([{
        "id": "not-admin",
        "match": {"url": format!("http://{proxy}/<(?!admin(?:/|$))[a-z]+(?:/.*)?>"), "methods": ["GET"]},
        "authenticators": [{"handler": "noop"}],
        "authorizer": {"handler": "allow"},
        "mutators": [{"handler": "noop"}],
        "upstream": {"url": format!("http://{upstream}")}
    }]);
    let config = json!({
        "access_rules": {"matching_strategy": "regexp", "repositories": [inline(&rules)]},
        "authenticators": {"noop": {"enabled": true}},
        "authorizers": {"allow": {"enabled": true}},
        "mutators": {"noop": {"enabled": true}}
    });
    let access = Access::new(AccessConfig::from_value(config, "in-code").expect("config"))
        .await
        .expect("a lookahead rule loads");
    assert!(access.rules()[0].pipeline.is_ok());
    serve(proxy_l, access.proxy_router());
    for (path, status) in [
        ("/users", 200),
        ("/users/1", 200),
        ("/administrators", 200),
        ("/admin", 404),
        ("/admin/users", 404),
    ] {
        let res = client()
            .get(format!("http://{proxy}{path}"))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status().as_u16(), status, "{path}");
    }
}
