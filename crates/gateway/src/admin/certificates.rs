//! `/certificates` and `/certificates/{id or sni}` (notes §1.4): the generic CRUD contract
//! plus Kong's certificate specifics — a certificate is also named by any of its SNIs, its
//! `snis` field lists their names, and writing `snis` creates or removes SNI entities in the
//! same transaction (a name held by another certificate is refused). `snis` left out of a
//! write leaves the SNIs as they are. SNIs and CA certificates use the generic endpoints.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::args::Args;
use super::crud::take_id;
use super::error::AdminError;
use super::{page_json, paging};
use crate::Inner;
use crate::entity::{Certificate, Entity, EntityKey, ForeignKey, Sni, Violations, now_seconds};

type Gw = State<Arc<Inner>>;
type Result<T> = std::result::Result<T, AdminError>;

/// `GET /certificates`.
pub(crate) async fn list(State(inner): Gw, RawQuery(q): RawQuery) -> Result<Json<Value>> {
    let p = paging(q.as_deref())?;
    let mut page = inner.store.list::<Certificate>(&p.query()).await?;
    for c in &mut page.data {
        fill_snis(&inner, c).await?;
    }
    Ok(page_json("/certificates", &p, page))
}

/// `POST /certificates`.
pub(crate) async fn create(State(inner): Gw, args: Args) -> Result<Response> {
    let mut map = args.into_map(Certificate::FIELDS);
    let id = take_id(&mut map)?;
    let now = now_seconds();
    let given = map.get("snis").is_some_and(|v| !v.is_null());
    let cert = Certificate::from_input(map, id, now, now).map_err(AdminError::Schema)?;
    let names = if given { cert.snis.clone() } else { Vec::new() };
    let saved = write(&inner, cert, true, Some(names)).await?;
    Ok((StatusCode::CREATED, Json(saved)).into_response())
}

/// `GET /certificates/{id or sni}`.
pub(crate) async fn read(State(inner): Gw, Path(key): Path<String>) -> Result<Json<Certificate>> {
    let mut c = find(&inner, &key).await?.ok_or(AdminError::NotFound)?;
    fill_snis(&inner, &mut c).await?;
    Ok(Json(c))
}

/// `PUT /certificates/{id or sni}`: an upsert; by an SNI name no certificate has yet, the
/// new certificate gets that SNI.
pub(crate) async fn put(State(inner): Gw, Path(key): Path<String>, args: Args) -> Result<Response> {
    let existing = find(&inner, &key).await?;
    let mut map = args.into_map(Certificate::FIELDS);
    let body_id = take_id(&mut map)?;
    let parsed = EntityKey::parse(&key);
    let id = match (&existing, &parsed) {
        (Some(e), _) => e.id,
        (None, EntityKey::Id(id)) => *id,
        (None, EntityKey::Name(_)) => body_id,
    };
    let given = map.get("snis").is_some_and(|v| !v.is_null());
    let now = now_seconds();
    let created = existing.as_ref().map_or(now, |e| e.created_at);
    let cert = Certificate::from_input(map, id, created, now).map_err(AdminError::Schema)?;
    let mut names = given.then(|| cert.snis.clone());
    if let (EntityKey::Name(name), None) = (&parsed, &existing) {
        let name = name.to_ascii_lowercase();
        let list = names.get_or_insert_with(Vec::new);
        if !list.contains(&name) {
            list.push(name);
        }
    }
    let saved = write(&inner, cert, existing.is_none(), names).await?;
    Ok(Json(saved).into_response())
}

/// `PATCH /certificates/{id or sni}`.
pub(crate) async fn patch(
    State(inner): Gw,
    Path(key): Path<String>,
    args: Args,
) -> Result<Response> {
    let existing = find(&inner, &key).await?.ok_or(AdminError::NotFound)?;
    let patch = args.into_map(Certificate::FIELDS);
    let given = patch.contains_key("snis");
    let mut base = existing.to_input();
    base.remove("snis");
    let map = Certificate::merge(base, patch);
    let cert = Certificate::from_input(map, existing.id, existing.created_at, now_seconds())
        .map_err(AdminError::Schema)?;
    let names = given.then(|| cert.snis.clone());
    let saved = write(&inner, cert, false, names).await?;
    Ok(Json(saved).into_response())
}

/// `DELETE /certificates/{id or sni}`: the certificate and its SNIs.
pub(crate) async fn remove(State(inner): Gw, Path(key): Path<String>) -> Result<StatusCode> {
    if let Some(c) = find(&inner, &key).await? {
        inner.store.delete::<Certificate>(c.id).await?;
        inner.refresh().await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A certificate by id, or by the name of one of its SNIs.
async fn find(inner: &Inner, key: &str) -> Result<Option<Certificate>> {
    let key = EntityKey::parse(&Certificate::normalize_key(key));
    Ok(inner.store.find::<Certificate>(&key, None).await?)
}

async fn fill_snis(inner: &Inner, c: &mut Certificate) -> Result<()> {
    c.snis = inner
        .store
        .snis_of(c.id)
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect();
    Ok(())
}

/// Stores `cert`, setting its SNIs to `names` when given, and answers the saved entity.
async fn write(
    inner: &Inner,
    mut cert: Certificate,
    new: bool,
    names: Option<Vec<String>>,
) -> Result<Certificate> {
    let current = if new {
        Vec::new()
    } else {
        inner.store.snis_of(cert.id).await?
    };
    let mut add = Vec::new();
    let mut remove = Vec::new();
    if let Some(names) = &names {
        let mut v = Violations::default();
        for name in names {
            if let Some(other) = inner
                .store
                .get::<Sni>(&EntityKey::Name(name.clone()))
                .await?
                .filter(|s| s.certificate.id != cert.id)
            {
                v.field(
                    "snis",
                    format!(
                        "{name} already associated with existing certificate '{}'",
                        other.certificate.id
                    ),
                );
            }
        }
        if !v.is_empty() {
            return Err(AdminError::Schema(v));
        }
        let now = now_seconds();
        for name in names {
            if !current.iter().any(|s| &s.name == name) {
                add.push(Sni {
                    id: portcullis_core::new_id(),
                    name: name.clone(),
                    certificate: ForeignKey { id: cert.id },
                    tags: None,
                    created_at: now,
                    updated_at: now,
                });
            }
        }
        remove = current
            .iter()
            .filter(|s| !names.contains(&s.name))
            .map(|s| s.id)
            .collect::<Vec<Uuid>>();
    }
    cert.snis.clear();
    if !inner
        .store
        .write_certificate(&cert, new, &add, &remove)
        .await?
    {
        return Err(AdminError::NotFound);
    }
    inner.refresh().await;
    fill_snis(inner, &mut cert).await?;
    Ok(cert)
}

/// The snis of a certificate in a declarative export are listed as SNI entities instead.
pub(crate) fn export(certs: Vec<Certificate>) -> Vec<Value> {
    certs
        .into_iter()
        .map(|c| {
            let mut m: Map<String, Value> = match serde_json::to_value(c) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            };
            m.remove("snis");
            Value::Object(m)
        })
        .collect()
}
