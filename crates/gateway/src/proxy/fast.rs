//! The fast path: a hand-written HTTP/1.1 proxy for the common case on plain-HTTP listeners.
//!
//! Each client connection reads into one reusable buffer; a request head is parsed with
//! `httparse`, routed with the same table and shaped by the same header rules as the hyper
//! path ([`super::shape_request`], [`super::shape_response`]), then written with its body to
//! a keep-alive upstream connection taken from a pool owned by the worker thread (no
//! hand-off to another task). The response head is parsed the same way and the body relayed
//! by its framing: `Content-Length`, or chunked passed through as it is.
//!
//! Key decision: anything else goes to the hyper path, with the bytes already read replayed
//! ([`Rewind`]), so behaviour stays identical: HTTP/1.0, h2c, `Expect`, `Upgrade`, absolute
//! or unusual request targets, odd framing, heads that do not parse or are too large, and
//! every error the gateway answers before contacting an upstream (no route, no service,
//! HTTPS required, https or non-HTTP upstreams). Once handed over, the connection stays
//! with hyper. Only upstream failures (502, 503 without a healthy target, 504) are answered
//! here, rendered by the same [`ProxyError::respond`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Write as _};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use http::header;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};
use http_body_util::BodyExt;
use portcullis_http::Shutdown;
use portcullis_router::HeaderSource;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::fields::{Fields, RawFields, bit, header_line, strip_hop_by_hop};
use super::server::ConnInfo;
use super::{
    ProxyError, ProxyErrorKind, RequestEdits, RequestId, X_KONG_REQUEST_ID,
    X_KONG_RESPONSE_LATENCY, decide, forwarded, pick_target, set_ms_between, shape_request,
    shape_response, write_shaped_request, write_shaped_response,
};
use crate::Inner;
use crate::balancer::{HashContext, Outcome, RequestKey};

/// Header fields per message, as hyper's default limit (more go to hyper, which answers 431).
const MAX_HEADERS: usize = 100;
/// A request head not complete within this many bytes goes to hyper (which allows more).
const MAX_HEAD: usize = 64 * 1024;
/// Read buffer size per connection (each side).
const BUF: usize = 8 * 1024;
/// How long a client may take to send a request head (as hyper's `header_read_timeout`).
const HEAD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one read of a request body from the client, or one write of the response to it,
/// may wait (nginx's `client_body_timeout` and `send_timeout`).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Lingering close: how long to keep reading what a client still sends after its error
/// response, and how long a pause in its sending ends that early (nginx's `lingering_time`
/// and `lingering_timeout`).
const LINGER_TOTAL: Duration = Duration::from_secs(30);
const LINGER_IDLE: Duration = Duration::from_secs(5);
/// How long an idle upstream connection is kept, and how many per upstream address.
const POOL_IDLE: Duration = Duration::from_secs(60);
const POOL_MAX: usize = 256;

/// The client connection's bytes, replayed in front of the socket when the connection is
/// handed to hyper.
#[derive(Debug)]
pub(super) struct Rewind {
    pre: Bytes,
    io: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.pre.is_empty() {
            let n = this.pre.len().min(buf.remaining());
            buf.put_slice(&this.pre[..n]);
            this.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A client connection: its socket, what has been read and not used yet, the buffer heads
/// are written into, and what its waits race against.
struct Client {
    io: TcpStream,
    buf: BytesMut,
    out: Vec<u8>,
    timer: Timer,
    /// The proxy's shutdown, waited for between requests (one waiter per connection).
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
}

/// A connection's timer for its waits, one at a time: each wait sets when it expires, and
/// the underlying tokio timer is moved only when it would fire too late; firing early just
/// re-arms it. With the usual limits no wait registers a timer of its own (registering and
/// clearing one per wait cost more than the rest of a keep-alive exchange, measured in
/// docs/performance.md).
struct Timer {
    sleep: Pin<Box<Sleep>>,
    expires: tokio::time::Instant,
}

impl Timer {
    fn new() -> Self {
        let expires = tokio::time::Instant::now() + HEAD_TIMEOUT;
        Self {
            sleep: Box::pin(tokio::time::sleep_until(expires)),
            expires,
        }
    }

    /// `op`, or `None` once `limit` has passed.
    async fn within<T>(&mut self, limit: Duration, op: impl Future<Output = T>) -> Option<T> {
        self.expires = tokio::time::Instant::now() + limit;
        if self.sleep.deadline() > self.expires {
            self.sleep.as_mut().reset(self.expires);
        }
        let mut op = std::pin::pin!(op);
        loop {
            tokio::select! {
                biased;
                done = &mut op => return Some(done),
                () = &mut self.sleep => {
                    if tokio::time::Instant::now() >= self.expires {
                        return None;
                    }
                    self.sleep.as_mut().reset(self.expires);
                }
            }
        }
    }
}

/// Serves a plain-HTTP client connection on the fast path until it closes, the proxy shuts
/// down, or a request needs the hyper path: then `fallback` gets the connection, with what
/// was read of it in front.
pub(super) async fn serve<F, Fut>(
    inner: Arc<Inner>,
    io: TcpStream,
    info: ConnInfo,
    shutdown: Shutdown,
    fallback: F,
) where
    F: FnOnce(Rewind) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut c = Client {
        io,
        buf: BytesMut::with_capacity(BUF),
        out: Vec::with_capacity(BUF),
        timer: Timer::new(),
        stop: Box::pin(shutdown.clone().cancelled_owned()),
    };
    loop {
        match next(&inner, &mut c, &info, &shutdown).await {
            Next::Again => {}
            Next::Close => return,
            Next::Hyper => {
                let pre = c.buf.freeze();
                return fallback(Rewind { pre, io: c.io }).await;
            }
        }
    }
}

enum Next {
    /// The exchange is done and the connection stays open.
    Again,
    /// Close the connection.
    Close,
    /// Hand the connection, at the start of the current request, to hyper.
    Hyper,
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the upstream closes (responses only).
    Close,
}

/// Balancing input, owned (the request head is let go before the upstream exchange).
struct Balance {
    headers: HeaderMap,
    path: String,
    query: Option<String>,
    captures: Vec<(String, String)>,
    client_ip: std::net::IpAddr,
}

/// A request ready to go upstream: its head is in the client's `out` buffer, without the
/// Host line and the terminating blank line (added per try).
struct Prepared {
    head_len: usize,
    started: Instant,
    request_id: RequestId,
    id_value: HeaderValue,
    target: Arc<crate::table::Target>,
    idempotent: bool,
    is_head: bool,
    body: Framing,
    keep_alive: bool,
    set_host: bool,
    balance: Option<Balance>,
    /// `Accept` and `Content-Type`, which choose an error's format.
    negotiation: [Option<HeaderValue>; 2],
}

enum Parsed {
    Ready(Box<Prepared>),
    Partial,
    Hyper,
}

/// The router's view of the fast path's request headers.
struct RawSource<'a, 'b>(&'a RawFields<'b>);

impl HeaderSource for RawSource<'_, '_> {
    fn values(&self, name: &str) -> Vec<&str> {
        self.0.values_str(name)
    }
}

/// Whether `b` may appear in a request target the fast path takes (RFC 3986's unreserved,
/// sub-delims, `:`, `@`, `/`, `?` and `%`); anything else is left to hyper's URI parser.
fn target_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b)
}

