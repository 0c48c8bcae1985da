//! Request plumbing shared by every handler (Kratos's `x` package): the request context,
//! "is this a JSON request?" negotiation, JSON-or-form bodies, and the open-redirect guard.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;
use http::{HeaderMap, Method, Uri, header};
use serde_json::{Map, Value};
use url::Url;

use crate::error::ApiError;

/// What handlers need to know about a request, extracted without ever failing.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Method.
    pub method: Method,
    /// URI as received.
    pub uri: Uri,
    /// Headers.
    pub headers: HeaderMap,
    /// Peer address, when served with connect info.
    pub peer: Option<SocketAddr>,
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Ctx {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
            peer: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        })
    }
}

impl Ctx {
    /// The first value of query parameter `name`.
    pub fn query(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.uri.query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Kratos's test: the request negotiates `application/json` (or sends JSON).
    pub fn is_json(&self) -> bool {
        if self
            .header(header::CONTENT_TYPE.as_str())
            .is_some_and(|ct| media_type(ct) == "application/json")
        {
            return true;
        }
        prefers_json(self.header(header::ACCEPT.as_str()).unwrap_or(""))
    }

    /// The full URL of this request as the browser saw it (honouring `X-Forwarded-Proto` and
    /// `X-Forwarded-Host`), falling back to the public base URL's scheme and host.
    pub fn request_url(&self, public_base: &Url) -> String {
        let scheme = self
            .header("x-forwarded-proto")
            .map(str::to_string)
            .unwrap_or_else(|| public_base.scheme().to_string());
        let host = self
            .header("x-forwarded-host")
            .or_else(|| self.header(header::HOST.as_str()))
            .map(str::to_string)
            .unwrap_or_else(|| {
                let mut h = public_base.host_str().unwrap_or("localhost").to_string();
                if let Some(p) = public_base.port() {
                    h.push_str(&format!(":{p}"));
                }
                h
            });
        let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
        format!("{scheme}://{host}{path}")
    }

    /// The `User-Agent`.
    pub fn user_agent(&self) -> Option<String> {
        self.header(header::USER_AGENT.as_str()).map(str::to_string)
    }
}

fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Negotiates between Kratos's offers (`text/html`, `text/*`, `*/*`, `application/json`;
/// default HTML): the highest quality wins, and on a tie the more specific match wins.
fn prefers_json(accept: &str) -> bool {
    if accept.trim().is_empty() {
        return false;
    }
    // (q, specificity) of the best match for each offer.
    let score = |offer: &str| -> Option<(f32, u8)> {
        let (otype, osub) = offer.split_once('/').unwrap_or((offer, ""));
        let mut best: Option<(f32, u8)> = None;
        for spec in accept.split(',') {
            let mut parts = spec.split(';');
            let range = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|v| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let (rtype, rsub) = range.split_once('/').unwrap_or((range.as_str(), ""));
            let specificity = if rtype == "*" && rsub == "*" {
                0
            } else if rtype == otype && rsub == "*" {
                1
            } else if rtype == otype && rsub == osub {
                2
            } else {
                continue;
            };
            if best.is_none_or(|(bq, bs)| specificity > bs || (specificity == bs && q > bq)) {
                best = Some((q, specificity));
            }
        }
        best.filter(|(q, _)| *q > 0.0)
    };
    let json = score("application/json");
    let html = ["text/html", "text/*", "*/*"]
        .iter()
        .filter_map(|o| score(o))
        .fold(None, |acc: Option<(f32, u8)>, s| match acc {
            Some(a) if a.0 > s.0 || (a.0 == s.0 && a.1 >= s.1) => Some(a),
            _ => Some(s),
        });
    match (json, html) {
        (Some(_), None) => true,
        (Some(j), Some(h)) => j.0 > h.0 || (j.0 == h.0 && j.1 > h.1),
        _ => false,
    }
}

/// Kratos's request body limit on both ports.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

/// Reads a request body up to [`MAX_BODY_BYTES`]; larger bodies are a 413 in Kratos's shape.
pub async fn read_body(body: axum::body::Body) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(http::StatusCode::PAYLOAD_TOO_LARGE)
                .reason(format!("The request body exceeds {MAX_BODY_BYTES} bytes."))
        })
}

