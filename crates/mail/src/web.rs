//! The web inbox (`:4436`): a message list with search, a message view (HTML part in a
//! sandboxed frame, text part, headers, attachments, raw source) and delete buttons.
//!
//! Everything a message contains is escaped; the HTML part is shown only inside an
//! `<iframe sandbox srcdoc>` (no scripts, no same-origin access, no forms), and the pages
//! carry a CSP without any script source. Deletes are POST forms refused when the request
//! comes from another site.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use serde::Serialize;

use crate::api::{Summary, filter, parse_query};
use crate::store::Mailbox;

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/layout.html")),
    ("inbox.html", include_str!("../templates/inbox.html")),
    ("message.html", include_str!("../templates/message.html")),
    ("notice.html", include_str!("../templates/notice.html")),
];

static ENVIRONMENT: LazyLock<Result<Environment<'static>, minijinja::Error>> =
    LazyLock::new(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        Ok(env)
    });

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     img-src * data:; frame-src 'self'; form-action 'self'; frame-ancestors 'none'";

/// The inbox routes.
pub fn router(mailbox: Arc<Mailbox>) -> Router {
    Router::new()
        .route("/", get(inbox))
        .route("/messages/delete", post(delete_all))
        .route("/messages/{id}", get(message))
        .route("/messages/{id}/raw", get(raw))
        .route("/messages/{id}/delete", post(delete_one))
        .fallback(|| async {
            notice(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no page at this address.",
            )
        })
        .with_state(mailbox)
}

fn render(template: &str, context: impl Serialize) -> Result<String, minijinja::Error> {
    match ENVIRONMENT.as_ref() {
        Ok(env) => env.get_template(template)?.render(context),
        Err(error) => Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("templates failed to load: {error}"),
        )),
    }
}

fn page(status: StatusCode, template: &str, context: impl Serialize) -> Response {
    match render(template, context) {
        Ok(body) => (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(template, %error, "inbox template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered.",
            )
                .into_response()
        }
    }
}

fn notice(status: StatusCode, title: &str, text: &str) -> Response {
    page(
        status,
        "notice.html",
        minijinja::context! { title => title, text => text },
    )
}

async fn inbox(State(mailbox): State<Arc<Mailbox>>, RawQuery(query): RawQuery) -> Response {
    let params = parse_query(query);
    let filter = filter(&params);
    let refresh = match &filter.query {
        Some(q) => format!(
            "/?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("q", q)
                .finish()
        ),
        None => "/".to_string(),
    };
    let messages: Vec<Summary> = mailbox
        .list(&filter)
        .iter()
        .map(|m| Summary::from(m.as_ref()))
        .collect();
    page(
        StatusCode::OK,
        "inbox.html",
        minijinja::context! {
            title => "Inbox",
            messages => messages,
            q => filter.query.unwrap_or_default(),
            refresh => refresh,
            total => mailbox.len(),
            capacity => mailbox.capacity(),
        },
    )
}

async fn message(State(mailbox): State<Arc<Mailbox>>, Path(id): Path<String>) -> Response {
    match mailbox.get(&id) {
        Some(message) => page(
            StatusCode::OK,
            "message.html",
            minijinja::context! {
                title => if message.subject.is_empty() { "(no subject)".to_string() } else { message.subject.clone() },
                message => message.as_ref(),
            },
        ),
        None => notice(
            StatusCode::NOT_FOUND,
            "Message not found",
            "It may have been deleted, or dropped to make room for newer mail.",
        ),
    }
}

async fn raw(State(mailbox): State<Arc<Mailbox>>, Path(id): Path<String>) -> Response {
    match mailbox.get(&id) {
        Some(message) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            message.raw.clone(),
        )
            .into_response(),
        None => notice(
            StatusCode::NOT_FOUND,
            "Message not found",
            "It may have been deleted.",
        ),
    }
}

/// Refuses state changes started by another site (a page elsewhere posting to the inbox).
fn same_origin(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site == "cross-site")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority == host)
}

fn forbidden() -> Response {
    notice(
        StatusCode::FORBIDDEN,
        "Not allowed",
        "Messages can only be deleted from the inbox itself.",
    )
}

async fn delete_one(
    State(mailbox): State<Arc<Mailbox>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !same_origin(&headers) {
        return forbidden();
    }
    mailbox.delete(&id);
    Redirect::to("/").into_response()
}

async fn delete_all(State(mailbox): State<Arc<Mailbox>>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return forbidden();
    }
    mailbox.clear();
    Redirect::to("/").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        assert!(ENVIRONMENT.is_ok(), "{:?}", ENVIRONMENT.as_ref().err());
    }

    #[test]
    fn pages_render() {
        use crate::message::{Envelope, Message};
        let message = Message::parse(
            b"From: A <a@x>\r\nTo: b@x\r\nSubject: s\r\n\r\nbody".to_vec(),
            Envelope::default(),
        );
        let summary = Summary::from(&message);
        let context = minijinja::context! {
            title => "t", messages => vec![summary], q => "a b", refresh => "/?q=a+b",
            total => 1, capacity => 10,
        };
        let html = render("inbox.html", context).expect("inbox");
        assert!(html.contains(r#"value="a b""#), "{html}");
        let context = minijinja::context! { title => "t", message => &message };
        let html = render("message.html", context).expect("message");
        assert!(html.contains("A &lt;a@x&gt;"), "{html}");
    }

    #[test]
    fn cross_site_posts_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:4436".parse().expect("v"));
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, "http://127.0.0.1:4436".parse().expect("v"));
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, "http://evil.example".parse().expect("v"));
        assert!(!same_origin(&headers));
    }
}