/// Parses and prepares the request at the start of `buf`, or says why it cannot yet.
fn prepare(inner: &Inner, buf: &[u8], info: &ConnInfo, out: &mut Vec<u8>) -> Parsed {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut storage);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Hyper,
    };
    let started = Instant::now();
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return Parsed::Hyper;
    };
    if !target.starts_with('/') || !target.bytes().all(target_byte) {
        return Parsed::Hyper;
    }
    let mut fields = RawFields::new(req.headers);
    let mut body = Framing::Empty;
    let mut keep_alive = true;
    let framing = bit::CONTENT_LENGTH | bit::TRANSFER_ENCODING | bit::CONNECTION;
    for (name, value) in fields.tracked_in(framing | bit::EXPECT | bit::UPGRADE) {
        match name {
            bit::CONTENT_LENGTH => {
                let len = std::str::from_utf8(value)
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok());
                match (len, body) {
                    (Some(n), Framing::Empty) => body = Framing::Length(n),
                    _ => return Parsed::Hyper,
                }
            }
            bit::TRANSFER_ENCODING => {
                if !value.eq_ignore_ascii_case(b"chunked") || body != Framing::Empty {
                    return Parsed::Hyper;
                }
                body = Framing::Chunked;
            }
            bit::CONNECTION => {
                for token in value.split(|b| *b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"upgrade") {
                        return Parsed::Hyper;
                    }
                }
            }
            // `Expect` and `Upgrade`.
            _ => return Parsed::Hyper,
        }
    }
    if body == Framing::Length(0) {
        body = Framing::Empty;
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let host = fields.first_str(&header::HOST);
    let Ok(decision) = decide(inner, method, path, query, host, &RawSource(&fields), info) else {
        return Parsed::Hyper;
    };
    let forwarded = forwarded::Forwarded::compute(&inner.trusted_ips, &fields, host, info);
    let Some(upstream) = decision.target.upstream.as_ref() else {
        return Parsed::Hyper;
    };
    if (!decision.target.accepts_http && !forwarded.https) || upstream.protocol != "http" {
        return Parsed::Hyper;
    }
    let request_id = RequestId::generate();
    let id_value = request_id.header_value();
    inner.requests.fetch_add(1, Ordering::Relaxed);
    let negotiation = [header::ACCEPT, header::CONTENT_TYPE].map(|n| {
        fields
            .first(&n)
            .and_then(|v| HeaderValue::from_bytes(v).ok())
    });
    let edits = RequestEdits {
        preserve_host: decision.target.preserve_host,
        forwarded: &forwarded,
        path,
        stripped_prefix: decision.stripped_prefix.as_deref(),
        version: Version::HTTP_11,
        request_id: &id_value,
        upgrade: None,
    };
    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(decision.path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // Balancers hash on the edited headers, so balanced services take the general rules.
    let direct = match upstream.balancer {
        None => write_shaped_request(&fields, &edits, out),
        Some(_) => None,
    };
    let (set_host, balance) = match direct {
        Some(set_host) => (set_host, None),
        None => {
            let set_host = shape_request(&mut fields, &edits);
            if set_host {
                fields.remove(&header::HOST);
            }
            fields.write(out);
            let balance = upstream.balancer.as_ref().map(|_| {
                let mut headers = fields.to_header_map();
                if set_host {
                    headers.insert(header::HOST, upstream.host_header.clone());
                }
                Balance {
                    headers,
                    path: path.to_string(),
                    query: query.map(str::to_string),
                    captures: decision.captures,
                    client_ip: forwarded.client_ip,
                }
            });
            (set_host, balance)
        }
    };
    if body == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    let idempotent = Method::from_bytes(method.as_bytes()).is_ok_and(|m| m.is_idempotent());
    Parsed::Ready(Box::new(Prepared {
        head_len,
        started,
        request_id,
        id_value,
        target: decision.target,
        idempotent,
        is_head: method == "HEAD",
        body,
        keep_alive,
        set_host,
        balance,
        negotiation,
    }))
}

/// Reads, forwards and answers one request.
async fn next(inner: &Inner, c: &mut Client, info: &ConnInfo, shutdown: &Shutdown) -> Next {
    if c.buf.is_empty() && shutdown.is_cancelled() {
        return Next::Close;
    }
    let p = loop {
        if !c.buf.is_empty() {
            match prepare(inner, &c.buf, info, &mut c.out) {
                Parsed::Ready(p) => break p,
                Parsed::Hyper => return Next::Hyper,
                Parsed::Partial if c.buf.len() >= MAX_HEAD => return Next::Hyper,
                Parsed::Partial => {}
            }
        }
        if c.buf.capacity() - c.buf.len() < 1024 {
            c.buf.reserve(BUF);
        }
        let read = tokio::select! {
            biased;
            read = c.timer.within(HEAD_TIMEOUT, c.io.read_buf(&mut c.buf)) => read,
            () = c.stop.as_mut(), if c.buf.is_empty() => return Next::Close,
        };
        match read {
            Some(Ok(n)) if n > 0 => {}
            // A client that leaves, errs, or stalls mid-head is let go.
            _ => return Next::Close,
        }
    };
    c.buf.advance(p.head_len);
    forward(c, &p).await
}

/// Why one try failed.
enum TryError {
    /// The upstream could not be reached or broke the exchange: 502, retried if allowed.
    Upstream,
    /// Connecting, writing the request or reading the response head took longer than the
    /// service allows: 504, retried if allowed.
    Timeout,
    /// The client went away or sent a broken body: the connection is closed.
    Client,
}

/// The request's tries against the upstream (with balancer picks and reports), then the
/// response relayed to the client.
async fn forward(c: &mut Client, p: &Prepared) -> Next {
    let Some(upstream) = p.target.upstream.as_ref() else {
        return Next::Close;
    };
    let replayable = p.body == Framing::Empty && p.idempotent;
    let attempts = if replayable { 1 + upstream.retries } else { 1 };
    let base = c.out.len();
    let sent = Instant::now();
    let mut tried: Vec<usize> = Vec::new();
    let key = p.balance.as_ref().map(|b| RequestKey {
        client: Some(b.client_ip),
        headers: &b.headers,
        path: &b.path,
        query: b.query.as_deref(),
    });
    let hash_context = HashContext {
        consumer_id: None,
        credential_id: None,
        uri_captures: p.balance.as_ref().map_or(&[], |b| b.captures.as_slice()),
    };
    let mut attempt = 0;
    let (mut up, response, pick) = loop {
        attempt += 1;
        let pick = match (&upstream.balancer, &key) {
            (Some(b), Some(key)) => match pick_target(b, key, &hash_context, &tried) {
                Ok(pick) => Some(pick),
                Err((err, _)) => return answer_error(c, p, err, p.body == Framing::Empty).await,
            },
            _ => None,
        };
        let authority = pick
            .as_ref()
            .map_or(upstream.authority.as_str(), |p| p.member.authority.as_str());
        c.out.truncate(base);
        if p.set_host {
            let host = pick
                .as_ref()
                .map_or(&upstream.host_header, |p| &p.member.host_header);
            c.out.extend_from_slice(b"host: ");
            c.out.extend_from_slice(host.as_bytes());
            c.out.extend_from_slice(b"\r\n");
        }
        c.out.extend_from_slice(b"\r\n");
        let shaping = Shaping {
            p,
            sent,
            set_cookie: pick.as_ref().and_then(|pk| pk.set_cookie.clone()),
        };
        let (error, outcome) = match exchange(c, upstream, authority, &shaping, replayable).await {
            Ok((up, response)) => {
                if let (Some(b), Some(pk)) = (&upstream.balancer, &pick) {
                    b.report(pk.index, Outcome::Status(response.status));
                }
                break (up, response, pick);
            }
            Err(TryError::Client) => return Next::Close,
            Err(TryError::Upstream) => {
                tracing::debug!(upstream = %authority, attempt, "upstream request failed");
                (
                    ProxyError::new(ProxyErrorKind::UpstreamInvalid),
                    Outcome::TcpFailure,
                )
            }
            Err(TryError::Timeout) => {
                tracing::debug!(upstream = %authority, attempt, "upstream timed out");
                (
                    ProxyError::new(ProxyErrorKind::UpstreamTimeout),
                    Outcome::Timeout,
                )
            }
        };
        if let (Some(b), Some(pk)) = (&upstream.balancer, &pick) {
            b.report(pk.index, outcome);
            tried.push(pk.index);
        }
        // As nginx's `proxy_next_upstream error timeout`: failures and timeouts are retried.
        if !error.retryable || attempt >= attempts {
            // Part of a request body may be unread: such a connection cannot go on.
            return answer_error(c, p, error, p.body == Framing::Empty).await;
        }
    };
    // `exchange` left the client's response head in `c.out`.
    up.buf.advance(response.head_len);
    let reusable = match relay(c, &mut up, response.framing, upstream.timeouts.read).await {
        Ok(done) => done && response.keep_alive && up.buf.is_empty(),
        Err(()) => return Next::Close,
    };
    if reusable {
        let authority = pick.as_ref().map_or(upstream.authority.as_str(), |pk| {
            pk.member.authority.as_str()
        });
        pool_put(authority, up);
    }
    // The target stops counting as busy (least-connections) once the body is through.
    drop(pick);
    if p.keep_alive {
        Next::Again
    } else {
        Next::Close
    }
}

/// What the client's response head is built from, besides the upstream's.
struct Shaping<'a> {
    p: &'a Prepared,
    /// When the first try started.
    sent: Instant,
    /// A balancer cookie to set.
    set_cookie: Option<HeaderValue>,
}

