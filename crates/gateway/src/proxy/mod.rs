//! The proxy: every request is matched against the current table (one atomic load, no lock)
//! and forwarded with bodies streamed both ways over the pooled upstream client.
//!
//! The order below follows Kong's phases so plugins (issue 3) can slot in: match
//! (rewrite/access would run after it), build the upstream request (§3.1 headers), send,
//! then shape the response head (header_filter, §3.2) while the body streams through.

pub mod error;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Uri, Version};
use http_body_util::BodyExt;
use portcullis_router::{HeaderSource, RequestHead};

pub use error::{ErrorSource, ProxyError, ProxyErrorKind};

use crate::Inner;
use crate::balancer::{Outcome, RequestKey};

/// Request headers as the router reads them.
struct Headers<'a>(&'a HeaderMap);

impl HeaderSource for Headers<'_> {
    fn values(&self, name: &str) -> Vec<&str> {
        self.0
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }
}

/// The `Via` token this gateway adds.
fn via_token(version: Version) -> String {
    let v = match version {
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    };
    format!("{v} kong/{}", crate::KONG_VERSION)
}

/// Builds the proxy's axum router: a single fallback handler.
pub(crate) fn router(inner: Arc<Inner>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(inner)
}

async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let started = Instant::now();
    let request_id = portcullis_core::new_id().simple().to_string();
    inner
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let headers = req.headers().clone();
    let result = forward(&inner, req, client, &request_id, started).await;
    let mut res = match result {
        Ok(res) => res,
        Err((err, location)) => {
            tracing::debug!(kind = ?err.kind, source = ?err.source, "proxy error");
            let mut res = err.respond(&headers, &request_id, location.as_deref());
            set_ms(res.headers_mut(), "x-kong-response-latency", started);
            res
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert("x-kong-request-id", v);
    }
    res
}

type Failure = (ProxyError, Option<String>);

async fn forward(
    inner: &Inner,
    req: Request,
    client: Option<std::net::IpAddr>,
    request_id: &str,
    started: Instant,
) -> Result<Response, Failure> {
    let fail = |kind| (ProxyError::new(kind), None);
    let table = inner.table.load();
    let raw_host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .map(str::to_string);
    let (host_name, host_port) = raw_host.as_deref().map(split_host).unwrap_or_default();
    let headers = Headers(req.headers());
    let head = RequestHead {
        method: req.method().as_str(),
        host: raw_host.as_deref(),
        path: req.uri().path(),
        port: host_port,
        headers: &headers,
    };
    let Some(matched) = table.find(&head) else {
        return Err(fail(ProxyErrorKind::NoRoute));
    };
    let target = Arc::clone(&matched.route.data);
    if !target.accepts_http {
        let location = format!(
            "https://{host_name}{}",
            req.uri().path_and_query().map_or("/", |p| p.as_str())
        );
        let kind = ProxyErrorKind::HttpsRequired(target.https_redirect_status_code);
        return Err((ProxyError::new(kind), Some(location)));
    }
    let Some(upstream) = &target.upstream else {
        return Err(fail(ProxyErrorKind::NoService));
    };
    if upstream.protocol != "http" {
        tracing::warn!(service = %upstream.service_id, protocol = %upstream.protocol,
            "only http upstreams can be proxied so far");
        return Err(fail(ProxyErrorKind::UnsupportedProtocol));
    }
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let path_and_query = format!("{}{query}", matched.upstream_path);
    let forwarded_path = req.uri().path().to_string();
    let raw_query = req.uri().query().map(str::to_string);
    let stripped = matched.stripped_prefix().map(str::to_string);
    drop(matched);
    drop(table);

    let (parts, body) = req.into_parts();
    // Bodies are streamed, never buffered, so only a request without a body can be sent
    // again; like nginx, only idempotent methods are retried once sent.
    let replayable =
        hyper::body::Body::size_hint(&body).exact() == Some(0) && parts.method.is_idempotent();
    let attempts = if replayable { 1 + upstream.retries } else { 1 };
    let method = parts.method;
    let mut h = parts.headers;
    strip_hop_by_hop(&mut h);
    // Balanced services get their Host header per try, from the chosen target.
    let set_host = !target.preserve_host || !h.contains_key(header::HOST);
    if set_host {
        h.insert(header::HOST, upstream.host_header.clone());
    }
    if let Some(ip) = client {
        let xff = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
            _ => ip.to_string(),
        };
        set(&mut h, "x-forwarded-for", &xff);
        set(&mut h, "x-real-ip", &ip.to_string());
    }
    set(&mut h, "x-forwarded-proto", "http");
    set(&mut h, "x-forwarded-host", &host_name);
    set(
        &mut h,
        "x-forwarded-port",
        &host_port.unwrap_or(80).to_string(),
    );
    set(&mut h, "x-forwarded-path", &forwarded_path);
    match &stripped {
        Some(prefix) => set(&mut h, "x-forwarded-prefix", prefix),
        None => {
            h.remove("x-forwarded-prefix");
        }
    }
    let via = append_via(h.get(header::VIA), &via_token(parts.version));
    set(&mut h, "via", &via);
    set(&mut h, "x-kong-request-id", request_id);

    let sent = Instant::now();
    let mut body = Some(body);
    let mut attempt = 0;
    let mut tried: Vec<usize> = Vec::new();
    let hash_headers = h.clone();
    let key = RequestKey {
        client,
        headers: &hash_headers,
        path: &forwarded_path,
        query: raw_query.as_deref(),
    };
    let (response, pick) = loop {
        attempt += 1;
        let pick = match &upstream.balancer {
            Some(b) => {
                // Each try prefers a target not tried yet; once all were, any healthy one.
                let p = b.pick(&key, &tried).or_else(|| b.pick(&key, &[]));
                let Some(p) = p else {
                    return Err(fail(ProxyErrorKind::NoPeer));
                };
                Some(p)
            }
            None => None,
        };
        let authority = pick
            .as_ref()
            .map_or(upstream.authority.as_str(), |p| p.member.authority.as_str());
        let uri: Uri = format!("http://{authority}{path_and_query}")
            .parse()
            .map_err(|_| fail(ProxyErrorKind::UpstreamInvalid))?;
        let mut out = http::Request::new(body.take().unwrap_or_else(Body::empty));
        *out.method_mut() = method.clone();
        *out.uri_mut() = uri;
        // The last permitted try takes the headers; earlier ones keep a copy for the next.
        *out.headers_mut() = if attempt < attempts {
            h.clone()
        } else {
            std::mem::take(&mut h)
        };
        if let (Some(p), true) = (&pick, set_host) {
            out.headers_mut()
                .insert(header::HOST, p.member.host_header.clone());
        }
        let result = tokio::time::timeout(upstream.read_timeout, inner.client.request(out)).await;
        let (error, outcome) = match result {
            Ok(Ok(r)) => {
                if let (Some(b), Some(p)) = (&upstream.balancer, &pick) {
                    b.report(p.index, Outcome::Status(r.status().as_u16()));
                }
                break (r, pick);
            }
            Err(_) => (
                ProxyError::new(ProxyErrorKind::UpstreamTimeout),
                Outcome::Timeout,
            ),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, upstream = %authority, attempt,
                    "upstream request failed");
                (
                    ProxyError::new(ProxyErrorKind::UpstreamInvalid),
                    Outcome::TcpFailure,
                )
            }
        };
        if let (Some(b), Some(p)) = (&upstream.balancer, &pick) {
            b.report(p.index, outcome);
            tried.push(p.index);
        }
        // Timeouts are not retried: each try would wait the full read timeout again.
        if !error.retryable || error.kind == ProxyErrorKind::UpstreamTimeout || attempt >= attempts
        {
            return Err((error, None));
        }
    };
    let (mut parts, body) = response.into_parts();
    let h = &mut parts.headers;
    strip_hop_by_hop(h);
    let via = append_via(h.get(header::VIA), &via_token(parts.version));
    set(h, "via", &via);
    if !h.contains_key(header::SERVER) {
        h.insert(header::SERVER, HeaderValue::from_static(error::SERVER));
    }
    set_ms_between(h, "x-kong-upstream-latency", sent, Instant::now());
    set_ms_between(h, "x-kong-proxy-latency", started, sent);
    parts.version = Version::HTTP_11;
    let body = match pick {
        Some(p) => {
            if let Some(cookie) = p.set_cookie {
                h.append(header::SET_COOKIE, cookie);
            }
            // The target counts as busy (least-connections) until the body is done.
            let in_flight = p.in_flight;
            Body::new(body.map_frame(move |frame| {
                let _ = &in_flight;
                frame
            }))
        }
        None => Body::new(body),
    };
    Ok(Response::from_parts(parts, body))
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        h.remove(n);
    }
}

