//! Turning an HTTP request into the [`RequestContext`] the pipeline decides on: for the proxy
//! (scheme from a trusted `X-Forwarded-Proto` only, host from `Host`) and for `/decisions`
//! (forward-auth: `X-Forwarded-Method/Proto/Host/Uri` always honoured, as in Oathkeeper, so
//! the API port must not be exposed).

use http::header::{CONNECTION, HOST, HeaderValue, UPGRADE};
use http::request::Parts;
use http::{HeaderMap, HeaderName, Method};

use crate::pipeline::{PipelineError, RequestContext};
use crate::rule::matcher::normalize_path;

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` is a hop-by-hop header.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// Removes hop-by-hop headers, including those the sender names in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// The protocol a request asks to switch to (`Upgrade`, when `Connection` lists `upgrade`).
pub fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let asked = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if asked {
        headers.get(UPGRADE).cloned()
    } else {
        None
    }
}

/// What never reaches an upstream from the client: hop-by-hop headers and, unless trusted,
/// `X-Forwarded-*` and `Forwarded`.
pub fn strip_for_upstream(headers: &mut HeaderMap, trust_forwarded: bool) {
    strip_hop_by_hop(headers);
    if !trust_forwarded {
        let forwarded: Vec<HeaderName> = headers
            .keys()
            .filter(|n| n.as_str().starts_with("x-forwarded-") || *n == "forwarded")
            .cloned()
            .collect();
        for name in forwarded {
            headers.remove(name);
        }
    }
}

fn first(headers: &HeaderMap, name: &str) -> Option<String> {
    let v = headers.get(name)?.to_str().ok()?;
    let v = v.split(',').next()?.trim();
    (!v.is_empty()).then(|| v.to_string())
}

fn host_of(parts: &Parts) -> String {
    parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

fn has_port(host: &str) -> bool {
    match host.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => host.contains(':'),
    }
}

/// The URL the client originally asked for, as the redirect handler's `return_to`: scheme,
/// host and port from `X-Forwarded-Proto/Host/Port` (a gateway in front sends the host
/// without port; the port is added unless it is the scheme's default), path and query from
/// `X-Forwarded-Uri` or the request itself.
fn original_url(headers: &HeaderMap, scheme: &str, host: &str, path_and_query: &str) -> String {
    let proto = first(headers, "x-forwarded-proto").unwrap_or_else(|| scheme.to_string());
    let mut host = first(headers, "x-forwarded-host").unwrap_or_else(|| host.to_string());
    if let Some(port) = first(headers, "x-forwarded-port") {
        let default = matches!(
            (proto.as_str(), port.as_str()),
            ("http", "80") | ("https", "443")
        );
        if !has_port(&host) && !default {
            host = format!("{host}:{port}");
        }
    }
    let uri = first(headers, "x-forwarded-uri").unwrap_or_else(|| path_and_query.to_string());
    format!("{proto}://{host}{uri}")
}

fn context(
    method: Method,
    scheme: String,
    host: String,
    raw_path: &str,
    query: Option<String>,
    headers: HeaderMap,
    original_url: String,
) -> (RequestContext, Result<(), PipelineError>) {
    let (path, valid) = match normalize_path(raw_path) {
        Ok(p) => (p, Ok(())),
        Err(e) => (raw_path.to_string(), Err(PipelineError::bad_request(e))),
    };
    let ctx = RequestContext {
        method,
        scheme,
        host,
        path,
        query,
        headers,
        original_url,
    };
    (ctx, valid)
}

/// The context of a request to the proxy; the `Err` carries a malformed-path error to report.
/// `return_to` is computed from the forwarded headers before they are stripped.
pub fn for_proxy(
    parts: &Parts,
    trust_forwarded: bool,
) -> (RequestContext, Result<(), PipelineError>) {
    let scheme = trust_forwarded
        .then(|| first(&parts.headers, "x-forwarded-proto"))
        .flatten()
        .filter(|p| p == "http" || p == "https")
        .unwrap_or_else(|| "http".to_string());
    let host = host_of(parts);
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let original = original_url(&parts.headers, &scheme, &host, path_and_query);
    // The pipeline sees what the upstream will see (so `noop` cannot re-add stripped headers).
    let mut headers = parts.headers.clone();
    strip_for_upstream(&mut headers, trust_forwarded);
    context(
        parts.method.clone(),
        scheme,
        host,
        parts.uri.path(),
        parts.uri.query().map(str::to_string),
        headers,
        original,
    )
}

/// The context of a `/decisions` request; `rest` is the path after `/decisions`.
pub fn for_decisions(parts: &Parts, rest: &str) -> (RequestContext, Result<(), PipelineError>) {
    let headers = &parts.headers;
    let method = first(headers, "x-forwarded-method")
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .unwrap_or_else(|| parts.method.clone());
    let scheme = first(headers, "x-forwarded-proto").unwrap_or_else(|| "http".to_string());
    let host = first(headers, "x-forwarded-host").unwrap_or_else(|| host_of(parts));
    let path = match first(headers, "x-forwarded-uri") {
        Some(uri) => uri.split('?').next().unwrap_or("/").to_string(),
        None => {
            if rest.starts_with('/') {
                rest.to_string()
            } else {
                format!("/{rest}")
            }
        }
    };
    let query = parts.uri.query().map(str::to_string);
    let path_and_query = match &query {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    let original = original_url(headers, &scheme, &host, &path_and_query);
    context(
        method,
        scheme,
        host,
        &path,
        query,
        headers.clone(),
        original,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn parts(uri: &str, headers: &[(&'static str, &'static str)]) -> Parts {
        let mut b = http::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    #[test]
    fn proxy_scheme_needs_trust() {
        let p = parts(
            "/a/../admin?x=1",
            &[("host", "h:8080"), ("x-forwarded-proto", "https")],
        );
        let (ctx, ok) = for_proxy(&p, false);
        assert!(ok.is_ok());
        assert_eq!(ctx.match_url(), "http://h:8080/admin");
        let (ctx, _) = for_proxy(&p, true);
        assert_eq!(ctx.match_url(), "https://h:8080/admin");
    }

    #[test]
    fn original_url_comes_from_forwarded_headers() {
        let p = parts(
            "/hello?a=1",
            &[
                ("host", "access:8080"),
                ("x-forwarded-proto", "http"),
                ("x-forwarded-host", "127.0.0.1"),
                ("x-forwarded-port", "8000"),
            ],
        );
        assert_eq!(
            for_proxy(&p, false).0.original_url,
            "http://127.0.0.1:8000/hello?a=1"
        );
        let p = parts(
            "/hello",
            &[
                ("host", "access:8080"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "example.com"),
                ("x-forwarded-port", "443"),
            ],
        );
        assert_eq!(
            for_proxy(&p, false).0.original_url,
            "https://example.com/hello"
        );
        let p = parts("/hello", &[("host", "access:8080")]);
        assert_eq!(
            for_proxy(&p, false).0.original_url,
            "http://access:8080/hello"
        );
    }

    #[test]
    fn decisions_use_forwarded_request() {
        let p = parts(
            "/decisions?q=1",
            &[
                ("host", "api:4456"),
                ("x-forwarded-method", "POST"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "app"),
                ("x-forwarded-uri", "/x/%2e%2e/y?z=1"),
            ],
        );
        let (ctx, ok) = for_decisions(&p, "");
        assert!(ok.is_ok());
        assert_eq!(ctx.method, Method::POST);
        assert_eq!(ctx.match_url(), "https://app/y");
        let p = parts("/decisions/hello", &[("host", "h")]);
        assert_eq!(for_decisions(&p, "/hello").0.match_url(), "http://h/hello");
    }

    #[test]
    fn connection_named_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("x-user, keep-alive"));
        h.insert("x-user", HeaderValue::from_static("spoofed"));
        h.insert("x-other", HeaderValue::from_static("kept"));
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-user").is_none());
        assert!(h.get("connection").is_none());
        assert_eq!(h.get("x-other").map(|v| v.as_bytes()), Some(&b"kept"[..]));
    }

    #[test]
    fn upgrade_needs_connection_upgrade() {
        let mut h = HeaderMap::new();
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        assert!(upgrade_protocol(&h).is_none());
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert_eq!(
            upgrade_protocol(&h).as_ref().map(HeaderValue::as_bytes),
            Some(&b"websocket"[..])
        );
    }
}
