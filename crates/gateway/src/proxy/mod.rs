//! The proxy: every request is matched against the current table (one atomic load, no lock)
//! and forwarded with bodies streamed both ways over the pooled upstream client.
//!
//! The order below follows Kong's phases so plugins can slot in: match (rewrite/access would
//! run after it), build the upstream request (§3.1 headers), send, then shape the response
//! head (header_filter, §3.2) while the body streams through.
//!
//! Key decision: this is the hot path, measured with `bench/gateway.sh`. It allocates as
//! little as it can: request headers are edited in place and moved (never cloned) into the
//! upstream request, values are built straight into [`HeaderValue`]s, and a copy of the
//! headers is kept only when a retry could need it.

pub mod error;
mod fast;
mod fields;
mod forwarded;
pub(crate) mod server;
mod stall;
mod websocket;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::response::Response;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use portcullis_router::{HeaderSource, RequestHead};

pub use error::{ErrorSource, ProxyError, ProxyErrorKind};
pub use forwarded::TrustedIps;

use crate::Inner;
use crate::balancer::{Balancer, HashContext, Outcome, Pick, RequestKey};
use fields::{Fields, append_via, strip_hop_by_hop};
use server::ConnInfo;

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

static X_KONG_REQUEST_ID: HeaderName = HeaderName::from_static("x-kong-request-id");
static X_KONG_UPSTREAM_LATENCY: HeaderName = HeaderName::from_static("x-kong-upstream-latency");
static X_KONG_PROXY_LATENCY: HeaderName = HeaderName::from_static("x-kong-proxy-latency");
static X_KONG_RESPONSE_LATENCY: HeaderName = HeaderName::from_static("x-kong-response-latency");

/// The `Via` token this gateway adds for a message of `version`.
fn via_token(version: Version) -> &'static str {
    match version {
        Version::HTTP_10 => concat!("1.0 kong/", "3.10.0"),
        Version::HTTP_2 => concat!("2 kong/", "3.10.0"),
        Version::HTTP_3 => concat!("3 kong/", "3.10.0"),
        _ => concat!("1.1 kong/", "3.10.0"),
    }
}

/// A request id as Kong sends it: 32 lowercase hex digits from a per-thread CSPRNG.
struct RequestId([u8; 32]);

