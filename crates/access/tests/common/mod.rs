//! Helpers shared by the integration tests: listeners on 127.0.0.1:0, an echoing upstream,
//! a client that does not follow redirects, raw requests and bounded polling.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Json;
use axum::extract::Request;
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub fn reference(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference")
        .join(path)
}

pub fn read_reference(path: &str) -> String {
    let p = reference(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

pub async fn listener() -> (TcpListener, SocketAddr) {
    let l = portcullis_http::bind("127.0.0.1:0".parse().expect("addr"), "test")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    (l, addr)
}

pub fn serve(l: TcpListener, app: axum::Router) {
    tokio::spawn(portcullis_http::serve(
        l,
        app,
        "test",
        portcullis_http::Shutdown::new(),
    ));
}

/// An upstream that echoes what it received.
pub async fn upstream() -> SocketAddr {
    async fn echo(req: Request) -> Json<Value> {
        let (parts, body) = req.into_parts();
        let headers: serde_json::Map<String, Value> = parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or_default())))
            .collect();
        let body = axum::body::to_bytes(body, 1 << 20)
            .await
            .unwrap_or_default();
        Json(json!({
            "message": "Hello microservice",
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        }))
    }
    let (l, addr) = listener().await;
    serve(l, axum::Router::new().fallback(echo));
    addr
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Sends a GET with the request target exactly as given and returns the status code.
pub async fn raw_get(addr: SocketAddr, target: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line")
}

pub fn inline(rules: &Value) -> String {
    format!(
        "inline://{}",
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(rules).expect("json"))
    )
}

/// Polls `check` until it holds (bounded patience: the watcher reacts in milliseconds).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
