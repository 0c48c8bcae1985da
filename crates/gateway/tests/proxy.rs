//! The proxy over real HTTP against real upstreams.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use portcullis_db::testing::TestDb;
use portcullis_http::Shutdown;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{Stack, start};

async fn get_json(
    s: &Stack,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = s.http.get(format!("{}{path}", s.proxy));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("proxy request");
    let h = res.headers().clone();
    let (status, body) = common::status_json(res).await;
    (status, h, body)
}

#[tokio::test]
async fn forwards_with_kong_headers_and_strip_path() {
    let s = start(TestDb::sqlite().await).await;
    let up = Shutdown::new();
    let addr = echo(&up).await;
    s.json(
        Method::POST,
        "/services",
        json!({"name": "echo", "url": format!("http://{addr}")}),
    )
    .await;
    let (status, _) = s
        .form(
            Method::POST,
            "/services/echo/routes",
            "paths[]=/api&name=api",
        )
        .await;
    assert_eq!(status, 201);

    let (status, h, body) = get_json(
        &s,
        "/api/things?x=1&y",
        &[("x-forwarded-for", "10.0.0.1"), ("via", "1.0 edge")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["uri"], "/things?x=1&y");
    let up_h = &body["headers"];
    assert_eq!(up_h["host"], addr.to_string());
    assert_eq!(up_h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    assert_eq!(up_h["x-real-ip"], "127.0.0.1");
    assert_eq!(up_h["x-forwarded-proto"], "http");
    assert_eq!(up_h["x-forwarded-host"], "127.0.0.1");
    assert_eq!(up_h["x-forwarded-port"], s.proxy_addr.port().to_string());
    assert_eq!(up_h["x-forwarded-path"], "/api/things");
    assert_eq!(up_h["x-forwarded-prefix"], "/api");
    assert_eq!(up_h["via"], "1.0 edge, 1.1 kong/3.10.0");
    assert!(
        up_h["x-kong-request-id"]
            .as_str()
            .is_some_and(|v| v.len() == 32)
    );
    assert_eq!(h["via"], "1.1 kong/3.10.0");
    assert!(h.contains_key("x-kong-upstream-latency"));
    assert!(h.contains_key("x-kong-proxy-latency"));

    // A POST body arrives intact; `strip_path=false` and `preserve_host` are honoured.
    s.json(
        Method::PATCH,
        "/routes/api",
        json!({"strip_path": false, "preserve_host": true}),
    )
    .await;
    let res = s
        .http
        .post(format!("{}/api/x", s.proxy))
        .header("host", "Client.Example:8000")
        .body("hello body")
        .send()
        .await
        .expect("post");
    let (status, body) = common::status_json(res).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            body["method"].clone(),
            body["uri"].clone(),
            body["body"].clone()
        ),
        (json!("POST"), json!("/api/x"), json!("hello body"))
    );
    assert_eq!(body["headers"]["host"], "Client.Example:8000");
    assert_eq!(body["headers"]["x-forwarded-host"], "client.example");
    assert_eq!(
        body["headers"]["x-forwarded-port"],
        s.proxy_addr.port().to_string()
    );
    assert_eq!(body["headers"].get("x-forwarded-prefix"), None);
    up.cancel();
}

#[tokio::test]
async fn header_routes_outrank_plain_ones() {
    let s = start(TestDb::sqlite().await).await;
    let up = Shutdown::new();
    let addr = echo(&up).await;
    s.json(
        Method::POST,
        "/services",
        json!({"name": "v1", "url": format!("http://{addr}/v1")}),
    )
    .await;
    s.json(
        Method::POST,
        "/services",
        json!({"name": "v2", "url": format!("http://{addr}/v2")}),
    )
    .await;
    s.form(Method::POST, "/services/v1/routes", "paths[]=/h")
        .await;
    let (status, r) = s
        .form(
            Method::POST,
            "/services/v2/routes",
            "paths[]=/h&headers.x-version=v2",
        )
        .await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["headers"], json!({"x-version": ["v2"]}));
    let (_, _, body) = get_json(&s, "/h/a", &[("x-version", "V2")]).await;
    assert_eq!(body["uri"], "/v2/a");
    let (_, _, body) = get_json(&s, "/h/a", &[]).await;
    assert_eq!(body["uri"], "/v1/a");
    let (status, err) = s
        .json(Method::POST, "/routes", json!({"headers": {"Host": ["x"]}}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        err["fields"]["headers"]["Host"],
        "cannot contain 'host' header, which must be specified in the 'hosts' attribute"
    );
    up.cancel();
}

