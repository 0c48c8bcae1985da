//! Errors: [`IdentityError`] inside the crate, [`ApiError`] on the wire.
//!
//! Every HTTP answer that is not a flow or a resource is Kratos's (herodot's) envelope
//! `{"error": {id?, code, status, reason?, message}}`, sometimes with top-level
//! siblings (`use_flow_id`, `redirect_browser_to`). Internal failures are logged here and
//! reach clients only as the generic 500.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// Failures of the identity server's own machinery (store, config, hashing).
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The configuration is invalid; displays as `file:line: path: message`.
    #[error(transparent)]
    Config(#[from] portcullis_config::ConfigError),
    /// The configuration violates the schema; one error per violation, each displayed as
    /// `file:line: path: message`.
    #[error("{}", portcullis_config::join_errors(.0))]
    Invalid(Vec<portcullis_config::ConfigError>),
    /// The store failed.
    #[error("identity store: {0}")]
    Store(#[from] crate::persistence::StoreError),
    /// The store could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] portcullis_db::DbError),
    /// Password hashing failed (not a mismatch: a broken parameter set or hash).
    #[error("password hashing: {0}")]
    Hash(String),
}

/// A Kratos-shaped error response (boxed: it travels in `Result`s on every handler path).
#[derive(Debug, Clone)]
pub struct ApiError {
    inner: Box<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    status: StatusCode,
    id: Option<&'static str>,
    reason: Option<String>,
    message: Option<String>,
    extra: Map<String, Value>,
}

impl ApiError {
    /// An error with `status` and the status's default message.
    pub fn new(status: StatusCode) -> Self {
        Self {
            inner: Box::new(Inner {
                status,
                id: None,
                reason: None,
                message: None,
                extra: Map::new(),
            }),
        }
    }

    /// 400 with a reason.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST).reason(reason)
    }

    /// 404 with a reason.
    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND).reason(reason)
    }

    /// 409 with a reason.
    pub fn conflict(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT).reason(reason)
    }

    /// The generic 500; the cause is logged, never sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "identity server internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// 403 `security_csrf_violation`. Kratos puts the reject reason in `details`, which its own
    /// OpenAPI document forbids (`additionalProperties: false`); it goes into `reason` here so
    /// strict generated clients accept the body.
    pub fn csrf(reject_reason: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN)
            .id("security_csrf_violation")
            .reason(format!(
                "{reject_reason} Please retry the flow and optionally clear your cookies. The request was rejected to protect you from Cross-Site-Request-Forgery (CSRF) which could cause account takeover, leaking personal information, and other serious security issues."
            ))
            .message("the request was rejected to protect you from Cross-Site-Request-Forgery")
    }

    /// 401 `session_inactive`.
    pub fn session_inactive() -> Self {
        Self::new(StatusCode::UNAUTHORIZED)
            .id("session_inactive")
            .reason("No active session was found in this request.")
            .message("request does not have a valid authentication session")
    }

    /// The exact 401 `/sessions/whoami` answers without valid credentials (no `id`).
    pub fn whoami_unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED)
            .reason("No valid session credentials found in the request.")
    }

    /// Sets the well-known error id.
    pub fn id(mut self, id: &'static str) -> Self {
        self.inner.id = Some(id);
        self
    }

    /// Sets the reason (the specific explanation).
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.inner.reason = Some(reason.into());
        self
    }

    /// Replaces the status's default message.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.inner.message = Some(message.into());
        self
    }

    /// Adds a top-level sibling of `error` (e.g. `use_flow_id`).
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.inner.extra.insert(key.to_string(), value);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.inner.status
    }

    /// The inner `error` object (also what `/self-service/errors` stores).
    pub fn error_object(&self) -> Value {
        let mut e = Map::new();
        if let Some(id) = self.inner.id {
            e.insert("id".into(), json!(id));
        }
        e.insert("code".into(), json!(self.inner.status.as_u16()));
        e.insert(
            "status".into(),
            json!(self.inner.status.canonical_reason().unwrap_or("Error")),
        );
        if let Some(reason) = &self.inner.reason {
            e.insert("reason".into(), json!(reason));
        }
        let message = self
            .inner
            .message
            .clone()
            .unwrap_or_else(|| default_message(self.inner.status).to_string());
        e.insert("message".into(), json!(message));
        Value::Object(e)
    }

    /// The full response body.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("error".into(), self.error_object());
        for (k, v) in &self.inner.extra {
            body.insert(k.clone(), v.clone());
        }
        Value::Object(body)
    }
}

/// herodot's default message per status.
fn default_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "The request was malformed or contained invalid parameters",
        401 => "The request could not be authorized",
        403 => "The requested action was forbidden",
        404 => "The requested resource could not be found",
        405 => "The requested HTTP method is not allowed",
        409 => "The resource could not be created due to a conflict",
        410 => {
            "The requested resource is no longer available because it has expired or is otherwise invalid."
        }
        413 => "The request body is too large",
        415 => "The request media type is not supported",
        422 => "The request was well-formed but was unable to be followed due to semantic errors.",
        _ => "An internal server error occurred, please contact the system administrator",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.inner.status, axum::Json(self.body())).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        res
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        ApiError::internal(&e)
    }
}

impl From<crate::persistence::StoreError> for ApiError {
    fn from(e: crate::persistence::StoreError) -> Self {
        ApiError::internal(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whoami_401_body_is_exact() {
        assert_eq!(
            ApiError::whoami_unauthorized().body(),
            json!({"error": {"code": 401, "status": "Unauthorized",
                "reason": "No valid session credentials found in the request.",
                "message": "The request could not be authorized"}})
        );
    }

    #[test]
    fn siblings_sit_next_to_error() {
        let body = ApiError::new(StatusCode::GONE)
            .id("self_service_flow_expired")
            .with("use_flow_id", json!("x"))
            .body();
        assert_eq!(body["use_flow_id"], "x");
        assert_eq!(body["error"]["status"], "Gone");
    }
}
