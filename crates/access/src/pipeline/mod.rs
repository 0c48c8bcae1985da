//! The access pipeline, one module per handler named by its Oathkeeper config id: a rule runs
//! its authenticators in order (only "not responsible" falls through), one authorizer, its
//! mutators in order, and on any failure the error handlers.
//!
//! Handlers form closed enums rather than trait objects: the set is fixed by Oathkeeper's
//! config schema, each rule's handlers are compiled once from the merged (global + rule)
//! config, and dispatch is a `match`.

pub mod authn;
pub mod authz;
pub mod errors;
pub mod mutate;
pub mod remote;

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{Map, Value};

use crate::session::SessionResolver;

/// The four handler kinds of Oathkeeper's pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `authenticators.<id>`.
    Authenticator,
    /// `authorizers.<id>`.
    Authorizer,
    /// `mutators.<id>`.
    Mutator,
    /// `errors.handlers.<id>`.
    ErrorHandler,
}

impl Kind {
    /// The JSON pointer of this kind's handlers in the config file.
    pub fn config_pointer(self) -> &'static str {
        match self {
            Kind::Authenticator => "/authenticators",
            Kind::Authorizer => "/authorizers",
            Kind::Mutator => "/mutators",
            Kind::ErrorHandler => "/errors/handlers",
        }
    }

    /// The word used in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Authenticator => "authenticator",
            Kind::Authorizer => "authorizer",
            Kind::Mutator => "mutator",
            Kind::ErrorHandler => "error handler",
        }
    }
}

/// An error that ends a pipeline, shaped like Oathkeeper's (herodot) errors.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct PipelineError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The detailed message (shown by the `json` handler only when `verbose`).
    pub message: String,
    /// Why, when known (verbose only).
    pub reason: Option<String>,
    /// Headers to pass to the client, e.g. `Retry-After` of a rate-limited session check.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl PipelineError {
    fn new(status: StatusCode, message: &str) -> Self {
        Self {
            status,
            message: message.to_string(),
            reason: None,
            headers: Vec::new(),
        }
    }

    /// 401 "Access credentials are invalid".
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Access credentials are invalid")
    }

    /// 403 "Access credentials are not sufficient to access this resource".
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Access credentials are not sufficient to access this resource",
        )
    }

    /// 404 when no rule matches.
    pub fn no_rule() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Requested url does not match any rules",
        )
    }

    /// 500 when several rules match.
    pub fn several_rules() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Expected exactly one rule but found multiple rules",
        )
    }

    /// 500 with a reason.
    pub fn internal(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An internal server error occurred, please contact the system administrator",
        )
        .with_reason(reason)
    }

    /// 400 with a reason.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "The request was malformed or contained invalid parameters",
        )
        .with_reason(reason)
    }

    /// 502 when the upstream cannot be reached.
    pub fn bad_gateway(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "The upstream could not be reached").with_reason(reason)
    }

    /// 429 passed through from a rate-limited session store, with its rate-limit headers.
    pub fn too_many_requests(headers: Vec<(HeaderName, HeaderValue)>) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
        e.headers = headers;
        e
    }

    /// Adds a reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// The status text (`Unauthorized`).
    pub fn status_text(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Unknown")
    }

    /// The error name used by `when.error`: the status text lower-cased with `_`
    /// (`internal_server_error`).
    pub fn kind_name(&self) -> String {
        self.status_text()
            .to_ascii_lowercase()
            .replace([' ', '-'], "_")
    }
}

/// The request as the pipeline sees it: already normalised for matching.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The method (upper-case as received).
    pub method: Method,
    /// `http` or `https`.
    pub scheme: String,
    /// The `Host` header, verbatim (with port).
    pub host: String,
    /// The percent-decoded, cleaned path used for matching.
    pub path: String,
    /// The raw query, if any (never matched).
    pub query: Option<String>,
    /// The incoming headers.
    pub headers: HeaderMap,
    /// The URL the client asked for, rebuilt from forwarded headers; used for `return_to`.
    pub original_url: String,
}

impl RequestContext {
    /// The string rules are matched against: `scheme://host/path`.
    pub fn match_url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.path)
    }
}