/// What `exchange` learned of the response head.
struct Response {
    head_len: usize,
    status: u16,
    framing: Framing,
    keep_alive: bool,
}

/// An upstream connection and what has been read from it.
struct Upstream {
    io: TcpStream,
    buf: BytesMut,
}

struct Idle {
    up: Upstream,
    since: Instant,
}

/// Idle upstream connections by `host:port`. The keys come from the configuration, not
/// from clients, so a fast unkeyed hash serves (SipHash cost more than the rest of a pool
/// lookup).
type Pool = HashMap<String, Vec<Idle>, foldhash::fast::FixedState>;

thread_local! {
    /// Idle upstream connections of this worker thread.
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

fn pool_take(authority: &str) -> Option<Upstream> {
    POOL.with_borrow_mut(|pool| {
        let idle = pool.get_mut(authority)?;
        while let Some(i) = idle.pop() {
            if i.since.elapsed() < POOL_IDLE {
                return Some(i.up);
            }
        }
        None
    })
}

fn pool_put(authority: &str, up: Upstream) {
    let now = Instant::now();
    POOL.with_borrow_mut(|pool| {
        let idle = match pool.get_mut(authority) {
            Some(idle) => idle,
            None => pool.entry(authority.to_string()).or_default(),
        };
        if idle
            .first()
            .is_some_and(|i| now.duration_since(i.since) >= POOL_IDLE)
        {
            idle.retain(|i| now.duration_since(i.since) < POOL_IDLE);
        }
        if idle.len() < POOL_MAX {
            idle.push(Idle { up, since: now });
        }
    });
}

/// Whether a pooled connection still looks open (nothing, not even EOF, waiting on it).
fn looks_alive(up: &Upstream) -> bool {
    let mut probe = [0u8; 1];
    matches!(up.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// A new upstream connection, established within `limit`.
async fn connect(authority: &str, limit: Duration) -> Result<Upstream, TryError> {
    let io = match tokio::time::timeout(limit, TcpStream::connect(authority)).await {
        Ok(Ok(io)) => io,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, upstream = %authority, "upstream connect failed");
            return Err(TryError::Upstream);
        }
        Err(_) => {
            tracing::debug!(upstream = %authority, "upstream connect timed out");
            return Err(TryError::Timeout);
        }
    };
    if let Err(e) = io.set_nodelay(true) {
        tracing::debug!(error = %e, upstream = %authority, "upstream connection failed");
        return Err(TryError::Upstream);
    }
    Ok(Upstream {
        io,
        buf: BytesMut::with_capacity(BUF),
    })
}

/// Writes all of `data`, waiting at most `limit` for the socket to take more (`Err(())` once
/// it has passed). Usually the socket takes everything at once, and no timer is made.
async fn write_within(
    io: &mut TcpStream,
    data: &[u8],
    limit: Duration,
) -> Result<io::Result<()>, ()> {
    let done = match io.try_write(data) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Ok(Err(e)),
    };
    if done == data.len() {
        return Ok(Ok(()));
    }
    tokio::time::timeout(limit, io.write_all(&data[done..]))
        .await
        .map_err(drop)
}

