//! Templates compiled into the binary, and the two kinds of page every handler ends in:
//! a rendered page or an error page.

use std::sync::LazyLock;

use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use http::{HeaderName, HeaderValue, StatusCode};
use minijinja::{AutoEscape, Environment};
use serde::Serialize;

use crate::i18n::{self, Locale};
use crate::kratos::KratosError;

/// `(name, source)` of every template; `.html` names get HTML auto-escaping.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/layout.html")),
    ("macros.html", include_str!("../templates/macros.html")),
    ("flow.html", include_str!("../templates/flow.html")),
    ("welcome.html", include_str!("../templates/welcome.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("sessions.html", include_str!("../templates/sessions.html")),
];

/// The stylesheet served at `/assets/portcullis.css`.
pub const STYLESHEET: &str = include_str!("../assets/portcullis.css");

static ENVIRONMENT: LazyLock<Result<Environment<'static>, minijinja::Error>> =
    LazyLock::new(|| {
        let mut env = Environment::new();
        env.set_formatter(html_formatter);
        // `t("English text")` translates into the page's `lang` (see `i18n`).
        env.add_function("t", |state: &minijinja::State<'_, '_>, english: &str| {
            let locale = state
                .lookup("lang")
                .and_then(|lang| lang.as_str().and_then(Locale::from_tag))
                .unwrap_or_default();
            locale.phrase(english).to_string()
        });
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        Ok(env)
    });

/// Escapes strings for HTML text and quoted attributes with the five entities that matter
/// (minijinja's default also escapes `/`, which makes every URL unreadable in the source).
fn html_formatter(
    out: &mut minijinja::Output<'_>,
    state: &minijinja::State<'_, '_>,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    match value.as_str() {
        Some(text) if state.auto_escape() == AutoEscape::Html && !value.is_safe() => {
            let mut escaped = String::with_capacity(text.len());
            for c in text.chars() {
                match c {
                    '&' => escaped.push_str("&amp;"),
                    '<' => escaped.push_str("&lt;"),
                    '>' => escaped.push_str("&gt;"),
                    '"' => escaped.push_str("&quot;"),
                    '\'' => escaped.push_str("&#39;"),
                    c => escaped.push(c),
                }
            }
            out.write_str(&escaped).map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string())
            })
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// Headers every page and redirect carries: pages hold CSRF tokens and personal data, so they
/// are never cached, and they are never framed.
const PAGE_HEADERS: [(HeaderName, &str); 3] = [
    (
        CACHE_CONTROL,
        "private, no-cache, no-store, must-revalidate",
    ),
    (HeaderName::from_static("x-frame-options"), "DENY"),
    (HeaderName::from_static("x-content-type-options"), "nosniff"),
];

fn with_page_headers(mut response: Response) -> Response {
    for (name, value) in PAGE_HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Renders `template` with `context` as an HTML page with `status`.
pub fn html(status: StatusCode, template: &str, context: impl Serialize) -> Response {
    match render(template, context) {
        Ok(body) => with_page_headers(
            (
                status,
                [(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                )],
                body,
            )
                .into_response(),
        ),
        Err(error) => {
            tracing::error!(template, %error, "page template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered.",
            )
                .into_response()
        }
    }
}

/// Renders in the current request's language ([`i18n::current`]).
fn render(template: &str, context: impl Serialize) -> Result<String, minijinja::Error> {
    let context = minijinja::context! {
        lang => i18n::current().tag(),
        ..minijinja::Value::from_serialize(&context)
    };
    match ENVIRONMENT.as_ref() {
        Ok(env) => env.get_template(template)?.render(context),
        Err(error) => Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("templates failed to load: {error}"),
        )),
    }
}

/// An RFC 3339 UTC timestamp as people read it, `2026-11-28 12:39 UTC`; anything else unchanged.
pub fn timestamp(rfc3339: &str) -> String {
    let bytes = rfc3339.as_bytes();
    let shaped = bytes.len() >= 17
        && rfc3339.ends_with('Z')
        && bytes.get(10) == Some(&b'T')
        && bytes.get(13) == Some(&b':');
    match (shaped, rfc3339.get(..10), rfc3339.get(11..16)) {
        (true, Some(date), Some(time)) => format!("{date} {time} UTC"),
        _ => rfc3339.to_string(),
    }
}