/// Oathkeeper's `AuthenticationSession`: what authenticators establish and mutators read.
#[derive(Debug, Clone, Default)]
pub struct AuthenticationSession {
    /// The subject (e.g. the identity id).
    pub subject: String,
    /// Extra data from the authenticator (e.g. the whole Kratos session).
    pub extra: Map<String, Value>,
    /// Headers to set on the upstream request (proxy) or response (`/decisions`).
    pub header: HeaderMap,
    /// Capture groups of the matched `regexp` rule.
    pub captures: Vec<String>,
}

impl AuthenticationSession {
    /// The session as templates see it, with Go's field names.
    pub fn template_data(&self, request: &RequestContext) -> Value {
        let headers = |map: &HeaderMap| {
            let mut out = Map::new();
            for name in map.keys() {
                let values: Vec<Value> = map
                    .get_all(name)
                    .iter()
                    .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect();
                out.insert(canonical_header(name.as_str()), Value::Array(values));
            }
            Value::Object(out)
        };
        serde_json::json!({
            "Subject": self.subject,
            "Extra": self.extra,
            "Header": headers(&self.header),
            "MatchContext": {
                "RegexpCaptureGroups": self.captures,
                "Method": request.method.as_str(),
                "Header": headers(&request.headers),
                "URL": {
                    "Scheme": request.scheme,
                    "Host": request.host,
                    "Path": request.path,
                    "RawQuery": request.query.clone().unwrap_or_default(),
                },
            },
        })
    }
}

/// Go's canonical header spelling (`x-user-id` → `X-User-Id`).
pub fn canonical_header(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

/// What compiling a handler may use.
#[derive(Clone)]
pub struct CompileContext {
    /// The HTTP client for session checks.
    pub client: portcullis_http::UpstreamClient,
    /// In-process session resolvers by `check_session_url`.
    pub resolvers: Vec<(url::Url, Arc<dyn SessionResolver>)>,
    /// The shared JSON Web Key Set cache.
    pub fetcher: Arc<crate::credentials::Fetcher>,
    /// The OAuth 2.0 caches (introspection answers, client credentials tokens), shared by
    /// every rule and kept across rule reloads.
    pub oauth2: Arc<authn::oauth2::Caches>,
}

/// A Go duration as the schema allows it (`^[0-9]+(ns|us|ms|s|m|h)$`, e.g. `30s`, `15m`).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration {text:?} has no unit"))?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid duration {text:?}"))?;
    let d = std::time::Duration::from_nanos;
    Ok(match unit {
        "ns" => d(n),
        "us" | "µs" => std::time::Duration::from_micros(n),
        "ms" => std::time::Duration::from_millis(n),
        "s" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n.saturating_mul(60)),
        "h" => std::time::Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("invalid duration unit in {text:?}")),
    })
}

/// Deep-merges `overlay` onto `base`: objects merged key by key, everything else (arrays
/// included) replaced — Oathkeeper's global + rule handler config merge.
pub fn merge(base: &Value, overlay: &Value) -> Value {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match out.get(k) {
                    Some(existing) => merge(existing, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (_, Value::Null) => base.clone(),
        _ => overlay.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_merges_objects_and_replaces_arrays() {
        let global =
            json!({"to": "a", "when": [{"error": ["unauthorized"]}], "nested": {"x": 1, "y": 2}});
        let rule = json!({"to": "b", "nested": {"y": 3}, "when": []});
        assert_eq!(
            merge(&global, &rule),
            json!({"to": "b", "when": [], "nested": {"x": 1, "y": 3}})
        );
        assert_eq!(merge(&global, &Value::Null), global);
    }

    #[test]
    fn error_names_follow_status_text() {
        assert_eq!(
            PipelineError::internal("x").kind_name(),
            "internal_server_error"
        );
        assert_eq!(PipelineError::no_rule().kind_name(), "not_found");
        assert_eq!(PipelineError::unauthorized().kind_name(), "unauthorized");
    }

    #[test]
    fn go_durations_parse() {
        use std::time::Duration;
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn header_names_are_canonicalised() {
        assert_eq!(canonical_header("x-user-id"), "X-User-Id");
    }
}