/// One try: a connection (pooled or new), the request head (`c.out`) and body sent, the
/// response head read and the client's written into `c.out`. A pooled connection the
/// upstream had closed is replaced by a new one when the request can be sent again; one
/// that must carry a body is checked first.
///
/// The service's timeouts apply per operation, as nginx's do: `connect_timeout` to
/// establishing the connection, `write_timeout` to each write, `read_timeout` to each read.
async fn exchange(
    c: &mut Client,
    service: &crate::table::Upstream,
    authority: &str,
    shaping: &Shaping<'_>,
    replayable: bool,
) -> Result<(Upstream, Response), TryError> {
    let p = shaping.p;
    let head_len = c.out.len();
    let mut fresh = false;
    loop {
        let pooled = if fresh { None } else { pool_take(authority) };
        let (mut up, reused) = match pooled {
            Some(up) if replayable || looks_alive(&up) => (up, true),
            _ => (connect(authority, service.timeouts.connect).await?, false),
        };
        let stale = |e: io::Error| {
            tracing::debug!(error = %e, upstream = %authority, reused, "upstream connection failed");
            TryError::Upstream
        };
        // The head goes out with whatever part of the body has been read already.
        c.out.truncate(head_len);
        let mut body = BodyState::new(p.body);
        let taken = body.take(&c.buf).map_err(|()| TryError::Client)?;
        c.out.extend_from_slice(&c.buf[..taken]);
        c.buf.advance(taken);
        let written = write_within(&mut up.io, &c.out, service.timeouts.write).await;
        if let Err(e) = written.map_err(|()| TryError::Timeout)? {
            if reused && replayable {
                fresh = true;
                continue;
            }
            return Err(stale(e));
        }
        while !body.done() {
            if c.buf.capacity() - c.buf.len() < 1024 {
                c.buf.reserve(BUF);
            }
            match c
                .timer
                .within(CLIENT_TIMEOUT, c.io.read_buf(&mut c.buf))
                .await
            {
                Some(Ok(n)) if n > 0 => {}
                _ => return Err(TryError::Client),
            }
            let taken = body.take(&c.buf).map_err(|()| TryError::Client)?;
            write_within(&mut up.io, &c.buf[..taken], service.timeouts.write)
                .await
                .map_err(|()| TryError::Timeout)?
                .map_err(stale)?;
            c.buf.advance(taken);
        }
        // The response head (interim 1xx responses are skipped).
        loop {
            if !up.buf.is_empty() {
                match response_head(&up.buf, p.is_head, Some((shaping, &mut c.out))) {
                    Ok(Some(Head::Final(response))) => return Ok((up, response)),
                    Ok(Some(Head::Interim(len))) => {
                        up.buf.advance(len);
                        continue;
                    }
                    Ok(None) if up.buf.len() < MAX_HEAD => {}
                    Ok(None) | Err(()) => return Err(TryError::Upstream),
                }
            }
            if up.buf.capacity() - up.buf.len() < 1024 {
                up.buf.reserve(BUF);
            }
            let read = c
                .timer
                .within(service.timeouts.read, up.io.read_buf(&mut up.buf));
            match read.await.ok_or(TryError::Timeout)? {
                Ok(n) if n > 0 => {}
                Ok(_) if reused && replayable && up.buf.is_empty() => {
                    fresh = true;
                    break;
                }
                Ok(_) => return Err(TryError::Upstream),
                Err(e) if reused && replayable && up.buf.is_empty() => {
                    tracing::debug!(error = %e, "pooled upstream connection was closed");
                    fresh = true;
                    break;
                }
                Err(e) => return Err(stale(e)),
            }
        }
    }
}

