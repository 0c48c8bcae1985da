//! The identity server's public HTTP API, as far as the pages need it.
//!
//! Every call forwards the browser's `Cookie` header (browser flows are bound to the CSRF
//! cookie, sessions to the session cookie) and hands back the `Set-Cookie` headers so the page
//! can relay them. Nothing here knows about Portcullis' own identity crate, so the UI works
//! against real Kratos too.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::header::{ACCEPT, COOKIE, SET_COOKIE};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use portcullis_http::{UpstreamClient, upstream_client};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::flow::{Flow, FlowKind};

/// Largest response body accepted from the identity server (Kratos' own request limit).
const MAX_BODY: usize = 5 * 1024 * 1024;

/// What went wrong talking to the identity server.
#[derive(Debug, thiserror::Error)]
pub enum KratosError {
    /// No connection could be made, or it broke before a response arrived.
    #[error("the identity server at {url} is unreachable: {reason}")]
    Unreachable {
        /// The URL that was called.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The call took longer than the configured timeout.
    #[error("the identity server at {url} did not answer within {seconds}s")]
    Timeout {
        /// The URL that was called.
        url: String,
        /// The timeout.
        seconds: u64,
    },
    /// The identity server answered with an error status.
    #[error("the identity server answered {status} to {url}: {}", error.summary())]
    Api {
        /// The URL that was called.
        url: String,
        /// The HTTP status.
        status: StatusCode,
        /// The `error` object of the body (defaults when the body had none).
        error: ApiError,
        /// `redirect_browser_to` next to the error, when present.
        redirect_browser_to: Option<String>,
    },
    /// A success response whose body is not what the API documents.
    #[error("the identity server sent an unexpected response to {url}: {reason}")]
    Malformed {
        /// The URL that was called.
        url: String,
        /// Why it could not be used.
        reason: String,
    },
}

/// The `error` object of Kratos' error shape `{"error": {...}}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApiError {
    /// Well-known error id, e.g. `self_service_flow_expired`.
    #[serde(default)]
    pub id: Option<String>,
    /// HTTP status code.
    #[serde(default)]
    pub code: Option<u16>,
    /// HTTP reason phrase.
    #[serde(default)]
    pub status: Option<String>,
    /// Longer explanation.
    #[serde(default)]
    pub reason: Option<String>,
    /// Short error text.
    #[serde(default)]
    pub message: Option<String>,
}

impl ApiError {
    /// The most helpful single line: message, then reason, then status.
    pub fn summary(&self) -> String {
        self.message
            .clone()
            .or_else(|| self.reason.clone())
            .or_else(|| self.status.clone())
            .unwrap_or_else(|| "unknown error".to_string())
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: ApiError,
    #[serde(default)]
    redirect_browser_to: Option<String>,
}

/// A decoded response plus the cookies the identity server set.
#[derive(Debug)]
pub struct Reply<T> {
    /// The decoded body.
    pub body: T,
    /// `Set-Cookie` headers to relay to the browser.
    pub set_cookies: Vec<HeaderValue>,
}

/// A session as `GET /sessions/whoami` and `GET /sessions` return it: the fields the pages show.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Session {
    /// Session id.
    #[serde(default)]
    pub id: Option<String>,
    /// When the session was issued (RFC 3339).
    #[serde(default)]
    pub issued_at: Option<String>,
    /// The devices (browsers) that used the session.
    #[serde(default)]
    pub devices: Option<Vec<Device>>,
    /// When the session expires (RFC 3339).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// When the person authenticated (RFC 3339).
    #[serde(default)]
    pub authenticated_at: Option<String>,
    /// `aal1` or `aal2`.
    #[serde(default)]
    pub authenticator_assurance_level: Option<String>,
    /// How the person authenticated.
    #[serde(default)]
    pub authentication_methods: Option<Vec<AuthenticationMethod>>,
    /// The identity.
    #[serde(default)]
    pub identity: Option<SessionIdentity>,
}