/// Parses a JSON or `application/x-www-form-urlencoded` body into a JSON object; form keys
/// with dots (`traits.email`) become nested objects, as Kratos decodes them.
pub fn parse_body(ctx: &Ctx, body: &[u8]) -> Result<Value, ApiError> {
    let ct = ctx
        .header(header::CONTENT_TYPE.as_str())
        .map(media_type)
        .unwrap_or_default();
    if ct == "application/json" {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Unable to decode JSON payload: {e}")))?;
        if !v.is_object() {
            return Err(ApiError::bad_request(
                "Unable to decode JSON payload: expected an object",
            ));
        }
        return Ok(v);
    }
    if ct == "application/x-www-form-urlencoded" || (ct.is_empty() && !body.is_empty()) {
        let mut root = Value::Object(Map::new());
        for (k, v) in form_urlencoded::parse(body) {
            set_dotted(&mut root, &k, Value::String(v.into_owned()));
        }
        return Ok(root);
    }
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    Err(
        ApiError::new(http::StatusCode::UNSUPPORTED_MEDIA_TYPE).reason(format!(
            "Unable to decode body because HTTP Request Header Content-Type \"{ct}\" is unknown."
        )),
    )
}

fn set_dotted(root: &mut Value, key: &str, value: Value) {
    let mut cur = root;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        if i + 1 == parts.len() {
            // First occurrence wins, like Go's url.Values.Get.
            map.entry(part.to_string()).or_insert(value);
            return;
        }
        cur = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// The string at `key` in a parsed body.
pub fn body_str<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

/// Resolves where to send the browser: `return_to` when the allow-list permits it, else
/// `default`. Kratos's rule: same scheme, same host (or a `*.domain` wildcard), and a path
/// below the allowed one; with an empty allow-list `return_to` is ignored.
pub fn secure_redirect(
    return_to: Option<&str>,
    default: &Url,
    allowed: &[String],
    public_base: &Url,
) -> Result<Url, ApiError> {
    let Some(raw) = return_to.filter(|s| !s.trim().is_empty()) else {
        return Ok(default.clone());
    };
    if allowed.is_empty() {
        return Ok(default.clone());
    }
    let forbidden = || {
        ApiError::bad_request(format!("Requested return_to URL \"{raw}\" is not allowed."))
            .id("self_service_flow_return_to_forbidden")
    };
    let target = default.join(raw).map_err(|_| forbidden())?;
    let mut candidates: Vec<Url> = allowed
        .iter()
        .filter_map(|a| default.join(a).ok())
        .collect();
    candidates.push(default.clone());
    if let Ok(ss) = public_base.join("self-service") {
        candidates.push(ss);
    }
    let ok = candidates.iter().any(|a| {
        let host_ok = match (a.host_str(), target.host_str()) {
            (Some(ah), Some(th)) => match ah.strip_prefix("*.") {
                Some(domain) => th.ends_with(&format!(".{domain}")),
                None => {
                    ah.eq_ignore_ascii_case(th)
                        && a.port_or_known_default() == target.port_or_known_default()
                }
            },
            _ => false,
        };
        a.scheme().eq_ignore_ascii_case(target.scheme())
            && host_ok
            && target.path().starts_with(a.path().trim_end_matches('/'))
    });
    if ok { Ok(target) } else { Err(forbidden()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_matches_kratos() {
        assert!(prefers_json("application/json"));
        assert!(prefers_json("application/json, text/plain, */*"));
        assert!(!prefers_json(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(!prefers_json("*/*"));
        assert!(!prefers_json(""));
        assert!(prefers_json("text/html;q=0.5, application/json"));
    }

    #[test]
    fn form_keys_nest() {
        let ctx = Ctx {
            method: Method::POST,
            uri: Uri::from_static("/"),
            headers: {
                let mut h = HeaderMap::new();
                h.insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                h
            },
            peer: None,
        };
        let v =
            parse_body(&ctx, b"traits.email=a%40b.c&traits.name.first=A&password=x").expect("form");
        assert_eq!(v["traits"]["email"], "a@b.c");
        assert_eq!(v["traits"]["name"]["first"], "A");
        assert_eq!(v["password"], "x");
    }

    #[test]
    fn redirects_stay_on_the_allow_list() {
        let default = Url::parse("http://127.0.0.1:4455/").expect("url");
        let base = Url::parse("http://127.0.0.1:4433/").expect("url");
        let allowed = vec![
            "http://127.0.0.1:4455".to_string(),
            "https://*.example.com/app".into(),
        ];
        let ok =
            |r: &str| secure_redirect(Some(r), &default, &allowed, &base).map(|u| u.to_string());
        assert_eq!(
            ok("http://127.0.0.1:4455/welcome").ok().as_deref(),
            Some("http://127.0.0.1:4455/welcome")
        );
        assert_eq!(
            ok("/hello").ok().as_deref(),
            Some("http://127.0.0.1:4455/hello")
        );
        assert!(ok("https://a.example.com/app/x").is_ok());
        assert!(ok("https://evil.com/").is_err());
        assert!(ok("http://127.0.0.1:9999/").is_err());
        assert!(ok("https://a.example.com/other").is_err());
        assert_eq!(
            secure_redirect(Some("https://evil.com"), &default, &[], &base)
                .map(|u| u.to_string())
                .ok()
                .as_deref(),
            Some("http://127.0.0.1:4455/")
        );
    }
}