enum Head {
    /// A 1xx response other than 101, this long.
    Interim(usize),
    Final(Response),
}

/// Parses the response head at the start of `buf` (`None`: not complete yet); with
/// `shaping`, a final one is rewritten for the client into its buffer.
fn response_head(
    buf: &[u8],
    head_request: bool,
    shaping: Option<(&Shaping<'_>, &mut Vec<u8>)>,
) -> Result<Option<Head>, ()> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut storage);
    let head_len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let (Some(status), Some(version)) = (res.code, res.version) else {
        return Err(());
    };
    if (100..200).contains(&status) {
        // The request never asks to switch protocols, so 101 is a broken response.
        return if status == 101 {
            Err(())
        } else {
            Ok(Some(Head::Interim(head_len)))
        };
    }
    let fields = RawFields::new(&*res.headers);
    let mut framing = Framing::Close;
    let mut keep_alive = version == 1;
    let framing_fields = bit::TRANSFER_ENCODING | bit::CONTENT_LENGTH | bit::CONNECTION;
    for (name, value) in fields.tracked_in(framing_fields) {
        match name {
            bit::TRANSFER_ENCODING => {
                let last = value.rsplit(|b| *b == b',').next().unwrap_or_default();
                framing = if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    Framing::Chunked
                } else {
                    Framing::Close
                };
            }
            bit::CONTENT_LENGTH if framing != Framing::Chunked => {
                let len = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or(())?;
                if matches!(framing, Framing::Length(n) if n != len) {
                    return Err(());
                }
                framing = Framing::Length(len);
            }
            bit::CONNECTION
                if value
                    .split(|b| *b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close")) =>
            {
                keep_alive = false;
            }
            _ => {}
        }
    }
    if head_request || status == 204 || status == 304 {
        framing = Framing::Empty;
    }
    if framing == Framing::Close {
        keep_alive = false;
    }
    if let Some((shaping, out)) = shaping {
        write_response_head(fields, res.reason, status, version, framing, shaping, out);
    }
    Ok(Some(Head::Final(Response {
        head_len,
        status,
        framing,
        keep_alive,
    })))
}

