//! Kong's generated CRUD endpoints (notes §1.1, §1.4), once for every entity: `/{entity}`
//! and `/{entity}/{id-or-key}`, and nested `/{parent}/{key}/{child}[/{child-key}]` where the
//! parent's key is forced into the child and a child of another parent is a 404. References
//! given by name (`{"service": {"name": "s"}}`) are resolved here, before validation.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::args::Args;
use super::error::AdminError;
use super::{COLLECTION_METHODS, ITEM_METHODS, allow, page_json, paging};
use crate::Inner;
use crate::entity::{Entity, EntityKey, Violations, now_seconds};
use crate::store::{Query, Stored};

type Gw = State<Arc<Inner>>;
type Result<T> = std::result::Result<T, AdminError>;
type ApiRouter = axum::Router<Arc<Inner>>;

/// The top-level entity collections, as registered in [`super::router`].
const TOP: &[&str] = &[
    "services",
    "routes",
    "consumers",
    "plugins",
    "upstreams",
    "certificates",
    "snis",
    "ca_certificates",
];
/// The nested collections, as registered in [`super::router`].
const NESTED: &[(&str, &str)] = &[
    ("services", "routes"),
    ("services", "plugins"),
    ("routes", "plugins"),
    ("consumers", "plugins"),
    ("upstreams", "targets"),
    ("certificates", "snis"),
];

/// Every CRUD path, in Kong's `/endpoints` notation.
pub(crate) fn paths() -> Vec<String> {
    let mut out = Vec::new();
    for e in TOP {
        out.push(format!("/{e}"));
        out.push(format!("/{e}/{{{e}}}"));
    }
    for (p, c) in NESTED {
        out.push(format!("/{p}/{{{p}}}/{c}"));
        out.push(format!("/{p}/{{{p}}}/{c}/{{{c}}}"));
    }
    out
}

/// A child's parent, fixed by the path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope {
    field: &'static str,
    column: &'static str,
    parent: Uuid,
}

/// Registers `/{entity}` and `/{entity}/{key}`.
pub(crate) fn top<T: Entity + 'static>(r: ApiRouter) -> ApiRouter {
    let base = format!("/{}", T::TABLE.entity);
    r.route(
        &base,
        get(list::<T>)
            .post(create::<T>)
            .options(allow(COLLECTION_METHODS)),
    )
    .route(
        &format!("{base}/{{key}}"),
        get(read::<T>)
            .put(put::<T>)
            .patch(patch::<T>)
            .delete(remove::<T>)
            .options(allow(ITEM_METHODS)),
    )
}

/// Registers `/{parent}/{key}/{child}` and `/{parent}/{key}/{child}/{child_key}`.
pub(crate) fn nested<P: Entity + 'static, C: Entity + 'static>(r: ApiRouter) -> ApiRouter {
    let base = format!("/{}/{{key}}/{}", P::TABLE.entity, C::TABLE.entity);
    r.route(
        &base,
        get(nested_list::<P, C>)
            .post(nested_create::<P, C>)
            .options(allow(COLLECTION_METHODS)),
    )
    .route(
        &format!("{base}/{{child}}"),
        get(nested_read::<P, C>)
            .put(nested_put::<P, C>)
            .patch(nested_patch::<P, C>)
            .delete(nested_remove::<P, C>)
            .options(allow(ITEM_METHODS)),
    )
}

async fn list<T: Entity>(State(inner): Gw, RawQuery(q): RawQuery) -> Result<Json<Value>> {
    let base = format!("/{}", T::TABLE.entity);
    list_entities::<T>(&inner, &base, None, q.as_deref()).await
}

async fn create<T: Entity>(State(inner): Gw, args: Args) -> Result<Response> {
    create_entity::<T>(&inner, args, None).await
}

async fn read<T: Entity>(State(inner): Gw, Path(key): Path<String>) -> Result<Json<T>> {
    Ok(Json(find::<T>(&inner, &key, None).await?))
}

async fn put<T: Entity>(State(inner): Gw, Path(key): Path<String>, args: Args) -> Result<Response> {
    put_entity::<T>(&inner, &key, args, None).await
}

async fn patch<T: Entity>(
    State(inner): Gw,
    Path(key): Path<String>,
    args: Args,
) -> Result<Response> {
    patch_entity::<T>(&inner, &key, args, None).await
}

async fn remove<T: Entity>(State(inner): Gw, Path(key): Path<String>) -> Result<StatusCode> {
    remove_entity::<T>(&inner, &key, None).await
}

