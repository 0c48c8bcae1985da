//! `hydrator`: lets an external API enrich the session. POSTs the session as JSON
//! (`{subject, extra, header, match_context}`) to `api.url` with the request's headers and
//! query, `Content-Type: application/json` and optional HTTP Basic auth. A 200 answer is the
//! new session: its `subject` must be unchanged; its `extra` and `header` replace the
//! current ones. 401 is an authentication failure; anything else a 500. With
//! `cache.enabled`, answers are reused for `cache.ttl` per session and URL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use base64::Engine as _;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::pipeline::{
    AuthenticationSession, CompileContext, PipelineError, RequestContext, parse_duration, remote,
};

/// Beyond this many cached answers the cache starts over (bounded memory).
const CACHE_LIMIT: usize = 10_000;

#[derive(Deserialize)]
struct Config {
    api: Api,
    #[serde(default)]
    cache: Option<CacheConfig>,
}

#[derive(Deserialize)]
struct Api {
    url: String,
    #[serde(default)]
    auth: Option<Auth>,
}

#[derive(Deserialize)]
struct Auth {
    basic: Basic,
}

#[derive(Deserialize)]
struct Basic {
    username: String,
    password: String,
}

#[derive(Deserialize)]
struct CacheConfig {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    ttl: Option<String>,
}

/// The `hydrator` mutator.
pub struct Hydrator {
    url: url::Url,
    basic: Option<HeaderValue>,
    timeout: Duration,
    cache_ttl: Option<Duration>,
    cache: Mutex<HashMap<String, (Instant, Value)>>,
    client: portcullis_http::UpstreamClient,
}

impl Hydrator {
    /// Compiles the merged config.
    pub fn compile(config: &Value, ctx: &CompileContext) -> Result<Self, String> {
        let c: Config = serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        let url =
            url::Url::parse(&c.api.url).map_err(|e| format!("api.url {:?}: {e}", c.api.url))?;
        let basic = c
            .api
            .auth
            .map(|a| {
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", a.basic.username, a.basic.password));
                HeaderValue::try_from(format!("Basic {encoded}"))
                    .map_err(|_| "api.auth.basic: not a valid header value".to_string())
            })
            .transpose()?;
        let cache_ttl = match c.cache {
            Some(cache) if cache.enabled => Some(
                parse_duration(cache.ttl.as_deref().unwrap_or("1m"))
                    .map_err(|e| format!("cache.ttl: {e}"))?,
            ),
            _ => None,
        };
        let timeout = match config.pointer("/api/retry/give_up_after") {
            Some(_) => remote::timeout(&config["api"])?,
            None => remote::timeout(&Value::Null)?,
        };
        Ok(Self {
            url,
            basic,
            timeout,
            cache_ttl,
            cache: Mutex::new(HashMap::new()),
            client: ctx.client.clone(),
        })
    }

    /// Calls the API and takes its session.
    pub async fn mutate(
        &self,
        request: &RequestContext,
        session: &mut AuthenticationSession,
    ) -> Result<(), PipelineError> {
        let body = session_json(session, request);
        let key = format!("{}|{body}", self.url);
        let answer = match self.cached(&key) {
            Some(answer) => answer,
            None => {
                let answer = self.call(request, body.to_string()).await?;
                self.remember(key, &answer);
                answer
            }
        };
        let subject = answer
            .get("subject")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if subject != session.subject {
            return Err(PipelineError::internal(
                "hydrator: the API changed the session's subject",
            ));
        }
        session.extra = answer
            .get("extra")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(Value::Object(headers)) = answer.get("header") {
            let mut map = HeaderMap::new();
            for (name, values) in headers {
                let Ok(name) = HeaderName::try_from(name.as_str()) else {
                    continue;
                };
                let values = match values {
                    Value::Array(items) => items.clone(),
                    other => vec![other.clone()],
                };
                for v in values.iter().filter_map(Value::as_str) {
                    if let Ok(v) = HeaderValue::try_from(v) {
                        map.append(name.clone(), v);
                    }
                }
            }
            session.header = map;
        }
        Ok(())
    }

    async fn call(&self, request: &RequestContext, body: String) -> Result<Value, PipelineError> {
        let mut url = self.url.clone();
        if url.query().is_none() {
            url.set_query(request.query.as_deref());
        }
        let mut builder = http::Request::builder()
            .method(Method::POST)
            .uri(url.as_str());
        if let Some(headers) = builder.headers_mut() {
            for (name, value) in &request.headers {
                if name != HOST && name != CONTENT_LENGTH {
                    headers.append(name.clone(), value.clone());
                }
            }
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if let Some(basic) = &self.basic {
                headers.insert(AUTHORIZATION, basic.clone());
            }
        }
        let call = builder
            .body(Body::from(body))
            .map_err(|e| PipelineError::internal(e.to_string()))?;
        let (parts, bytes) = remote::call(&self.client, call, self.timeout)
            .await
            .map_err(PipelineError::internal)?;
        match parts.status {
            StatusCode::OK => serde_json::from_slice(&bytes).map_err(|e| {
                PipelineError::internal(format!("hydrator: the API answered invalid JSON: {e}"))
            }),
            StatusCode::UNAUTHORIZED => {
                Err(PipelineError::unauthorized()
                    .with_reason("the hydrator API refused the session"))
            }
            other => Err(PipelineError::internal(format!(
                "hydrator: the API answered {other}"
            ))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Value)>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cached(&self, key: &str) -> Option<Value> {
        let ttl = self.cache_ttl?;
        let cache = self.lock();
        let (at, answer) = cache.get(key)?;
        (at.elapsed() < ttl).then(|| answer.clone())
    }

    fn remember(&self, key: String, answer: &Value) {
        if self.cache_ttl.is_none() {
            return;
        }
        let mut cache = self.lock();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), answer.clone()));
    }
}

/// The session as Oathkeeper serialises it for the hydrator.
fn session_json(session: &AuthenticationSession, request: &RequestContext) -> Value {
    let data = session.template_data(request);
    let mut match_context = Map::new();
    match_context.insert("regexp_capture_groups".into(), json!(session.captures));
    match_context.insert("url".into(), data["MatchContext"]["URL"].clone());
    match_context.insert("method".into(), json!(request.method.as_str()));
    match_context.insert("header".into(), data["MatchContext"]["Header"].clone());
    json!({
        "subject": session.subject,
        "extra": session.extra,
        "header": data["Header"],
        "match_context": match_context,
    })
}