/// One entry of a session's `devices`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Device {
    /// The client's IP address.
    #[serde(default)]
    pub ip_address: Option<String>,
    /// The browser's `User-Agent`.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// A coarse location, when the server knows one.
    #[serde(default)]
    pub location: Option<String>,
}

/// One entry of `authentication_methods`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthenticationMethod {
    /// e.g. `password`.
    #[serde(default)]
    pub method: Option<String>,
    /// When it was completed (RFC 3339).
    #[serde(default)]
    pub completed_at: Option<String>,
}

/// The identity inside a session.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SessionIdentity {
    /// Identity id.
    #[serde(default)]
    pub id: Option<String>,
    /// Traits as the identity schema defines them.
    #[serde(default)]
    pub traits: serde_json::Value,
    /// Addresses that can be verified, with their state.
    #[serde(default)]
    pub verifiable_addresses: Vec<VerifiableAddress>,
}

/// One entry of an identity's `verifiable_addresses`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct VerifiableAddress {
    /// The address, e.g. an e-mail address.
    #[serde(default)]
    pub value: String,
    /// Whether its owner proved to receive mail there.
    #[serde(default)]
    pub verified: bool,
}

/// `GET /self-service/logout/browser`.
#[derive(Debug, Clone, Deserialize)]
pub struct LogoutFlow {
    /// The URL the browser must visit to log out.
    pub logout_url: String,
}

/// `GET /self-service/errors?id=`.
#[derive(Debug, Clone, Deserialize)]
pub struct FlowError {
    /// The error id.
    pub id: String,
    /// The stored error.
    #[serde(default)]
    pub error: ApiError,
}

/// Client for the identity server's public API.
#[derive(Clone)]
pub struct KratosClient {
    public_url: Url,
    http: UpstreamClient,
    timeout: Duration,
}

impl KratosClient {
    /// A client calling the public API at `public_url`.
    pub fn new(public_url: Url, timeout: Duration) -> Self {
        Self {
            public_url,
            http: upstream_client(),
            timeout,
        }
    }

    /// `GET /self-service/<kind>/flows?id=`.
    pub async fn get_flow(
        &self,
        kind: FlowKind,
        id: &str,
        cookie: Option<&str>,
    ) -> Result<Reply<Flow>, KratosError> {
        let path = format!("self-service/{}/flows", kind.as_str());
        self.get(&path, &[("id", id)], cookie).await
    }

    /// `GET /sessions/whoami`.
    pub async fn whoami(&self, cookie: Option<&str>) -> Result<Reply<Session>, KratosError> {
        self.get("sessions/whoami", &[], cookie).await
    }

    /// `GET /sessions`: the caller's other active sessions (the current one is not listed).
    pub async fn list_my_sessions(
        &self,
        cookie: Option<&str>,
    ) -> Result<Reply<Vec<Session>>, KratosError> {
        self.get("sessions", &[], cookie).await
    }

