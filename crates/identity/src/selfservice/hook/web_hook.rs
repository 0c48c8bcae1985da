//! The `web_hook` hook: an HTTP call to another system when a flow starts (`before`) or
//! succeeds (`after`), with a JSON body rendered by a Jsonnet template from `ctx` (the flow,
//! the identity, the session, the request's URL, method, headers and cookies), as Kratos does.
//!
//! Configurations are compiled once (templates read by [`crate::fetcher`] from `file://`,
//! `base64://` or `http(s)://`; URL, headers and auth checked). A hook with `response.ignore` runs in the
//! background and cannot fail the flow; otherwise a 4xx/5xx answer fails the flow, and with
//! `can_interrupt` (or `response.parse`) a body in Kratos's shape
//! (`{"messages":[{"instance_ptr":"#/traits/email","messages":[…]}]}`) becomes the form's
//! messages (any 4xx interrupts, with a generic message when the body has none). With
//! `response.parse`, a 2xx answer `{"identity": {"traits", "metadata_public",
//! "metadata_admin"}}` may change the identity before it is stored ([`identity_changes`]).
//! A template that raises `error "cancel"` skips the call. Calls go through the shared client
//! (OS trust roots).

use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use base64::Engine;
use http::{HeaderName, HeaderValue};
use portcullis_core::Secret;
use portcullis_http::UpstreamClient;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::outbound;
use crate::text::Text;
use crate::x::Ctx;

/// How long a hook call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The largest hook answer read.
const MAX_ANSWER: usize = 1 << 20;

/// The request headers passed to templates (`ctx.request_headers`); others (cookies,
/// authorization) stay private.
const FORWARDED_HEADERS: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "content-length",
    "content-type",
    "origin",
    "priority",
    "referer",
    "sec-ch-ua",
    "sec-ch-ua-mobile",
    "sec-ch-ua-platform",
    "sec-fetch-dest",
    "sec-fetch-mode",
    "sec-fetch-site",
    "sec-fetch-user",
    "true-client-ip",
    "user-agent",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
];

/// A compiled `web_hook` configuration.
#[derive(Debug, Clone)]
pub struct WebHook {
    /// `config.id`, for logs.
    pub id: Option<String>,
    url: String,
    uri: http::Uri,
    method: http::Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The Jsonnet template's source.
    body: Option<String>,
    auth: Option<Auth>,
    ignore: bool,
    parse: bool,
    can_interrupt: bool,
}

/// `auth`, compiled to the header it adds (a secret, kept out of `Debug`).
#[derive(Debug, Clone)]
struct Auth {
    header: HeaderName,
    value: Secret<String>,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `method` is not an HTTP method.
    #[error("invalid HTTP method {0:?}")]
    Method(String),
    /// The body template could not be read.
    #[error("reading the body template {0}: {1}")]
    Body(String, String),
    /// An unknown `auth.type`.
    #[error("unsupported auth type {0:?}")]
    Auth(String),
    /// Anything else malformed.
    #[error("{0}")]
    Invalid(String),
}

/// The identity changes a `response.parse` hook answered with; `None` leaves a field as it is,
/// `Some(Value::Null)` clears metadata.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct IdentityChanges {
    /// `identity.traits`.
    pub traits: Option<Value>,
    /// `identity.metadata_public`.
    pub metadata_public: Option<Value>,
    /// `identity.metadata_admin`.
    pub metadata_admin: Option<Value>,
}

/// What a failed hook means for its flow.
#[derive(Debug)]
pub enum HookError {
    /// The hook interrupted the flow with these messages: `(node name, messages)`, the name
    /// empty for messages about the whole form.
    Interrupted(Vec<(String, Vec<Text>)>),
    /// The call or the template failed.
    Failed(String),
}

#[derive(Deserialize)]
struct RawWebHook {
    id: Option<String>,
    url: String,
    method: String,
    #[serde(default)]
    headers: Map<String, Value>,
    body: Option<String>,
    auth: Option<RawAuth>,
    #[serde(default)]
    response: RawResponse,
    #[serde(default)]
    can_interrupt: bool,
}

#[derive(Deserialize, Default)]
struct RawResponse {
    #[serde(default)]
    ignore: bool,
    #[serde(default)]
    parse: bool,
}

