//! The Oathkeeper-compatible access proxy: `oathkeeper.yml` and access rules in Oathkeeper's
//! format, the authenticate → authorize → mutate pipeline, a reverse proxy that forwards
//! allowed requests to the rule's upstream, and the API (`/decisions`, `/rules`,
//! `/.well-known/jwks.json`, health, `/metrics`).
//!
//! Key decision: compile once, run per request. The config is validated against Oathkeeper's
//! own schema and every rule is compiled at load — its URL pattern into one anchored regex,
//! each handler from its merged (global + rule) config — into an immutable [`RuleSet`]
//! snapshot held in an `ArcSwap`; requests in flight keep the snapshot they started with, and
//! a reload swaps in a new one only if it compiled. Session checks go through the
//! [`SessionResolver`] seam: over HTTP by default (any Kratos), or in process when the binary
//! registers a resolver for the identity server's whoami URL.
//!
//! `file://` rule repositories are watched (inotify via `notify`, see `rule/watcher.rs`); an
//! edit that does not load (unreadable, unparseable, structurally invalid, duplicate ids)
//! keeps the last good rules in force, is logged with file, line and rule id, and is listed
//! by `/health/ready` until it is fixed (see [`Access::reload_files`]). The config file itself
//! can be watched too ([`Access::watch_config`]): a new `oathkeeper.yml` swaps in its rule
//! repositories and handler config together, in the same snapshot, or not at all.

mod api;
pub mod config;
mod cors;
pub mod credentials;
mod error;
mod gjson;
mod metrics;
pub mod pipeline;
mod proxy;
mod request;
pub mod rule;
mod schema;
pub mod session;
mod template;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

pub use config::{AccessConfig, OATHKEEPER_API_PORT, OATHKEEPER_PROXY_PORT};
pub use error::AccessError;
pub use pipeline::PipelineError;
pub use rule::{RawRule, Rule, RuleSet};
pub use session::{ResolveError, SessionCredentials, SessionResolver};

use pipeline::errors::{ErrorHandler, Fallback};
use pipeline::{AuthenticationSession, CompileContext, Kind, RequestContext, authn::Outcome};
use rule::repository;

/// The access proxy: configuration, the current rule snapshot and the servers built on it.
/// Cheap to clone (shared state).
#[derive(Clone)]
pub struct Access {
    inner: Arc<Inner>,
}

struct Inner {
    client: portcullis_http::UpstreamClient,
    fetcher: Arc<credentials::Fetcher>,
    oauth2: Arc<pipeline::authn::oauth2::Caches>,
    metrics: metrics::Metrics,
    resolvers: Mutex<Vec<(url::Url, Arc<dyn SessionResolver>)>>,
    /// The last good document of every repository, index-aligned with the config's list.
    documents: Mutex<Vec<repository::Loaded>>,
    snapshot: ArcSwap<Snapshot>,
    /// Repositories whose current content could not be loaded, with the error.
    failures: Mutex<BTreeMap<String, String>>,
    /// Serializes reloads (watcher, [`Access::reload_rules`]).
    reloading: tokio::sync::Mutex<()>,
    /// Kept alive for as long as the access proxy lives (rule files).
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
    /// The config file's watcher, when [`Access::watch_config`] was called.
    config_watcher: Mutex<Option<notify::RecommendedWatcher>>,
    /// `serve.*.cors` as loaded at start (listeners are not reconfigured by a reload).
    proxy_cors: Option<tower_http::cors::CorsLayer>,
    api_cors: Option<tower_http::cors::CorsLayer>,
}

/// Everything a request decides on, swapped as a whole.
pub(crate) struct Snapshot {
    pub config: Arc<AccessConfig>,
    pub rules: RuleSet,
    pub fallback: Fallback,
}

/// A request the pipeline allowed.
pub(crate) struct Decision {
    pub rule: Arc<Rule>,
    pub session: AuthenticationSession,
}

/// A request the pipeline refused, with the rule it matched (for its error handlers).
pub(crate) struct Failure {
    pub error: PipelineError,
    pub rule: Option<Arc<Rule>>,
}

impl From<PipelineError> for Failure {
    fn from(error: PipelineError) -> Self {
        Self { error, rule: None }
    }
}

impl Access {
    /// Loads every rule repository of `config`, compiles the rules and starts watching the
    /// `file://` repositories (must run inside a Tokio runtime). Any load error at start is
    /// fatal; later, a bad edit keeps the last good rules (see [`Access::reload_files`]).
    pub async fn new(config: AccessConfig) -> Result<Self, AccessError> {
        Self::with_client(config, portcullis_http::upstream_client()).await
    }

