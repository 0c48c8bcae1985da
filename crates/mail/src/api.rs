//! The JSON API (`:4437`): list, search, fetch, fetch raw, delete. The test harness reads
//! recovery and verification codes through it.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use crate::message::{MailAddress, Message};
use crate::store::{Filter, Mailbox};

/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 50;

/// Errors of the API, answered as `{"error": {"code", "status", "message"}}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No message with that id.
    #[error("message {0:?} not found")]
    NotFound(String),
    /// A query parameter is not a number.
    #[error("query parameter {name:?} must be a non-negative integer, got {value:?}")]
    BadParameter {
        /// Parameter name.
        name: &'static str,
        /// What was given.
        value: String,
    },
    /// No such route.
    #[error("no API endpoint at this path")]
    NoRoute,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::NotFound(_) | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::BadParameter { .. } => StatusCode::BAD_REQUEST,
        };
        let body = json!({"error": {
            "code": status.as_u16(),
            "status": status.canonical_reason().unwrap_or_default(),
            "message": self.to_string(),
        }});
        (status, Json(body)).into_response()
    }
}

/// One entry of the list.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Message id.
    pub id: String,
    /// When it arrived.
    pub received_at: String,
    /// First `From` address.
    pub from: Option<MailAddress>,
    /// `To` addresses.
    pub to: Vec<MailAddress>,
    /// Envelope recipients.
    pub rcpt_to: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Start of the text body.
    pub snippet: String,
    /// Raw size in bytes.
    pub size: usize,
    /// Whether there is an HTML part.
    pub has_html: bool,
    /// Number of attachments.
    pub attachments: usize,
}

impl From<&Message> for Summary {
    fn from(message: &Message) -> Self {
        Summary {
            id: message.id.clone(),
            received_at: message.received_at.clone(),
            from: message.from.first().cloned(),
            to: message.to.clone(),
            rcpt_to: message.envelope.rcpt_to.clone(),
            subject: message.subject.clone(),
            snippet: message.snippet(),
            size: message.size,
            has_html: message.html.is_some(),
            attachments: message.attachments.len(),
        }
    }
}

/// `GET /api/v1/messages` body.
#[derive(Debug, Serialize)]
pub struct MessageList {
    /// Matching messages in total.
    pub total: usize,
    /// Offset of the first returned message.
    pub start: usize,
    /// Number returned.
    pub count: usize,
    /// The messages, newest first.
    pub messages: Vec<Summary>,
}

/// The API routes under `/api/v1`.
pub fn router(mailbox: Arc<Mailbox>) -> Router {
    Router::new()
        .route("/api/v1/messages", get(list).delete(delete_all))
        .route("/api/v1/messages/{id}", get(show).delete(delete_one))
        .route("/api/v1/messages/{id}/raw", get(raw))
        .fallback(|| async { ApiError::NoRoute })
        .with_state(mailbox)
}

fn number(params: &[(String, String)], name: &'static str) -> Result<Option<usize>, ApiError> {
    match params.iter().find(|(k, _)| k == name) {
        None => Ok(None),
        Some((_, value)) if value.is_empty() => Ok(None),
        Some((_, value)) => value.parse().map(Some).map_err(|_| ApiError::BadParameter {
            name,
            value: value.clone(),
        }),
    }
}

/// The decoded query pairs (`to`, `q`, `limit`, `start`); malformed escapes decode leniently.
pub(crate) fn parse_query(query: Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

pub(crate) fn filter(params: &[(String, String)]) -> Filter {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    Filter {
        to: get("to"),
        query: get("q"),
    }
}

async fn list(
    State(mailbox): State<Arc<Mailbox>>,
    RawQuery(query): RawQuery,
) -> Result<Json<MessageList>, ApiError> {
    let params = parse_query(query);
    let limit = number(&params, "limit")?.unwrap_or(DEFAULT_LIMIT);
    let start = number(&params, "start")?.unwrap_or(0);
    let matching = mailbox.list(&filter(&params));
    let messages: Vec<Summary> = matching
        .iter()
        .skip(start)
        .take(limit)
        .map(|m| Summary::from(m.as_ref()))
        .collect();
    Ok(Json(MessageList {
        total: matching.len(),
        start,
        count: messages.len(),
        messages,
    }))
}

async fn show(State(mailbox): State<Arc<Mailbox>>, Path(id): Path<String>) -> Response {
    match mailbox.get(&id) {
        Some(message) => Json(message.as_ref()).into_response(),
        None => ApiError::NotFound(id).into_response(),
    }
}

async fn raw(State(mailbox): State<Arc<Mailbox>>, Path(id): Path<String>) -> Response {
    match mailbox.get(&id) {
        Some(message) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            message.raw.clone(),
        )
            .into_response(),
        None => ApiError::NotFound(id).into_response(),
    }
}

async fn delete_one(
    State(mailbox): State<Arc<Mailbox>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if mailbox.delete(&id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(id))
    }
}

async fn delete_all(State(mailbox): State<Arc<Mailbox>>) -> StatusCode {
    mailbox.clear();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding_is_lenient() {
        let params = parse_query(Some("to=ada%40example.com&q=a+b&x=%zz&&limit=".into()));
        assert_eq!(filter(&params).to.as_deref(), Some("ada@example.com"));
        assert_eq!(filter(&params).query.as_deref(), Some("a b"));
        assert!(matches!(number(&params, "limit"), Ok(None)));
        let params = parse_query(Some("limit=-1".into()));
        assert!(matches!(
            number(&params, "limit"),
            Err(ApiError::BadParameter { .. })
        ));
    }
}