/// A `303 See Other` to `location`; a location that is not a valid header becomes an error page.
pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            with_page_headers((StatusCode::SEE_OTHER, [(LOCATION, value)]).into_response())
        }
        Err(_) => ErrorPage::new(
            StatusCode::BAD_GATEWAY,
            "Unusable redirect",
            "The identity server asked to send you to an address that is not a valid URL.",
        )
        .into_response(),
    }
}

/// A friendly error page: what happened, what to do, never internals beyond one line of cause.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorPage {
    /// HTTP status of the page.
    #[serde(skip)]
    pub status: StatusCode,
    /// Status code shown on the page, when it describes a stored or upstream error.
    pub code: Option<u16>,
    /// Headline.
    pub title: String,
    /// What happened, in a sentence.
    pub message: String,
    /// One line of technical cause.
    pub detail: Option<String>,
    /// Kratos' error id (e.g. `security_csrf_violation`).
    pub error_id: Option<String>,
    /// A link that starts over.
    pub retry: Option<String>,
}

impl ErrorPage {
    /// An error page with a title and message.
    pub fn new(status: StatusCode, title: &str, message: &str) -> Self {
        Self {
            status,
            code: None,
            title: title.to_string(),
            message: message.to_string(),
            detail: None,
            error_id: None,
            retry: None,
        }
    }

    /// The page for a failed call to the identity server; `retry` starts the action over.
    pub fn from_kratos(error: &KratosError, retry: Option<String>) -> Self {
        tracing::warn!(%error, "identity server call failed");
        let mut page = match error {
            KratosError::Unreachable { .. } | KratosError::Timeout { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The identity server is not reachable",
                "This page needs the identity server, which did not answer. \
                 Make sure it is running, then try again.",
            ),
            KratosError::Malformed { .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                "Unexpected answer from the identity server",
                "The identity server sent a response this page cannot use.",
            ),
            KratosError::Api { status, error, .. } => {
                let mut page = if status.is_server_error() {
                    Self::new(
                        StatusCode::BAD_GATEWAY,
                        "The identity server reported an error",
                        &error.summary(),
                    )
                } else {
                    Self::new(
                        *status,
                        error.status.as_deref().unwrap_or("Request failed"),
                        &error.summary(),
                    )
                };
                page.code = Some(status.as_u16());
                page.error_id = error.id.clone();
                return Self { retry, ..page }.with_detail(error.reason.clone());
            }
        };
        page.detail = Some(error.to_string());
        page.retry = retry;
        page
    }

    fn with_detail(mut self, detail: Option<String>) -> Self {
        if detail.as_deref() != Some(self.message.as_str()) {
            self.detail = detail;
        }
        self
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        let status = self.status;
        html(
            status,
            "error.html",
            minijinja::context! { title => self.title.clone(), error => self },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_well() {
        assert_eq!(
            timestamp("2026-11-28T12:39:14.878Z"),
            "2026-11-28 12:39 UTC"
        );
        assert_eq!(timestamp("2026-11-28T12:39:14Z"), "2026-11-28 12:39 UTC");
        assert_eq!(
            timestamp("2026-11-28T12:39:14+01:00"),
            "2026-11-28T12:39:14+01:00"
        );
        assert_eq!(timestamp("soon"), "soon");
    }

    #[test]
    fn every_template_compiles() {
        assert!(ENVIRONMENT.is_ok(), "{:?}", ENVIRONMENT.as_ref().err());
    }

    #[test]
    fn error_pages_escape_their_text() {
        let page = ErrorPage::new(
            StatusCode::BAD_REQUEST,
            "<b>x</b>",
            "<script>alert(1)</script>",
        );
        let body = render(
            "error.html",
            minijinja::context! { title => "t", error => page },
        )
        .expect("render");
        assert!(
            body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{body}"
        );
        assert!(!body.contains("<script>"), "{body}");
    }
}