async fn scope<P: Entity, C: Entity>(inner: &Inner, key: &str) -> Result<(Scope, String)> {
    let parent = find::<P>(inner, key, None).await?;
    let reference = C::TABLE
        .references
        .iter()
        .find(|r| r.table == P::TABLE.name)
        .ok_or(AdminError::NotFound)?;
    let scope = Scope {
        field: reference.field,
        column: reference.column,
        parent: parent.id(),
    };
    let base = format!("/{}/{key}/{}", P::TABLE.entity, C::TABLE.entity);
    Ok((scope, base))
}

async fn nested_list<P: Entity, C: Entity>(
    State(inner): Gw,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>> {
    let (scope, base) = scope::<P, C>(&inner, &key).await?;
    list_entities::<C>(&inner, &base, Some(scope), q.as_deref()).await
}

async fn nested_create<P: Entity, C: Entity>(
    State(inner): Gw,
    Path(key): Path<String>,
    args: Args,
) -> Result<Response> {
    let (scope, _) = scope::<P, C>(&inner, &key).await?;
    create_entity::<C>(&inner, args, Some(scope)).await
}

async fn nested_read<P: Entity, C: Entity>(
    State(inner): Gw,
    Path((key, child)): Path<(String, String)>,
) -> Result<Json<C>> {
    let (scope, _) = scope::<P, C>(&inner, &key).await?;
    Ok(Json(find::<C>(&inner, &child, Some(scope)).await?))
}

async fn nested_put<P: Entity, C: Entity>(
    State(inner): Gw,
    Path((key, child)): Path<(String, String)>,
    args: Args,
) -> Result<Response> {
    let (scope, _) = scope::<P, C>(&inner, &key).await?;
    put_entity::<C>(&inner, &child, args, Some(scope)).await
}

async fn nested_patch<P: Entity, C: Entity>(
    State(inner): Gw,
    Path((key, child)): Path<(String, String)>,
    args: Args,
) -> Result<Response> {
    let (scope, _) = scope::<P, C>(&inner, &key).await?;
    patch_entity::<C>(&inner, &child, args, Some(scope)).await
}

async fn nested_remove<P: Entity, C: Entity>(
    State(inner): Gw,
    Path((key, child)): Path<(String, String)>,
) -> Result<StatusCode> {
    let (scope, _) = scope::<P, C>(&inner, &key).await?;
    remove_entity::<C>(&inner, &child, Some(scope)).await
}

// ---- the operations ----------------------------------------------------------------------

async fn lookup<T: Entity>(inner: &Inner, key: &str, scope: Option<Scope>) -> Result<Option<T>> {
    let key = EntityKey::parse(&T::normalize_key(key));
    let parent = scope.map(|s| (s.column, s.parent.to_string()));
    Ok(inner
        .store
        .find::<T>(&key, parent.as_ref().map(|(c, v)| (*c, v.as_str())))
        .await?)
}

pub(crate) async fn find<T: Entity>(inner: &Inner, key: &str, scope: Option<Scope>) -> Result<T> {
    lookup::<T>(inner, key, scope)
        .await?
        .ok_or(AdminError::NotFound)
}

async fn list_entities<T: Entity>(
    inner: &Inner,
    base: &str,
    scope: Option<Scope>,
    q: Option<&str>,
) -> Result<Json<Value>> {
    let p = paging(q)?;
    let mut query: Query<'_> = p.query();
    if let Some(s) = scope {
        query.filter = Some((s.column, s.parent.to_string()));
    } else {
        for (k, v) in form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
            if let Some(f) = T::FILTERS.iter().find(|f| **f == k) {
                query.filter = Some((f, v.into_owned()));
            }
        }
    }
    let page = inner.store.list::<T>(&query).await?;
    Ok(page_json(base, &p, page))
}

async fn create_entity<T: Entity>(
    inner: &Inner,
    args: Args,
    scope: Option<Scope>,
) -> Result<Response> {
    let mut map = args.into_map(T::FIELDS);
    set_scope(&mut map, scope);
    resolve_references::<T>(inner, &mut map).await?;
    let id = take_id(&mut map)?;
    let now = now_seconds();
    let e = T::from_input(map, id, now, now).map_err(AdminError::Schema)?;
    inner.store.insert(&e).await?;
    inner.refresh().await;
    Ok((StatusCode::CREATED, Json(e)).into_response())
}

