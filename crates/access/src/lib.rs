//! The Oathkeeper-compatible access proxy: `oathkeeper.yml` and access rules in Oathkeeper's
//! format, the authenticate → authorize → mutate pipeline, a reverse proxy that forwards
//! allowed requests to the rule's upstream, and the API (`/decisions`, `/rules`, health).
//!
//! Key decision: compile once, run per request. The config is validated against Oathkeeper's
//! own schema and every rule is compiled at load — its URL pattern into one anchored regex,
//! each handler from its merged (global + rule) config — into an immutable [`RuleSet`]
//! snapshot held in an `ArcSwap`; requests in flight keep the snapshot they started with, and
//! a reload swaps in a new one only if it compiled. Session checks go through the
//! [`SessionResolver`] seam: over HTTP by default (any Kratos), or in process when the binary
//! registers a resolver for the identity server's whoami URL.

mod api;
pub mod config;
mod error;
mod gjson;
pub mod pipeline;
mod proxy;
mod request;
pub mod rule;
mod schema;
pub mod session;
mod template;

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
    config: AccessConfig,
    client: portcullis_http::UpstreamClient,
    resolvers: Mutex<Vec<(url::Url, Arc<dyn SessionResolver>)>>,
    documents: Mutex<Vec<repository::Loaded>>,
    snapshot: ArcSwap<Snapshot>,
}

/// Everything a request decides on, swapped as a whole.
pub(crate) struct Snapshot {
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
    /// Loads every rule repository of `config` and compiles the rules.
    pub async fn new(config: AccessConfig) -> Result<Self, AccessError> {
        let client = portcullis_http::upstream_client();
        let documents = load_documents(&config, &client).await?;
        let inner = Inner {
            config,
            client,
            resolvers: Mutex::new(Vec::new()),
            documents: Mutex::new(Vec::new()),
            snapshot: ArcSwap::from_pointee(Snapshot {
                rules: RuleSet::default(),
                fallback: Vec::new(),
            }),
        };
        let access = Self {
            inner: Arc::new(inner),
        };
        access.install(documents)?;
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
        self.install(documents)?;
        Ok(self)
    }

    /// Re-reads every rule repository and swaps the new rules in; on any error the current
    /// rules stay in force and the error is returned. Returns the number of rules loaded.
    pub async fn reload_rules(&self) -> Result<usize, AccessError> {
        let documents = load_documents(&self.inner.config, &self.inner.client).await?;
        self.install(documents)?;
        Ok(self.inner.snapshot.load().rules.rules().len())
    }

    /// The config in force.
    pub fn config(&self) -> &AccessConfig {
        &self.inner.config
    }

    /// The rules in force, in load order (invalid ones included: see [`Rule::pipeline`]).
    pub fn rules(&self) -> Vec<Arc<Rule>> {
        self.inner.snapshot.load().rules.rules().to_vec()
    }

    /// The proxy server (`serve.proxy`, Oathkeeper's :4455, Portcullis' :8080).
    pub fn proxy_router(&self) -> axum::Router {
        proxy::router(self.clone())
    }

    /// The API server (`serve.api`, :4456): `/decisions`, `/rules`, `/rules/{id}`,
    /// `/health/alive`, `/health/ready`, `/version`.
    pub fn api_router(&self) -> axum::Router {
        api::router(self.clone())
    }

    fn install(&self, documents: Vec<repository::Loaded>) -> Result<(), AccessError> {
        let ctx = CompileContext {
            client: self.inner.client.clone(),
            resolvers: lock(&self.inner.resolvers).clone(),
        };
        let config = &self.inner.config;
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
        self.inner
            .snapshot
            .store(Arc::new(Snapshot { rules, fallback }));
        *lock(&self.inner.documents) = documents;
        Ok(())
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.load_full()
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

impl Snapshot {
    /// Matches the request and runs the rule's pipeline.
    pub(crate) async fn decide(&self, request: &RequestContext) -> Result<Decision, Failure> {
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
        pipeline.authorizer.authorize().map_err(fail)?;
        for mutator in &pipeline.mutators {
            mutator.mutate(request, &mut session).map_err(fail)?;
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