/// Writes the client's response head for the upstream's (its `fields` and `reason`) into
/// `out`.
fn write_response_head(
    mut fields: RawFields<'_>,
    reason: Option<&str>,
    status: u16,
    version: u8,
    framing: Framing,
    shaping: &Shaping<'_>,
    out: &mut Vec<u8>,
) {
    let p = shaping.p;
    let reason = reason.filter(|r| !r.is_empty()).or_else(|| {
        StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
    });
    let version = if version == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // The client gets chunked framing only (a length beside it would be ambiguous).
    let chunked = matches!(framing, Framing::Chunked | Framing::Close);
    out.clear();
    write_status_line(out, status, reason.unwrap_or(""));
    let skip = if chunked { bit::CONTENT_LENGTH } else { 0 };
    let (started, sent) = (p.started, shaping.sent);
    let set_cookie = shaping.set_cookie.as_ref();
    let id_editable = !fields.holds(bit::X_KONG_REQUEST_ID);
    if id_editable && write_shaped_response(&fields, skip, version, started, sent, set_cookie, out)
    {
        header_line(out, X_KONG_REQUEST_ID.as_str(), p.id_value.as_bytes());
    } else {
        strip_hop_by_hop(&mut fields);
        shape_response(&mut fields, version, started, sent, set_cookie.cloned());
        fields.set(&X_KONG_REQUEST_ID, p.id_value.clone());
        if chunked {
            fields.remove(&header::CONTENT_LENGTH);
        }
        fields.write(out);
    }
    if !fields.contains(&header::DATE) {
        write_date(out);
    }
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !p.keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Sends the head in `c.out` and relays the response body; each upstream read may wait
/// `read_timeout`. `Ok(true)`: the upstream connection ended its message cleanly and can be
/// reused; `Err`: the client connection cannot go on (an upstream that stalls or breaks off
/// mid-body leaves the client with an incomplete message, so it is closed).
async fn relay(
    c: &mut Client,
    up: &mut Upstream,
    framing: Framing,
    read_timeout: Duration,
) -> Result<bool, ()> {
    let mut body = BodyState::new(framing);
    if framing == Framing::Close {
        // Re-framed as chunked for the client; the upstream connection ends with it.
        let mut closed = false;
        loop {
            if !up.buf.is_empty() {
                let _ = write!(c.out, "{:x}\r\n", up.buf.len());
                c.out.extend_from_slice(&up.buf);
                c.out.extend_from_slice(b"\r\n");
                up.buf.clear();
            }
            if closed {
                c.out.extend_from_slice(b"0\r\n\r\n");
            }
            send(&mut c.io, &c.out).await?;
            c.out.clear();
            if closed {
                return Ok(false);
            }
            up.buf.reserve(BUF);
            match c
                .timer
                .within(read_timeout, up.io.read_buf(&mut up.buf))
                .await
            {
                Some(Ok(0)) => closed = true,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err(()),
            }
        }
    }
    let taken = body.take(&up.buf)?;
    c.out.extend_from_slice(&up.buf[..taken]);
    up.buf.advance(taken);
    send(&mut c.io, &c.out).await?;
    while !body.done() {
        up.buf.clear();
        up.buf.reserve(BUF);
        match c
            .timer
            .within(read_timeout, up.io.read_buf(&mut up.buf))
            .await
        {
            Some(Ok(n)) if n > 0 => {}
            _ => return Err(()),
        }
        let taken = body.take(&up.buf)?;
        send(&mut c.io, &up.buf[..taken]).await?;
        up.buf.advance(taken);
    }
    Ok(true)
}

/// Writes `data` to the client, which must take it within [`CLIENT_TIMEOUT`].
async fn send(io: &mut TcpStream, data: &[u8]) -> Result<(), ()> {
    match write_within(io, data, CLIENT_TIMEOUT).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Answers an upstream failure with Kong's error response; `keep_alive`: the client
/// connection may carry another request afterwards.
async fn answer_error(c: &mut Client, p: &Prepared, err: ProxyError, keep_alive: bool) -> Next {
    let keep_alive = keep_alive && p.keep_alive;
    tracing::debug!(kind = ?err.kind, source = ?err.source, "proxy error");
    let mut asked = HeaderMap::new();
    for (name, value) in [header::ACCEPT, header::CONTENT_TYPE]
        .into_iter()
        .zip(p.negotiation.iter().cloned())
    {
        if let Some(value) = value {
            asked.insert(name, value);
        }
    }
    let res = err.respond(&asked, p.request_id.as_str(), None);
    let (mut parts, body) = res.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let h = &mut parts.headers;
    set_ms_between(h, &X_KONG_RESPONSE_LATENCY, p.started, Instant::now());
    h.insert(X_KONG_REQUEST_ID.clone(), p.id_value.clone());
    c.out.clear();
    let status = parts.status;
    write_status_line(
        &mut c.out,
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
    );
    for (name, value) in h.iter() {
        c.out.extend_from_slice(name.as_str().as_bytes());
        c.out.extend_from_slice(b": ");
        c.out.extend_from_slice(value.as_bytes());
        c.out.extend_from_slice(b"\r\n");
    }
    let _ = write!(c.out, "content-length: {}\r\n", body.len());
    write_date(&mut c.out);
    if !keep_alive {
        c.out.extend_from_slice(b"connection: close\r\n");
    }
    c.out.extend_from_slice(b"\r\n");
    if !p.is_head {
        c.out.extend_from_slice(&body);
    }
    if send(&mut c.io, &c.out).await.is_err() {
        return Next::Close;
    }
    if !keep_alive {
        if p.body != Framing::Empty {
            linger(c).await;
        }
        return Next::Close;
    }
    Next::Again
}

/// Closes a connection whose client may still be sending a request body the way nginx's
/// `lingering_close` does: the response is ended (FIN) and what the client still sends is
/// read and dropped until it stops, for at most [`LINGER_TOTAL`]. Closing with unread data
/// would send a reset, which can destroy the response before the client reads it.
async fn linger(c: &mut Client) {
    if c.io.shutdown().await.is_err() {
        return;
    }
    let until = Instant::now() + LINGER_TOTAL;
    loop {
        c.buf.clear();
        if c.buf.capacity() < BUF {
            c.buf.reserve(BUF);
        }
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left.min(LINGER_IDLE), c.io.read_buf(&mut c.buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}

/// Appends `HTTP/1.1 {status} {reason}\r\n` (a status has three digits, as `httparse` and
/// `StatusCode` guarantee; the hot path avoids the formatting machinery).
fn write_status_line(out: &mut Vec<u8>, status: u16, reason: &str) {
    let digit = |d: u16| b'0' + u8::try_from(d % 10).unwrap_or(0);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&[digit(status / 100), digit(status / 10), digit(status), b' ']);
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

thread_local! {
    /// The `Date` header line, rebuilt once a second.
    static DATE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((0, Vec::new())) };
}

/// Appends a `date` header line with the current time.
fn write_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, line)| {
        if *at != secs || line.is_empty() {
            *at = secs;
            line.clear();
            line.extend_from_slice(b"date: ");
            line.extend_from_slice(httpdate::fmt_http_date(now).as_bytes());
            line.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line);
    });
}

