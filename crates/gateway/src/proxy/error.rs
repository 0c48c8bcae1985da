//! Every response the proxy generates itself, with Kong's statuses, messages and
//! content negotiation (notes §2.7, §3.4), produced in one place.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};

/// Who caused a proxy error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The request itself (no route, wrong protocol).
    Client,
    /// The upstream (refused, timed out, broken response).
    Upstream,
    /// Configuration (a route without a service, an unsupported protocol).
    Internal,
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyErrorKind {
    /// No route matched: 404.
    NoRoute,
    /// The route has no service: 503.
    NoService,
    /// Plain HTTP on an HTTPS-only route: 426, or the configured redirect.
    HttpsRequired(u16),
    /// Connection refused, reset, or an invalid response: 502.
    UpstreamInvalid,
    /// No response head within the read timeout: 504.
    UpstreamTimeout,
    /// The service's protocol cannot be proxied (grpc, tcp and others): 502.
    UnsupportedProtocol,
    /// The upstream has no healthy target left (or too little healthy weight): 503.
    NoPeer,
}

/// A proxy failure, tagged with its source and whether another try could succeed (the
/// seam for retries and passive health checks).
#[derive(Debug, Clone, Copy)]
pub struct ProxyError {
    /// What went wrong.
    pub kind: ProxyErrorKind,
    /// Who caused it.
    pub source: ErrorSource,
    /// Whether retrying against another target could help.
    pub retryable: bool,
}

impl ProxyError {
    /// Builds an error with the source and retry decision its kind implies.
    pub fn new(kind: ProxyErrorKind) -> Self {
        let (source, retryable) = match kind {
            ProxyErrorKind::NoRoute | ProxyErrorKind::HttpsRequired(_) => {
                (ErrorSource::Client, false)
            }
            ProxyErrorKind::NoService | ProxyErrorKind::UnsupportedProtocol => {
                (ErrorSource::Internal, false)
            }
            ProxyErrorKind::UpstreamInvalid | ProxyErrorKind::UpstreamTimeout => {
                (ErrorSource::Upstream, true)
            }
            ProxyErrorKind::NoPeer => (ErrorSource::Upstream, false),
        };
        Self {
            kind,
            source,
            retryable,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            ProxyErrorKind::NoRoute => StatusCode::NOT_FOUND,
            ProxyErrorKind::NoService | ProxyErrorKind::NoPeer => StatusCode::SERVICE_UNAVAILABLE,
            ProxyErrorKind::HttpsRequired(code) => {
                StatusCode::from_u16(code).unwrap_or(StatusCode::UPGRADE_REQUIRED)
            }
            ProxyErrorKind::UpstreamInvalid | ProxyErrorKind::UnsupportedProtocol => {
                StatusCode::BAD_GATEWAY
            }
            ProxyErrorKind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Kong's message.
    pub fn message(&self) -> &'static str {
        match self.kind {
            ProxyErrorKind::NoRoute => "no Route matched with those values",
            ProxyErrorKind::NoService => "no Service found with those values",
            ProxyErrorKind::HttpsRequired(_) => "Please use HTTPS protocol",
            ProxyErrorKind::UpstreamInvalid | ProxyErrorKind::UnsupportedProtocol => {
                "An invalid response was received from the upstream server"
            }
            ProxyErrorKind::UpstreamTimeout => "The upstream server is timing out",
            ProxyErrorKind::NoPeer => "failure to get a peer from the ring-balancer",
        }
    }

    /// Kong's own errors (`kong.response.error`) default to JSON; errors nginx generates
    /// (502, 504) default to `text/plain` (`error_default_type`).
    fn default_format(&self) -> Format {
        match self.kind {
            ProxyErrorKind::UpstreamInvalid
            | ProxyErrorKind::UpstreamTimeout
            | ProxyErrorKind::UnsupportedProtocol => Format::Text,
            _ => Format::Json,
        }
    }

    /// Renders the response for a request with headers `req`; `location` is the HTTPS URL for
    /// redirect statuses.
    pub fn respond(&self, req: &HeaderMap, request_id: &str, location: Option<&str>) -> Response {
        let status = self.status();
        if let ProxyErrorKind::HttpsRequired(code) = self.kind
            && code != 426
        {
            let mut res = Response::new(Body::empty());
            *res.status_mut() = status;
            if let Some(loc) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
                res.headers_mut().insert(header::LOCATION, loc);
            }
            return res;
        }
        let format = negotiate(req).unwrap_or_else(|| self.default_format());
        let msg = self.message();
        let (content_type, body) = match format {
            Format::Json => (
                "application/json; charset=utf-8",
                serde_json::json!({"message": msg, "request_id": request_id}).to_string(),
            ),
            Format::Html => (
                "text/html; charset=utf-8",
                format!(
                    "<!doctype html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>Error</title>\n</head>\n<body>\n<h1>Error</h1>\n<p>{msg}.</p>\n<p>request_id: {request_id}</p>\n</body>\n</html>\n"
                ),
            ),
            Format::Xml => (
                "application/xml; charset=utf-8",
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>{msg}</message>\n  <requestid>{request_id}</requestid>\n</error>\n"
                ),
            ),
            Format::Text => (
                "text/plain; charset=utf-8",
                format!("{msg}\nrequest_id: {request_id}\n"),
            ),
        };
        let mut res = Response::new(Body::from(body));
        *res.status_mut() = status;
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::SERVER, HeaderValue::from_static(SERVER));
        if matches!(self.kind, ProxyErrorKind::HttpsRequired(_)) {
            h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            h.insert(
                header::UPGRADE,
                HeaderValue::from_static("TLS/1.2, HTTP/1.1"),
            );
        }
        res
    }
}

/// `Server` header value for responses Kong generates (kept equal to `kong/{KONG_VERSION}`
/// by a test).
pub const SERVER: &str = "kong/3.10.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Html,
    Xml,
    Text,
}

/// The first media type in `Accept` (then `Content-Type`) that Kong knows how to render.
fn negotiate(req: &HeaderMap) -> Option<Format> {
    for name in [header::ACCEPT, header::CONTENT_TYPE] {
        let Some(v) = req.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        for part in v.split(',') {
            let mt = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let f = match mt.as_str() {
                "application/json" => Format::Json,
                "text/html" => Format::Html,
                "application/xml" | "text/xml" => Format::Xml,
                "text/plain" => Format::Text,
                _ => continue,
            };
            return Some(f);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KONG_VERSION;

    #[test]
    fn server_matches_version() {
        assert_eq!(SERVER, format!("kong/{KONG_VERSION}"));
    }

    #[test]
    fn negotiation() {
        let mut h = HeaderMap::new();
        assert_eq!(negotiate(&h), None);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml"),
        );
        assert_eq!(negotiate(&h), Some(Format::Html));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert_eq!(negotiate(&h), Some(Format::Json));
        let e = ProxyError::new(ProxyErrorKind::UpstreamInvalid);
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        assert!(e.retryable);
        assert_eq!(e.source, ErrorSource::Upstream);
    }
}