/// A replayable request is retried when the upstream drops the connection; a request with a
/// body is not, because bodies are streamed rather than kept.
#[tokio::test]
async fn failed_tries_are_retried_only_when_replayable() {
    let s = start(TestDb::sqlite().await).await;
    let listener = portcullis_http::bind(common::local(), "flaky")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        // Every odd connection is closed at once; every even one gets an answer.
        while let Ok((mut conn, _)) = listener.accept().await {
            let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n.is_multiple_of(2) {
                drop(conn);
                continue;
            }
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    s.json(
        Method::POST,
        "/services",
        json!({"name": "flaky", "url": format!("http://{addr}")}),
    )
    .await;
    s.json(
        Method::POST,
        "/services/flaky/routes",
        json!({"paths": ["/"]}),
    )
    .await;
    let res = s
        .http
        .get(format!("{}/x", s.proxy))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.text().await.expect("body"), "ok");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    let res = s
        .http
        .post(format!("{}/x", s.proxy))
        .body("payload")
        .send()
        .await
        .expect("post");
    assert_eq!(res.status().as_u16(), 502);
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test]
async fn https_only_routes_and_routes_without_service() {
    let s = start(TestDb::sqlite().await).await;
    s.json(
        Method::POST,
        "/routes",
        json!({"paths": ["/tls"], "protocols": ["https"]}),
    )
    .await;
    s.json(
        Method::POST,
        "/routes",
        json!({"paths": ["/moved"], "protocols": ["https"], "https_redirect_status_code": 301}),
    )
    .await;
    s.json(Method::POST, "/routes", json!({"paths": ["/orphan"]}))
        .await;
    let (status, h, body) = get_json(&s, "/tls", &[]).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (426, Some("Please use HTTPS protocol"))
    );
    assert_eq!(h["upgrade"], "TLS/1.2, HTTP/1.1");
    let res = s
        .http
        .get(format!("{}/moved/a?b=1", s.proxy))
        .header("host", "Gw.Test:8000")
        .send()
        .await
        .expect("moved");
    assert_eq!(res.status().as_u16(), 301);
    assert_eq!(res.headers()["location"], "https://gw.test/moved/a?b=1");
    let (status, _, body) = get_json(&s, "/orphan", &[]).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (503, Some("no Service found with those values"))
    );
}

#[tokio::test]
async fn upstream_connections_are_kept_alive() {
    let s = start(TestDb::sqlite().await).await;
    let up = Shutdown::new();
    let addr = echo(&up).await;
    s.json(
        Method::POST,
        "/services",
        json!({"name": "e", "url": format!("http://{addr}")}),
    )
    .await;
    s.json(Method::POST, "/services/e/routes", json!({"paths": ["/"]}))
        .await;
    let (_, _, first) = get_json(&s, "/a", &[]).await;
    let (_, _, second) = get_json(&s, "/b", &[]).await;
    assert!(first["peer"].is_string());
    assert_eq!(
        first["peer"], second["peer"],
        "the second request reused the connection"
    );
    up.cancel();
}

#[tokio::test]
async fn service_path_joins_per_kong_v0() {
    let s = start(TestDb::sqlite().await).await;
    let up = Shutdown::new();
    let addr = echo(&up).await;
    s.json(
        Method::POST,
        "/services",
        json!({"name": "e", "url": format!("http://{addr}/s")}),
    )
    .await;
    s.json(Method::POST, "/services/e/routes", json!({"paths": ["/r"]}))
        .await;
    for (req, want) in [
        ("/r", "/s"),
        ("/r/", "/s/"),
        ("/r/a", "/s/a"),
        ("/ra", "/s/a"),
        ("/r/a?q=1", "/s/a?q=1"),
    ] {
        let (status, _, body) = get_json(&s, req, &[]).await;
        assert_eq!((status, body["uri"].as_str()), (200, Some(want)), "{req}");
    }
    up.cancel();
}