/// Where a body being passed through stands: how much of it is left, or where in the
/// chunked framing it is (chunks are passed on as they are, only their ends are found).
#[derive(Debug)]
struct BodyState {
    left: u64,
    chunked: Option<Chunk>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In the chunk size (hex digits).
    Size {
        digits: u8,
    },
    /// In a chunk extension, up to CR.
    Ext,
    /// After the size line's CR.
    SizeLf,
    /// In chunk data (`left` bytes to go).
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    LineStart,
    /// In a trailer field, up to CR.
    Trailer,
    TrailerLf,
    /// After the final empty line's CR.
    EndLf,
    Done,
}

impl BodyState {
    fn new(framing: Framing) -> Self {
        match framing {
            Framing::Length(n) => Self {
                left: n,
                chunked: None,
            },
            Framing::Chunked => Self {
                left: 0,
                chunked: Some(Chunk::Size { digits: 0 }),
            },
            Framing::Empty | Framing::Close => Self {
                left: 0,
                chunked: None,
            },
        }
    }

    fn done(&self) -> bool {
        match self.chunked {
            Some(state) => state == Chunk::Done,
            None => self.left == 0,
        }
    }

    /// How many bytes at the start of `data` belong to the body (all of them unless it ends
    /// inside); `Err` for broken chunked framing.
    fn take(&mut self, data: &[u8]) -> Result<usize, ()> {
        let Some(mut state) = self.chunked else {
            let n = usize::try_from(self.left).map_or(data.len(), |l| l.min(data.len()));
            self.left -= n as u64;
            return Ok(n);
        };
        let mut i = 0;
        while i < data.len() && state != Chunk::Done {
            let b = data[i];
            state = match state {
                Chunk::Data => {
                    let n = usize::try_from(self.left)
                        .map_or(data.len() - i, |l| l.min(data.len() - i));
                    self.left -= n as u64;
                    i += n;
                    if self.left == 0 {
                        Chunk::DataCr
                    } else {
                        Chunk::Data
                    }
                }
                Chunk::Size { digits } => {
                    i += 1;
                    match (b as char).to_digit(16) {
                        Some(d) if digits < 15 => {
                            self.left = self.left * 16 + u64::from(d);
                            Chunk::Size { digits: digits + 1 }
                        }
                        None if digits > 0 && b == b'\r' => Chunk::SizeLf,
                        None if digits > 0 && matches!(b, b';' | b' ' | b'\t') => Chunk::Ext,
                        _ => return Err(()),
                    }
                }
                Chunk::Ext => {
                    i += 1;
                    match b {
                        b'\r' => Chunk::SizeLf,
                        b'\n' => return Err(()),
                        _ => Chunk::Ext,
                    }
                }
                Chunk::SizeLf => {
                    i += 1;
                    match (b, self.left) {
                        (b'\n', 0) => Chunk::LineStart,
                        (b'\n', _) => Chunk::Data,
                        _ => return Err(()),
                    }
                }
                Chunk::DataCr => {
                    i += 1;
                    if b != b'\r' {
                        return Err(());
                    }
                    Chunk::DataLf
                }
                Chunk::DataLf => {
                    i += 1;
                    if b != b'\n' {
                        return Err(());
                    }
                    Chunk::Size { digits: 0 }
                }
                Chunk::LineStart => {
                    i += 1;
                    if b == b'\r' {
                        Chunk::EndLf
                    } else {
                        Chunk::Trailer
                    }
                }
                Chunk::Trailer => {
                    i += 1;
                    if b == b'\r' {
                        Chunk::TrailerLf
                    } else {
                        Chunk::Trailer
                    }
                }
                Chunk::TrailerLf => {
                    i += 1;
                    if b != b'\n' {
                        return Err(());
                    }
                    Chunk::LineStart
                }
                Chunk::EndLf => {
                    i += 1;
                    if b != b'\n' {
                        return Err(());
                    }
                    Chunk::Done
                }
                Chunk::Done => Chunk::Done,
            };
        }
        self.chunked = Some(state);
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared timer honours each wait's own limit, whatever the waits before it set:
    /// a short limit after a long one fires on time, and a long one after a short one (whose
    /// timer has fired) does not fire early.
    #[tokio::test]
    async fn one_timer_serves_waits_with_different_limits() {
        let mut timer = Timer::new();
        let pending = std::future::pending::<()>;
        let started = Instant::now();
        assert_eq!(
            timer.within(Duration::from_millis(50), pending()).await,
            None
        );
        let short = started.elapsed();
        assert!(short >= Duration::from_millis(50), "{short:?}");
        assert!(short < Duration::from_secs(5), "{short:?}");
        let slow = tokio::time::sleep(Duration::from_millis(150));
        assert_eq!(
            timer.within(Duration::from_millis(600), slow).await,
            Some(()),
            "a wait within its limit must not see the earlier wait's expiry"
        );
        let again = Instant::now();
        assert_eq!(
            timer.within(Duration::from_millis(30), pending()).await,
            None
        );
        let waited = again.elapsed();
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    }

    fn take_all(framing: Framing, parts: &[&[u8]]) -> Result<(usize, bool), ()> {
        let mut b = BodyState::new(framing);
        let mut total = 0;
        for part in parts {
            total += b.take(part)?;
        }
        Ok((total, b.done()))
    }

    #[test]
    fn chunked_bodies_end_where_they_end() {
        let body = b"4\r\nwiki\r\n5;ext=1\r\npedia\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1";
        let (n, done) = take_all(Framing::Chunked, &[body]).expect("valid");
        assert!(done);
        assert_eq!(
            &body[..n],
            b"4\r\nwiki\r\n5;ext=1\r\npedia\r\n0\r\nX-T: 1\r\n\r\n"
        );
        // Split anywhere, the same.
        for split in 1..body.len() {
            let (a, rest) = body.split_at(split);
            let mut b = BodyState::new(Framing::Chunked);
            let first = b.take(a).expect("valid");
            let second = if b.done() {
                0
            } else {
                b.take(rest).expect("valid")
            };
            assert_eq!(first + second, n, "split at {split}");
        }
        assert!(take_all(Framing::Chunked, &[b"zz\r\n"]).is_err());
        assert!(take_all(Framing::Chunked, &[b"3\r\nabcX"]).is_err());
        assert!(take_all(Framing::Chunked, &[b"ffffffffffffffffff\r\n"]).is_err());
        assert_eq!(
            take_all(Framing::Chunked, &[b"3\r\nab"]).expect("valid"),
            (5, false)
        );
    }

    #[test]
    fn status_lines_are_written_without_formatting() {
        let mut out = Vec::new();
        write_status_line(&mut out, 200, "OK");
        write_status_line(&mut out, 504, "Gateway Timeout");
        write_status_line(&mut out, 101, "");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 200 OK\r\nHTTP/1.1 504 Gateway Timeout\r\nHTTP/1.1 101 \r\n"
        );
    }