impl RequestId {
    fn generate() -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n: u128 = rand::random();
        let mut out = [0u8; 32];
        for (i, byte) in n.to_be_bytes().iter().enumerate() {
            out[2 * i] = HEX[usize::from(byte >> 4)];
            out[2 * i + 1] = HEX[usize::from(byte & 0xf)];
        }
        Self(out)
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    fn header_value(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.0).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// Handles one proxied request end to end; never fails (errors become Kong's responses).
pub(crate) async fn handle(
    inner: Arc<Inner>,
    req: hyper::Request<Incoming>,
    conn: ConnInfo,
) -> Response {
    let started = Instant::now();
    let request_id = RequestId::generate();
    inner
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Only these two headers choose an error's format; keep them, not the whole map.
    let negotiation = [header::ACCEPT, header::CONTENT_TYPE]
        .map(|name| req.headers().get(&name).cloned().map(|v| (name, v)));
    let id_value = request_id.header_value();
    let result = forward(&inner, req, conn, &id_value, started).await;
    let mut res = match result {
        Ok(res) => res,
        Err((err, location)) => {
            tracing::debug!(kind = ?err.kind, source = ?err.source, "proxy error");
            let mut asked = HeaderMap::new();
            for (name, value) in negotiation.into_iter().flatten() {
                asked.insert(name, value);
            }
            let mut res = err.respond(&asked, request_id.as_str(), location.as_deref());
            set_ms_between(
                res.headers_mut(),
                &X_KONG_RESPONSE_LATENCY,
                started,
                Instant::now(),
            );
            res
        }
    };
    res.headers_mut()
        .insert(X_KONG_REQUEST_ID.clone(), id_value);
    res
}

type Failure = (ProxyError, Option<String>);

fn fail(kind: ProxyErrorKind) -> Failure {
    (ProxyError::new(kind), None)
}

/// What the match decided, owned, so the table snapshot and the request can be let go.
struct Decision {
    target: Arc<crate::table::Target>,
    path_and_query: String,
    stripped_prefix: Option<String>,
    /// The regex path's captures (`hash_on = uri_capture`).
    captures: Vec<(String, String)>,
}

/// Matches a request (its method, path, raw query, Host and headers) against the current
/// table.
fn decide(
    inner: &Inner,
    method: &str,
    path: &str,
    query: Option<&str>,
    host: Option<&str>,
    headers: &(dyn HeaderSource + Sync),
    conn: &ConnInfo,
) -> Result<Decision, Failure> {
    let table = inner.table.load();
    let (_, host_port) = host.map(split_host_port).unwrap_or_default();
    let head = RequestHead {
        method,
        host,
        path,
        port: host_port,
        headers,
        tls: conn.tls,
        sni: conn.sni.as_deref(),
    };
    let Some(mut matched) = table.find(&head) else {
        return Err(fail(ProxyErrorKind::NoRoute));
    };
    let target = Arc::clone(&matched.route.data);
    let stripped_prefix = matched
        .stripped_prefix()
        .filter(|p| !p.is_empty() && *p != "/")
        .map(str::to_string);
    let captures = std::mem::take(&mut matched.captures);
    let mut path_and_query = matched.upstream_path;
    if let Some(q) = query {
        path_and_query.reserve(q.len() + 1);
        path_and_query.push('?');
        path_and_query.push_str(q);
    }
    Ok(Decision {
        target,
        path_and_query,
        stripped_prefix,
        captures,
    })
}

async fn forward(
    inner: &Inner,
    mut req: hyper::Request<Incoming>,
    conn: ConnInfo,
    request_id: &HeaderValue,
    started: Instant,
) -> Result<Response, Failure> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let Decision {
        target,
        path_and_query,
        stripped_prefix,
        captures,
    } = decide(
        inner,
        req.method().as_str(),
        req.uri().path(),
        req.uri().query(),
        host,
        &Headers(req.headers()),
        &conn,
    )?;
    let forwarded = forwarded::Forwarded::compute(&inner.trusted_ips, req.headers(), host, &conn);
    if !target.accepts_http && !forwarded.https {
        let location = format!(
            "https://{}{}",
            forwarded.host_name,
            req.uri().path_and_query().map_or("/", |p| p.as_str())
        );
        let kind = ProxyErrorKind::HttpsRequired(target.https_redirect_status_code);
        return Err((ProxyError::new(kind), Some(location)));
    }
    let Some(upstream) = &target.upstream else {
        return Err(fail(ProxyErrorKind::NoService));
    };
    let scheme = match upstream.protocol.as_str() {
        "http" => http::uri::Scheme::HTTP,
        "https" => http::uri::Scheme::HTTPS,
        _ => {
            tracing::warn!(service = %upstream.service_id, protocol = %upstream.protocol,
                "only http and https upstreams can be proxied");
            return Err(fail(ProxyErrorKind::UnsupportedProtocol));
        }
    };
    // The service's TLS settings chose this client when the table was built.
    let client = &upstream.client;
    let upgrade = websocket::requested(&req).map(|value| (value, hyper::upgrade::on(&mut req)));
    let forwarded_path = req.uri().path().to_string();
    let raw_query = req.uri().query().map(str::to_string);

    let (parts, body) = req.into_parts();
    // Bodies are streamed, never buffered, so only a request without a body can be sent
    // again; like nginx, only idempotent methods are retried once sent.
    let replayable = upgrade.is_none()
        && hyper::body::Body::size_hint(&body).exact() == Some(0)
        && parts.method.is_idempotent();
    let attempts = if replayable { 1 + upstream.retries } else { 1 };
    let method: Method = parts.method;
    let mut h = parts.headers;
    let set_host = shape_request(
        &mut h,
        &RequestEdits {
            preserve_host: target.preserve_host,
            forwarded: &forwarded,
            path: &forwarded_path,
            stripped_prefix: stripped_prefix.as_deref(),
            version: parts.version,
            request_id,
            upgrade: upgrade.as_ref().map(|(value, _)| value.clone()),
        },
    );
    if set_host {
        h.insert(header::HOST, upstream.host_header.clone());
    }

