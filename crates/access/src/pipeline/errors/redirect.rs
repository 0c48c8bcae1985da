//! `redirect`: sends the client to `to` (301/302), optionally carrying the URL it asked for in
//! `return_to_query_param`.

use axum::body::Body;
use axum::response::Response;
use http::{Method, StatusCode, header};
use serde_json::Value;

use crate::pipeline::RequestContext;

/// The `redirect` error handler.
pub struct Redirect {
    to: String,
    code: StatusCode,
    return_to_query_param: String,
}

impl Redirect {
    /// Compiles `{to, code, return_to_query_param}`; codes other than 301 become 302.
    pub fn compile(config: &Value) -> Result<Self, String> {
        let to = config
            .get("to")
            .and_then(Value::as_str)
            .ok_or("`to` is required")?
            .to_string();
        let code = match config.get("code").and_then(Value::as_u64) {
            Some(301) => StatusCode::MOVED_PERMANENTLY,
            _ => StatusCode::FOUND,
        };
        let return_to_query_param = config
            .get("return_to_query_param")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(Self {
            to,
            code,
            return_to_query_param,
        })
    }

    /// The `Location` for this request.
    pub fn location(&self, request: &RequestContext) -> String {
        if self.return_to_query_param.is_empty() {
            return self.to.clone();
        }
        match url::Url::parse(&self.to) {
            Ok(mut url) => {
                let kept: Vec<(String, String)> = url
                    .query_pairs()
                    .filter(|(k, _)| *k != self.return_to_query_param.as_str())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                url.query_pairs_mut()
                    .clear()
                    .extend_pairs(kept)
                    .append_pair(&self.return_to_query_param, &request.original_url);
                url.to_string()
            }
            // A relative `to`: append the parameter to it as it is.
            Err(_) => {
                let sep = if self.to.contains('?') { '&' } else { '?' };
                let value: String =
                    url::form_urlencoded::byte_serialize(request.original_url.as_bytes()).collect();
                format!("{}{sep}{}={value}", self.to, self.return_to_query_param)
            }
        }
    }

    /// Writes the redirect (with Go's tiny HTML body for GET and HEAD).
    pub fn respond(&self, request: &RequestContext) -> Response {
        let location = self.location(request);
        let body = if request.method == Method::GET || request.method == Method::HEAD {
            let reason = self.code.canonical_reason().unwrap_or("Found");
            let escaped = location
                .replace('&', "&amp;")
                .replace('"', "&#34;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            format!("<a href=\"{escaped}\">{reason}</a>.\n\n")
        } else {
            String::new()
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = self.code;
        if let Ok(value) = header::HeaderValue::try_from(location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        if request.method == Method::GET || request.method == Method::HEAD {
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/html; charset=utf-8"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request() -> RequestContext {
        RequestContext {
            method: Method::GET,
            scheme: "http".into(),
            host: "127.0.0.1:8080".into(),
            path: "/hello".into(),
            query: Some("a=1".into()),
            headers: http::HeaderMap::new(),
            original_url: "http://127.0.0.1:8000/hello?a=1".into(),
        }
    }

    #[test]
    fn return_to_carries_the_original_url() {
        let r = Redirect::compile(
            &json!({"to": "http://127.0.0.1:4455/login", "return_to_query_param": "return_to"}),
        )
        .expect("valid");
        assert_eq!(
            r.location(&request()),
            "http://127.0.0.1:4455/login?return_to=http%3A%2F%2F127.0.0.1%3A8000%2Fhello%3Fa%3D1"
        );
        let r = Redirect::compile(&json!({"to": "/login?x=y", "return_to_query_param": "rt"}))
            .expect("valid");
        assert_eq!(
            r.location(&request()),
            "/login?x=y&rt=http%3A%2F%2F127.0.0.1%3A8000%2Fhello%3Fa%3D1"
        );
        let r = Redirect::compile(&json!({"to": "http://ui/login", "code": 301})).expect("valid");
        assert_eq!(r.location(&request()), "http://ui/login");
        assert_eq!(
            r.respond(&request()).status(),
            StatusCode::MOVED_PERMANENTLY
        );
    }
}