#[derive(Deserialize)]
struct RawAuth {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    config: Map<String, Value>,
}

impl WebHook {
    /// Compiles a hook's `config`; relative `file://` paths are read from `base_dir`.
    pub fn compile(config: &Value, base_dir: &Path) -> Result<Self, ConfigError> {
        let raw: RawWebHook = serde_json::from_value(config.clone())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let method = http::Method::from_bytes(raw.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| ConfigError::Method(raw.method.clone()))?;
        let uri: http::Uri = raw
            .url
            .parse()
            .map_err(|e| ConfigError::Invalid(format!("url {:?}: {e}", raw.url)))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(ConfigError::Invalid(format!(
                "url {:?} must be an absolute http:// or https:// URL",
                raw.url
            )));
        }
        let body = raw
            .body
            .as_deref()
            .filter(|b| !b.is_empty())
            .map(|b| read_template(b, base_dir))
            .transpose()?;
        let auth = raw.auth.map(compile_auth).transpose()?;
        let headers = raw
            .headers
            .into_iter()
            .map(|(k, v)| header(&k, v.as_str().unwrap_or_default()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            id: raw.id,
            url: raw.url,
            uri,
            method,
            headers,
            body,
            auth,
            ignore: raw.response.ignore,
            parse: raw.response.parse,
            can_interrupt: raw.can_interrupt,
        })
    }

    /// Whether the hook may stop its flow (`can_interrupt` or `response.parse`): such
    /// registration hooks run before the identity is stored.
    pub fn interrupts(&self) -> bool {
        self.can_interrupt || self.parse
    }

    /// Runs the hook with template context `ctx` over `client`; `Ok(Some(body))` is the 2xx
    /// answer of a `response.parse` hook (see [`identity_changes`]).
    pub async fn execute(
        &self,
        client: &UpstreamClient,
        ctx: &Value,
    ) -> Result<Option<bytes::Bytes>, HookError> {
        let body = match &self.body {
            Some(template) => match super::jsonnet::render(template, ctx) {
                Ok(v) => Some(v),
                Err(e) if e.contains("cancel") => {
                    tracing::debug!(hook = ?self.id, url = %self.url, "web hook cancelled by its template");
                    return Ok(None);
                }
                Err(e) => return Err(HookError::Failed(format!("web hook template: {e}"))),
            },
            None => None,
        };
        let request = self.request(body).map_err(HookError::Failed)?;
        if self.ignore {
            let (id, url, client) = (self.id.clone(), self.url.clone(), client.clone());
            tokio::spawn(async move {
                match outbound::call(&client, request, TIMEOUT, MAX_ANSWER).await {
                    Ok((status, _)) if status.as_u16() < 400 => {}
                    Ok((status, _)) => {
                        tracing::warn!(hook = ?id, %url, status = status.as_u16(), "web hook answered with an error (ignored)");
                    }
                    Err(e) => {
                        tracing::warn!(hook = ?id, %url, error = %e, "web hook call failed (ignored)");
                    }
                }
            });
            return Ok(None);
        }
        let (status, answer) = outbound::call(client, request, TIMEOUT, MAX_ANSWER)
            .await
            .map_err(|e| {
                tracing::warn!(hook = ?self.id, url = %self.url, error = %e, "web hook call failed");
                HookError::Failed(format!("web hook call failed: {e}"))
            })?;
        if status.as_u16() < 400 {
            return Ok(self.parse.then_some(answer));
        }
        tracing::info!(hook = ?self.id, url = %self.url, status = status.as_u16(), "web hook answered with an error");
        if self.interrupts() {
            // A refusal (4xx) interrupts even without messages in Kratos's shape: the form
            // then says only that a hook interrupted the flow. A 5xx is a failing hook
            // unless it carries such messages.
            match parse_messages(&answer) {
                Some(messages) => return Err(HookError::Interrupted(messages)),
                None if status.is_client_error() => return Err(HookError::Interrupted(Vec::new())),
                None => {}
            }
        }
        Err(HookError::Failed(format!(
            "web hook failed with status code {}",
            status.as_u16()
        )))
    }

    /// The call: method, URL, configured headers, auth, and the rendered body as JSON.
    fn request(&self, body: Option<Value>) -> Result<http::Request<Body>, String> {
        let mut req = http::Request::builder()
            .method(self.method.clone())
            .uri(self.uri.clone());
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if let Some(auth) = &self.auth {
            let value = HeaderValue::from_str(auth.value.expose())
                .map_err(|e| format!("web hook auth value: {e}"))?;
            req = req.header(&auth.header, value);
        }
        let body = match body {
            Some(body) => {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        req.body(body).map_err(|e| format!("web hook request: {e}"))
    }
}

/// A configured header, checked once.
fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), ConfigError> {
    let n = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ConfigError::Invalid(format!("invalid header name {name:?}")))?;
    let v = HeaderValue::from_str(value)
        .map_err(|_| ConfigError::Invalid(format!("invalid value for header {name:?}")))?;
    Ok((n, v))
}