    let sent = Instant::now();
    let mut body = Some(Body::new(body));
    let mut attempt = 0;
    let mut tried: Vec<usize> = Vec::new();
    // The balancer hashes on the request as the client sent it (after our own edits, which
    // do not touch what it reads); only balanced services need a copy.
    let hash_headers = upstream.balancer.as_ref().map(|_| h.clone());
    let empty = HeaderMap::new();
    let key = RequestKey {
        client: Some(forwarded.client_ip),
        headers: hash_headers.as_ref().unwrap_or(&empty),
        path: &forwarded_path,
        query: raw_query.as_deref(),
    };
    // No authentication plugins run yet, so there is no consumer or credential to hash on.
    let hash_context = HashContext {
        consumer_id: None,
        credential_id: None,
        uri_captures: &captures,
    };
    let (mut response, mut pick) = loop {
        attempt += 1;
        let pick = match &upstream.balancer {
            Some(b) => Some(pick_target(b, &key, &hash_context, &tried)?),
            None => None,
        };
        let authority = pick
            .as_ref()
            .map_or(upstream.authority.as_str(), |p| p.member.authority.as_str());
        let mut out = http::Request::new(body.take().unwrap_or_else(Body::empty));
        *out.method_mut() = method.clone();
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
        let sni = (scheme == http::uri::Scheme::HTTPS)
            .then(|| tls_server_name(out.headers(), authority))
            .flatten();
        let uri = match sni {
            Some(name) => upstream_uri(
                scheme.clone(),
                &format!("{name}@{authority}"),
                &path_and_query,
            ),
            None => upstream_uri(scheme.clone(), authority, &path_and_query),
        };
        *out.uri_mut() = uri.ok_or_else(|| fail(ProxyErrorKind::UpstreamInvalid))?;
        // The client's connections bound connecting, writing and the wait for the head with
        // the service's timeouts (its policy chose the client).
        let (error, outcome) = match client.request(out).await {
            Ok(r) => {
                if let (Some(b), Some(p)) = (&upstream.balancer, &pick) {
                    b.report(p.index, Outcome::Status(r.status().as_u16()));
                }
                break (r, pick);
            }
            Err(e) if portcullis_http::is_timeout(&e) => {
                tracing::debug!(error = %e, upstream = %authority, attempt,
                    "upstream timed out");
                (
                    ProxyError::new(ProxyErrorKind::UpstreamTimeout),
                    Outcome::Timeout,
                )
            }
            Err(e) => {
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
        // As nginx's `proxy_next_upstream error timeout`: failures and timeouts are retried.
        if !error.retryable || attempt >= attempts {
            return Err((error, None));
        }
    };
    let switching = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    if let (Some((_, client)), true) = (upgrade, switching) {
        websocket::splice(client, hyper::upgrade::on(&mut response));
    }
    let (mut parts, body) = response.into_parts();
    let h = &mut parts.headers;
    if switching {
        websocket::strip_for_switch(h);
    } else {
        strip_hop_by_hop(h);
    }
    let set_cookie = pick.as_mut().and_then(|p| p.set_cookie.take());
    shape_response(h, parts.version, started, sent, set_cookie);
    parts.version = Version::HTTP_11;
    let body = stall::StallLimit::new(body, upstream.timeouts.read);
    let body = match pick {
        Some(p) => {
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

/// `{scheme}://{authority}{path_and_query}` as a URI, built without an intermediate string
/// parse of the whole URL.
fn upstream_uri(scheme: http::uri::Scheme, authority: &str, path_and_query: &str) -> Option<Uri> {
    Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(path_and_query)
        .build()
        .ok()
}

/// The TLS server name for an https upstream when it is not `authority`'s host: as Kong's
/// `proxy_ssl_name $upstream_host`, the name of the Host header sent upstream (the client's
/// with `preserve_host`, an upstream's `host_header`), without its port. `None` when that
/// is the authority's host anyway, or not a DNS name (an IP address gets no SNI).
fn tls_server_name<'h>(headers: &'h HeaderMap, authority: &str) -> Option<&'h str> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let (name, _) = split_host_port(host);
    let dns = !name.is_empty()
        && name.parse::<std::net::IpAddr>().is_err()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let (target, _) = split_host_port(authority);
    (dns && !name.eq_ignore_ascii_case(target)).then_some(name)
}

/// A balanced try's target: one not tried yet if possible, else any healthy one.
fn pick_target<'b>(
    b: &'b Balancer,
    key: &RequestKey<'_>,
    ctx: &HashContext<'_>,
    tried: &[usize],
) -> Result<Pick<'b>, Failure> {
    b.pick_with(key, ctx, tried)
        .or_else(|| b.pick_with(key, ctx, &[]))
        .ok_or_else(|| fail(ProxyErrorKind::NoPeer))
}

/// What the upstream request's headers are derived from.
struct RequestEdits<'a> {
    preserve_host: bool,
    forwarded: &'a forwarded::Forwarded,
    /// The request path as the client sent it (`X-Forwarded-Path`).
    path: &'a str,
    stripped_prefix: Option<&'a str>,
    version: Version,
    request_id: &'a HeaderValue,
    /// The `Upgrade` value of a protocol-switch request, kept through hop-by-hop stripping.
    upgrade: Option<HeaderValue>,
}

