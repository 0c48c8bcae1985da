//! The Kong-compatible gateway: Kong's entities stored in the shared database (or, DB-less,
//! loaded from a declarative `kong.yml`), Kong's Admin API, and the proxy that routes by them.
//!
//! Key decision: the proxy never reads the store. Every Admin API write (and [`Gateway::reload`])
//! rebuilds an immutable routing table ([`table::Table`], compiled by `portcullis-router`)
//! from the store and swaps it in with `arc-swap`; a request does one lock-free load and keeps
//! that snapshot to the end, so rebuilds never stall traffic and changes need no restart.
//! Rebuilds are serialized and always read the latest rows, so the last swap wins. Nodes
//! sharing a database converge on a version row bumped by every write (`sync`: LISTEN/NOTIFY
//! to nudge, a poll as the fallback); DB-less mode loads its file into a private in-memory
//! store ([`declarative`]) so both modes share every read path. Upstreams are compiled into
//! the same table ([`balancer`]); only per-node target health and connection counts change
//! at runtime, outside it.

pub mod admin;
pub mod balancer;
pub mod certificates;
pub mod declarative;
pub mod entity;
mod healthcheck;
pub mod proxy;
pub mod settings;
pub mod store;
mod sync;
pub mod table;
mod upstream_tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use portcullis_core::Secret;
use portcullis_db::{Db, MigrationSet};
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
    /// The declarative configuration is invalid.
    #[error(transparent)]
    Declarative(#[from] declarative::DeclarativeError),
    /// DB-less mode's private store could not be opened.
    #[error("gateway in-memory store: {0}")]
    Db(#[from] portcullis_db::DbError),
}

pub(crate) struct Inner {
    pub(crate) store: GatewayStore,
    pub(crate) table: ArcSwap<table::Table>,
    /// Per-node target health and connection counts, kept across rebuilds.
    pub(crate) health: balancer::HealthRegistry,
    rebuild: tokio::sync::Mutex<()>,
    /// The upstream clients, one per distinct service TLS policy.
    tls_clients: upstream_tls::TlsClients,
    pub(crate) node_id: Uuid,
    pub(crate) requests: AtomicU64,
    /// The configuration version the current table was built from (-1: none yet).
    version: AtomicI64,
    pub(crate) admin_token: Option<Secret<String>>,
    /// DB-less: the configuration comes from `kong.yml` / `POST /config`, the Admin API is
    /// otherwise read-only.
    pub(crate) dbless: bool,
    /// The TLS certificate lookup, rebuilt with the routing table.
    certificates: Arc<ArcSwap<certificates::CertificateTable>>,
    /// The certificate served when no SNI matches.
    default_certificate: Option<certificates::CertifiedPair>,
    /// Active health-check probers, restarted when their upstream changes.
    checkers: healthcheck::Checkers,
    /// How often targets made unhealthy by passive checks are re-probed (the extension).
    passive_recovery: Option<Duration>,
    /// Whose `X-Forwarded-*` headers the proxy believes (`trusted_ips`).
    pub(crate) trusted_ips: proxy::TrustedIps,
}

impl Inner {
    async fn reload(&self) -> Result<(), GatewayError> {
        let _serial = self.rebuild.lock().await;
        // The version is read before the rows: a write landing in between makes the next
        // check rebuild once more, never miss a change.
        let version = self.store.version().await?;
        let (services, routes) = self.store.snapshot().await?;
        let upstreams: Vec<entity::Upstream> = self.store.all().await?;
        let targets: Vec<entity::Target> = self.store.all().await?;
        let certs: Vec<entity::Certificate> = self.store.all().await?;
        let snis: Vec<entity::Sni> = self.store.all().await?;
        let cas: Vec<entity::CaCertificate> = self.store.all().await?;
        self.checkers.update(
            &upstreams,
            &targets,
            &certs,
            &self.health,
            self.passive_recovery,
        );
        let clients = self.tls_clients.build(&services, &upstreams, &certs, &cas);
        let snapshot = table::Snapshot {
            services,
            routes,
            upstreams,
            targets,
            clients,
        };
        let table = table::build(snapshot, &self.health)?;
        let certificates =
            certificates::CertificateTable::build(&certs, &snis, self.default_certificate.clone());
        tracing::debug!(routes = table.len(), version, "gateway router rebuilt");
        self.table.store(Arc::new(table));
        self.certificates.store(Arc::new(certificates));
        self.version.store(version, Ordering::Release);
        Ok(())
    }

    /// Replaces the whole configuration (DB-less mode) and rebuilds the table.
    pub(crate) async fn replace(&self, config: &declarative::Config) -> Result<(), GatewayError> {
        self.store.replace_all(config).await?;
        self.reload().await
    }

    /// The configuration version the current table reflects.
    pub(crate) fn built_version(&self) -> i64 {
        self.version.load(Ordering::Acquire)
    }

    /// Rebuild after an Admin API write; the write stands even if the rebuild fails, and
    /// the previous table keeps serving.
    pub(crate) async fn refresh(&self) {
        if let Err(e) = self.reload().await {
            tracing::error!(error = %e, "gateway router rebuild failed; keeping the previous table");
        }
    }
}

/// How a gateway node runs beyond its database.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// A PostgreSQL URL for the same database, used for a `LISTEN` connection so changes
    /// made on other nodes apply within milliseconds; without it only the poll applies them.
    pub listen_url: Option<Secret<String>>,
    /// How often the node compares the stored configuration version with its own.
    pub poll_interval: Duration,
    /// When set, every Admin API request must carry it in `Kong-Admin-Token`.
    pub admin_token: Option<Secret<String>>,
    /// The certificate the TLS listener serves when no SNI matches (Kong's `ssl_cert`).
    pub default_certificate: Option<certificates::CertifiedPair>,
    /// How often a target that passive health checks alone made unhealthy is re-probed
    /// with the upstream's active-check settings so it can recover (a Portcullis
    /// extension; `None` keeps Kong's behaviour: it stays unhealthy until marked by hand).
    pub passive_recovery: Option<Duration>,
    /// `trusted_ips`, `real_ip_header`, `real_ip_recursive`: whose forwarding headers count.
    pub trusted_ips: proxy::TrustedIps,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            listen_url: None,
            poll_interval: Duration::from_millis(500),
            admin_token: None,
            default_certificate: None,
            passive_recovery: Some(Duration::from_secs(10)),
            trusted_ips: proxy::TrustedIps::default(),
        }
    }
}

