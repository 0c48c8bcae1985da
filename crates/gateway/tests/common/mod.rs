//! Shared harness: a gateway served on ephemeral ports, and an echo upstream.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::Request;
use portcullis_db::Db;
use portcullis_db::testing::TestDb;
use portcullis_gateway::{Gateway, GatewayOptions};
use portcullis_http::Shutdown;
use serde_json::{Value, json};

/// A running gateway.
pub struct Stack {
    pub admin: String,
    pub proxy: String,
    pub proxy_addr: SocketAddr,
    pub gateway: Gateway,
    pub http: reqwest::Client,
    shutdown: Shutdown,
    _db: Option<TestDb>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn start(db: TestDb) -> Stack {
    db.migrate(&[portcullis_gateway::migrations()])
        .await
        .expect("migrate");
    let handle = (*db).clone();
    start_with(handle, GatewayOptions::default(), Some(db)).await
}

/// Starts a gateway on an already migrated database.
pub async fn start_with(db: Db, options: GatewayOptions, keep: Option<TestDb>) -> Stack {
    let gateway = Gateway::open(db, options).await.expect("gateway");
    serve_gateway(gateway, keep).await
}

/// Serves a gateway's proxy and Admin API on ephemeral ports.
pub async fn serve_gateway(gateway: Gateway, keep: Option<TestDb>) -> Stack {
    let shutdown = Shutdown::new();
    let admin_l = portcullis_http::bind(local(), "gateway admin")
        .await
        .expect("bind");
    let proxy_l = portcullis_http::bind(local(), "gateway proxy")
        .await
        .expect("bind");
    let admin = format!("http://{}", admin_l.local_addr().expect("addr"));
    let proxy_addr = proxy_l.local_addr().expect("addr");
    tokio::spawn(portcullis_http::serve(
        admin_l,
        gateway.admin_router(),
        "admin",
        shutdown.clone(),
    ));
    tokio::spawn(gateway.serve_proxy(proxy_l, shutdown.clone()));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Stack {
        admin,
        proxy: format!("http://{proxy_addr}"),
        proxy_addr,
        gateway,
        http,
        shutdown,
        _db: keep,
    }
}

pub fn local() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

/// Runs an async test body on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$body(portcullis_db::testing::TestDb::sqlite().await).await;
            }
            #[tokio::test]
            async fn postgres() {
                let Some(db) = portcullis_db::testing::TestDb::postgres().await else {
                    return;
                };
                super::$body(db).await;
            }
        }
    };
}

impl Stack {
    /// Serves the proxy over TLS too, on an ephemeral port with the `http2` flag; returns
    /// its address.
    pub async fn serve_tls(&self) -> SocketAddr {
        self.serve_tls_with(true).await
    }

    /// Serves the proxy over TLS too, on an ephemeral port, with or without `http2`.
    pub async fn serve_tls_with(&self, http2: bool) -> SocketAddr {
        let l = portcullis_http::bind(local(), "gateway proxy (TLS)")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(
            self.gateway
                .serve_proxy_tls(l, http2, self.shutdown.clone()),
        );
        addr
    }

    /// The stack's shutdown signal (fired when it is dropped).
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    pub async fn form(&self, method: reqwest::Method, path: &str, body: &str) -> (u16, Value) {
        let res = self
            .http
            .request(method, format!("{}{path}", self.admin))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string())
            .send()
            .await
            .expect("request");
        status_json(res).await
    }

    pub async fn json(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let res = self
            .http
            .request(method, format!("{}{path}", self.admin))
            .json(&body)
            .send()
            .await
            .expect("request");
        status_json(res).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.admin))
            .send()
            .await
            .expect("request");
        status_json(res).await
    }
}

pub async fn status_json(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// An upstream that answers every request with what it received:
/// `{method, uri, headers, body, peer}`. `/hang` never answers.
pub async fn echo_upstream(shutdown: &Shutdown) -> SocketAddr {
    let app = axum::Router::new()
        .route("/hang", axum::routing::any(std::future::pending::<String>))
        .fallback(echo);
    serve(app, shutdown).await
}

pub async fn serve(app: axum::Router, shutdown: &Shutdown) -> SocketAddr {
    let l = portcullis_http::bind(local(), "upstream")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(portcullis_http::serve(l, app, "upstream", shutdown.clone()));
    addr
}

async fn echo(req: Request) -> axum::Json<Value> {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string());
    let (parts, body) = req.into_parts();
    let headers: BTreeMap<String, String> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body: Bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    axum::Json(json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
        "peer": peer,
    }))
}
