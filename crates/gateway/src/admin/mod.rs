//! The Admin API (notes §1): Kong's entities with Kong's wire contract — name-or-id
//! lookup, 201 on POST, 200 on PUT (an upsert), 204 on DELETE even when absent, `{data, next}`
//! pagination, and every failure rendered by [`error::AdminError`]. Each successful write
//! rebuilds the proxy table before answering, so a client that saw 2xx sees the new routing.

pub mod args;
mod certificates;
mod config;
mod crud;
pub mod error;
mod health;
mod schema;

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

use self::args::Args;
use self::error::AdminError;
use crate::Inner;
use crate::entity::{
    CaCertificate, Consumer, EntityKey, Plugin, Route, Service, Sni, Target, Upstream,
};
use crate::store::{Query, TagFilter};

type Gw = State<Arc<Inner>>;
type Result<T> = std::result::Result<T, AdminError>;

/// Builds the Admin API router.
pub(crate) fn router(inner: Arc<Inner>) -> axum::Router {
    let api = axum::Router::new()
        .route("/", get(root).options(allow(ROOT_METHODS)))
        .route("/status", get(status).options(allow(ROOT_METHODS)))
        .route("/endpoints", get(endpoints).options(allow(ROOT_METHODS)))
        .route(
            "/config",
            get(config::get_config)
                .post(config::post_config)
                .options(allow(COLLECTION_METHODS)),
        )
        .route("/tags", get(tags).options(allow(ROOT_METHODS)))
        .route("/tags/{tag}", get(tag).options(allow(ROOT_METHODS)))
        .route(
            "/schemas/{entity}",
            get(schema::entity_schema).options(allow(ROOT_METHODS)),
        )
        .route(
            "/upstreams/{key}/health",
            get(health::upstream_health).options(allow(ROOT_METHODS)),
        )
        .route(
            "/upstreams/{key}/targets/{child}/healthy",
            axum::routing::put(health::set_healthy).options(allow(SET_HEALTH_METHODS)),
        )
        .route(
            "/upstreams/{key}/targets/{child}/unhealthy",
            axum::routing::put(health::set_unhealthy).options(allow(SET_HEALTH_METHODS)),
        )
        .route(
            "/certificates",
            get(certificates::list)
                .post(certificates::create)
                .options(allow(COLLECTION_METHODS)),
        )
        .route(
            "/certificates/{key}",
            get(certificates::read)
                .put(certificates::put)
                .patch(certificates::patch)
                .delete(certificates::remove)
                .options(allow(ITEM_METHODS)),
        )
        .route(
            "/routes/{key}/service",
            get(route_service)
                .put(put_route_service)
                .patch(patch_route_service)
                .delete(delete_route_service)
                .options(allow(ITEM_METHODS)),
        );
    let api = crud::top::<Service>(api);
    let api = crud::top::<Route>(api);
    let api = crud::top::<Consumer>(api);
    let api = crud::top::<Plugin>(api);
    let api = crud::top::<Upstream>(api);
    let api = crud::top::<Sni>(api);
    let api = crud::top::<CaCertificate>(api);
    let api = crud::nested::<Service, Route>(api);
    let api = crud::nested::<Service, Plugin>(api);
    let api = crud::nested::<Route, Plugin>(api);
    let api = crud::nested::<Consumer, Plugin>(api);
    let api = crud::nested::<Upstream, Target>(api);
    let api = crud::nested::<crate::entity::Certificate, Sni>(api);
    let api = api
        .fallback(|| async { AdminError::NotFound })
        .method_not_allowed_fallback(|| async { AdminError::MethodNotAllowed })
        .with_state(Arc::clone(&inner));
    // Kong retries a path with its trailing slash removed; rewriting before routing does
    // the same without doubling every route.
    let api = api.map_request(trim_trailing_slash);
    axum::Router::new()
        .fallback_service(api)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&inner),
            config::read_only,
        ))
        .layer(middleware::from_fn_with_state(inner, require_token))
        .layer(middleware::from_fn(admin_headers))
}

const ROOT_METHODS: &str = "GET, HEAD, OPTIONS";
const SET_HEALTH_METHODS: &str = "OPTIONS, PUT";
pub(crate) const COLLECTION_METHODS: &str = "GET, HEAD, OPTIONS, POST";
pub(crate) const ITEM_METHODS: &str = "DELETE, GET, HEAD, OPTIONS, PATCH, PUT";

/// Kong's automatic OPTIONS answer: 204 naming the allowed methods.
pub(crate) fn allow(
    methods: &'static str,
) -> impl Fn() -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    move || {
        let mut res = StatusCode::NO_CONTENT.into_response();
        let v = HeaderValue::from_static(methods);
        res.headers_mut().insert(header::ALLOW, v.clone());
        res.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
        std::future::ready(res)
    }
}

/// The header carrying the admin token (Kong Enterprise's name for its RBAC token).
pub const TOKEN_HEADER: &str = "kong-admin-token";