impl GatewayOptions {
    /// The options `settings` call for: the admin token and, on PostgreSQL, the `LISTEN`
    /// connection on the same database.
    pub fn from_settings(settings: &GatewaySettings) -> Self {
        Self {
            listen_url: match &settings.database {
                Database::Postgres(url) => Some(url.clone()),
                _ => None,
            },
            admin_token: settings.admin_token.clone(),
            passive_recovery: settings.passive_recovery,
            trusted_ips: settings.trusted_ips.clone(),
            ..Self::default()
        }
    }
}

/// The gateway: store, current routing table and upstream client, cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl Gateway {
    /// Opens the gateway on a migrated database with default options (no admin token,
    /// changes from other nodes picked up by polling) and loads the routing table.
    pub async fn new(db: Db) -> Result<Gateway, GatewayError> {
        Self::open(db, GatewayOptions::default()).await
    }

    /// Opens the gateway on a migrated database, loads the routing table and starts
    /// following changes other nodes make to the same database.
    pub async fn open(db: Db, options: GatewayOptions) -> Result<Gateway, GatewayError> {
        Self::start(db, options, false).await
    }

    /// Starts a DB-less gateway (`database = off`): the configuration is `kong.yml` at
    /// `declarative_config` (none: start empty), replaced as a whole by `POST /config`; the
    /// Admin API's entity endpoints are read-only. `options.listen_url` is ignored.
    pub async fn from_declarative(
        declarative_config: Option<&std::path::Path>,
        options: GatewayOptions,
    ) -> Result<Gateway, GatewayError> {
        let config = declarative_config.map(declarative::from_file).transpose()?;
        let db = Db::connect("memory").await?;
        db.migrate(&[migrations()]).await?;
        let options = GatewayOptions {
            listen_url: None,
            ..options
        };
        let gateway = Self::start(db, options, true).await?;
        if let Some(config) = config {
            gateway.inner.replace(&config).await?;
        }
        Ok(gateway)
    }

    async fn start(db: Db, options: GatewayOptions, dbless: bool) -> Result<Gateway, GatewayError> {
        let inner = Arc::new(Inner {
            store: GatewayStore::new(db),
            table: ArcSwap::from_pointee(table::Table::default()),
            health: balancer::HealthRegistry::default(),
            rebuild: tokio::sync::Mutex::new(()),
            tls_clients: upstream_tls::TlsClients::default(),
            node_id: portcullis_core::new_id(),
            requests: AtomicU64::new(0),
            version: AtomicI64::new(-1),
            admin_token: options.admin_token,
            dbless,
            certificates: Arc::default(),
            default_certificate: options.default_certificate,
            checkers: healthcheck::Checkers::default(),
            passive_recovery: options.passive_recovery,
            trusted_ips: options.trusted_ips,
        });
        inner.reload().await?;
        // A DB-less node is the only writer of its private store: nothing to follow.
        if !dbless {
            sync::spawn(&inner, options.listen_url, options.poll_interval);
        }
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

    /// Serves the proxy (`proxy_listen`, 0.0.0.0:8000 by default) on a bound listener until
    /// `shutdown` fires, then drains open connections.
    pub fn serve_proxy(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: portcullis_http::Shutdown,
    ) -> impl Future<Output = Result<(), portcullis_http::ServeError>> + Send + 'static {
        let inner = Arc::clone(&self.inner);
        async move {
            proxy::server::serve(inner, listener, None, shutdown)
                .await
                .map_err(|source| portcullis_http::ServeError::Serve {
                    what: "gateway proxy".into(),
                    source,
                })
        }
    }

    /// Serves the proxy over TLS (`proxy_listen` entries flagged `ssl`, `0.0.0.0:8443 http2`
    /// by default) on a bound listener until `shutdown` fires: the certificate chosen by
    /// [`Gateway::certificate_resolver`], requests seen as `https` with their SNI, ALPN `h2`
    /// offered only with `http2` (Kong's listen flag), `http/1.1` always.
    pub fn serve_proxy_tls(
        &self,
        listener: tokio::net::TcpListener,
        http2: bool,
        shutdown: portcullis_http::Shutdown,
    ) -> impl Future<Output = Result<(), portcullis_http::ServeError>> + Send + 'static {
        let inner = Arc::clone(&self.inner);
        let acceptor = certificates::tls_acceptor(self.certificate_resolver(), http2);
        async move {
            let serve_error = |source| portcullis_http::ServeError::Serve {
                what: "gateway proxy (TLS)".into(),
                source,
            };
            let acceptor = acceptor.map_err(|e| serve_error(std::io::Error::other(e)))?;
            proxy::server::serve(inner, listener, Some(acceptor), shutdown)
                .await
                .map_err(serve_error)
        }
    }

    /// Serves the Admin API over TLS (`admin_listen` entries flagged `ssl`, `127.0.0.1:8444
    /// http2` by default) on a bound listener until `shutdown` fires, presenting
    /// `certificate` (Kong's `admin_ssl_cert`, else a self-signed one); ALPN `h2` only with
    /// `http2`.
    pub fn serve_admin_tls(
        &self,
        listener: tokio::net::TcpListener,
        certificate: certificates::CertifiedPair,
        http2: bool,
        shutdown: portcullis_http::Shutdown,
    ) -> impl Future<Output = Result<(), portcullis_http::ServeError>> + Send + 'static {
        let app = self.admin_router();
        let acceptor = certificates::tls_acceptor(Arc::new(certificate), http2);
        async move {
            let acceptor = acceptor.map_err(|e| portcullis_http::ServeError::Serve {
                what: "gateway admin API (TLS)".into(),
                source: std::io::Error::other(e),
            })?;
            portcullis_http::serve_tls(listener, app, acceptor, "gateway admin API (TLS)", shutdown)
                .await
        }
    }

    /// The current TLS certificate table (a snapshot; see [`Gateway::certificate_resolver`]).
    pub fn certificates(&self) -> Arc<certificates::CertificateTable> {
        self.inner.certificates.load_full()
    }

    /// A rustls certificate resolver that follows this node's certificate table.
    pub fn certificate_resolver(&self) -> Arc<certificates::CertificateResolver> {
        Arc::new(certificates::CertificateResolver::new(Arc::clone(
            &self.inner.certificates,
        )))
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