    /// `DELETE /sessions/{id}`: revokes one of the caller's other sessions.
    pub async fn disable_my_session(
        &self,
        id: &str,
        cookie: Option<&str>,
    ) -> Result<Reply<()>, KratosError> {
        let mut url = endpoint(&self.public_url, "sessions", &[]);
        // One segment whatever the id holds: `push` percent-encodes `/`, `?` and `#`.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.push(id);
        }
        let (_, set_cookies) = self.send(Method::DELETE, url, cookie).await?;
        Ok(Reply {
            body: (),
            set_cookies,
        })
    }

    /// `DELETE /sessions`: revokes all of the caller's other sessions.
    pub async fn disable_my_other_sessions(
        &self,
        cookie: Option<&str>,
    ) -> Result<Reply<()>, KratosError> {
        let url = endpoint(&self.public_url, "sessions", &[]);
        let (_, set_cookies) = self.send(Method::DELETE, url, cookie).await?;
        Ok(Reply {
            body: (),
            set_cookies,
        })
    }

    /// `GET /self-service/logout/browser`, optionally with `return_to`.
    pub async fn create_browser_logout_flow(
        &self,
        cookie: Option<&str>,
        return_to: Option<&str>,
    ) -> Result<Reply<LogoutFlow>, KratosError> {
        let query: Vec<(&str, &str)> = return_to.map(|r| ("return_to", r)).into_iter().collect();
        self.get("self-service/logout/browser", &query, cookie)
            .await
    }

    /// `GET /self-service/errors?id=`.
    pub async fn get_flow_error(
        &self,
        id: &str,
        cookie: Option<&str>,
    ) -> Result<Reply<FlowError>, KratosError> {
        self.get("self-service/errors", &[("id", id)], cookie).await
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        cookie: Option<&str>,
    ) -> Result<Reply<T>, KratosError> {
        let url = endpoint(&self.public_url, path, query);
        let shown = url.to_string();
        let (bytes, set_cookies) = self.send(Method::GET, url, cookie).await?;
        let body = serde_json::from_slice(&bytes).map_err(|e| KratosError::Malformed {
            url: shown,
            reason: e.to_string(),
        })?;
        Ok(Reply { body, set_cookies })
    }

    /// Sends one request; a success status yields the body and the `Set-Cookie` headers,
    /// any other status the API error it carries.
    async fn send(
        &self,
        method: Method,
        url: Url,
        cookie: Option<&str>,
    ) -> Result<(Bytes, Vec<HeaderValue>), KratosError> {
        let shown = url.to_string();
        let unreachable = |reason: String| KratosError::Unreachable {
            url: shown.clone(),
            reason,
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(url.as_str())
            .header(ACCEPT, "application/json");
        if let Some(cookie) = cookie {
            builder = builder.header(COOKIE, cookie);
        }
        let request = builder
            .body(Body::empty())
            .map_err(|e| unreachable(e.to_string()))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| unreachable(transport_reason(&e)))?;
            let (parts, body) = response.into_parts();
            let bytes = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .to_bytes();
            Ok::<_, KratosError>((parts, bytes))
        };
        let (parts, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| KratosError::Timeout {
                url: shown.clone(),
                seconds: self.timeout.as_secs(),
            })??;
        if !parts.status.is_success() {
            let parsed: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
            let (error, redirect_browser_to) = match parsed {
                Some(body) => (body.error, body.redirect_browser_to),
                None => (ApiError::default(), None),
            };
            return Err(KratosError::Api {
                url: shown,
                status: parts.status,
                error,
                redirect_browser_to,
            });
        }
        let set_cookies = parts.headers.get_all(SET_COOKIE).iter().cloned().collect();
        Ok((bytes, set_cookies))
    }
}

/// The most specific cause of a transport error ("Connection refused" rather than "client error").
fn transport_reason(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// `base` with `path` appended to its path (keeping any prefix such as `/.ory/kratos/public`)
/// and `query` as its query string.
pub fn endpoint(base: &Url, path: &str, query: &[(&str, &str)]) -> Url {
    let mut url = base.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty();
        segments.extend(path.split('/'));
    }
    url.set_query(None);
    url.set_fragment(None);
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keeps_a_path_prefix() {
        let base = Url::parse("http://x/.ory/kratos/public/").expect("url");
        let url = endpoint(
            &base,
            "self-service/login/browser",
            &[("return_to", "http://a/b?c=d")],
        );
        assert_eq!(
            url.as_str(),
            "http://x/.ory/kratos/public/self-service/login/browser?return_to=http%3A%2F%2Fa%2Fb%3Fc%3Dd"
        );
        let base = Url::parse("http://x:4433").expect("url");
        assert_eq!(
            endpoint(&base, "sessions/whoami", &[]).as_str(),
            "http://x:4433/sessions/whoami"
        );
    }
}
