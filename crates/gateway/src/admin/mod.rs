//! The Admin API (notes §1): services and routes with Kong's wire contract — name-or-id
//! lookup, 201 on POST, 200 on PUT (an upsert), 204 on DELETE even when absent, `{data, next}`
//! pagination, and every failure rendered by [`error::AdminError`]. Each successful write
//! rebuilds the proxy table before answering, so a client that saw 2xx sees the new routing.

pub mod args;
pub mod error;

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, RawQuery, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};
use tower::ServiceExt;
use uuid::Uuid;

use self::args::Args;
use self::error::AdminError;
use crate::Inner;
use crate::entity::route::{self, ServiceRef};
use crate::entity::service;
use crate::entity::{EntityKey, ForeignKey, Route, Service, Violations, now_seconds};

type Gw = State<Arc<Inner>>;
type Result<T> = std::result::Result<T, AdminError>;

/// Builds the Admin API router.
pub(crate) fn router(inner: Arc<Inner>) -> axum::Router {
    let api = axum::Router::new()
        .route("/", get(root))
        .route("/status", get(status))
        .route("/services", get(list_services).post(create_service))
        .route(
            "/services/{service}",
            get(get_service)
                .put(put_service)
                .patch(patch_service)
                .delete(delete_service),
        )
        .route(
            "/services/{service}/routes",
            get(list_service_routes).post(create_service_route),
        )
        .route("/routes", get(list_routes).post(create_route))
        .route(
            "/routes/{route}",
            get(get_route)
                .put(put_route)
                .patch(patch_route)
                .delete(delete_route),
        )
        .fallback(|| async { AdminError::NotFound })
        .method_not_allowed_fallback(|| async { AdminError::MethodNotAllowed })
        .with_state(inner);
    // Kong tolerates a trailing slash (the tutorial posts to `/services/`): drop it before
    // routing rather than doubling every route.
    let api = api.map_request(trim_trailing_slash);
    axum::Router::new()
        .fallback_service(api)
        .layer(middleware::from_fn(admin_headers))
}

fn trim_trailing_slash(mut req: Request) -> Request {
    let path = req.uri().path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let pq = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_string(),
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = pq.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

/// Headers Kong adds to every Admin API response (notes §1.1, §3.2).
async fn admin_headers(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        origin.unwrap_or(HeaderValue::from_static("*")),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.insert(
        header::SERVER,
        HeaderValue::from_static(crate::proxy::error::SERVER),
    );
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    h.insert("x-kong-admin-latency", HeaderValue::from(ms));
    res
}

async fn root(State(inner): Gw) -> Json<Value> {
    Json(json!({
        "tagline": "Welcome to kong",
        "version": crate::KONG_VERSION,
        "edition": "community",
        "hostname": hostname(),
        "node_id": inner.node_id,
        "plugins": {"available_on_server": {}, "enabled_in_cluster": []},
        "configuration": {
            "database": inner.store.db().dialect().to_string(),
            "router_flavor": "traditional_compatible",
        },
        "pids": {"master": std::process::id(), "workers": []},
    }))
}

async fn status(State(inner): Gw) -> Json<Value> {
    let reachable = inner.store.ping().await;
    let requests = inner.requests.load(std::sync::atomic::Ordering::Relaxed);
    Json(json!({
        "database": {"reachable": reachable},
        "server": {"total_requests": requests},
    }))
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

// ---- pagination --------------------------------------------------------------------------

struct Paging {
    size: i64,
    size_given: bool,
    after: Option<String>,
}

fn paging(query: Option<&str>) -> Result<Paging> {
    let mut p = Paging {
        size: 100,
        size_given: false,
        after: None,
    };
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "size" => {
                let n: i64 = v
                    .trim()
                    .parse()
                    .map_err(|_| AdminError::InvalidSize("size must be a number"))?;
                if !(1..=1000).contains(&n) {
                    return Err(AdminError::InvalidSize(
                        "size must be an integer between 1 and 1000",
                    ));
                }
                p.size = n;
                p.size_given = true;
            }
            "offset" => {
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(v.as_bytes())
                    .map_err(|_| AdminError::InvalidOffset(v.to_string()))?;
                let id = String::from_utf8(bytes)
                    .map_err(|_| AdminError::InvalidOffset(v.to_string()))?;
                p.after = Some(id);
            }
            _ => {}
        }
    }
    Ok(p)
}

