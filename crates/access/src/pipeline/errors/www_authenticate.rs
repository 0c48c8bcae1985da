//! `www_authenticate`: answers 401 with `WWW-Authenticate: Basic realm=<realm>` so browsers
//! prompt for credentials.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::Value;

/// The `www_authenticate` error handler.
pub struct WwwAuthenticate {
    challenge: HeaderValue,
}

impl WwwAuthenticate {
    /// Compiles `{realm}` (default "Please authenticate.").
    pub fn compile(config: &Value) -> Result<Self, String> {
        let realm = config
            .get("realm")
            .and_then(Value::as_str)
            .unwrap_or("Please authenticate.");
        // Oathkeeper writes the realm unquoted.
        let challenge = HeaderValue::try_from(format!("Basic realm={realm}"))
            .map_err(|_| format!("realm {realm:?} is not a valid header value"))?;
        Ok(Self { challenge })
    }

    /// Writes the challenge.
    pub fn respond(&self) -> Response {
        let mut response = (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, self.challenge.clone());
        response
    }
}
