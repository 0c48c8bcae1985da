//! The Admin API's one error shape, `{code, name, message, fields}` (notes §1.6), produced
//! from typed errors at the edge.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use crate::entity::{Violations, lua_key};
use crate::store::StoreError;

/// An Admin API failure.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// 404 `{"message":"Not found"}`.
    #[error("not found")]
    NotFound,
    /// 405 `{"message":"Method not allowed"}`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 415 with no body.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 400 `{"message": …}` for bodies that cannot be decoded at all.
    #[error("{0}")]
    BadRequest(&'static str),
    /// 400, code 2.
    #[error("{}", .0.message())]
    Schema(Violations),
    /// 400, code 3.
    #[error("primary key violation on {0}")]
    PrimaryKey(uuid::Uuid),
    /// 400, code 4: a missing referenced entity.
    #[error("foreign key violation")]
    ForeignKey {
        /// The referencing field (`service`).
        field: &'static str,
        /// The referenced entity kind (`services`).
        entity: &'static str,
        /// The missing id.
        id: uuid::Uuid,
    },
    /// 400, code 4: an entity still referenced by others.
    #[error("referenced by {by}")]
    Referenced {
        /// The referencing entity kind.
        by: &'static str,
        /// The referenced entity kind.
        entity: &'static str,
    },
    /// 400, code 11: an invalid query option.
    #[error("invalid option {0}")]
    InvalidOption(&'static str, &'static str),
    /// 404 `{"message": "No entity named '…'"}` from `/schemas/{entity}`.
    #[error("no entity named {0}")]
    NoEntity(String),
    /// 401: the admin token is missing or wrong.
    #[error("unauthorized")]
    Unauthorized,
    /// 409, code 5.
    #[error("unique violation on {value}")]
    Unique {
        /// The field (`None`: `value` is a rendered compound key).
        field: Option<&'static str>,
        /// The value.
        value: String,
    },
    /// 400, code 7.
    #[error("invalid offset {0}")]
    InvalidOffset(String),
    /// 400, code 9.
    #[error("invalid size: {0}")]
    InvalidSize(&'static str),
    /// 400, code 13: a `{field: {name: …}}` reference names no entity.
    #[error("foreign keys unresolved")]
    Unresolved {
        /// The referencing field (`service`).
        field: String,
        /// The referenced entity kind (`services`).
        entity: &'static str,
        /// The key used (`name`).
        key: String,
        /// Its value.
        value: String,
    },
    /// 500: the store failed (logged, never shown).
    #[error("store: {0}")]
    Store(StoreError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unique { field, value } => AdminError::Unique { field, value },
            StoreError::PrimaryKey(id) => AdminError::PrimaryKey(id),
            StoreError::Referenced { by, entity } => AdminError::Referenced { by, entity },
            StoreError::MissingReference { field, entity, id } => {
                AdminError::ForeignKey { field, entity, id }
            }
            other => AdminError::Store(other),
        }
    }
}

fn kong(status: StatusCode, code: u8, name: &str, message: String, fields: Value) -> Response {
    let body = json!({"code": code, "name": name, "message": message, "fields": fields});
    (status, Json(body)).into_response()
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let plain = |status: StatusCode, msg: &str| {
            (status, Json(json!({ "message": msg }))).into_response()
        };
        match self {
            AdminError::NotFound => plain(StatusCode::NOT_FOUND, "Not found"),
            AdminError::MethodNotAllowed => {
                plain(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
            }
            AdminError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response(),
            AdminError::BadRequest(msg) => plain(StatusCode::BAD_REQUEST, msg),
            AdminError::Schema(v) => kong(
                StatusCode::BAD_REQUEST,
                2,
                "schema violation",
                v.message(),
                v.fields_json(),
            ),
            AdminError::PrimaryKey(id) => kong(
                StatusCode::BAD_REQUEST,
                3,
                "primary key violation",
                format!(
                    "primary key violation on key '{}'",
                    lua_key("id", &id.to_string())
                ),
                json!({"id": id}),
            ),
            AdminError::ForeignKey { field, entity, id } => kong(
                StatusCode::BAD_REQUEST,
                4,
                "foreign key violation",
                format!(
                    "the foreign key '{}' does not reference an existing '{entity}' entity.",
                    lua_key("id", &id.to_string())
                ),
                json!({ field: {"id": id} }),
            ),
            AdminError::Referenced { by, entity } => kong(
                StatusCode::BAD_REQUEST,
                4,
                "foreign key violation",
                format!("an existing '{by}' entity references this '{entity}' entity"),
                json!({"@referenced_by": by}),
            ),
            AdminError::InvalidOption(option, msg) => {
                let body = json!({
                    "code": 11,
                    "name": "invalid options",
                    "message": format!("invalid option ({option}: {msg})"),
                    "options": { option: msg },
                });
                (StatusCode::BAD_REQUEST, Json(body)).into_response()
            }
            AdminError::NoEntity(name) => {
                plain(StatusCode::NOT_FOUND, &format!("No entity named '{name}'"))
            }
            AdminError::Unauthorized => plain(
                StatusCode::UNAUTHORIZED,
                "Invalid credentials. Token or User credentials required",
            ),
            AdminError::Unique { field, value } => {
                let (key, fields) = match field {
                    Some(f) => (lua_key(f, &value), json!({ f: value })),
                    None => (value, json!({})),
                };
                kong(
                    StatusCode::CONFLICT,
                    5,
                    "unique constraint violation",
                    format!("UNIQUE violation detected on '{key}'"),
                    fields,
                )
            }
            AdminError::InvalidOffset(token) => kong(
                StatusCode::BAD_REQUEST,
                7,
                "invalid offset",
                format!("'{token}' is not a valid offset: bad base64 encoding"),
                json!({}),
            ),
            AdminError::InvalidSize(msg) => kong(
                StatusCode::BAD_REQUEST,
                9,
                "invalid size",
                msg.to_string(),
                json!({}),
            ),
            AdminError::Unresolved {
                field,
                entity,
                key,
                value,
            } => {
                let msg = format!(
                    "the foreign key cannot be resolved with '{}' for an existing '{entity}' entity",
                    lua_key(&key, &value)
                );
                kong(
                    StatusCode::BAD_REQUEST,
                    13,
                    "foreign keys unresolved",
                    format!("foreign key unresolved ({field}: {msg})"),
                    json!({ field: { key: msg } }),
                )
            }
            AdminError::Store(e) => {
                tracing::error!(error = %e, "admin API store failure");
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "An unexpected error occurred",
                )
            }
        }
    }
}
