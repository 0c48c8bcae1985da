//! WebSockets through the proxy: a real WebSocket echo server upstream, a real WebSocket
//! client, the access proxy between them on 127.0.0.1.
// tungstenite's handshake callback returns its (large) error response type by value.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use portcullis_access::{Access, AccessConfig};
use serde_json::json;
use tokio_tungstenite::tungstenite::{self, Message};

mod common;
use common::*;

/// A WebSocket server that echoes every text and binary message, prefixed with the path it
/// was reached on (so the test sees the upstream path too).
async fn echo_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut path = String::new();
                let callback =
                    |req: &tungstenite::handshake::server::Request,
                     res: tungstenite::handshake::server::Response| {
                        path = req.uri().path().to_string();
                        Ok(res)
                    };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    let reply = match message {
                        Message::Text(text) => Message::text(format!("{path} {}", text.as_str())),
                        Message::Binary(bytes) => Message::Binary(bytes),
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    if ws.send(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn stack() -> SocketAddr {
    let upstream = echo_server().await;
    let (proxy_l, proxy) = listener().await;
    let rules = json!([
        {
            "id": "ws",
            "match": {"url": format!("http://{proxy}/ws/<**>"), "methods": ["GET"]},
            "authenticators": [{"handler": "noop"}],
            "authorizer": {"handler": "allow"},
            "mutators": [{"handler": "noop"}],
            "upstream": {"url": format!("http://{upstream}/echo"), "strip_path": "/ws"}
        },
        {
            "id": "ws-denied",
            "match": {"url": format!("http://{proxy}/denied"), "methods": ["GET"]},
            "authenticators": [{"handler": "noop"}],
            "authorizer": {"handler": "deny"},
            "mutators": [{"handler": "noop"}],
            "upstream": {"url": format!("http://{upstream}")}
        }
    ]);
    let config = json!({
        "access_rules": {"matching_strategy": "glob", "repositories": [inline(&rules)]},
        "authenticators": {"noop": {"enabled": true}},
        "authorizers": {"allow": {"enabled": true}, "deny": {"enabled": true}},
        "mutators": {"noop": {"enabled": true}}
    });
    let access = Access::new(AccessConfig::from_value(config, "in-code").expect("config"))
        .await
        .expect("rules");
    serve(proxy_l, access.proxy_router());
    proxy
}

#[tokio::test]
async fn allowed_upgrade_round_trips_messages() {
    let proxy = stack().await;
    let (mut ws, response) = tokio_tungstenite::connect_async(format!("ws://{proxy}/ws/chat"))
        .await
        .expect("upgrade through the proxy");
    assert_eq!(response.status(), 101);
    ws.send(Message::text("hello")).await.expect("send");
    let reply = ws.next().await.expect("a reply").expect("a message");
    assert_eq!(reply, Message::text("/echo/chat hello"));
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .expect("send");
    let reply = ws.next().await.expect("a reply").expect("a message");
    assert_eq!(reply, Message::binary(vec![0u8, 1, 2, 255]));
    ws.close(None).await.expect("close");
}

#[tokio::test]
async fn denied_upgrade_is_refused_with_the_error_handler_answer() {
    let proxy = stack().await;
    let error = tokio_tungstenite::connect_async(format!("ws://{proxy}/denied"))
        .await
        .expect_err("the upgrade must be refused");
    let tungstenite::Error::Http(response) = error else {
        panic!("expected an HTTP refusal, got {error:?}");
    };
    assert_eq!(response.status(), 403);
    let body = response.body().as_deref().unwrap_or_default();
    let body: serde_json::Value = serde_json::from_slice(body).expect("json error body");
    assert_eq!(body["error"]["code"], 403);

    // Unmatched paths are refused too (404), never switched.
    let error = tokio_tungstenite::connect_async(format!("ws://{proxy}/nowhere"))
        .await
        .expect_err("the upgrade must be refused");
    let tungstenite::Error::Http(response) = error else {
        panic!("expected an HTTP refusal, got {error:?}");
    };
    assert_eq!(response.status(), 404);
}
