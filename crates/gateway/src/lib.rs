//! The Kong-compatible gateway: Kong's Service and Route entities stored in the shared
//! database, Kong's Admin API, and the proxy that routes by them.
//!
//! Key decision: the proxy never reads the store. Every Admin API write (and [`Gateway::reload`])
//! rebuilds an immutable routing table ([`table::Table`], compiled by `portcullis-router`)
//! from the store and swaps it in with `arc-swap`; a request does one lock-free load and keeps
//! that snapshot to the end, so rebuilds never stall traffic and changes need no restart.
//! Rebuilds are serialized and always read the latest rows, so the last swap wins. Plugins,
//! load balancing and DB-less configuration (issue 3) attach to the same snapshot: the
//! proxy's phases and [`proxy::ProxyError`]'s source/retryable tags are their seams.

pub mod admin;
pub mod entity;
pub mod proxy;
pub mod settings;
pub mod store;
pub mod table;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arc_swap::ArcSwap;
use portcullis_db::{Db, MigrationSet};
use portcullis_http::UpstreamClient;
use serde_json::{Map, Value, json};
use uuid::Uuid;

pub use entity::{EntityKey, Route, Service};
pub use settings::{Database, GatewaySettings, SettingsError};
pub use store::{GatewayStore, StoreError};

/// The Kong version this gateway speaks for (reported by `GET /`, used in `Via`/`Server`).
pub const KONG_VERSION: &str = "3.10.0";

/// The gateway's migrations (versions 2000–2999).
pub fn migrations() -> MigrationSet {
    MigrationSet {
        component: "gateway",
        sqlite: sqlx::migrate!("migrations/sqlite"),
        postgres: sqlx::migrate!("migrations/postgres"),
    }
}

/// Errors of the gateway's public operations.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The store failed.
    #[error("gateway store: {0}")]
    Store(#[from] StoreError),
    /// The stored routes do not compile (e.g. a regex path).
    #[error("gateway router: {0}")]
    Table(#[from] table::TableError),
    /// Seed input is invalid.
    #[error("invalid gateway seed: {0}")]
    Seed(String),
}

pub(crate) struct Inner {
    pub(crate) store: GatewayStore,
    pub(crate) table: ArcSwap<table::Table>,
    rebuild: tokio::sync::Mutex<()>,
    pub(crate) client: UpstreamClient,
    pub(crate) node_id: Uuid,
    pub(crate) requests: AtomicU64,
}

impl Inner {
    async fn reload(&self) -> Result<(), GatewayError> {
        let _serial = self.rebuild.lock().await;
        let (services, routes) = self.store.snapshot().await?;
        let table = table::build(&services, routes)?;
        tracing::debug!(routes = table.len(), "gateway router rebuilt");
        self.table.store(Arc::new(table));
        Ok(())
    }

    /// Rebuild after an Admin API write; the write stands even if the rebuild fails, and
    /// the previous table keeps serving.
    pub(crate) async fn refresh(&self) {
        if let Err(e) = self.reload().await {
            tracing::error!(error = %e, "gateway router rebuild failed; keeping the previous table");
        }
    }
}

/// The gateway: store, current routing table and upstream client, cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl Gateway {
    /// Opens the gateway on a migrated database and loads the routing table.
    pub async fn new(db: Db) -> Result<Gateway, GatewayError> {
        let inner = Arc::new(Inner {
            store: GatewayStore::new(db),
            table: ArcSwap::from_pointee(table::Table::default()),
            rebuild: tokio::sync::Mutex::new(()),
            client: portcullis_http::upstream_client(),
            node_id: portcullis_core::new_id(),
            requests: AtomicU64::new(0),
        });
        inner.reload().await?;
        Ok(Gateway { inner })
    }

    /// The store.
    pub fn store(&self) -> &GatewayStore {
        &self.inner.store
    }

    /// The Admin API (serve on `admin_listen`, 127.0.0.1:8001 by default).
    pub fn admin_router(&self) -> axum::Router {
        admin::router(Arc::clone(&self.inner))
    }

    /// The proxy (serve on `proxy_listen`, 0.0.0.0:8000 by default) with
    /// `portcullis_http::serve`, which provides the client address.
    pub fn proxy_router(&self) -> axum::Router {
        proxy::router(Arc::clone(&self.inner))
    }

    /// Rebuilds the routing table from the store (e.g. after another node changed it).
    pub async fn reload(&self) -> Result<(), GatewayError> {
        self.inner.reload().await
    }

    /// Installs or updates, by name, a service at `url` with one route on `paths`: what
    /// `portcullis up` uses to point `secure-api` at the access proxy. Re-running with a new
    /// `url` or `paths` updates both; other fields keep their values.
    pub async fn seed(
        &self,
        name: &str,
        url: &str,
        route_name: &str,
        paths: &[&str],
    ) -> Result<(), GatewayError> {
        let store = &self.inner.store;
        let now = entity::now_seconds();
        let invalid = |v: entity::Violations| GatewayError::Seed(v.message());
        let existing = store.service(&EntityKey::Name(name.to_string())).await?;
        let mut input = existing.as_ref().map(Service::to_input).unwrap_or_default();
        for f in ["protocol", "host", "port", "path"] {
            input.remove(f);
        }
        input.insert("name".into(), json!(name));
        input.insert("url".into(), json!(url));
        let service = match &existing {
            Some(e) => {
                let s = Service::from_input(input, e.id, e.created_at, now).map_err(invalid)?;
                store.update_service(&s).await?;
                s
            }
            None => {
                let s = Service::from_input(input, portcullis_core::new_id(), now, now)
                    .map_err(invalid)?;
                store.insert_service(&s).await?;
                s
            }
        };
        let existing = store
            .route(&EntityKey::Name(route_name.to_string()))
            .await?;
        let mut input: Map<String, Value> =
            existing.as_ref().map(Route::to_input).unwrap_or_default();
        input.insert("name".into(), json!(route_name));
        input.insert("paths".into(), json!(paths));
        input.insert("service".into(), json!({"id": service.id}));
        match &existing {
            Some(e) => {
                let (r, _) = Route::from_input(input, e.id, e.created_at, now).map_err(invalid)?;
                store.update_route(&r).await?;
            }
            None => {
                let (r, _) = Route::from_input(input, portcullis_core::new_id(), now, now)
                    .map_err(invalid)?;
                store.insert_route(&r).await?;
            }
        }
        self.reload().await
    }
}
