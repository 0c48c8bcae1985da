//! How every Portcullis listener is bound, served and stopped, and the one pooled HTTP client
//! used to reach upstreams.
//!
//! Key decision: listeners are bound *before* anything is served ([`bind`]), so a port in use
//! is reported by number at start-up, and tests can bind `127.0.0.1:0` and learn the real
//! address before building the app. Every server stops on one [`Shutdown`] token and drains
//! in-flight requests.

pub mod client;
pub mod timed;

use std::net::SocketAddr;

use tokio::net::TcpListener;
pub use tokio_util::sync::CancellationToken as Shutdown;

pub use client::{
    TlsError, UpstreamClient, UpstreamTls, Verify, tls_client_config, upstream_client,
    upstream_client_trusting, upstream_client_unverified, upstream_client_with,
};
pub use timed::{Deadline, Timeouts, is_timeout};

/// Errors binding or serving a listener.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The port is taken by another process.
    #[error(
        "port {port} ({what}) is already in use on {addr}; choose another with the matching flag"
    )]
    PortInUse {
        /// What the listener was for, e.g. "gateway proxy".
        what: String,
        /// The port number.
        port: u16,
        /// The full address.
        addr: SocketAddr,
    },
    /// Any other bind failure.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// What the listener was for.
        what: String,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server {what} failed: {source}")]
    Serve {
        /// What the listener was for.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Binds `addr` for the listener described by `what` (used in errors and logs).
pub async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            ServeError::PortInUse {
                what: what.to_string(),
                port: addr.port(),
                addr,
            }
        } else {
            ServeError::Bind {
                what: what.to_string(),
                addr,
                source,
            }
        }
    })
}

/// Serves `app` on a bound listener until `shutdown` fires, then drains in-flight requests.
/// Handlers can extract `ConnectInfo<SocketAddr>` for the peer address.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    what: &str,
    shutdown: Shutdown,
) -> Result<(), ServeError> {
    let addr = listener.local_addr().ok();
    tracing::info!(what, addr = ?addr, "listening");
    let make = app.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, make)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(|source| ServeError::Serve {
            what: what.to_string(),
            source,
        })
}

/// How long a client may take to complete a TLS handshake on [`serve_tls`].
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long [`serve_tls`] waits for open connections after `shutdown` before dropping them.
const TLS_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `app` over TLS on a bound listener until `shutdown` fires, then drains open
/// connections (as [`serve`] does, with `ConnectInfo<SocketAddr>` too). The handshake runs
/// in each connection's task, so a slow client never stalls the others; HTTP/2 is spoken
/// only when `acceptor` offers `h2` by ALPN.
pub async fn serve_tls(
    listener: TcpListener,
    app: axum::Router,
    acceptor: tokio_rustls::TlsAcceptor,
    what: &str,
    shutdown: Shutdown,
) -> Result<(), ServeError> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    tracing::info!(what, addr = ?listener.local_addr().ok(), "listening (TLS)");
    let h2 = acceptor
        .config()
        .alpn_protocols
        .iter()
        .any(|p| p.as_slice() == b"h2");
    let builder = auto::Builder::new(TokioExecutor::new());
    let builder = if h2 { builder } else { builder.http1_only() };
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, what, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let (acceptor, builder, watcher, app) = (
            acceptor.clone(),
            builder.clone(),
            graceful.watcher(),
            app.clone(),
        );
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, %peer, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    tower::ServiceExt::oneshot(app.clone(), req)
                },
            );
            // Without upgrades, so that `http1_only` applies.
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(error = %e, %peer, "TLS connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(TLS_DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(what, "connections still open after the drain timeout");
    }
    Ok(())
}

/// Returns a token that fires on SIGINT or SIGTERM (Ctrl-C on other platforms).
pub fn shutdown_on_signals() -> Shutdown {
    let token = Shutdown::new();
    let fire = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received; draining connections");
        fire.cancel();
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn port_in_use_is_reported_by_number() {
        let first = bind("127.0.0.1:0".parse().expect("addr"), "first")
            .await
            .expect("bind");
        let addr = first.local_addr().expect("addr");
        let err = bind(addr, "gateway proxy")
            .await
            .expect_err("second bind fails");
        let msg = err.to_string();
        assert!(msg.contains(&addr.port().to_string()), "{msg}");
        assert!(msg.contains("gateway proxy"), "{msg}");
    }

    #[tokio::test]
    async fn serve_stops_on_shutdown() {
        let listener = bind("127.0.0.1:0".parse().expect("addr"), "t")
            .await
            .expect("bind");
        let token = Shutdown::new();
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let task = tokio::spawn(serve(listener, app, "t", token.clone()));
        token.cancel();
        let res = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        assert!(matches!(res, Ok(Ok(Ok(())))));
    }
}