    /// Like [`Access::new`], with the client used for every outbound call (upstreams, rule
    /// repositories, JWKS, session checks, introspection, remote authorizers, hydrators), e.g.
    /// one from [`portcullis_http::upstream_client_trusting`] that trusts a private CA.
    pub async fn with_client(
        config: AccessConfig,
        client: portcullis_http::UpstreamClient,
    ) -> Result<Self, AccessError> {
        let documents = load_documents(&config, &client).await?;
        let fetcher = Arc::new(credentials::Fetcher::new(
            client.clone(),
            config.jwks_ttl(),
            config.jwks_max_wait(),
        ));
        let inner = Inner {
            metrics: metrics::Metrics::new(&config.metric_name_prefix),
            proxy_cors: config.proxy_cors.clone(),
            api_cors: config.api_cors.clone(),
            client,
            fetcher,
            oauth2: Arc::default(),
            resolvers: Mutex::new(Vec::new()),
            documents: Mutex::new(Vec::new()),
            snapshot: ArcSwap::from_pointee(Snapshot {
                config: Arc::new(config.clone()),
                rules: RuleSet::default(),
                fallback: Vec::new(),
            }),
            failures: Mutex::new(BTreeMap::new()),
            reloading: tokio::sync::Mutex::new(()),
            watcher: Mutex::new(None),
            config_watcher: Mutex::new(None),
        };
        let access = Self {
            inner: Arc::new(inner),
        };
        let config = Arc::new(config);
        access.install(Arc::clone(&config), documents)?;
        let watcher = rule::watcher::start(&access, &config)
            .map_err(|e| AccessError::Watch(e.to_string()))?;
        *lock(&access.inner.watcher) = watcher;
        Ok(access)
    }

    /// Resolves sessions for `cookie_session` handlers whose `check_session_url` is exactly
    /// `check_session_url` in process with `resolver` (no HTTP hop); all others keep using HTTP.
    pub fn with_session_resolver(
        self,
        check_session_url: &str,
        resolver: Arc<dyn SessionResolver>,
    ) -> Result<Self, AccessError> {
        let url = url::Url::parse(check_session_url).map_err(|e| AccessError::ResolverUrl {
            url: check_session_url.to_string(),
            reason: e.to_string(),
        })?;
        lock(&self.inner.resolvers).push((url, resolver));
        let documents = lock(&self.inner.documents).clone();
        self.install(self.config(), documents)?;
        Ok(self)
    }

    /// Re-reads every rule repository and swaps the new rules in; on any error the current
    /// rules stay in force and the error is returned. Returns the number of rules loaded.
    pub async fn reload_rules(&self) -> Result<usize, AccessError> {
        let _reloading = self.inner.reloading.lock().await;
        let config = self.config();
        let documents = load_documents(&config, &self.inner.client).await?;
        self.install(config, documents)?;
        lock(&self.inner.failures).clear();
        Ok(self.inner.snapshot.load().rules.rules().len())
    }

    /// Re-reads the `file://` repositories (what the watcher runs after a change). Files whose
    /// text changed are re-parsed and, if the whole set then compiles, swapped in. A file that
    /// cannot be read, parsed or compiled keeps its last good rules in force; the error (file,
    /// line, rule id) is logged and listed by [`Access::reload_failures`] until the file loads.
    pub async fn reload_files(&self) {
        let _reloading = self.inner.reloading.lock().await;
        let config = self.config();
        let mut documents = lock(&self.inner.documents).clone();
        let mut changed = Vec::new();
        for (i, location) in config.repositories.iter().enumerate() {
            let Some(path) = repository::file_path(location) else {
                continue;
            };
            let parsed = match repository::read_file(&path).await {
                Ok((_, text)) if documents.get(i).is_some_and(|d| d.source == text) => {
                    // Back to the content in force (e.g. a broken edit was reverted).
                    lock(&self.inner.failures).remove(location);
                    continue;
                }
                Ok((origin, text)) => repository::parse(&text, &origin),
                Err(e) => Err(e),
            };
            match (parsed, documents.get_mut(i)) {
                (Ok(loaded), Some(slot)) => {
                    *slot = loaded;
                    changed.push(location.clone());
                }
                (Ok(_), None) => {}
                (Err(e), _) => self.reload_failed(location, &e.to_string()),
            }
        }
        if changed.is_empty() {
            return;
        }
        match self.install(config, documents) {
            Ok(()) => {
                let mut failures = lock(&self.inner.failures);
                for location in &changed {
                    failures.remove(location);
                }
                tracing::info!(
                    repositories = ?changed,
                    rules = self.inner.snapshot.load().rules.rules().len(),
                    "access rules reloaded"
                );
            }
            Err(e) => {
                for location in &changed {
                    self.reload_failed(location, &e.to_string());
                }
            }
        }
    }

