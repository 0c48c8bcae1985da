//! DB-less mode at the Admin API's edge (notes §1.2, §1.8): `GET|POST /config`, and the 405
//! Kong answers to every entity write when there is no database.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode, header};
use serde_json::{Map, Value, json};

use super::args::Args;
use super::error::AdminError;
use crate::declarative::{self, DeclarativeError};
use crate::entity::{
    CaCertificate, Certificate, Consumer, Plugin, Route, Service, Sni, Target, Upstream,
};
use crate::store::StoreError;
use crate::{GatewayError, Inner};

type Gw = State<Arc<Inner>>;

const ONLY_DBLESS: &str =
    "this endpoint is only available when Kong is configured to not use a database";

/// Refuses entity writes in DB-less mode with Kong's code 12.
pub(crate) async fn read_only(State(inner): Gw, req: Request, next: Next) -> Response {
    let verb = match *req.method() {
        Method::POST => "create",
        Method::PUT => "create or update",
        Method::PATCH => "update",
        Method::DELETE => "delete",
        _ => return next.run(req).await,
    };
    let path = req.uri().path().trim_end_matches('/');
    // Health is per node and in memory, so DB-less nodes accept it like Kong does.
    let health = path.ends_with("/healthy") || path.ends_with("/unhealthy");
    if !inner.dbless || path == "/config" || health {
        return next.run(req).await;
    }
    let entity = path.split('/').rev().find_map(|seg| match seg {
        "service" => Some("services"),
        "services" | "routes" | "consumers" | "plugins" | "upstreams" | "targets"
        | "certificates" | "snis" | "ca_certificates" => Some(seg),
        _ => None,
    });
    match entity {
        Some(entity) => {
            let body = json!({
                "code": 12,
                "name": "operation unsupported",
                "message": format!("cannot {verb} '{entity}' entities when not using a database"),
            });
            (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
        }
        None => next.run(req).await,
    }
}

/// `GET /config`: the current configuration as a declarative YAML document.
pub(crate) async fn get_config(State(inner): Gw) -> Result<Response, AdminError> {
    if !inner.dbless {
        return Err(AdminError::BadRequest(ONLY_DBLESS));
    }
    let s = &inner.store;
    let mut doc = Map::new();
    doc.insert("_format_version".into(), json!("3.0"));
    doc.insert("services".into(), json!(s.all::<Service>().await?));
    doc.insert("routes".into(), json!(s.all::<Route>().await?));
    doc.insert("consumers".into(), json!(s.all::<Consumer>().await?));
    doc.insert("plugins".into(), json!(s.all::<Plugin>().await?));
    doc.insert("upstreams".into(), json!(s.all::<Upstream>().await?));
    doc.insert("targets".into(), json!(s.all::<Target>().await?));
    doc.insert(
        "certificates".into(),
        json!(super::certificates::export(s.all::<Certificate>().await?)),
    );
    doc.insert("snis".into(), json!(s.all::<Sni>().await?));
    doc.insert(
        "ca_certificates".into(),
        json!(s.all::<CaCertificate>().await?),
    );
    let yaml = serde_yaml::to_string(&Value::Object(doc)).unwrap_or_default();
    Ok(Json(json!({ "config": yaml })).into_response())
}

/// `POST /config`: replaces the whole configuration. The body is the declarative document
/// (JSON, or YAML with a YAML content type), or a `config` field holding it as a string.
pub(crate) async fn post_config(State(inner): Gw, req: Request) -> Response {
    if !inner.dbless {
        return AdminError::BadRequest(ONLY_DBLESS).into_response();
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Ok(body) = axum::body::to_bytes(req.into_body(), 64 * 1024 * 1024).await else {
        return AdminError::BadRequest("Cannot read request body").into_response();
    };
    let doc = match document(&content_type, &body) {
        Ok(doc) => doc,
        Err(e) => return e.into_response(),
    };
    let result = match declarative::compile(doc) {
        Ok(config) => inner.replace(&config).await.map(|()| config),
        Err(e) => Err(GatewayError::Declarative(e)),
    };
    match result {
        Ok(config) => (StatusCode::CREATED, Json(config.to_json())).into_response(),
        Err(GatewayError::Declarative(e)) => invalid(&e),
        Err(GatewayError::Store(StoreError::Unique { field, value })) => {
            let line = match field {
                Some(f) => format!("uniqueness violation: {f} '{value}' declared twice"),
                None => format!("uniqueness violation: {value} declared twice"),
            };
            invalid(&DeclarativeError::Invalid {
                lines: vec![line.clone()],
                fields: json!({ "@entity": [line] }),
            })
        }
        Err(e) => {
            tracing::error!(error = %e, "loading declarative configuration failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"message": "An unexpected error occurred"})),
            )
                .into_response()
        }
    }
}

/// Why a `/config` body could not be turned into a document.
enum BodyError {
    Admin(AdminError),
    Declarative(DeclarativeError),
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        match self {
            BodyError::Admin(e) => e.into_response(),
            BodyError::Declarative(e) => invalid(&e),
        }
    }
}

fn document(content_type: &str, body: &Bytes) -> Result<Value, BodyError> {
    let parse_text = |text: &str| declarative::parse(text).map_err(BodyError::Declarative);
    match content_type {
        "application/yaml" | "text/yaml" | "application/x-yaml" => {
            let text = std::str::from_utf8(body)
                .map_err(|_| BodyError::Admin(AdminError::BadRequest("Cannot parse YAML body")))?;
            parse_text(text)
        }
        _ => {
            let ct = (!content_type.is_empty()).then_some(content_type);
            let args = Args::parse(ct, body).map_err(BodyError::Admin)?;
            let mut map = args.into_map(&[]);
            match map.remove("config") {
                Some(Value::String(text)) => parse_text(&text),
                Some(other) => Ok(other),
                None => Ok(Value::Object(map)),
            }
        }
    }
}

fn invalid(e: &DeclarativeError) -> Response {
    let fields = match e {
        DeclarativeError::Invalid { fields, .. } => fields.clone(),
        _ => json!({}),
    };
    let body = json!({
        "code": 14,
        "name": "invalid declarative configuration",
        "message": e.to_string(),
        "fields": fields,
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}