/// Refuses requests without the configured admin token (when one is configured). CORS
/// preflights pass: browsers never attach custom headers to them, and they reveal nothing.
async fn require_token(State(inner): Gw, req: Request, next: Next) -> Response {
    if let Some(token) = &inner.admin_token
        && req.method() != http::Method::OPTIONS
    {
        let given = req
            .headers()
            .get(TOKEN_HEADER)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !portcullis_core::constant_time_eq(given, token.expose().as_bytes()) {
            return AdminError::Unauthorized.into_response();
        }
    }
    next.run(req).await
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

pub(crate) struct Paging {
    size: i64,
    size_given: bool,
    after: Option<String>,
    tags: Option<(String, TagFilter)>,
}

impl Paging {
    pub(crate) fn query(&self) -> Query<'_> {
        Query {
            filter: None,
            tags: self.tags.as_ref().map(|(_, t)| t),
            size: self.size,
            after: self.after.as_deref(),
        }
    }
}

/// Kong's `?tags=` syntax: `a,b` (all) or `a/b` (any), never both.
fn tag_filter(raw: &str) -> Result<TagFilter> {
    let invalid = || AdminError::InvalidOption("tags", "invalid filter syntax");
    let split = |sep: char| -> Result<Vec<String>> {
        let tags: Vec<String> = raw.split(sep).map(str::to_string).collect();
        if tags.iter().any(String::is_empty) {
            return Err(invalid());
        }
        Ok(tags)
    };
    match (raw.contains(','), raw.contains('/')) {
        (true, true) => Err(invalid()),
        (_, true) => Ok(TagFilter::Any(split('/')?)),
        _ => Ok(TagFilter::All(split(',')?)),
    }
}

pub(crate) fn paging(query: Option<&str>) -> Result<Paging> {
    let mut p = Paging {
        size: 100,
        size_given: false,
        after: None,
        tags: None,
    };
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "tags" => p.tags = Some((v.to_string(), tag_filter(&v)?)),
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

pub(crate) fn page_json<T: serde::Serialize>(
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
            if let Some((raw, _)) = &paging.tags {
                let enc: String = form_urlencoded::byte_serialize(raw.as_bytes()).collect();
                next.push_str(&format!("&tags={enc}"));
            }
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

// ---- /tags, /endpoints, /routes/{r}/service -----------------------------------------

async fn tags(State(inner): Gw, RawQuery(q): RawQuery) -> Result<Json<Value>> {
    tag_page(&inner, None, q.as_deref()).await
}

async fn tag(
    State(inner): Gw,
    Path(tag): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>> {
    tag_page(&inner, Some(tag), q.as_deref()).await
}

async fn tag_page(inner: &Inner, tag: Option<String>, q: Option<&str>) -> Result<Json<Value>> {
    let p = paging(q)?;
    let page = inner
        .store
        .tags(tag.as_deref(), p.size, p.after.as_deref())
        .await?;
    let base = match &tag {
        Some(t) => format!("/tags/{t}"),
        None => "/tags".to_string(),
    };
    Ok(page_json(&base, &p, page))
}

async fn endpoints() -> Json<Value> {
    let mut list = vec![
        "/".to_string(),
        "/status".to_string(),
        "/endpoints".to_string(),
        "/tags".to_string(),
        "/config".to_string(),
        "/tags/{tags}".to_string(),
        "/schemas/{name}".to_string(),
        "/routes/{routes}/service".to_string(),
        "/upstreams/{upstreams}/health".to_string(),
        "/upstreams/{upstreams}/targets/{targets}/healthy".to_string(),
        "/upstreams/{upstreams}/targets/{targets}/unhealthy".to_string(),
    ];
    list.extend(crud::paths());
    list.sort();
    Json(json!({"data": list, "next": null}))
}

async fn route_of(inner: &Inner, key: &str) -> Result<Route> {
    inner
        .store
        .route(&EntityKey::parse(key))
        .await?
        .ok_or(AdminError::NotFound)
}

async fn route_service(State(inner): Gw, Path(key): Path<String>) -> Result<Json<Service>> {
    let route = route_of(&inner, &key).await?;
    let Some(fk) = route.service else {
        return Err(AdminError::NotFound);
    };
    Ok(Json(
        inner
            .store
            .service(&EntityKey::Id(fk.id))
            .await?
            .ok_or(AdminError::NotFound)?,
    ))
}

async fn patch_route_service(
    State(inner): Gw,
    Path(key): Path<String>,
    args: Args,
) -> Result<Response> {
    let route = route_of(&inner, &key).await?;
    let fk = route.service.ok_or(AdminError::NotFound)?;
    crud::patch_entity::<Service>(&inner, &fk.id.to_string(), args, None).await
}

async fn put_route_service(
    State(inner): Gw,
    Path(key): Path<String>,
    args: Args,
) -> Result<Response> {
    let route = route_of(&inner, &key).await?;
    let fk = route.service.ok_or(AdminError::NotFound)?;
    crud::put_entity::<Service>(&inner, &fk.id.to_string(), args, None).await
}

/// Kong refuses to delete a route's service through the route (405) when it has one.
async fn delete_route_service(State(inner): Gw, Path(key): Path<String>) -> Result<StatusCode> {
    match route_of(&inner, &key).await?.service {
        Some(_) => Err(AdminError::MethodNotAllowed),
        None => Err(AdminError::NotFound),
    }
}
