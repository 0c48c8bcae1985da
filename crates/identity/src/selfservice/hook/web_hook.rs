//! The `web_hook` hook: an HTTP call to another system when a flow starts (`before`) or
//! succeeds (`after`), with a JSON body rendered by a Jsonnet template from `ctx` (the flow,
//! the identity, the session, the request's URL, method, headers and cookies), as Kratos does.
//!
//! Configurations are compiled once (templates read by [`crate::fetcher`] from `file://`,
//! `base64://` or `http(s)://`). A hook with `response.ignore` runs in the background and cannot fail the flow;
//! otherwise a 4xx/5xx answer fails the flow, and with `can_interrupt` (or `response.parse`) a
//! body in Kratos's shape (`{"messages":[{"instance_ptr":"#/traits/email","messages":[…]}]}`)
//! becomes the form's messages. A template that raises `error "cancel"` skips the call.

use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use portcullis_core::Secret;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::text::Text;
use crate::x::Ctx;

/// How long a hook call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

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

static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
});

/// A compiled `web_hook` configuration.
#[derive(Debug, Clone)]
pub struct WebHook {
    /// `config.id`, for logs.
    pub id: Option<String>,
    url: String,
    method: http::Method,
    headers: Vec<(String, String)>,
    /// The Jsonnet template's source.
    body: Option<String>,
    auth: Option<Auth>,
    ignore: bool,
    parse: bool,
    can_interrupt: bool,
}

#[derive(Debug, Clone)]
enum Auth {
    ApiKey {
        name: String,
        value: Secret<String>,
        in_cookie: bool,
    },
    Basic {
        user: String,
        password: Secret<String>,
    },
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
        let body = raw
            .body
            .as_deref()
            .filter(|b| !b.is_empty())
            .map(|b| read_template(b, base_dir))
            .transpose()?;
        let auth = raw.auth.map(compile_auth).transpose()?;
        Ok(Self {
            id: raw.id,
            url: raw.url,
            method,
            headers: raw
                .headers
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
                .collect(),
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

    /// Runs the hook with template context `ctx`.
    pub async fn execute(&self, ctx: &Value) -> Result<(), HookError> {
        let body = match &self.body {
            Some(template) => match super::jsonnet::render(template, ctx) {
                Ok(v) => Some(v),
                Err(e) if e.contains("cancel") => {
                    tracing::debug!(hook = ?self.id, url = %self.url, "web hook cancelled by its template");
                    return Ok(());
                }
                Err(e) => return Err(HookError::Failed(format!("web hook template: {e}"))),
            },
            None => None,
        };
        let mut req = CLIENT.request(self.method.clone(), &self.url);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        match &self.auth {
            Some(Auth::ApiKey {
                name,
                value,
                in_cookie: false,
            }) => req = req.header(name, value.expose()),
            Some(Auth::ApiKey {
                name,
                value,
                in_cookie: true,
            }) => req = req.header(http::header::COOKIE, format!("{name}={}", value.expose())),
            Some(Auth::Basic { user, password }) => {
                req = req.basic_auth(user, Some(password.expose()));
            }
            None => {}
        }
        if let Some(body) = body {
            req = req
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        if self.ignore {
            let (id, url) = (self.id.clone(), self.url.clone());
            tokio::spawn(async move {
                match req.send().await {
                    Ok(res) if res.status().is_success() => {}
                    Ok(res) => {
                        tracing::warn!(hook = ?id, %url, status = res.status().as_u16(), "web hook answered with an error (ignored)");
                    }
                    Err(e) => {
                        tracing::warn!(hook = ?id, %url, error = %e, "web hook call failed (ignored)");
                    }
                }
            });
            return Ok(());
        }
        let res = req.send().await.map_err(|e| {
            tracing::warn!(hook = ?self.id, url = %self.url, error = %e, "web hook call failed");
            HookError::Failed(format!("web hook call failed: {e}"))
        })?;
        let status = res.status();
        if status.as_u16() < 400 {
            return Ok(());
        }
        tracing::info!(hook = ?self.id, url = %self.url, status = status.as_u16(), "web hook answered with an error");
        if self.can_interrupt || self.parse {
            let text = res.text().await.unwrap_or_default();
            if let Some(messages) = parse_messages(&text) {
                return Err(HookError::Interrupted(messages));
            }
        }
        Err(HookError::Failed(format!(
            "web hook failed with status code {}",
            status.as_u16()
        )))
    }
}

fn compile_auth(raw: RawAuth) -> Result<Auth, ConfigError> {
    let field = |name: &str| -> String {
        raw.config
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match raw.kind.as_str() {
        "api_key" => Ok(Auth::ApiKey {
            name: field("name"),
            value: Secret::new(field("value")),
            in_cookie: field("in") == "cookie",
        }),
        "basic_auth" => Ok(Auth::Basic {
            user: field("user"),
            password: Secret::new(field("password")),
        }),
        other => Err(ConfigError::Auth(other.to_string())),
    }
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
fn parse_messages(body: &str) -> Option<Vec<(String, Vec<Text>)>> {
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
    let answer: Answer = serde_json::from_str(body).ok()?;
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
            r##"{"messages":[{"instance_ptr":"#/traits/email","messages":[{"id":123,"text":"taken","type":"error"}]},{"instance_ptr":"#/","messages":[]}]}"##,
        )
        .expect("parses");
        assert_eq!(parsed[0].0, "traits.email");
        assert_eq!(parsed[0].1[0].id, 123);
        assert_eq!(parsed[1].0, "");
        assert!(parse_messages("not json").is_none());
        assert_eq!(canonical("sec-ch-ua-mobile"), "Sec-Ch-Ua-Mobile");
    }
}