fn page_json<T: serde::Serialize>(
    base: &str,
    paging: &Paging,
    page: crate::store::Page<T>,
) -> Json<Value> {
    let mut out = Map::new();
    out.insert("data".into(), json!(page.data));
    match page.next_after {
        Some(after) => {
            let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after);
            let mut next = format!("{base}?offset={token}");
            if paging.size_given {
                next.push_str(&format!("&size={}", paging.size));
            }
            out.insert("offset".into(), Value::String(token));
            out.insert("next".into(), Value::String(next));
        }
        None => {
            out.insert("next".into(), Value::Null);
        }
    }
    Json(Value::Object(out))
}

// ---- helpers -----------------------------------------------------------------------------

/// Takes a client-supplied `id` out of the body, or generates one.
fn take_id(map: &mut Map<String, Value>) -> Result<Uuid> {
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

async fn find_service(inner: &Inner, key: &str) -> Result<Service> {
    inner
        .store
        .service(&EntityKey::parse(key))
        .await?
        .ok_or(AdminError::NotFound)
}

async fn find_route(inner: &Inner, key: &str) -> Result<Route> {
    inner
        .store
        .route(&EntityKey::parse(key))
        .await?
        .ok_or(AdminError::NotFound)
}

/// Resolves `service.name` to the service's id.
async fn resolve(inner: &Inner, route: &mut Route, sref: Option<ServiceRef>) -> Result<()> {
    if let Some(ServiceRef::Name(name)) = sref {
        let s = inner
            .store
            .service(&EntityKey::Name(name.clone()))
            .await?
            .ok_or(AdminError::Unresolved(name))?;
        route.service = Some(ForeignKey { id: s.id });
    }
    Ok(())
}

fn merge(mut base: Map<String, Value>, patch: Map<String, Value>) -> Map<String, Value> {
    if patch.contains_key("url") {
        for f in ["protocol", "host", "port", "path"] {
            base.remove(f);
        }
    }
    base.extend(patch);
    base
}

// ---- services ----------------------------------------------------------------------------

async fn list_services(State(inner): Gw, RawQuery(q): RawQuery) -> Result<Json<Value>> {
    let p = paging(q.as_deref())?;
    let page = inner.store.services(p.size, p.after.as_deref()).await?;
    Ok(page_json("/services", &p, page))
}

async fn create_service(State(inner): Gw, args: Args) -> Result<Response> {
    let mut map = args.into_map(service::FIELDS);
    let id = take_id(&mut map)?;
    let now = now_seconds();
    let s = Service::from_input(map, id, now, now).map_err(AdminError::Schema)?;
    inner.store.insert_service(&s).await?;
    inner.refresh().await;
    Ok((StatusCode::CREATED, Json(s)).into_response())
}

async fn get_service(State(inner): Gw, Path(key): Path<String>) -> Result<Json<Service>> {
    Ok(Json(find_service(&inner, &key).await?))
}

async fn put_service(
    State(inner): Gw,
    Path(key): Path<String>,
    args: Args,
) -> Result<Json<Service>> {
    let key = EntityKey::parse(&key);
    let existing = inner.store.service(&key).await?;
    let mut map = args.into_map(service::FIELDS);
    let body_id = take_id(&mut map)?;
    let id = match (&existing, &key) {
        (Some(e), _) => e.id,
        (None, EntityKey::Id(id)) => *id,
        (None, EntityKey::Name(_)) => body_id,
    };
    if let EntityKey::Name(name) = &key {
        map.insert("name".into(), Value::String(name.clone()));
    }
    let now = now_seconds();
    let created = existing.as_ref().map_or(now, |e| e.created_at);
    let s = Service::from_input(map, id, created, now).map_err(AdminError::Schema)?;
    if existing.is_some() {
        inner.store.update_service(&s).await?;
    } else {
        inner.store.insert_service(&s).await?;
    }
    inner.refresh().await;
    Ok(Json(s))
}

async fn patch_service(
    State(inner): Gw,
    Path(key): Path<String>,
    args: Args,
) -> Result<Json<Service>> {
    let existing = find_service(&inner, &key).await?;
    let map = merge(existing.to_input(), args.into_map(service::FIELDS));
    let s = Service::from_input(map, existing.id, existing.created_at, now_seconds())
        .map_err(AdminError::Schema)?;
    if !inner.store.update_service(&s).await? {
        return Err(AdminError::NotFound);
    }
    inner.refresh().await;
    Ok(Json(s))
}

async fn delete_service(State(inner): Gw, Path(key): Path<String>) -> Result<StatusCode> {
    if let Some(s) = inner.store.service(&EntityKey::parse(&key)).await? {
        inner.store.delete_service(s.id).await?;
        inner.refresh().await;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn list_service_routes(
    State(inner): Gw,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>> {
    let s = find_service(&inner, &key).await?;
    let p = paging(q.as_deref())?;
    let page = inner
        .store
        .routes(Some(s.id), p.size, p.after.as_deref())
        .await?;
    Ok(page_json(&format!("/services/{key}/routes"), &p, page))
}

async fn create_service_route(
    State(inner): Gw,
    Path(key): Path<String>,
    args: Args,
) -> Result<Response> {
    let s = find_service(&inner, &key).await?;
    let mut map = args.into_map(route::FIELDS);
    map.insert("service".into(), json!({"id": s.id}));
    insert_route(&inner, map).await
}

// ---- routes ------------------------------------------------------------------------------

async fn list_routes(State(inner): Gw, RawQuery(q): RawQuery) -> Result<Json<Value>> {
    let p = paging(q.as_deref())?;
    let page = inner.store.routes(None, p.size, p.after.as_deref()).await?;
    Ok(page_json("/routes", &p, page))
}

async fn create_route(State(inner): Gw, args: Args) -> Result<Response> {
    insert_route(&inner, args.into_map(route::FIELDS)).await
}

async fn insert_route(inner: &Inner, mut map: Map<String, Value>) -> Result<Response> {
    let id = take_id(&mut map)?;
    let now = now_seconds();
    let (mut r, sref) = Route::from_input(map, id, now, now).map_err(AdminError::Schema)?;
    resolve(inner, &mut r, sref).await?;
    inner.store.insert_route(&r).await?;
    inner.refresh().await;
    Ok((StatusCode::CREATED, Json(r)).into_response())
}

async fn get_route(State(inner): Gw, Path(key): Path<String>) -> Result<Json<Route>> {
    Ok(Json(find_route(&inner, &key).await?))
}

async fn put_route(State(inner): Gw, Path(key): Path<String>, args: Args) -> Result<Json<Route>> {
    let key = EntityKey::parse(&key);
    let existing = inner.store.route(&key).await?;
    let mut map = args.into_map(route::FIELDS);
    let body_id = take_id(&mut map)?;
    let id = match (&existing, &key) {
        (Some(e), _) => e.id,
        (None, EntityKey::Id(id)) => *id,
        (None, EntityKey::Name(_)) => body_id,
    };
    if let EntityKey::Name(name) = &key {
        map.insert("name".into(), Value::String(name.clone()));
    }
    let now = now_seconds();
    let created = existing.as_ref().map_or(now, |e| e.created_at);
    let (mut r, sref) = Route::from_input(map, id, created, now).map_err(AdminError::Schema)?;
    resolve(&inner, &mut r, sref).await?;
    if existing.is_some() {
        inner.store.update_route(&r).await?;
    } else {
        inner.store.insert_route(&r).await?;
    }
    inner.refresh().await;
    Ok(Json(r))
}

async fn patch_route(State(inner): Gw, Path(key): Path<String>, args: Args) -> Result<Json<Route>> {
    let existing = find_route(&inner, &key).await?;
    let map = merge(existing.to_input(), args.into_map(route::FIELDS));
    let (mut r, sref) = Route::from_input(map, existing.id, existing.created_at, now_seconds())
        .map_err(AdminError::Schema)?;
    resolve(&inner, &mut r, sref).await?;
    if !inner.store.update_route(&r).await? {
        return Err(AdminError::NotFound);
    }
    inner.refresh().await;
    Ok(Json(r))
}

async fn delete_route(State(inner): Gw, Path(key): Path<String>) -> Result<StatusCode> {
    if let Some(r) = inner.store.route(&EntityKey::parse(&key)).await? {
        inner.store.delete_route(r.id).await?;
        inner.refresh().await;
    }
    Ok(StatusCode::NO_CONTENT)
}