/// Edits the client's headers into the upstream request's (notes §3.1), on both proxy
/// paths: hop-by-hop headers go, `X-Forwarded-*`/`X-Real-IP`, `Via` and `X-Kong-Request-Id`
/// are set. Returns whether the gateway sets the Host header (the caller does, per try).
fn shape_request(h: &mut impl Fields, e: &RequestEdits<'_>) -> bool {
    strip_hop_by_hop(h);
    if let Some(value) = &e.upgrade {
        websocket::restore_headers(h, value.clone());
    }
    let set_host = !e.preserve_host || !h.contains(&header::HOST);
    e.forwarded.apply(h, e.path, e.stripped_prefix);
    append_via(h, via_token(e.version));
    h.set(&X_KONG_REQUEST_ID, e.request_id.clone());
    set_host
}

/// Edits an upstream response's headers (after hop-by-hop stripping) for the client, on
/// both proxy paths (notes §3.2): `Via`, `Server`, the latency headers and a balancer cookie.
fn shape_response(
    h: &mut impl Fields,
    version: Version,
    started: Instant,
    sent: Instant,
    set_cookie: Option<HeaderValue>,
) {
    append_via(h, via_token(version));
    if !h.contains(&header::SERVER) {
        h.set(&header::SERVER, HeaderValue::from_static(error::SERVER));
    }
    let now = Instant::now();
    set_ms_between(h, &X_KONG_UPSTREAM_LATENCY, sent, now);
    set_ms_between(h, &X_KONG_PROXY_LATENCY, started, sent);
    if let Some(cookie) = set_cookie {
        h.append(&header::SET_COOKIE, cookie);
    }
}

/// The headers [`shape_request`] reads or replaces besides `Host`, as [`fields::bit`]s.
const REQUEST_EDITED: u32 = fields::HOP_BY_HOP
    | fields::bit::X_FORWARDED_FOR
    | fields::bit::X_FORWARDED_PROTO
    | fields::bit::X_FORWARDED_HOST
    | fields::bit::X_FORWARDED_PORT
    | fields::bit::X_FORWARDED_PATH
    | fields::bit::X_FORWARDED_PREFIX
    | fields::bit::X_REAL_IP
    | fields::bit::VIA
    | fields::bit::X_KONG_REQUEST_ID;

/// [`shape_request`] for the fast path's common case, written straight into `out` instead
/// of edited into a field list: a request from an untrusted peer that carries none of the
/// headers the rules read or replace (`REQUEST_EDITED`) keeps its fields, less `Host` when
/// the gateway sets it, followed by the ones the rules add, in their order. Returns whether
/// the gateway sets Host, or `None` (and writes nothing) when the request needs the rules
/// themselves. The hot path's headers are measured in docs/performance.md.
fn write_shaped_request(
    raw: &fields::RawFields<'_>,
    e: &RequestEdits<'_>,
    out: &mut Vec<u8>,
) -> Option<bool> {
    if raw.holds(REQUEST_EDITED) || e.forwarded.trusted() || e.upgrade.is_some() {
        return None;
    }
    let set_host = !e.preserve_host || !raw.holds(fields::bit::HOST);
    raw.write_except(out, if set_host { fields::bit::HOST } else { 0 });
    e.forwarded.write_new(out, e.path, e.stripped_prefix);
    fields::header_line(out, header::VIA.as_str(), via_token(e.version).as_bytes());
    fields::header_line(out, X_KONG_REQUEST_ID.as_str(), e.request_id.as_bytes());
    Some(set_host)
}

/// The headers [`shape_response`] reads or replaces besides `Server`, as [`fields::bit`]s.
const RESPONSE_EDITED: u32 =
    fields::bit::VIA | fields::bit::X_KONG_UPSTREAM_LATENCY | fields::bit::X_KONG_PROXY_LATENCY;

