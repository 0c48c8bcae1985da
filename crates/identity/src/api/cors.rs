//! CORS for the public API (`serve.public.cors`), as Kratos applies it with rs/cors: allowed
//! origins may be `*` or contain one `*` wildcard; preflights are answered here; an allowed
//! origin is echoed back (never `*`), so credentialed requests work.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Compiled CORS settings.
#[derive(Debug, Clone)]
pub struct Cors {
    /// Allowed origins (`*`, exact, or with one `*`).
    pub allowed_origins: Vec<String>,
    /// Allowed methods.
    pub allowed_methods: Vec<String>,
    /// Allowed request headers (compared case-insensitively).
    pub allowed_headers: Vec<String>,
    /// Headers exposed to scripts.
    pub exposed_headers: Vec<String>,
    /// `Access-Control-Allow-Credentials`.
    pub allow_credentials: bool,
    /// Preflight cache lifetime in seconds (0: not sent).
    pub max_age: u64,
}

impl Cors {
    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.allowed_origins.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            match a.split_once('*') {
                _ if a == "*" => true,
                Some((prefix, suffix)) => {
                    origin.len() >= prefix.len() + suffix.len()
                        && origin.starts_with(prefix)
                        && origin.ends_with(suffix)
                }
                None => a == origin,
            }
        })
    }

    fn headers_allowed(&self, requested: &str) -> bool {
        requested
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .all(|h| {
                self.allowed_headers
                    .iter()
                    .any(|a| a == "*" || a.eq_ignore_ascii_case(h))
                    || h.eq_ignore_ascii_case("origin")
            })
    }

    fn common(&self, headers: &mut HeaderMap, origin: &HeaderValue) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if self.allow_credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

/// The middleware; a no-op for requests without an allowed `Origin`.
pub(crate) async fn layer(State(cors): State<Arc<Cors>>, req: Request, next: Next) -> Response {
    let Some(origin) = req.headers().get(header::ORIGIN).cloned() else {
        return next.run(req).await;
    };
    let allowed = origin.to_str().is_ok_and(|o| cors.origin_allowed(o));
    let preflight_method = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|m| m.to_str().ok())
        .map(str::to_string);
    if req.method() == Method::OPTIONS
        && let Some(method) = preflight_method
    {
        let mut res = StatusCode::NO_CONTENT.into_response();
        let requested = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string();
        let method_ok = cors
            .allowed_methods
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&method))
            || method.eq_ignore_ascii_case("OPTIONS");
        let h = res.headers_mut();
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        if allowed && method_ok && cors.headers_allowed(&requested) {
            cors.common(h, &origin);
            if let Ok(v) = HeaderValue::from_str(&method.to_ascii_uppercase()) {
                h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
            }
            if !requested.is_empty()
                && let Ok(v) = HeaderValue::from_str(&requested)
            {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
            }
            if cors.max_age > 0 {
                h.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from(cors.max_age),
                );
            }
        }
        return res;
    }
    let mut res = next.run(req).await;
    if allowed {
        let h = res.headers_mut();
        cors.common(h, &origin);
        if !cors.exposed_headers.is_empty()
            && let Ok(v) = HeaderValue::from_str(&cors.exposed_headers.join(", "))
        {
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_or_by_one_wildcard() {
        let cors = Cors {
            allowed_origins: vec![
                "https://*.example.com".into(),
                "http://127.0.0.1:4455".into(),
            ],
            allowed_methods: vec!["GET".into()],
            allowed_headers: vec!["Content-Type".into()],
            exposed_headers: vec![],
            allow_credentials: true,
            max_age: 0,
        };
        assert!(cors.origin_allowed("https://app.example.com"));
        assert!(cors.origin_allowed("http://127.0.0.1:4455"));
        assert!(!cors.origin_allowed("https://example.com.evil.net"));
        assert!(!cors.origin_allowed("http://127.0.0.1:4456"));
        assert!(cors.headers_allowed("content-type"));
        assert!(!cors.headers_allowed("x-other"));
    }
}