/// PUT: an upsert by id, or by endpoint key (which the path then sets in the body).
pub(crate) async fn put_entity<T: Entity>(
    inner: &Inner,
    key: &str,
    args: Args,
    scope: Option<Scope>,
) -> Result<Response> {
    let existing = lookup::<T>(inner, key, scope).await?;
    let parsed = EntityKey::parse(&T::normalize_key(key));
    let mut map = args.into_map(T::FIELDS);
    set_scope(&mut map, scope);
    let body_id = take_id(&mut map)?;
    let id = match (&existing, &parsed) {
        (Some(e), _) => e.id(),
        (None, EntityKey::Id(id)) => *id,
        (None, EntityKey::Name(_)) => body_id,
    };
    if let (EntityKey::Name(name), Some(column)) = (&parsed, T::TABLE.endpoint_key) {
        map.insert(column.to_string(), Value::String(name.clone()));
    }
    resolve_references::<T>(inner, &mut map).await?;
    let now = now_seconds();
    let created = existing.as_ref().map_or(now, |e| e.timestamps().0);
    let e = T::from_input(map, id, created, now).map_err(AdminError::Schema)?;
    if existing.is_some() {
        inner.store.update(&e).await?;
    } else {
        inner.store.insert(&e).await?;
    }
    inner.refresh().await;
    Ok(Json(e).into_response())
}

/// PATCH: the body merged over the stored entity, validated whole.
pub(crate) async fn patch_entity<T: Entity>(
    inner: &Inner,
    key: &str,
    args: Args,
    scope: Option<Scope>,
) -> Result<Response> {
    let existing = find::<T>(inner, key, scope).await?;
    let mut map = T::merge(existing.to_input(), args.into_map(T::FIELDS));
    set_scope(&mut map, scope);
    resolve_references::<T>(inner, &mut map).await?;
    let e = T::from_input(map, existing.id(), existing.timestamps().0, now_seconds())
        .map_err(AdminError::Schema)?;
    if !inner.store.update(&e).await? {
        return Err(AdminError::NotFound);
    }
    inner.refresh().await;
    Ok(Json(e).into_response())
}

async fn remove_entity<T: Entity>(
    inner: &Inner,
    key: &str,
    scope: Option<Scope>,
) -> Result<StatusCode> {
    if let Some(e) = lookup::<T>(inner, key, scope).await? {
        inner.store.delete::<T>(e.id()).await?;
        inner.refresh().await;
    }
    Ok(StatusCode::NO_CONTENT)
}

fn set_scope(map: &mut Map<String, Value>, scope: Option<Scope>) {
    if let Some(s) = scope {
        map.insert(s.field.to_string(), json!({"id": s.parent}));
    }
}

/// Replaces `{field: {name: …}}` (or the referenced entity's other endpoint key, e.g.
/// `username`) with `{field: {id: …}}`, or fails with Kong's code 13.
async fn resolve_references<T: Stored>(inner: &Inner, map: &mut Map<String, Value>) -> Result<()> {
    for r in T::TABLE.references {
        let Some(Value::Object(given)) = map.get(r.field) else {
            continue;
        };
        if given.get("id").is_some_and(|v| !v.is_null()) {
            continue;
        }
        let Some(parent) = crate::store::table(r.table) else {
            continue;
        };
        let Some(column) = parent.endpoint_key else {
            continue;
        };
        let Some(Value::String(value)) = given.get(column).cloned() else {
            continue;
        };
        match inner.store.resolve(parent, column, &value).await? {
            Some(id) => {
                map.insert(r.field.to_string(), json!({ "id": id }));
            }
            None => {
                return Err(AdminError::Unresolved {
                    field: r.field.to_string(),
                    entity: r.entity,
                    key: column.to_string(),
                    value,
                });
            }
        }
    }
    Ok(())
}

/// Takes a client-supplied `id` out of the body, or generates one.
pub(crate) fn take_id(map: &mut Map<String, Value>) -> Result<Uuid> {
    match map.remove("id") {
        None | Some(Value::Null) => Ok(portcullis_core::new_id()),
        Some(Value::String(s)) => Uuid::parse_str(&s).map_err(|_| invalid_uuid("id")),
        Some(_) => Err(invalid_uuid("id")),
    }
}

fn invalid_uuid(field: &str) -> AdminError {
    let mut v = Violations::default();
    v.field(field, "expected a valid UUID");
    AdminError::Schema(v)
}