/// [`strip_hop_by_hop`] and [`shape_response`] for the fast path's common case, written
/// straight into `out`: a response that carries none of `RESPONSE_EDITED` and whose
/// `Connection` names only hop-by-hop headers keeps its other fields (less those in
/// `skip`), followed by the ones the rules add, in their order. Returns `false` (and writes
/// nothing) when the response needs the rules themselves.
fn write_shaped_response(
    raw: &fields::RawFields<'_>,
    skip: u32,
    version: Version,
    started: Instant,
    sent: Instant,
    set_cookie: Option<&HeaderValue>,
    out: &mut Vec<u8>,
) -> bool {
    if raw.holds(RESPONSE_EDITED) || !raw.connection_names_only_hop_by_hop() {
        return false;
    }
    raw.write_except(out, fields::HOP_BY_HOP | skip);
    fields::header_line(out, header::VIA.as_str(), via_token(version).as_bytes());
    if !raw.holds(fields::bit::SERVER) {
        fields::header_line(out, header::SERVER.as_str(), error::SERVER.as_bytes());
    }
    let now = Instant::now();
    let mut ms = itoa::Buffer::new();
    let mut latency = |name: &HeaderName, from: Instant, to: Instant| {
        let value = ms.format(to.saturating_duration_since(from).as_millis());
        fields::header_line(out, name.as_str(), value.as_bytes());
    };
    latency(&X_KONG_UPSTREAM_LATENCY, sent, now);
    latency(&X_KONG_PROXY_LATENCY, started, sent);
    if let Some(cookie) = set_cookie {
        fields::header_line(out, header::SET_COOKIE.as_str(), cookie.as_bytes());
    }
    true
}

fn set_ms_between(h: &mut impl Fields, name: &HeaderName, from: Instant, to: Instant) {
    let ms = to.saturating_duration_since(from).as_millis();
    h.set(
        name,
        HeaderValue::from(u64::try_from(ms).unwrap_or(u64::MAX)),
    );
}