#[tokio::test]
async fn no_route_is_kongs_404() {
    let s = start(TestDb::sqlite().await).await;
    let (status, h, body) = get_json(&s, "/", &[]).await;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "no Route matched with those values");
    assert_eq!(body["request_id"], h["x-kong-request-id"].to_str().unwrap());
    assert_eq!(h["content-type"], "application/json; charset=utf-8");
    assert_eq!(h["server"], "kong/3.10.0");
}

#[tokio::test]
async fn closed_upstream_is_502_and_hung_upstream_is_504() {
    let s = start(TestDb::sqlite().await).await;
    let closed = {
        let l = portcullis_http::bind(common::local(), "closed")
            .await
            .expect("bind");
        l.local_addr().expect("addr")
    };
    s.json(
        Method::POST,
        "/services",
        json!({"name": "down", "url": format!("http://{closed}")}),
    )
    .await;
    s.json(
        Method::POST,
        "/services/down/routes",
        json!({"paths": ["/down"]}),
    )
    .await;
    let res = s
        .http
        .get(format!("{}/down", s.proxy))
        .send()
        .await
        .expect("req");
    assert_eq!(res.status().as_u16(), 502);
    let id = res.headers()["x-kong-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        res.text().await.expect("body"),
        format!("An invalid response was received from the upstream server\nrequest_id: {id}\n")
    );
    let (status, _, body) = get_json(&s, "/down", &[("accept", "application/json")]).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            502,
            Some("An invalid response was received from the upstream server")
        )
    );

    let up = Shutdown::new();
    let addr = echo(&up).await;
    s.json(
        Method::POST,
        "/services",
        json!({"name": "slow", "url": format!("http://{addr}"), "read_timeout": 200}),
    )
    .await;
    s.json(
        Method::POST,
        "/services/slow/routes",
        json!({"paths": ["/hang"], "strip_path": false}),
    )
    .await;
    let (status, _, body) = get_json(&s, "/hang", &[("accept", "application/json")]).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (504, Some("The upstream server is timing out"))
    );
    up.cancel();
}

