//! The pooled keep-alive client used to forward requests upstream.

use std::time::Duration;

use axum::body::Body;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;

/// A pooled HTTP/1.1 client that streams [`Body`] both ways.
pub type UpstreamClient = Client<HttpConnector, Body>;

/// Builds the upstream client: keep-alive pool, `TCP_NODELAY`, bounded connect time.
pub fn upstream_client() -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(60)));
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build(connector)
}