    fn reload_failed(&self, location: &str, error: &str) {
        tracing::error!(
            repository = location,
            %error,
            "access rules not reloaded; the last good rules stay in force"
        );
        lock(&self.inner.failures).insert(location.to_string(), error.to_string());
    }

    /// Repositories whose current content failed to load (the last good rules are served),
    /// with the error; empty when every repository is loaded as it is now.
    pub fn reload_failures(&self) -> BTreeMap<String, String> {
        lock(&self.inner.failures).clone()
    }

    /// Replaces the config: loads its rule repositories, compiles its rules and handlers and
    /// swaps rules and config in together; on any error nothing changes and the error is
    /// returned. The rule file watcher follows the new repositories. Listener addresses,
    /// CORS and the metric prefix keep their start-up values. Returns the number of rules.
    pub async fn reload_config(&self, config: AccessConfig) -> Result<usize, AccessError> {
        let _reloading = self.inner.reloading.lock().await;
        let documents = load_documents(&config, &self.inner.client).await?;
        let config = Arc::new(config);
        self.install(Arc::clone(&config), documents)?;
        match rule::watcher::start(self, &config) {
            Ok(watcher) => *lock(&self.inner.watcher) = watcher,
            Err(e) => tracing::error!(error = %e, "cannot watch the new access rule files"),
        }
        lock(&self.inner.failures).clear();
        Ok(self.inner.snapshot.load().rules.rules().len())
    }

    /// Watches the config file at `path` (Oathkeeper does): each change is loaded (with the
    /// process environment's overrides) and applied by [`Access::reload_config`]. A file that
    /// does not load or whose rules do not compile keeps the last good config in force; the
    /// error is logged and listed by `/health/ready` under the file's path until it loads.
    pub fn watch_config(&self, path: &std::path::Path) -> Result<(), AccessError> {
        let watcher = rule::watcher::start_config(self, path.to_path_buf())
            .map_err(|e| AccessError::Watch(e.to_string()))?;
        *lock(&self.inner.config_watcher) = Some(watcher);
        Ok(())
    }

    /// Re-reads the config file at `path` and applies it (what the config watcher runs).
    pub async fn reload_config_file(&self, path: &std::path::Path) {
        let key = path.display().to_string();
        let outcome = match AccessConfig::load(path) {
            Ok(config) => self.reload_config(config).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(rules) => tracing::info!(config = %key, rules, "access config reloaded"),
            Err(e) => {
                tracing::error!(
                    config = %key,
                    error = %e,
                    "access config not reloaded; the last good config stays in force"
                );
                lock(&self.inner.failures).insert(key, e.to_string());
            }
        }
    }

    /// The config in force.
    pub fn config(&self) -> Arc<AccessConfig> {
        Arc::clone(&self.inner.snapshot.load().config)
    }

    /// The rules in force, in load order (invalid ones included: see [`Rule::pipeline`]).
    pub fn rules(&self) -> Vec<Arc<Rule>> {
        self.inner.snapshot.load().rules.rules().to_vec()
    }

    /// The proxy server (`serve.proxy`, Oathkeeper's :4455, Portcullis' :8080), with
    /// `serve.proxy.cors` in front when enabled.
    pub fn proxy_router(&self) -> axum::Router {
        self.outer_layers(
            proxy::router(self.clone()),
            metrics::PROXY,
            self.inner.proxy_cors.clone(),
        )
    }

    /// The API server (`serve.api`, :4456): `/decisions`, `/rules`, `/rules/{id}`,
    /// `/.well-known/jwks.json`, `/health/alive`, `/health/ready`, `/version`, `/metrics`,
    /// with `serve.api.cors` in front when enabled.
    pub fn api_router(&self) -> axum::Router {
        self.outer_layers(
            api::router(self.clone()),
            metrics::API,
            self.inner.api_cors.clone(),
        )
    }

    /// Metrics around the router, CORS outermost (preflights never reach rule matching).
    fn outer_layers(
        &self,
        router: axum::Router,
        service: &'static str,
        cors: Option<tower_http::cors::CorsLayer>,
    ) -> axum::Router {
        let router = router.layer(axum::middleware::from_fn_with_state(
            (self.clone(), service),
            metrics::track,
        ));
        match cors {
            Some(cors) => router.layer(cors),
            None => router,
        }
    }