    #[test]
    fn lengths_take_only_their_bytes() {
        assert_eq!(
            take_all(Framing::Length(5), &[b"abc", b"defgh"]).expect("valid"),
            (5, true)
        );
        assert!(BodyState::new(Framing::Empty).done());
    }

    #[test]
    fn response_heads_give_their_framing() {
        let head = |raw: &[u8], head_request| match response_head(raw, head_request, None) {
            Ok(Some(Head::Final(r))) => Some((r.framing, r.keep_alive)),
            _ => None,
        };
        assert_eq!(
            head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false),
            Some((Framing::Length(5), true))
        );
        assert_eq!(
            head(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                false
            ),
            Some((Framing::Chunked, false))
        );
        assert_eq!(
            head(b"HTTP/1.0 200 OK\r\n\r\n", false),
            Some((Framing::Close, false))
        );
        assert_eq!(
            head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true),
            Some((Framing::Empty, true))
        );
        assert_eq!(
            head(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                false
            ),
            None
        );
        assert!(matches!(
            response_head(b"HTTP/1.1 100 Continue\r\n\r\n", false, None),
            Ok(Some(Head::Interim(25)))
        ));
        assert!(
            response_head(b"HTTP/1.1 200 OK\r\nContent-", false, None).is_ok_and(|h| h.is_none())
        );
    }
}