fn compile_auth(raw: RawAuth) -> Result<Auth, ConfigError> {
    let field = |name: &str| -> String {
        raw.config
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (header, value) = match raw.kind.as_str() {
        "api_key" if field("in") == "cookie" => (
            http::header::COOKIE,
            format!("{}={}", field("name"), field("value")),
        ),
        "api_key" => {
            let name = field("name");
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ConfigError::Invalid(format!("invalid api_key name {name:?}")))?;
            (header, field("value"))
        }
        "basic_auth" => {
            let pair = format!("{}:{}", field("user"), field("password"));
            (
                http::header::AUTHORIZATION,
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ),
            )
        }
        other => return Err(ConfigError::Auth(other.to_string())),
    };
    if HeaderValue::from_str(&value).is_err() {
        return Err(ConfigError::Invalid(format!(
            "the {} credentials are not a valid header value",
            raw.kind
        )));
    }
    Ok(Auth {
        header,
        value: Secret::new(value),
    })
}

/// Reads the body template through the shared URL loader ([`crate::fetcher`]: `file://`,
/// `base64://`, `http(s)://` or, deprecated, a bare path).
fn read_template(uri: &str, base_dir: &Path) -> Result<String, ConfigError> {
    crate::fetcher::fetch_text(uri, base_dir)
        .map_err(|e| ConfigError::Body(uri.to_string(), e.to_string()))
}

/// Kratos's interrupting answer: `{"messages": [{"instance_ptr": "#/traits/email",
/// "messages": [{"id", "text", "type", "context"}]}]}`; `#/traits/email` names the node
/// `traits.email`, `#/` (or none) the whole form.
fn parse_messages(body: &[u8]) -> Option<Vec<(String, Vec<Text>)>> {
    #[derive(Deserialize)]
    struct Answer {
        messages: Vec<Group>,
    }
    #[derive(Deserialize)]
    struct Group {
        #[serde(default)]
        instance_ptr: String,
        #[serde(default)]
        messages: Vec<Text>,
    }
    let answer: Answer = serde_json::from_slice(body).ok()?;
    Some(
        answer
            .messages
            .into_iter()
            .map(|g| {
                let name = g
                    .instance_ptr
                    .trim_start_matches('#')
                    .trim_start_matches('/')
                    .replace('/', ".");
                (name, g.messages)
            })
            .collect(),
    )
}

/// The identity changes in a `response.parse` hook's 2xx answer: none for an empty answer or
/// JSON without an `identity` object, else the fields that object names; `Err` for an answer
/// that is not JSON or whose `identity` is not an object.
pub fn identity_changes(body: &[u8]) -> Result<Option<IdentityChanges>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let answer: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let identity = match answer.get("identity") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(identity)) => identity,
        Some(_) => return Err("\"identity\" is not an object".into()),
    };
    Ok(Some(IdentityChanges {
        traits: identity.get("traits").cloned(),
        metadata_public: identity.get("metadata_public").cloned(),
        metadata_admin: identity.get("metadata_admin").cloned(),
    }))
}