    fn install(
        &self,
        config: Arc<AccessConfig>,
        documents: Vec<repository::Loaded>,
    ) -> Result<(), AccessError> {
        let ctx = CompileContext {
            client: self.inner.client.clone(),
            resolvers: lock(&self.inner.resolvers).clone(),
            fetcher: Arc::clone(&self.inner.fetcher),
            oauth2: Arc::clone(&self.inner.oauth2),
        };
        let rules = RuleSet::compile(
            documents.clone(),
            config.matching_strategy,
            &config.handlers,
            &ctx,
        )
        .map_err(AccessError::Rules)?;
        let fallback = config
            .fallback
            .iter()
            .map(|name| {
                let handler = config
                    .handlers
                    .configure(Kind::ErrorHandler, name, &serde_json::Value::Null)
                    .and_then(|c| ErrorHandler::compile(name, &c));
                (name.clone(), handler)
            })
            .collect();
        self.inner.snapshot.store(Arc::new(Snapshot {
            config,
            rules,
            fallback,
        }));
        *lock(&self.inner.documents) = documents;
        Ok(())
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.load_full()
    }

    /// Counts a pipeline outcome for `decisions_total`.
    pub(crate) fn record(&self, service: &str, outcome: &Result<Decision, Failure>) {
        let (rule, decision) = match outcome {
            Ok(d) => (d.rule.raw.id.as_str(), "allowed".to_string()),
            Err(f) => (
                f.rule.as_ref().map_or("", |r| r.raw.id.as_str()),
                f.error.kind_name(),
            ),
        };
        self.inner.metrics.decision(service, rule, &decision);
    }

    pub(crate) fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    pub(crate) fn fetcher(&self) -> &credentials::Fetcher {
        &self.inner.fetcher
    }

    pub(crate) fn client(&self) -> &portcullis_http::UpstreamClient {
        &self.inner.client
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn load_documents(
    config: &AccessConfig,
    client: &portcullis_http::UpstreamClient,
) -> Result<Vec<repository::Loaded>, AccessError> {
    let mut documents = Vec::new();
    for location in &config.repositories {
        documents.push(
            repository::load(location, client)
                .await
                .map_err(AccessError::Rules)?,
        );
    }
    Ok(documents)
}

/// The most a `remote` authorizer buffers of a request body.
const MAX_BUFFERED_BODY: usize = 8 << 20;

/// Reads the whole body, leaving an identical one in its place for the upstream.
async fn buffer(body: &mut axum::body::Body) -> Result<bytes::Bytes, PipelineError> {
    use http_body_util::BodyExt;
    let taken = std::mem::take(body);
    let bytes = http_body_util::Limited::new(taken, MAX_BUFFERED_BODY)
        .collect()
        .await
        .map_err(|e| PipelineError::bad_request(format!("reading the request body: {e}")))?
        .to_bytes();
    *body = axum::body::Body::from(bytes.clone());
    Ok(bytes)
}

impl Snapshot {
    /// Matches the request and runs the rule's pipeline. `body` is read (and replaced by its
    /// buffered copy) only when the authorizer sends it on (`remote`).
    pub(crate) async fn decide(
        &self,
        request: &RequestContext,
        body: &mut axum::body::Body,
    ) -> Result<Decision, Failure> {
        let (rule, captures) = self.rules.find(request)?;
        let fail = |error: PipelineError| Failure {
            error,
            rule: Some(Arc::clone(&rule)),
        };
        let pipeline = match &rule.pipeline {
            Ok(p) => p,
            Err(reason) => {
                return Err(fail(PipelineError::internal(format!(
                    "access rule {:?} is invalid: {reason}",
                    rule.raw.id
                ))));
            }
        };
        let mut session = AuthenticationSession {
            captures,
            ..AuthenticationSession::default()
        };
        let mut authenticated = false;
        for authenticator in &pipeline.authenticators {
            match authenticator.authenticate(request, &mut session).await {
                Ok(Outcome::Authenticated) => {
                    authenticated = true;
                    break;
                }
                Ok(Outcome::NotResponsible) => {}
                Err(e) => return Err(fail(e)),
            }
        }
        if !authenticated {
            return Err(fail(PipelineError::unauthorized().with_reason(
                "no authenticator was responsible for the request's credentials",
            )));
        }
        let buffered = if pipeline.authorizer.needs_body() {
            Some(buffer(body).await.map_err(fail)?)
        } else {
            None
        };
        pipeline
            .authorizer
            .authorize(request, &mut session, buffered)
            .await
            .map_err(fail)?;
        for mutator in &pipeline.mutators {
            mutator.mutate(request, &mut session).await.map_err(fail)?;
        }
        Ok(Decision { rule, session })
    }

    /// Writes the response for a refused request through the error handlers.
    pub(crate) fn respond(
        &self,
        failure: &Failure,
        request: &RequestContext,
    ) -> axum::response::Response {
        let rule_handlers = failure
            .rule
            .as_ref()
            .and_then(|r| r.pipeline.as_ref().ok())
            .map_or(&[][..], |p| p.errors.as_slice());
        pipeline::errors::handle(&failure.error, request, rule_handlers, &self.fallback)
    }
}
