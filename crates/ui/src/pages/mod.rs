//! The routes, and what every page handler shares: the identity client, the browser's
//! cookies, the page's query string.

mod error;
mod health;
mod logout;
mod selfservice;
mod sessions;
mod welcome;

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::header::{ACCEPT_LANGUAGE, CACHE_CONTROL, CONTENT_TYPE, COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::config::UiConfig;
use crate::flow::FlowKind;
use crate::i18n::{self, Locale};
use crate::kratos::KratosClient;
use crate::render::{ErrorPage, STYLESHEET};

/// State shared by the handlers.
#[derive(Clone)]
pub(crate) struct Ui {
    config: Arc<UiConfig>,
    kratos: KratosClient,
}

/// Builds the UI's router: the self-service pages, welcome, sessions, error, logout, health and
/// assets.
pub fn router(config: UiConfig) -> Router {
    let ui = Ui {
        kratos: KratosClient::new(config.kratos_public_url.clone(), config.request_timeout),
        config: Arc::new(config),
    };
    let mut router = Router::new()
        .route("/", get(welcome::show))
        .route("/welcome", get(welcome::show))
        .route("/error", get(error::show))
        .route("/logout", get(logout::start))
        .route("/sessions", get(sessions::show))
        .route("/sessions/revoke", post(sessions::revoke_others))
        .route("/sessions/{id}/revoke", post(sessions::revoke))
        .route("/health/alive", get(health::alive))
        .route("/health/ready", get(health::ready))
        .route("/assets/portcullis.css", get(stylesheet));
    for kind in FlowKind::ALL {
        router = router.route(
            &format!("/{}", kind.as_str()),
            get(
                move |State(ui): State<Ui>, RawQuery(query): RawQuery, headers: HeaderMap| {
                    selfservice::show(ui, kind, query, headers)
                },
            ),
        );
    }
    router
        .fallback(not_found)
        .with_state(ui)
        .layer(middleware::from_fn(negotiate_locale))
}

/// Every page is rendered in the language the browser prefers (see [`crate::i18n`]).
async fn negotiate_locale(request: Request, next: Next) -> Response {
    let accept = request
        .headers()
        .get(ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let locale = Locale::negotiate(accept);
    i18n::scope(locale, next.run(request)).await
}

async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

async fn not_found() -> Response {
    ErrorPage::new(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no page at this address.",
    )
    .into_response()
}

/// The page's query string as decoded pairs; malformed escapes decode leniently.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: Option<String>) -> Self {
        Params(
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first non-empty value of `key`.
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// The browser's cookies as one `Cookie` header (HTTP/2 may split them over several).
fn cookie_header(headers: &HeaderMap) -> Option<String> {
    let parts: Vec<&str> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Adds the identity server's `Set-Cookie` headers to a page.
fn relay_cookies(mut response: Response, set_cookies: Vec<HeaderValue>) -> Response {
    for cookie in set_cookies {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

/// `/<page>?return_to=...` (or just `/<page>` when there is nothing to carry).
fn page_link(page: &str, return_to: Option<&str>) -> String {
    match return_to.filter(|r| !r.is_empty()) {
        Some(return_to) => {
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("return_to", return_to)
                .finish();
            format!("/{page}?{query}")
        }
        None => format!("/{page}"),
    }
}
