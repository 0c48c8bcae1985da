//! Outbound HTTP calls (web hooks, breached-password lookups, remote templates) over the shared pooled client
//! of `portcullis-http`: TLS verified against the operating system's roots (honouring
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`), or the client an embedder passes to
//! [`crate::Identity::with_client`]. Redirects are never followed.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use portcullis_http::UpstreamClient;

/// Why a call produced no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// Connecting, the TLS handshake, or the exchange failed.
    #[error("{0}")]
    Transport(String),
    /// No complete answer within the time allowed.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer's body was larger than allowed.
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
}

/// Sends `request` and reads the answer (status and a body of at most `limit` bytes), all
/// within `timeout`.
pub(crate) async fn call(
    client: &UpstreamClient,
    request: http::Request<Body>,
    timeout: Duration,
    limit: usize,
) -> Result<(http::StatusCode, Bytes), CallError> {
    let exchange = async {
        let res = client
            .request(request)
            .await
            .map_err(|e| CallError::Transport(chain(&e)))?;
        let status = res.status();
        let body = http_body_util::Limited::new(res.into_body(), limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    CallError::TooLarge(limit)
                } else {
                    CallError::Transport(e.to_string())
                }
            })?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| CallError::Timeout(timeout))?
}

/// An error with its sources (the client's own message is only "client error (Connect)").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
