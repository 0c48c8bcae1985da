//! `token_from`: where `bearer_token` and `jwt` find the token (Oathkeeper's
//! `helper.BearerTokenFromRequest`). Unset: `Authorization: Bearer <token>`; `{header: X}`:
//! the raw value of header X, except that `Authorization` is still parsed as `Bearer <token>`;
//! `{query_parameter: X}`; `{cookie: X}`.

use http::header::{AUTHORIZATION, COOKIE};
use serde::Deserialize;

use crate::pipeline::RequestContext;

/// A configured token location.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenFrom {
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    query_parameter: Option<String>,
    #[serde(default)]
    cookie: Option<String>,
}

impl TokenFrom {
    /// The token, or `None` when the location holds none (the authenticator is then not
    /// responsible).
    pub fn token(&self, request: &RequestContext) -> Option<String> {
        let token = if let Some(name) = &self.header {
            let value = request.headers.get(name.as_str())?.to_str().ok()?;
            if name.eq_ignore_ascii_case("authorization") {
                bearer(value)?
            } else {
                value.to_string()
            }
        } else if let Some(name) = &self.query_parameter {
            form_value(request.query.as_deref()?, name)?
        } else if let Some(name) = &self.cookie {
            cookie_value(request, name)?
        } else {
            bearer(request.headers.get(AUTHORIZATION)?.to_str().ok()?)?
        };
        (!token.is_empty()).then_some(token)
    }
}

fn bearer(value: &str) -> Option<String> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.to_string())
}

fn form_value(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn cookie_value(request: &RequestContext, name: &str) -> Option<String> {
    request
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_string())
}
