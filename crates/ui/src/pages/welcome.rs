//! `/` and `/welcome`: who is signed in, and where to go next.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::{Ui, cookie_header, relay_cookies};
use crate::kratos::{KratosError, Session};
use crate::render::{self, ErrorPage, timestamp};

#[derive(Serialize)]
struct SessionView {
    display_name: String,
    identity_id: String,
    aal: String,
    authenticated_at: String,
    expires_at: String,
    methods: Vec<String>,
    traits: Vec<(String, String)>,
    addresses: Vec<AddressView>,
}

#[derive(Serialize)]
struct AddressView {
    value: String,
    verified: bool,
}

/// Asks `/sessions/whoami` with the browser's cookies; signed out (401/403) is not an error.
pub(super) async fn show(State(ui): State<Ui>, headers: HeaderMap) -> Response {
    let cookie = cookie_header(&headers);
    let (session, set_cookies) = match ui.kratos.whoami(cookie.as_deref()).await {
        Ok(reply) => (Some(view(reply.body)), reply.set_cookies),
        Err(KratosError::Api { status, .. })
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN =>
        {
            (None, Vec::new())
        }
        Err(error) => return ErrorPage::from_kratos(&error, Some("/".to_string())).into_response(),
    };
    let page = render::html(
        StatusCode::OK,
        "welcome.html",
        minijinja::context! { title => "Welcome", session => session },
    );
    relay_cookies(page, set_cookies)
}

fn view(session: Session) -> SessionView {
    let identity = session.identity.unwrap_or_default();
    let mut traits = Vec::new();
    flatten("", &identity.traits, &mut traits);
    let identity_id = identity.id.unwrap_or_default();
    let display_name = ["email", "username", "name"]
        .iter()
        .find_map(|key| identity.traits.get(key).and_then(Value::as_str))
        .map(str::to_string)
        .or_else(|| traits.first().map(|(_, v)| v.clone()))
        .unwrap_or_else(|| identity_id.clone());
    SessionView {
        display_name,
        identity_id,
        aal: session.authenticator_assurance_level.unwrap_or_default(),
        authenticated_at: timestamp(&session.authenticated_at.unwrap_or_default()),
        expires_at: timestamp(&session.expires_at.unwrap_or_default()),
        methods: session
            .authentication_methods
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.method)
            .collect(),
        traits,
        addresses: identity
            .verifiable_addresses
            .into_iter()
            .map(|a| AddressView {
                value: a.value,
                verified: a.verified,
            })
            .collect(),
    }
}

/// Traits as `(label, value)` rows, empty values left out; nested objects become labels such
/// as `Name › first`.
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let label = if prefix.is_empty() {
                    capitalized(key)
                } else {
                    format!("{prefix} › {key}")
                };
                flatten(&label, value, out);
            }
        }
        Value::Null => {}
        Value::String(s) if s.trim().is_empty() => {}
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// `email` → `Email`: trait keys read as labels.
fn capitalized(key: &str) -> String {
    let mut chars = key.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
