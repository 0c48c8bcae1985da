//! The Kratos-compatible identity server: identities validated by JSON-schema identity
//! schemas, password credentials hashed with argon2id or bcrypt (imported bcrypt, argon2,
//! PBKDF2 and scrypt hashes verify and are upgraded on login), self-service login (incl.
//! `refresh=true`), registration (one-step or `profile_first`), logout, settings (profile and
//! password, privileged sessions), verification and recovery (the `code` and `link` methods)
//! as browser flows (CSRF cookie + masked token, 303 to the UI, JSON when negotiated) and
//! native API flows (session tokens), `web_hook` hooks with Jsonnet bodies, sessions (also as
//! signed JWTs with `tokenize_as`), the public and admin HTTP APIs, and a courier that delivers
//! plain-text and HTML e-mail over SMTP (TLS via rustls) with overridable templates. The
//! supported surface is listed in `docs/identity.md`.
//!
//! Key decision: Kratos's wire contract is the specification — flow, UI node, session,
//! identity and error JSON, message ids, status codes, cookie names — while the internals are
//! our own: `kratos.yml` is compiled once into an immutable [`IdentityConfig`], flows are
//! stored rows whose UI is data, storage is one SQL implementation of small per-capability
//! store traits over SQLite or PostgreSQL, and session tokens and one-time codes are kept only
//! as digests. Flows never send mail themselves: they queue it in the database outbox and the
//! worker started by [`Identity::spawn_courier`] delivers it, with retries. The same session
//! check backs `/sessions/whoami` and the in-process [`Identity::whoami`] that the access
//! proxy calls inside `portcullis up`.

pub mod api;
pub mod config;
pub mod cookie;
pub mod courier;
pub mod csrf;
pub(crate) mod driver;
pub mod error;
pub mod fetcher;
pub mod hash;
pub mod identity;
pub(crate) mod outbound;
pub mod persistence;
pub mod schema;
pub mod selfservice;
pub mod session;
pub mod text;
pub mod ui;
pub mod x;

use std::sync::Arc;

use portcullis_db::{Db, MigrationSet};
use serde_json::Value;

pub use config::IdentityConfig;
pub use error::{ApiError, IdentityError};

use driver::Registry;
use persistence::SqlStore;

/// This crate's migrations (versions 3000–3999).
pub fn migrations() -> MigrationSet {
    MigrationSet {
        component: "identity",
        sqlite: sqlx::migrate!("migrations/sqlite"),
        postgres: sqlx::migrate!("migrations/postgres"),
    }
}

/// A running identity server: cheap to clone, shared by both routers and in-process callers.
#[derive(Clone, Debug)]
pub struct Identity {
    reg: Arc<Registry>,
}

impl Identity {
    /// Builds the server over a migrated database. When the configuration has no cookie
    /// secret (`secrets.cookie` / `secrets.default`), one is generated on first start and
    /// kept in the database, so sessions survive restarts and agree across nodes. Outbound
    /// calls (web hooks, breached-password lookups) trust the operating system's roots.
    pub async fn new(db: Db, config: IdentityConfig) -> Result<Identity, IdentityError> {
        Self::with_client(db, config, portcullis_http::upstream_client()).await
    }

    /// Like [`Identity::new`], with the client used for every outbound call (web hooks,
    /// breached-password lookups), e.g. one from [`portcullis_http::upstream_client_trusting`]
    /// that trusts a private CA.
    pub async fn with_client(
        db: Db,
        config: IdentityConfig,
        http: portcullis_http::UpstreamClient,
    ) -> Result<Identity, IdentityError> {
        let config = if config.cookie_secrets.is_empty() {
            let secret = portcullis_db::secrets::ensure(&db, "identity.cookie_secret", || {
                portcullis_core::random_urlsafe(32)
            })
            .await?;
            config.with_cookie_secret(secret)
        } else {
            config
        };
        let algorithm = config.hasher;
        let hasher = tokio::task::spawn_blocking(move || hash::Hasher::new(algorithm))
            .await
            .map_err(|e| IdentityError::Hash(e.to_string()))??;
        let csrf_cookie_name = csrf::cookie_name(config.public_base_url.as_str());
        let breaches = selfservice::strategy::password::breach::BreachChecker::new(
            config.breach.clone(),
            http.clone(),
        );
        Ok(Identity {
            reg: Arc::new(Registry {
                config,
                store: SqlStore::new(db),
                hasher,
                csrf_cookie_name,
                courier_wake: tokio::sync::Notify::new(),
                breaches,
                http,
            }),
        })
    }

    /// The public API (Kratos's port 4433).
    pub fn public_router(&self) -> axum::Router {
        api::public::router(self.reg.clone())
    }

    /// The admin API (Kratos's port 4434), with and without the `/admin` prefix.
    pub fn admin_router(&self) -> axum::Router {
        api::admin::router(self.reg.clone())
    }

    /// Starts the courier worker (Kratos's `--watch-courier`): it delivers queued messages
    /// over `courier.smtp` until `shutdown` fires. Run one per process; several processes on
    /// one database share the outbox safely.
    pub fn spawn_courier(
        &self,
        shutdown: portcullis_http::Shutdown,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(courier::run(self.reg.clone(), shutdown))
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &IdentityConfig {
        &self.reg.config
    }

    /// Exactly the body `/sessions/whoami` answers 200 with, or `None` where it answers 401:
    /// the arguments are the request's `Cookie`, `X-Session-Token` and `Authorization`
    /// headers. Revoked or expired sessions are `None` immediately.
    pub async fn whoami(
        &self,
        cookie_header: Option<&str>,
        session_token: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Option<Value>, IdentityError> {
        let session = self
            .reg
            .active_session(cookie_header, session_token, authorization)
            .await?;
        Ok(session.map(|s| s.to_json(&self.reg.config.public_base_url, self.reg.now())))
    }
}