async fn route_changes_apply_without_restart(db: TestDb) {
    let s = start(db).await;
    let up = Shutdown::new();
    let addr = echo(&up).await;
    assert_eq!(get_json(&s, "/new/x", &[]).await.0, 404);
    s.json(
        Method::POST,
        "/services",
        json!({"name": "e", "url": format!("http://{addr}")}),
    )
    .await;
    let (status, _) = s
        .json(
            Method::POST,
            "/services/e/routes",
            json!({"name": "r", "paths": ["/new"]}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _, body) = get_json(&s, "/new/x", &[]).await;
    assert_eq!((status, body["uri"].as_str()), (200, Some("/x")));
    s.json(Method::PATCH, "/routes/r", json!({"paths": ["/newer"]}))
        .await;
    assert_eq!(get_json(&s, "/new/x", &[]).await.0, 404);
    assert_eq!(get_json(&s, "/newer/x", &[]).await.0, 200);
    s.json(Method::PATCH, "/services/e", json!({"enabled": false}))
        .await;
    assert_eq!(get_json(&s, "/newer/x", &[]).await.0, 404);
    s.json(Method::PATCH, "/services/e", json!({"enabled": true}))
        .await;
    assert_eq!(get_json(&s, "/newer/x", &[]).await.0, 200);
    s.http
        .delete(format!("{}/routes/r", s.admin))
        .send()
        .await
        .expect("delete");
    assert_eq!(get_json(&s, "/newer/x", &[]).await.0, 404);
    up.cancel();
}
on_both!(route_changes, route_changes_apply_without_restart);

async fn seed_is_an_idempotent_upsert(db: TestDb) {
    let s = start(db).await;
    let up = Shutdown::new();
    let first = echo(&up).await;
    let second = echo(&up).await;
    s.gateway
        .seed("secure-api", &format!("http://{first}"), "hello", &["/"])
        .await
        .expect("seed");
    let (status, h, body) = get_json(&s, "/hello", &[]).await;
    assert_eq!((status, body["uri"].as_str()), (200, Some("/hello")));
    assert_eq!(body["headers"]["host"], first.to_string());
    assert!(h.contains_key("x-kong-upstream-latency"));
    s.gateway
        .seed("secure-api", &format!("http://{second}"), "hello", &["/"])
        .await
        .expect("reseed");
    let (_, _, body) = get_json(&s, "/world", &[]).await;
    assert_eq!(body["headers"]["host"], second.to_string());
    assert_eq!(
        s.get("/services").await.1["data"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        s.get("/routes").await.1["data"].as_array().map(Vec::len),
        Some(1)
    );
    up.cancel();
}
on_both!(seed, seed_is_an_idempotent_upsert);

/// Response bodies stream: the client reads the first chunk while the upstream still holds
/// the second. Request bodies stream: the upstream sees the first chunk before the client
/// has sent the rest.
#[tokio::test]
async fn bodies_stream_both_ways() {
    let s = start(TestDb::sqlite().await).await;
    let up = Shutdown::new();
    let (release_tx, release_rx) = tokio::sync::mpsc::channel::<()>(1);
    let release_rx = std::sync::Arc::new(tokio::sync::Mutex::new(release_rx));
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::channel::<String>(1);
    let app = axum::Router::new()
        .route(
            "/down",
            axum::routing::get(move || {
                let rx = release_rx.clone();
                async move {
                    let stream = futures_util::stream::unfold(0u8, move |n| {
                        let rx = rx.clone();
                        async move {
                            match n {
                                0 => Some((Ok::<_, std::io::Error>("first;".to_string()), 1)),
                                1 => {
                                    rx.lock().await.recv().await;
                                    Some((Ok("second".to_string()), 2))
                                }
                                _ => None,
                            }
                        }
                    });
                    Body::from_stream(stream)
                }
            }),
        )
        .route(
            "/up",
            axum::routing::post(move |body: Body| {
                let seen = seen_tx.clone();
                async move {
                    let mut body = body;
                    let mut all = Vec::new();
                    let mut told = false;
                    while let Some(Ok(frame)) = body.frame().await {
                        if let Some(data) = frame.data_ref() {
                            all.extend_from_slice(data);
                            if !told {
                                told = true;
                                let _ = seen.send(String::from_utf8_lossy(data).to_string()).await;
                            }
                        }
                    }
                    String::from_utf8_lossy(&all).to_string()
                }
            }),
        );
    let addr = common::serve(app, &up).await;
    s.json(
        Method::POST,
        "/services",
        json!({"name": "st", "url": format!("http://{addr}")}),
    )
    .await;
    s.json(Method::POST, "/services/st/routes", json!({"paths": ["/"]}))
        .await;

    let mut res = s
        .http
        .get(format!("{}/down", s.proxy))
        .send()
        .await
        .expect("down");
    let first = tokio::time::timeout(Duration::from_secs(10), res.chunk())
        .await
        .expect("first chunk in time");
    assert_eq!(first.expect("chunk").as_deref(), Some(&b"first;"[..]));
    release_tx.send(()).await.expect("release");
    assert_eq!(res.text().await.expect("rest"), "second");

    // Raw HTTP/1.1 with a chunked body sent in two parts.
    let mut conn = tokio::net::TcpStream::connect(s.proxy_addr)
        .await
        .expect("connect");
    conn.write_all(b"POST /up HTTP/1.1\r\nhost: gw\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n6\r\nchunk1\r\n")
        .await
        .expect("write head");
    let seen = tokio::time::timeout(Duration::from_secs(10), seen_rx.recv())
        .await
        .expect("upstream saw the first chunk in time");
    assert_eq!(seen.as_deref(), Some("chunk1"));
    conn.write_all(b"6\r\nchunk2\r\n0\r\n\r\n")
        .await
        .expect("write rest");
    let mut response = String::new();
    conn.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("chunk1chunk2"), "{response}");
    up.cancel();
}

async fn echo(up: &Shutdown) -> std::net::SocketAddr {
    common::echo_upstream(up).await
}
