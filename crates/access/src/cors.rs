//! `serve.proxy.cors` / `serve.api.cors`: Oathkeeper's rs/cors settings as a `tower-http`
//! CORS layer in front of the router, so preflights are answered before any rule matching
//! (a preflight carries no credentials and would otherwise be refused by the pipeline).
//!
//! Origins may contain one `*` wildcard each (`https://*.example.com`); a matching origin is
//! echoed back (never a literal `*`), which is also what makes `allow_credentials` legal.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;
use serde_json::Value;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer, ExposeHeaders};

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    enabled: bool,
    #[serde(default = "any_origin")]
    allowed_origins: Vec<String>,
    #[serde(default = "methods")]
    allowed_methods: Vec<String>,
    #[serde(default = "headers")]
    allowed_headers: Vec<String>,
    #[serde(default = "exposed")]
    exposed_headers: Vec<String>,
    #[serde(default)]
    allow_credentials: bool,
    #[serde(default)]
    max_age: u64,
}

fn any_origin() -> Vec<String> {
    vec!["*".into()]
}
fn methods() -> Vec<String> {
    ["GET", "POST", "PUT", "PATCH", "DELETE"]
        .map(String::from)
        .to_vec()
}
fn headers() -> Vec<String> {
    vec!["Authorization".into(), "Content-Type".into()]
}
fn exposed() -> Vec<String> {
    vec!["Content-Type".into()]
}

/// The layer for a listener's `cors` block; `None` when absent or disabled.
pub fn layer(config: Option<&Value>) -> Result<Option<CorsLayer>, String> {
    let Some(config) = config else {
        return Ok(None);
    };
    let c: Config = serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
    if !c.enabled {
        return Ok(None);
    }
    let names = |list: &[String], what: &str| {
        list.iter()
            .map(|h| {
                HeaderName::try_from(h.as_str())
                    .map_err(|_| format!("{what}: invalid header name {h:?}"))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let methods = c
        .allowed_methods
        .iter()
        .map(|m| {
            Method::from_bytes(m.as_bytes())
                .map_err(|_| format!("allowed_methods: invalid method {m:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let allow_headers = if c.allowed_headers.iter().any(|h| h == "*") {
        AllowHeaders::mirror_request()
    } else {
        AllowHeaders::list(names(&c.allowed_headers, "allowed_headers")?)
    };
    let origins = c.allowed_origins;
    let origin = AllowOrigin::predicate(move |origin: &HeaderValue, _| {
        origin
            .to_str()
            .is_ok_and(|o| origins.iter().any(|pattern| origin_matches(pattern, o)))
    });
    let mut layer = CorsLayer::new()
        .allow_origin(origin)
        .allow_methods(methods)
        .allow_headers(allow_headers)
        .expose_headers(ExposeHeaders::list(names(
            &c.exposed_headers,
            "exposed_headers",
        )?))
        .allow_credentials(c.allow_credentials);
    if c.max_age > 0 {
        layer = layer.max_age(Duration::from_secs(c.max_age));
    }
    Ok(Some(layer))
}

/// rs/cors origin matching: `*` alone allows all; otherwise one `*` matches any run.
fn origin_matches(pattern: &str, origin: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.split_once('*') {
        None => pattern.eq_ignore_ascii_case(origin),
        Some((prefix, suffix)) => {
            let o = origin.to_ascii_lowercase();
            o.len() >= prefix.len() + suffix.len()
                && o.starts_with(&prefix.to_ascii_lowercase())
                && o.ends_with(&suffix.to_ascii_lowercase())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_with_one_wildcard() {
        assert!(origin_matches("*", "http://a"));
        assert!(origin_matches(
            "https://*.example.com",
            "https://app.example.com"
        ));
        assert!(!origin_matches(
            "https://*.example.com",
            "https://example.com"
        ));
        assert!(!origin_matches(
            "https://*.example.com",
            "http://app.example.com"
        ));
        assert!(origin_matches("http://A.b", "http://a.b"));
    }
}
