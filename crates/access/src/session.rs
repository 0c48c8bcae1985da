//! The seam between `cookie_session` and whatever knows the sessions.
//!
//! Standalone, sessions are checked over HTTP at `check_session_url` (so any Kratos works);
//! inside `portcullis up` the binary registers an in-process [`SessionResolver`] for the local
//! identity server's whoami URL and saves a network hop per request.

use std::collections::BTreeMap;

use async_trait::async_trait;
use axum::body::Body;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;

use portcullis_http::UpstreamClient;

/// The credentials a session check forwards, taken from the incoming request.
#[derive(Debug, Clone, Default)]
pub struct SessionCredentials {
    /// The `Cookie` header, reduced to the cookies listed in `only` (all when unset).
    pub cookie: Option<String>,
    /// The `Authorization` header, when `forward_http_headers` lists it.
    pub authorization: Option<String>,
    /// The `X-Session-Token` header, when `forward_http_headers` lists it.
    pub session_token: Option<String>,
    /// The incoming request's path (sent instead of the check URL's path unless `preserve_path`).
    pub path: String,
    /// The incoming request's raw query (sent when `preserve_query` is false).
    pub query: Option<String>,
    /// The incoming request's method (sent unless `force_method`).
    pub method: Method,
    /// The incoming `Host` (sent as `X-Forwarded-Host` when `preserve_host`).
    pub host: Option<String>,
    /// Any other headers named in `forward_http_headers`.
    pub forwarded_headers: HeaderMap,
}

/// Why a session could not be resolved (as opposed to "no session", which is `Ok(None)`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    /// The session store could not be reached (Oathkeeper answers 403).
    #[error("session store unreachable: {0}")]
    Transport(String),
    /// The session store rate-limited us; its rate-limit headers are passed on with a 429.
    #[error("session store rate limit exceeded")]
    RateLimited(Vec<(HeaderName, HeaderValue)>),
    /// The session store answered something unusable (500).
    #[error("session store failed: {0}")]
    Internal(String),
}

/// Resolves the session behind a request's credentials.
#[async_trait]
pub trait SessionResolver: Send + Sync + 'static {
    /// The session JSON exactly as `GET /sessions/whoami` would return it with status 200, or
    /// `None` (401).
    async fn whoami(
        &self,
        creds: &SessionCredentials,
    ) -> Result<Option<serde_json::Value>, ResolveError>;
}

/// The HTTP session check of Oathkeeper's `cookie_session`, built from its merged config.
pub struct HttpSessionResolver {
    client: UpstreamClient,
    url: url::Url,
    preserve_path: bool,
    preserve_query: bool,
    force_method: Option<Method>,
    preserve_host: bool,
    additional_headers: Vec<(HeaderName, HeaderValue)>,
}

/// The parts of the `cookie_session` config the HTTP check uses.
#[derive(Debug, Clone)]
pub struct HttpCheckConfig {
    /// `check_session_url`.
    pub url: url::Url,
    /// `preserve_path`.
    pub preserve_path: bool,
    /// `preserve_query`.
    pub preserve_query: bool,
    /// `force_method`.
    pub force_method: Option<Method>,
    /// `preserve_host`.
    pub preserve_host: bool,
    /// `additional_headers`.
    pub additional_headers: BTreeMap<String, String>,
}

impl HttpSessionResolver {
    /// Builds the check; invalid header names or values in `additional_headers` are errors.
    pub fn new(client: UpstreamClient, config: HttpCheckConfig) -> Result<Self, String> {
        let mut additional_headers = Vec::new();
        for (name, value) in &config.additional_headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| format!("additional_headers: invalid header name {name:?}"))?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|_| format!("additional_headers: invalid value for {name}"))?;
            additional_headers.push((name, value));
        }
        Ok(Self {
            client,
            url: config.url,
            preserve_path: config.preserve_path,
            preserve_query: config.preserve_query,
            force_method: config.force_method,
            preserve_host: config.preserve_host,
            additional_headers,
        })
    }

    fn request(&self, creds: &SessionCredentials) -> Result<Request<Body>, ResolveError> {
        let mut url = self.url.clone();
        if !self.preserve_path {
            url.set_path(&creds.path);
        }
        if !self.preserve_query {
            url.set_query(creds.query.as_deref());
        }
        let method = self
            .force_method
            .clone()
            .unwrap_or_else(|| creds.method.clone());
        let mut builder = Request::builder().method(method).uri(url.as_str());
        let headers = builder
            .headers_mut()
            .ok_or_else(|| ResolveError::Internal(format!("invalid check_session_url {url}")))?;
        for (name, value) in &creds.forwarded_headers {
            headers.append(name, value.clone());
        }
        let mut set = |name: HeaderName, value: &Option<String>| {
            if let Some(v) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(name, v);
            }
        };
        set(header::COOKIE, &creds.cookie);
        set(header::AUTHORIZATION, &creds.authorization);
        set(
            HeaderName::from_static("x-session-token"),
            &creds.session_token,
        );
        for (name, value) in &self.additional_headers {
            headers.insert(name.clone(), value.clone());
        }
        let forwarded_host = creds
            .host
            .as_deref()
            .filter(|_| self.preserve_host)
            .and_then(|v| HeaderValue::from_str(v).ok());
        if let Some(v) = forwarded_host {
            headers.insert(HeaderName::from_static("x-forwarded-host"), v);
        }
        builder.body(Body::empty()).map_err(|e| {
            ResolveError::Internal(format!("cannot build session check to {url}: {e}"))
        })
    }
}

/// Rate-limit headers passed on with a 429 from the session store.
const RATE_LIMIT_HEADERS: &[&str] = &[
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-type",
];

#[async_trait]
impl SessionResolver for HttpSessionResolver {
    async fn whoami(
        &self,
        creds: &SessionCredentials,
    ) -> Result<Option<serde_json::Value>, ResolveError> {
        let request = self.request(creds)?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| ResolveError::Transport(format!("{}: {e}", self.url)))?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let headers = RATE_LIMIT_HEADERS
                .iter()
                .filter_map(|name| {
                    let value = response.headers().get(*name)?;
                    Some((HeaderName::from_static(name), value.clone()))
                })
                .collect();
            return Err(ResolveError::RateLimited(headers));
        }
        if status != StatusCode::OK {
            return Ok(None);
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ResolveError::Transport(format!("{}: {e}", self.url)))?
            .to_bytes();
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| ResolveError::Internal(format!("{} answered invalid JSON: {e}", self.url)))
    }
}