fn append_via(prev: Option<&HeaderValue>, token: &str) -> String {
    match prev.and_then(|v| v.to_str().ok()) {
        Some(p) if !p.trim().is_empty() => format!("{p}, {token}"),
        _ => token.to_string(),
    }
}

fn set(h: &mut HeaderMap, name: &'static str, value: &str) {
    if value.is_empty() {
        h.remove(name);
    } else if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

fn set_ms(h: &mut HeaderMap, name: &'static str, since: Instant) {
    set_ms_between(h, name, since, Instant::now());
}

fn set_ms_between(h: &mut HeaderMap, name: &'static str, from: Instant, to: Instant) {
    let ms = to.saturating_duration_since(from).as_millis();
    h.insert(
        name,
        HeaderValue::from(u64::try_from(ms).unwrap_or(u64::MAX)),
    );
}

/// Splits a Host header into the lowercased name and the port, as nginx's `$host` does.
fn split_host(raw: &str) -> (String, Option<u16>) {
    let raw = raw.trim();
    if let Some(rest) = raw.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((ip, tail)) => (
                format!("[{}]", ip.to_ascii_lowercase()),
                tail.strip_prefix(':').and_then(|p| p.parse().ok()),
            ),
            None => (raw.to_ascii_lowercase(), None),
        };
    }
    match raw.rsplit_once(':') {
        Some((n, p)) => (n.to_ascii_lowercase(), p.parse().ok()),
        None => (raw.to_ascii_lowercase(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn hosts_and_via() {
        assert_eq!(
            split_host("Example.COM:8000"),
            ("example.com".into(), Some(8000))
        );
        assert_eq!(split_host("[::1]:81"), ("[::1]".into(), Some(81)));
        assert_eq!(split_host("h"), ("h".into(), None));
        assert_eq!(append_via(None, "1.1 kong/3.10.0"), "1.1 kong/3.10.0");
        let prev = HeaderValue::from_static("1.0 fred");
        assert_eq!(
            append_via(Some(&prev), "1.1 kong/3.10.0"),
            "1.0 fred, 1.1 kong/3.10.0"
        );
    }
}
