//! Load balancing over real upstream servers: weights, consistent hashing, least
//! connections, failover, passive health checks and the health endpoints.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::Request;
use axum::response::IntoResponse;
use portcullis_db::testing::TestDb;
use portcullis_http::Shutdown;
use reqwest::Method;
use serde_json::{Value, json};

use common::{Stack, start};

/// A server answering `{name, host}`, or 500 while its `broken` flag is set; `/hang`
/// never answers. `hits` counts requests.
struct Named {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    broken: Arc<AtomicBool>,
}

async fn named(up: &Shutdown, name: &'static str) -> Named {
    let hits = Arc::new(AtomicUsize::new(0));
    let broken = Arc::new(AtomicBool::new(false));
    let (counter, flag) = (Arc::clone(&hits), Arc::clone(&broken));
    let app = axum::Router::new()
        .route("/hang", axum::routing::get(std::future::pending::<String>))
        .fallback(move |req: Request| async move {
            let host = req
                .headers()
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_string();
            axum::Json(json!({"name": name, "host": host}))
        })
        .layer(axum::middleware::from_fn(
            move |req: Request, next: axum::middleware::Next| {
                let (counter, flag) = (Arc::clone(&counter), Arc::clone(&flag));
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    if flag.load(Ordering::SeqCst) {
                        return http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
                    }
                    next.run(req).await
                }
            },
        ));
    Named {
        addr: common::serve(app, up).await,
        hits,
        broken,
    }
}

/// A loopback port nothing listens on.
async fn closed_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr")
}

/// Creates upstream `name` with `fields`, its targets, and a service + route `/{name}`.
async fn balanced(s: &Stack, name: &str, fields: Value, targets: &[(SocketAddr, u32)]) {
    let mut body = fields;
    body["name"] = json!(name);
    let (status, res) = s.json(Method::POST, "/upstreams", body).await;
    assert_eq!(status, 201, "{res}");
    for (addr, weight) in targets {
        let (status, res) = s
            .json(
                Method::POST,
                &format!("/upstreams/{name}/targets"),
                json!({"target": addr.to_string(), "weight": weight}),
            )
            .await;
        assert_eq!(status, 201, "{res}");
    }
    let (status, res) = s
        .json(
            Method::POST,
            "/services",
            json!({"name": name, "host": name, "port": 80, "retries": 3}),
        )
        .await;
    assert_eq!(status, 201, "{res}");
    let (status, res) = s
        .json(
            Method::POST,
            &format!("/services/{name}/routes"),
            json!({"paths": [format!("/{name}")]}),
        )
        .await;
    assert_eq!(status, 201, "{res}");
}

async fn call(s: &Stack, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = s.http.get(format!("{}{path}", s.proxy));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    common::status_json(req.send().await.expect("proxy request")).await
}

async fn name_of(s: &Stack, path: &str, headers: &[(&str, &str)]) -> String {
    let (status, body) = call(s, path, headers).await;
    assert_eq!(status, 200, "{body}");
    body["name"].as_str().expect("name").to_string()
}

#[tokio::test]
async fn round_robin_follows_weights_and_sends_the_target_host() {
    let s = start(TestDb::sqlite().await).await;
    let up = Shutdown::new();
    let (a, b, c) = (
        named(&up, "a").await,
        named(&up, "b").await,
        named(&up, "c").await,
    );
    let c_hits = c.hits;
    let (a, b) = (a.addr, b.addr);
    balanced(&s, "rr", json!({}), &[(a, 200), (b, 100), (c.addr, 0)]).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..30 {
        *counts.entry(name_of(&s, "/rr", &[]).await).or_default() += 1;
    }
    assert_eq!(counts.get("a"), Some(&20), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&10), "{counts:?}");
    assert_eq!(c_hits.load(Ordering::SeqCst), 0, "weight 0 gets nothing");
    let (_, body) = call(&s, "/rr", &[]).await;
    let host = body["host"].as_str().unwrap();
    assert!(host == a.to_string() || host == b.to_string(), "{host}");
    up.cancel();
}