/// The port of a Host header value, if it has one. (Found with a byte scan: `rsplit_once`
/// with a `char` pattern was measurably slower on the hot path.)
fn split_host_port(raw: &str) -> (&str, Option<u16>) {
    let raw = raw.trim_ascii();
    if let Some(rest) = raw.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((_, tail)) => (raw, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (raw, None),
        };
    }
    match raw.bytes().rposition(|b| b == b':') {
        Some(i) => (&raw[..i], raw[i + 1..].parse().ok()),
        None => (raw, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_is_appended() {
        let mut h = HeaderMap::new();
        append_via(&mut h, via_token(Version::HTTP_11));
        assert_eq!(h[header::VIA], "1.1 kong/3.10.0");
        h.insert(header::VIA, HeaderValue::from_static("1.0 fred"));
        append_via(&mut h, via_token(Version::HTTP_11));
        assert_eq!(h[header::VIA], "1.0 fred, 1.1 kong/3.10.0");
        assert!(via_token(Version::HTTP_2).ends_with(crate::KONG_VERSION));
    }

    #[test]
    fn request_ids_are_hex_and_distinct() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.as_str(), b.as_str());
    }

    /// A message head's fields as (name, value) pairs.
    type Head<'a> = &'a [(&'a str, &'a str)];

    fn parsed<'a>(head: Head<'a>) -> Vec<httparse::Header<'a>> {
        head.iter()
            .map(|(name, value)| httparse::Header {
                name,
                value: value.as_bytes(),
            })
            .collect()
    }

    fn conn(peer: &str) -> ConnInfo {
        let peer: std::net::SocketAddr = peer.parse().expect("address");
        ConnInfo {
            peer,
            peer_ip: forwarded::ip_header_value(peer.ip()),
            local_port: 8000,
            tls: false,
            sni: None,
        }
    }

    /// The fast path's direct writing of the upstream request's headers gives the same
    /// bytes as the shared rules, and declines every request it cannot shape.
    #[test]
    fn direct_request_shaping_matches_the_rules() {
        let trusted = TrustedIps::parse("10.0.0.0/8", "X-Real-IP", false).expect("parses");
        let cases: [(Head<'_>, bool, Option<&str>, &str, bool); 10] = [
            (&[("Host", "Example.com:8000")], false, None, "/hello", true),
            (&[("Host", "a"), ("Accept", "*/*")], true, None, "/p", true),
            (&[("Accept", "*/*")], true, Some("/api"), "/api/x", true),
            (
                &[("HOST", "b"), ("X-Other", "1")],
                false,
                Some("/"),
                "/x?y",
                true,
            ),
            (&[("Host", "h\u{e9}")], false, Some(""), "", true),
            (&[("Host", "a\u{7f}b")], false, None, "/", true),
            (
                &[("Host", "a"), ("X-Forwarded-For", "1.2.3.4")],
                false,
                None,
                "/",
                false,
            ),
            (
                &[("Host", "a"), ("Connection", "keep-alive")],
                false,
                None,
                "/",
                false,
            ),
            (&[("Host", "a"), ("via", "1.0 x")], false, None, "/", false),
            (
                &[("Host", "a"), ("X-Kong-Request-Id", "x")],
                false,
                None,
                "/",
                false,
            ),
        ];
        let id = HeaderValue::from_static("0123456789abcdef0123456789abcdef");
        for (peer, trust) in [
            ("127.0.0.1:5", &TrustedIps::default()),
            ("10.1.1.1:5", &trusted),
        ] {
            let info = conn(peer);
            for (head, preserve_host, stripped_prefix, path, shapeable) in cases {
                let headers = parsed(head);
                let mut raw = fields::RawFields::new(&headers);
                let host = raw.first_str(&header::HOST);
                let forwarded = forwarded::Forwarded::compute(trust, &raw, host, &info);
                let edits = RequestEdits {
                    preserve_host,
                    forwarded: &forwarded,
                    path,
                    stripped_prefix,
                    version: Version::HTTP_11,
                    request_id: &id,
                    upgrade: None,
                };
                let mut direct = Vec::new();
                let direct_host = write_shaped_request(&raw, &edits, &mut direct);
                if !shapeable || forwarded.trusted() {
                    assert_eq!(direct_host, None, "{head:?} from {peer}");
                    assert!(direct.is_empty());
                    continue;
                }
                let set_host = shape_request(&mut raw, &edits);
                if set_host {
                    raw.remove(&header::HOST);
                }
                let mut rules = Vec::new();
                raw.write(&mut rules);
                assert_eq!(direct_host, Some(set_host), "{head:?}");
                assert_eq!(
                    String::from_utf8_lossy(&direct),
                    String::from_utf8_lossy(&rules),
                    "{head:?}"
                );
            }
        }
    }

    /// The same for the client's response head.
    #[test]
    fn direct_response_shaping_matches_the_rules() {
        let cases: [(Head<'_>, u32, bool); 8] = [
            (
                &[
                    ("Server", "nginx"),
                    ("Date", "d"),
                    ("Content-Length", "5"),
                    ("Connection", "keep-alive"),
                ],
                0,
                true,
            ),
            (
                &[("Content-Length", "5"), ("Keep-Alive", "timeout=5")],
                fields::bit::CONTENT_LENGTH,
                true,
            ),
            (
                &[("Connection", "close, TE"), ("TE", "x"), ("X-A", "1")],
                0,
                true,
            ),
            (&[], 0, true),
            (&[("Connection", "X-Secret"), ("X-Secret", "1")], 0, false),
            (&[("Connection", "close"), ("Close", "1")], 0, false),
            (&[("Via", "1.1 up")], 0, false),
            (&[("X-Kong-Upstream-Latency", "3")], 0, false),
        ];
        let sent = Instant::now() + std::time::Duration::from_secs(3600);
        let started = sent - std::time::Duration::from_millis(1234);
        let cookie = HeaderValue::from_static("route=1");
        for (head, skip, shapeable) in cases {
            for set_cookie in [None, Some(&cookie)] {
                let headers = parsed(head);
                let mut raw = fields::RawFields::new(&headers);
                let mut direct = Vec::new();
                let wrote = write_shaped_response(
                    &raw,
                    skip,
                    Version::HTTP_11,
                    started,
                    sent,
                    set_cookie,
                    &mut direct,
                );
                assert_eq!(wrote, shapeable, "{head:?}");
                if !shapeable {
                    assert!(direct.is_empty());
                    continue;
                }
                strip_hop_by_hop(&mut raw);
                shape_response(
                    &mut raw,
                    Version::HTTP_11,
                    started,
                    sent,
                    set_cookie.cloned(),
                );
                if skip != 0 {
                    raw.remove(&header::CONTENT_LENGTH);
                }
                let mut rules = Vec::new();
                raw.write(&mut rules);
                assert_eq!(
                    String::from_utf8_lossy(&direct),
                    String::from_utf8_lossy(&rules),
                    "{head:?}"
                );
            }
        }
    }

    #[test]
    fn host_ports() {
        assert_eq!(split_host_port("Example.COM:8000").1, Some(8000));
        assert_eq!(split_host_port("[::1]:81").1, Some(81));
        assert_eq!(split_host_port("h").1, None);
        assert_eq!(split_host_port(" a.b:x "), ("a.b", None));
        assert_eq!(split_host_port("a:1:2"), ("a:1", Some(2)));
    }
}
