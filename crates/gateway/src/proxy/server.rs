//! The proxy listener: hyper serving HTTP/1.1 (with upgrades) and HTTP/2 (prior-knowledge
//! h2c) on each accepted connection, straight into the proxy handler; on TLS listeners the
//! same after a rustls handshake (certificate chosen by SNI; HTTP/2 only when the listener
//! offers `h2` by ALPN, i.e. carries the `http2` flag).
//!
//! Key decision: the proxy does not go through axum's router or tower layers. It has one
//! handler and no routes of its own, so each request goes from hyper's connection task to
//! [`super::handle`] with only the connection facts it needs ([`ConnInfo`]). Plain-HTTP
//! connections start on the hand-written fast path ([`super::fast`]), which hands them to
//! hyper for anything but the common HTTP/1.1 case.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use portcullis_http::Shutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::Inner;

/// What the handler knows about the connection a request came in on.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The peer's IP address as header text (IPv4-mapped IPv6 shown as IPv4), made once per
    /// connection for `X-Real-IP` and `X-Forwarded-For`.
    pub peer_ip: http::HeaderValue,
    /// The port the client connected to (`X-Forwarded-Port`).
    pub local_port: u16,
    /// The connection is TLS: the scheme is `https`.
    pub tls: bool,
    /// The server name the TLS client sent (routes' `snis`).
    pub sni: Option<Arc<str>>,
}

/// The per-connection hyper service: every request goes to [`super::handle`].
fn service(
    inner: Arc<Inner>,
    info: ConnInfo,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let inner = Arc::clone(&inner);
        let info = info.clone();
        async move { Ok::<_, Infallible>(super::handle(inner, req, info).await) }
    })
}

/// How long draining connections may take after shutdown before they are dropped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves the proxy on a bound listener until `shutdown` fires, then drains connections;
/// with `tls`, every connection is a TLS one.
pub(crate) async fn serve(
    inner: Arc<Inner>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let local_port = listener.local_addr()?.port();
    let what = if tls.is_some() {
        "gateway proxy (TLS)"
    } else {
        "gateway proxy"
    };
    tracing::info!(addr = ?listener.local_addr().ok(), what, "listening");
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(60));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Typically EMFILE: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "gateway proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let mut info = ConnInfo {
            peer,
            peer_ip: super::forwarded::ip_header_value(peer.ip()),
            local_port,
            tls: tls.is_some(),
            sni: None,
        };
        let Some(acceptor) = &tls else {
            let service = service(Arc::clone(&inner), info.clone());
            // The watcher lives as long as the connection, on either path, so shutdown
            // waits for it.
            let (builder, watcher) = (Arc::clone(&builder), graceful.watcher());
            let to_hyper = move |io: super::fast::Rewind| async move {
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                if let Err(e) = watcher.watch(conn.into_owned()).await {
                    tracing::debug!(error = %e, peer = %peer, "proxy connection ended with an error");
                }
            };
            let (inner, shutdown) = (Arc::clone(&inner), shutdown.clone());
            tokio::spawn(super::fast::serve(inner, stream, info, shutdown, to_hyper));
            continue;
        };
        // The handshake runs in the connection's task so a slow client never stalls accept.
        let (acceptor, builder, watcher) = (acceptor.clone(), builder.clone(), graceful.watcher());
        let (inner, shutdown) = (Arc::clone(&inner), shutdown.clone());
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, peer = %peer, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(peer = %peer, "TLS handshake timed out");
                        return;
                    }
                };
            info.sni = stream.get_ref().1.server_name().map(Arc::from);
            let service = service(Arc::clone(&inner), info);
            // Without the listener's `http2` flag `h2` is not offered, and not spoken either.
            if !offers_h2(&acceptor) {
                serve_http1_only(TokioIo::new(stream), service, watcher, shutdown, peer).await;
                return;
            }
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(error = %e, peer = %peer, "proxy connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("gateway proxy: connections still open after the drain timeout");
    }
    Ok(())
}

/// Whether the listener offers `h2` by ALPN (Kong's `http2` listen flag).
fn offers_h2(acceptor: &TlsAcceptor) -> bool {
    acceptor
        .config()
        .alpn_protocols
        .iter()
        .any(|p| p.as_slice() == b"h2")
}

/// Serves one HTTP/1.1-only connection (with upgrades), which hyper-util's auto builder
/// cannot do. The watcher is held until the connection ends, so the drain waits for it;
/// `shutdown` asks it to finish its current request and close.
async fn serve_http1_only<S>(
    io: TokioIo<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
    service: S,
    watcher: hyper_util::server::graceful::Watcher,
    shutdown: Shutdown,
    peer: SocketAddr,
) where
    S: hyper::service::HttpService<Incoming, ResBody = axum::body::Body> + Send,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let _draining = watcher;
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(60));
    let conn = http1.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, peer = %peer, "proxy connection ended with an error");
    }
}