#[tokio::test]
async fn consistent_hashing_is_sticky() {
    let s = start(TestDb::sqlite().await).await;
    let up = Shutdown::new();
    let a = named(&up, "a").await.addr;
    let b = named(&up, "b").await.addr;
    let c = named(&up, "c").await.addr;
    let targets = [(a, 100), (b, 100), (c, 100)];
    balanced(
        &s,
        "byheader",
        json!({"hash_on": "header", "hash_on_header": "x-user", "hash_fallback": "query_arg",
               "hash_fallback_query_arg": "u", "slots": 100}),
        &targets,
    )
    .await;
    let mut seen = std::collections::HashSet::new();
    for user in 0..24 {
        let user = format!("user-{user}");
        let first = name_of(&s, "/byheader", &[("x-user", &user)]).await;
        for _ in 0..3 {
            assert_eq!(name_of(&s, "/byheader", &[("x-user", &user)]).await, first);
        }
        // Without the header the fallback (query argument) decides, just as stably.
        let path = format!("/byheader?u={user}");
        let fb = name_of(&s, &path, &[]).await;
        assert_eq!(name_of(&s, &path, &[]).await, fb);
        seen.insert(first);
    }
    assert!(seen.len() >= 2, "hashing spreads users: {seen:?}");

    balanced(
        &s,
        "bycookie",
        json!({"hash_on": "cookie", "hash_on_cookie": "lb", "hash_on_cookie_path": "/bycookie"}),
        &targets,
    )
    .await;
    let res = s
        .http
        .get(format!("{}/bycookie", s.proxy))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("lb=") && cookie.ends_with("; Path=/bycookie"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let first = name_of(&s, "/bycookie", &[("cookie", &pair)]).await;
    for _ in 0..5 {
        let res = s
            .http
            .get(format!("{}/bycookie", s.proxy))
            .header("cookie", &pair)
            .send()
            .await
            .unwrap();
        assert!(res.headers().get("set-cookie").is_none());
        let (_, body) = common::status_json(res).await;
        assert_eq!(body["name"], first.as_str());
    }

    for (name, fields) in [
        ("byip", json!({"hash_on": "ip"})),
        ("bypath", json!({"hash_on": "path"})),
    ] {
        balanced(&s, name, fields, &targets).await;
        let first = name_of(&s, &format!("/{name}/x"), &[]).await;
        for _ in 0..5 {
            assert_eq!(name_of(&s, &format!("/{name}/x"), &[]).await, first);
        }
    }
    up.cancel();
}

#[tokio::test]
async fn least_connections_avoids_busy_targets() {
    let s = start(TestDb::sqlite().await).await;
    let up = Shutdown::new();
    let Named {
        addr: a,
        hits: a_hits,
        ..
    } = named(&up, "a").await;
    let Named {
        addr: b,
        hits: b_hits,
        ..
    } = named(&up, "b").await;
    balanced(
        &s,
        "lc",
        json!({"algorithm": "least-connections"}),
        &[(a, 100), (b, 100)],
    )
    .await;
    let http = s.http.clone();
    let url = format!("{}/lc/hang", s.proxy);
    let hanging = tokio::spawn(async move { http.get(url).send().await });
    // Wait until one target holds the hanging request.
    let busy = loop {
        if a_hits.load(Ordering::SeqCst) == 1 {
            break "a";
        }
        if b_hits.load(Ordering::SeqCst) == 1 {
            break "b";
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    for _ in 0..6 {
        assert_ne!(name_of(&s, "/lc", &[]).await, busy);
    }
    hanging.abort();
    up.cancel();
}

#[tokio::test]
async fn failover_passive_checks_and_health_endpoints() {
    let s = start(TestDb::sqlite().await).await;
    let up = Shutdown::new();
    let good = named(&up, "good").await.addr;
    let Named {
        addr: flaky,
        hits: flaky_hits,
        broken,
    } = named(&up, "flaky").await;
    let dead = closed_port().await;
    let passive = json!({"healthchecks": {"passive": {
        "unhealthy": {"tcp_failures": 1, "http_failures": 2}
    }}});
    balanced(&s, "hc", passive, &[(good, 100), (dead, 100), (flaky, 100)]).await;

    // Health checks on, nothing learnt yet: all healthy.
    let (status, health) = s.get("/upstreams/hc/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["data"].as_array().unwrap().len(), 3);
    assert!(
        health["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["health"] == "HEALTHY")
    );
    assert!(health["node_id"].is_string());

    // Every request succeeds: a refused connection is retried on another target.
    for _ in 0..9 {
        let (status, body) = call(&s, "/hc", &[]).await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, health) = s.get("/upstreams/hc/health").await;
    let of = |h: &Value, addr: SocketAddr| {
        h["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["target"] == addr.to_string())
            .map(|t| t["health"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(of(&health, dead), "UNHEALTHY", "{health}");
    assert_eq!(of(&health, good), "HEALTHY");

    // Two 500s from `flaky` mark it unhealthy; afterwards only `good` answers.
    broken.store(true, Ordering::SeqCst);
    let before = flaky_hits.load(Ordering::SeqCst);
    for _ in 0..4 {
        call(&s, "/hc", &[]).await;
    }
    assert!(flaky_hits.load(Ordering::SeqCst) - before >= 2);
    let (_, health) = s.get("/upstreams/hc/health").await;
    assert_eq!(of(&health, flaky), "UNHEALTHY", "{health}");
    for _ in 0..4 {
        assert_eq!(name_of(&s, "/hc", &[]).await, "good");
    }

    // Marked by hand: healthy again, and unhealthy until no peer is left.
    let target = format!("/upstreams/hc/targets/{flaky}");
    let (status, _) = s
        .json(Method::PUT, &format!("{target}/healthy"), json!({}))
        .await;
    assert_eq!(status, 204);
    let (_, health) = s.get("/upstreams/hc/health").await;
    assert_eq!(of(&health, flaky), "HEALTHY");
    for t in [good, flaky] {
        let (status, _) = s
            .json(
                Method::PUT,
                &format!("/upstreams/hc/targets/{t}/unhealthy"),
                json!({}),
            )
            .await;
        assert_eq!(status, 204);
    }
    let (status, body) = call(&s, "/hc", &[("accept", "application/json")]).await;
    assert_eq!(status, 503);
    assert_eq!(
        body["message"],
        "failure to get a peer from the ring-balancer"
    );
    let (_, bh) = s.get("/upstreams/hc/health?balancer_health=1").await;
    assert_eq!(bh["data"]["health"], "UNHEALTHY", "{bh}");

    let (status, _) = s
        .json(
            Method::PUT,
            "/upstreams/hc/targets/10.9.9.9:1/healthy",
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = s.get("/upstreams/nope/health").await;
    assert_eq!(status, 404);
    up.cancel();
}

#[tokio::test]
async fn health_is_off_without_checks() {
    let s = start(TestDb::sqlite().await).await;
    let up = Shutdown::new();
    let a = named(&up, "a").await.addr;
    let dead = closed_port().await;
    balanced(&s, "off", json!({}), &[(a, 100), (dead, 100)]).await;
    // No checks: the closed target keeps being chosen, and each refusal is retried.
    for _ in 0..6 {
        assert_eq!(name_of(&s, "/off", &[]).await, "a");
    }
    let (_, health) = s.get("/upstreams/off/health").await;
    let data = health["data"].as_array().unwrap();
    assert!(
        data.iter().all(|t| t["health"] == "HEALTHCHECKS_OFF"),
        "{health}"
    );
    let ports: Vec<&Value> = data
        .iter()
        .map(|t| &t["data"]["addresses"][0]["port"])
        .collect();
    assert!(ports.contains(&&json!(a.port())), "{health}");
    up.cancel();
}
