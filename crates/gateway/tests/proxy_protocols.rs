//! The proxy's connection-level behaviour over real sockets: `trusted_ips` and the
//! forwarding headers, WebSocket upgrades spliced end to end, and HTTP/2 (h2c).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use portcullis_db::testing::TestDb;
use portcullis_gateway::GatewayOptions;
use portcullis_gateway::proxy::TrustedIps;
use portcullis_http::Shutdown;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use common::{Stack, start, start_with};

async fn route_to(s: &Stack, name: &str, url: &str, path: &str) {
    let (status, body) = s
        .json(Method::POST, "/services", json!({"name": name, "url": url}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = s
        .json(
            Method::POST,
            &format!("/services/{name}/routes"),
            json!({"paths": [path]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn echoed_headers(s: &Stack, path: &str, headers: &[(&str, &str)]) -> Value {
    let mut req = s.http.get(format!("{}{path}", s.proxy));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("proxy request");
    let (status, body) = common::status_json(res).await;
    assert_eq!(status, 200, "{body}");
    body["headers"].clone()
}

const SPOOFED: &[(&str, &str)] = &[
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "spoofed.example"),
    ("x-forwarded-port", "443"),
    ("x-forwarded-path", "/elsewhere"),
    ("x-real-ip", "203.0.113.7"),
];

#[tokio::test]
async fn untrusted_clients_cannot_set_forwarding_headers() {
    let s = start(TestDb::sqlite().await).await;
    let up = Shutdown::new();
    let addr = common::echo_upstream(&up).await;
    route_to(&s, "echo", &format!("http://{addr}"), "/").await;
    let h = echoed_headers(&s, "/a/b", SPOOFED).await;
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "127.0.0.1");
    assert_eq!(h["x-forwarded-port"], s.proxy_addr.port().to_string());
    assert_eq!(h["x-forwarded-path"], "/a/b");
    assert_eq!(h["x-real-ip"], "127.0.0.1");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    up.cancel();
}

#[tokio::test]
async fn trusted_proxies_pass_their_forwarding_headers() {
    let db = TestDb::sqlite().await;
    db.migrate(&[portcullis_gateway::migrations()])
        .await
        .expect("migrate");
    let options = GatewayOptions {
        trusted_ips: TrustedIps::parse("127.0.0.0/8, ::1", "X-Real-IP", false).expect("parse"),
        ..GatewayOptions::default()
    };
    let s = start_with((*db).clone(), options, Some(db)).await;
    let up = Shutdown::new();
    let addr = common::echo_upstream(&up).await;
    route_to(&s, "echo", &format!("http://{addr}"), "/").await;
    let h = echoed_headers(&s, "/a/b", SPOOFED).await;
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "spoofed.example");
    assert_eq!(h["x-forwarded-port"], "443");
    assert_eq!(h["x-forwarded-path"], "/elsewhere");
    // The realip rule: the trusted peer's X-Real-IP names the client.
    assert_eq!(h["x-real-ip"], "203.0.113.7");
    assert_eq!(h["x-forwarded-for"], "203.0.113.7");

    // An https-only route accepts the request a trusted TLS terminator forwarded...
    let (status, body) = s
        .json(
            Method::POST,
            "/services/echo/routes",
            json!({"name": "secure", "paths": ["/secure"], "protocols": ["https"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let res = s
        .http
        .get(format!("{}/secure", s.proxy))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    // ...and still refuses plain HTTP.
    let res = s
        .http
        .get(format!("{}/secure", s.proxy))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 426);
    up.cancel();
}

/// A WebSocket echo server.
async fn websocket_echo() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        if ws.send(msg).await.is_err() {
                            break;
                        }
                    } else if msg.is_close() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn websocket_upgrades_are_spliced_end_to_end() {
    let s = start(TestDb::sqlite().await).await;
    let ws_addr = websocket_echo().await;
    route_to(&s, "ws", &format!("http://{ws_addr}"), "/ws").await;
    let url = format!("ws://{}/ws/chat", s.proxy_addr);
    let (mut ws, response) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket handshake through the gateway");
    assert_eq!(response.status(), 101);
    assert_eq!(
        response.headers()["via"].to_str().expect("via"),
        "1.1 kong/3.10.0"
    );
    for text in ["hello", "through", "the gateway"] {
        ws.send(Message::text(text)).await.expect("send");
        let back = ws.next().await.expect("frame").expect("message");
        assert_eq!(back.into_text().expect("text").as_str(), text);
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .expect("send");
    let back = ws.next().await.expect("frame").expect("message");
    assert_eq!(back.into_data().as_ref(), &[0u8, 1, 2, 255]);
    ws.close(None).await.expect("close");

    // A route that does not exist answers the handshake with Kong's 404, not a switch.
    let err = tokio_tungstenite::connect_async(format!("ws://{}/nowhere", s.proxy_addr))
        .await
        .expect_err("no route");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(res) => assert_eq!(res.status(), 404),
        other => panic!("expected an HTTP 404, got {other}"),
    }
}

#[tokio::test]
async fn http2_prior_knowledge_is_proxied_to_http1_upstreams() {
    let s = start(TestDb::sqlite().await).await;
    let up = Shutdown::new();
    let addr = common::echo_upstream(&up).await;
    route_to(&s, "echo", &format!("http://{addr}"), "/").await;
    let stream = tokio::net::TcpStream::connect(s.proxy_addr)
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2c handshake");
    tokio::spawn(conn);
    for path in ["/one", "/two?x=1"] {
        let req = http::Request::builder()
            .uri(format!("http://{}{path}", s.proxy_addr))
            .body(Empty::<bytes::Bytes>::new())
            .expect("request");
        let res = sender.send_request(req).await.expect("h2 response");
        assert_eq!(res.status(), 200);
        assert_eq!(res.version(), http::Version::HTTP_2);
        assert!(res.headers().contains_key("x-kong-request-id"));
        let body = res.into_body().collect().await.expect("body").to_bytes();
        let body: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["uri"], path);
        // The upstream saw an HTTP/1.1 request with the client's authority as Host's source.
        assert_eq!(body["headers"]["host"], addr.to_string());
        assert_eq!(body["headers"]["via"], "2 kong/3.10.0");
        assert_eq!(body["headers"]["x-forwarded-host"], "127.0.0.1");
    }
    up.cancel();
}
