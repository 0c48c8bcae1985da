//! `/sessions`: the person's own sessions (this browser's via `/sessions/whoami`, the others
//! via `GET /sessions`) and buttons that revoke others (`DELETE /sessions/{id}`,
//! `DELETE /sessions`).
//!
//! Revoking is a `POST` to the UI, which calls the identity server with the browser's cookies.
//! Because the identity server cannot see that the request started on this page, the UI
//! refuses cross-site posts itself ([`same_origin`]): the `Origin` (or `Sec-Fetch-Site`) a
//! browser sends must be this page's own.

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::header::{HOST, ORIGIN};
use http::{HeaderMap, StatusCode};
use serde::Serialize;

use super::{Params, Ui, cookie_header, relay_cookies};
use crate::kratos::{KratosError, Session};
use crate::render::{self, ErrorPage, timestamp};

/// One row of the page.
#[derive(Serialize)]
struct SessionRow {
    id: String,
    /// `/sessions/<id>/revoke`, the id percent-encoded as one path segment.
    revoke_action: String,
    device: String,
    ip_address: String,
    authenticated_at: String,
    expires_at: String,
    methods: String,
}

fn row(session: &Session) -> SessionRow {
    let device = session.devices.as_deref().and_then(|d| d.first());
    let id = session.id.clone().unwrap_or_default();
    let segment: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    SessionRow {
        revoke_action: format!("/sessions/{segment}/revoke"),
        id,
        device: device
            .and_then(|d| d.user_agent.as_deref())
            .map(browser_name)
            .unwrap_or_default(),
        ip_address: device
            .and_then(|d| d.ip_address.clone())
            .unwrap_or_default(),
        authenticated_at: timestamp(session.authenticated_at.as_deref().unwrap_or_default()),
        expires_at: timestamp(session.expires_at.as_deref().unwrap_or_default()),
        methods: session
            .authentication_methods
            .iter()
            .flatten()
            .filter_map(|m| m.method.as_deref())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A short name for a `User-Agent`: the browser and the platform when recognisable, else the
/// string itself (shortened).
fn browser_name(user_agent: &str) -> String {
    const BROWSERS: &[(&str, &str)] = &[
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chromium/", "Chromium"),
        ("HeadlessChrome/", "Chrome (headless)"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ];
    const PLATFORMS: &[(&str, &str)] = &[
        ("Android", "Android"),
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ];
    let browser = BROWSERS
        .iter()
        .find(|(needle, _)| user_agent.contains(needle))
        .map(|(_, name)| *name);
    let platform = PLATFORMS
        .iter()
        .find(|(needle, _)| user_agent.contains(needle))
        .map(|(_, name)| *name);
    match (browser, platform) {
        (Some(b), Some(p)) => format!("{b} on {p}"),
        (Some(b), None) => b.to_string(),
        _ => user_agent.chars().take(60).collect(),
    }
}

/// Lists the sessions; without a session the person is sent to sign in.
pub(super) async fn show(
    State(ui): State<Ui>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = Params::parse(query);
    let cookie = cookie_header(&headers);
    let current = match ui.kratos.whoami(cookie.as_deref()).await {
        Ok(reply) => reply,
        Err(KratosError::Api { status, .. })
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN =>
        {
            return render::see_other("/login");
        }
        Err(error) => {
            return ErrorPage::from_kratos(&error, Some("/sessions".to_string())).into_response();
        }
    };
    let others = match ui.kratos.list_my_sessions(cookie.as_deref()).await {
        Ok(reply) => reply.body,
        Err(error) => {
            return ErrorPage::from_kratos(&error, Some("/sessions".to_string())).into_response();
        }
    };
    let notice = match params.get("revoked") {
        Some("all") => Some("All other sessions were signed out."),
        Some(_) => Some("The session was signed out."),
        None => None,
    };
    let page = render::html(
        StatusCode::OK,
        "sessions.html",
        minijinja::context! {
            title => "Your sessions",
            notice => notice,
            current => row(&current.body),
            others => others.iter().map(row).collect::<Vec<_>>(),
        },
    );
    relay_cookies(page, current.set_cookies)
}

/// `POST /sessions/{id}/revoke`.
pub(super) async fn revoke(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let cookie = cookie_header(&headers);
    finish(
        ui.kratos.disable_my_session(&id, cookie.as_deref()).await,
        "one",
    )
}

/// `POST /sessions/revoke`: every session but this one.
pub(super) async fn revoke_others(State(ui): State<Ui>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let cookie = cookie_header(&headers);
    finish(
        ui.kratos.disable_my_other_sessions(cookie.as_deref()).await,
        "all",
    )
}

/// Back to the list after a revocation (303, so a reload does not post again).
fn finish(outcome: Result<crate::kratos::Reply<()>, KratosError>, revoked: &str) -> Response {
    match outcome {
        Ok(reply) => relay_cookies(
            render::see_other(&format!("/sessions?revoked={revoked}")),
            reply.set_cookies,
        ),
        Err(KratosError::Api { status, .. }) if status == StatusCode::UNAUTHORIZED => {
            render::see_other("/login")
        }
        Err(error) => ErrorPage::from_kratos(&error, Some("/sessions".to_string())).into_response(),
    }
}

fn cross_site() -> Response {
    ErrorPage::new(
        StatusCode::FORBIDDEN,
        "Request refused",
        "Sessions can only be signed out from this site's own sessions page.",
    )
    .into_response()
}

/// Whether a state-changing request comes from this site: `Sec-Fetch-Site` must not be
/// `cross-site`/`same-site`, and an `Origin` must name the `Host` the request was sent to.
/// A request with neither header (not a current browser) is let through: the identity
/// server's `SameSite` session cookie is then the protection.
fn same_origin(headers: &HeaderMap) -> bool {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
    };
    if header("sec-fetch-site").is_some_and(|site| site != "same-origin" && site != "none") {
        return false;
    }
    match (header(ORIGIN.as_str()), header(HOST.as_str())) {
        (Some(origin), Some(host)) => url::Url::parse(origin).is_ok_and(|origin| {
            let origin_host = match (origin.host_str(), origin.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_string(),
                _ => return false,
            };
            origin_host.eq_ignore_ascii_case(host)
        }),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, http::HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn only_same_origin_posts_are_accepted() {
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:4455"),
            ("origin", "http://127.0.0.1:4455"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:4455"),
            ("origin", "http://evil.example"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:4455"),
            ("sec-fetch-site", "cross-site"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:4455"),
            ("origin", "null"),
        ])));
        assert!(same_origin(&headers(&[("host", "127.0.0.1:4455")])));
    }

    #[test]
    fn names_browsers() {
        assert_eq!(
            browser_name(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
            ),
            "Chrome on Linux"
        );
        assert_eq!(browser_name("reqwest"), "reqwest");
    }
}