/// The template context Kratos gives hooks: `flow`, `request_headers`, `request_method`,
/// `request_url`, `request_cookies`, and, where the flow has them, `identity` and `session`.
pub fn context(
    ctx: &Ctx,
    public_base: &url::Url,
    flow: &Value,
    identity: Option<Value>,
    session: Option<Value>,
) -> Value {
    let mut headers = Map::new();
    for name in FORWARDED_HEADERS {
        let values: Vec<Value> = ctx
            .headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| Value::String(v.to_string()))
            .collect();
        if !values.is_empty() {
            headers.insert(canonical(name), Value::Array(values));
        }
    }
    let mut cookies = Map::new();
    for pair in ctx
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|h| h.split(';'))
    {
        if let Some((k, v)) = pair.split_once('=') {
            cookies.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
        }
    }
    let mut v = json!({
        "flow": flow,
        "request_headers": headers,
        "request_method": ctx.method.as_str(),
        "request_url": ctx.request_url(public_base),
        "request_cookies": cookies,
    });
    if let Some(map) = v.as_object_mut() {
        if let Some(i) = identity {
            map.insert("identity".into(), i);
        }
        if let Some(s) = session {
            map.insert("session".into(), s);
        }
    }
    v
}

/// `user-agent` → `User-Agent`, as Go's `http.Header` spells names.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_compile_and_answers_parse() {
        let hook = WebHook::compile(
            &json!({"url": "http://127.0.0.1:1/x", "method": "post",
                "body": "base64://ZnVuY3Rpb24oY3R4KSB7fQ==",
                "auth": {"type": "basic_auth", "config": {"user": "u", "password": "p"}},
                "can_interrupt": true}),
            Path::new("."),
        )
        .expect("compiles");
        assert_eq!(hook.method, http::Method::POST);
        assert_eq!(hook.body.as_deref(), Some("function(ctx) {}"));
        assert!(hook.can_interrupt && !hook.ignore);
        let auth = hook.auth.as_ref().expect("auth");
        assert_eq!(auth.header, http::header::AUTHORIZATION);
        assert_eq!(auth.value.expose(), "Basic dTpw");
        for bad in [
            json!({"url": "ftp://x/", "method": "GET"}),
            json!({"url": "/relative", "method": "GET"}),
            json!({"url": "http://x", "method": "GET", "headers": {"bad name": "v"}}),
            json!({"url": "http://x", "method": "GET", "headers": {"X-A": "line\nbreak"}}),
            json!({"url": "http://x", "method": "GET",
                "auth": {"type": "api_key", "config": {"name": "a b", "value": "v"}}}),
        ] {
            assert!(
                matches!(
                    WebHook::compile(&bad, Path::new(".")),
                    Err(ConfigError::Invalid(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            WebHook::compile(
                &json!({"url": "http://x", "method": "GET", "auth": {"type": "oauth"}}),
                Path::new(".")
            ),
            Err(ConfigError::Auth(_))
        ));
        assert!(matches!(
            WebHook::compile(
                &json!({"url": "http://x", "method": "GET", "body": "file:///nope/none.jsonnet"}),
                Path::new(".")
            ),
            Err(ConfigError::Body(..))
        ));
        let parsed = parse_messages(
            br##"{"messages":[{"instance_ptr":"#/traits/email","messages":[{"id":123,"text":"taken","type":"error"}]},{"instance_ptr":"#/","messages":[]}]}"##,
        )
        .expect("parses");
        assert_eq!(parsed[0].0, "traits.email");
        assert_eq!(parsed[0].1[0].id, 123);
        assert_eq!(parsed[1].0, "");
        assert!(parse_messages(b"not json").is_none());
        assert_eq!(identity_changes(b" \n"), Ok(None));
        assert_eq!(identity_changes(br#"{"other": 1}"#), Ok(None));
        assert_eq!(
            identity_changes(br#"{"identity": {"traits": {"a": 1}, "metadata_admin": null}}"#),
            Ok(Some(IdentityChanges {
                traits: Some(json!({"a": 1})),
                metadata_public: None,
                metadata_admin: Some(Value::Null),
            }))
        );
        assert!(identity_changes(b"<html>").is_err());
        assert!(identity_changes(br#"{"identity": []}"#).is_err());
        assert_eq!(canonical("sec-ch-ua-mobile"), "Sec-Ch-Ua-Mobile");
    }
}
