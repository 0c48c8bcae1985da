//! Access rules: the raw model (Oathkeeper's JSON/YAML format, served back by `/rules`), the
//! compiled [`Rule`] and the [`RuleSet`] every request is matched against.
//!
//! Like Oathkeeper, a rule whose handlers are unknown, disabled or misconfigured is kept as an
//! *invalid* rule: it still takes part in matching, and a request that hits it gets a 500, so
//! a broken rule never lets a request fall through to a more permissive one. Structural
//! problems (unparseable documents, missing `match`, a bad pattern, duplicate ids) fail the
//! load with the file, line and rule.

pub mod matcher;
pub mod repository;
pub(crate) mod watcher;

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Handlers;
use crate::pipeline::{
    CompileContext, Kind, PipelineError, RequestContext, authn::Authenticator, authz::Authorizer,
    errors::ErrorHandler, mutate::Mutator,
};
use matcher::Matcher;
pub use matcher::Strategy;
use portcullis_config::{ConfigError, Document};

/// An access rule as written (and as `/rules` returns it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawRule {
    /// Unique id.
    pub id: String,
    /// The Oathkeeper version the rule was written for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Human readable description.
    #[serde(default)]
    pub description: String,
    /// What requests the rule applies to.
    #[serde(rename = "match")]
    pub matches: RawMatch,
    /// Authenticators, tried in order.
    #[serde(default)]
    pub authenticators: Vec<RawHandler>,
    /// The authorizer.
    #[serde(default)]
    pub authorizer: RawHandler,
    /// Mutators, applied in order.
    #[serde(default)]
    pub mutators: Vec<RawHandler>,
    /// Error handlers for this rule.
    #[serde(default)]
    pub errors: Vec<RawHandler>,
    /// Where matching requests are forwarded.
    #[serde(default)]
    pub upstream: RawUpstream,
    /// Portcullis extension, opt-in: when several rules match a request, the one with the
    /// highest priority wins (a rule with a priority outranks rules without). Without
    /// priorities, or on a tie at the top, several matches are a 500 as in Oathkeeper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}

/// `match`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RawMatch {
    /// URL pattern with `<…>` parts.
    pub url: String,
    /// Allowed methods (case-insensitive); empty never matches.
    #[serde(default)]
    pub methods: Vec<String>,
}

/// A handler reference with its rule-level config.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RawHandler {
    /// The handler id, e.g. `cookie_session`.
    #[serde(default)]
    pub handler: String,
    /// Rule-level config, deep-merged over the global one.
    #[serde(default)]
    pub config: Value,
}

/// `upstream`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RawUpstream {
    /// Keep the incoming `Host` instead of the upstream's.
    #[serde(default)]
    pub preserve_host: bool,
    /// Path prefix removed before forwarding.
    #[serde(default)]
    pub strip_path: String,
    /// The upstream URL.
    #[serde(default)]
    pub url: String,
}

/// A compiled rule.
pub struct Rule {
    /// The rule as written.
    pub raw: RawRule,
    matcher: Matcher,
    /// The compiled pipeline, or why the rule is invalid.
    pub pipeline: Result<Pipeline, String>,
    /// The parsed upstream URL, if any.
    pub upstream: Option<url::Url>,
}

/// A rule's compiled handlers.
pub struct Pipeline {
    /// Authenticators in order.
    pub authenticators: Vec<Authenticator>,
    /// The authorizer.
    pub authorizer: Authorizer,
    /// Mutators in order.
    pub mutators: Vec<Mutator>,
    /// The rule's own error handlers.
    pub errors: Vec<ErrorHandler>,
}

/// The rules in force.
#[derive(Default)]
pub struct RuleSet {
    rules: Vec<Arc<Rule>>,
}

impl RuleSet {
    /// All rules, in load order.
    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }

    /// How many rules have a valid pipeline.
    pub fn valid_count(&self) -> usize {
        self.rules.iter().filter(|r| r.pipeline.is_ok()).count()
    }

    /// The one rule matching the request, with its capture groups: 404 if none, 500 if several
    /// share the highest `priority` (all of them, when no rule sets one, as in Oathkeeper).
    pub fn find(
        &self,
        request: &RequestContext,
    ) -> Result<(Arc<Rule>, Vec<String>), PipelineError> {
        let url = request.match_url();
        let mut found: Option<(Arc<Rule>, Vec<String>)> = None;
        let mut tie = false;
        for rule in &self.rules {
            let Some(captures) = rule.matcher.matches(request.method.as_str(), &url) else {
                continue;
            };
            let rank = found
                .as_ref()
                .map(|(best, _)| rule.raw.priority.cmp(&best.raw.priority));
            match rank {
                None | Some(std::cmp::Ordering::Greater) => {
                    found = Some((Arc::clone(rule), captures));
                    tie = false;
                }
                Some(std::cmp::Ordering::Equal) => tie = true,
                Some(std::cmp::Ordering::Less) => {}
            }
        }
        if tie {
            return Err(PipelineError::several_rules());
        }
        found.ok_or_else(PipelineError::no_rule)
    }

    /// Compiles rules loaded from `documents` (each with its rules).
    pub(crate) fn compile(
        documents: Vec<repository::Loaded>,
        strategy: Strategy,
        handlers: &Handlers,
        ctx: &CompileContext,
    ) -> Result<Self, ConfigError> {
        let mut rules = Vec::new();
        let mut ids = HashSet::new();
        for loaded in documents {
            for (index, raw) in loaded.rules.into_iter().enumerate() {
                let rule = Rule::compile(raw, &loaded.document, index, strategy, handlers, ctx)?;
                if !ids.insert(rule.raw.id.clone()) {
                    return Err(loaded.document.error_at(
                        &format!("/{index}/id"),
                        format!("duplicate access rule id {:?}", rule.raw.id),
                    ));
                }
                if let Err(reason) = &rule.pipeline {
                    tracing::warn!(
                        origin = loaded.document.origin(),
                        rule = %rule.raw.id,
                        %reason,
                        "access rule is invalid; requests matching it get 500"
                    );
                }
                rules.push(Arc::new(rule));
            }
        }
        Ok(Self { rules })
    }
}

impl Rule {
    fn compile(
        raw: RawRule,
        document: &Document,
        index: usize,
        strategy: Strategy,
        handlers: &Handlers,
        ctx: &CompileContext,
    ) -> Result<Self, ConfigError> {
        let at = |pointer: &str, message: String| {
            document.error_at(
                &format!("/{index}{pointer}"),
                format!("rule {:?}: {message}", raw.id),
            )
        };
        if raw.id.is_empty() {
            return Err(at("/id", "an access rule needs an id".into()));
        }
        if raw.matches.url.is_empty() {
            return Err(at("/match/url", "match.url must not be empty".into()));
        }
        let matcher = Matcher::compile(&raw.matches.url, &raw.matches.methods, strategy)
            .map_err(|e| at("/match/url", e))?;
        let upstream = if raw.upstream.url.is_empty() {
            None
        } else {
            Some(
                url::Url::parse(&raw.upstream.url)
                    .map_err(|e| at("/upstream/url", format!("invalid upstream URL: {e}")))?,
            )
        };
        let pipeline = compile_pipeline(&raw, handlers, ctx);
        Ok(Self {
            raw,
            matcher,
            pipeline,
            upstream,
        })
    }
}

fn compile_pipeline(
    raw: &RawRule,
    handlers: &Handlers,
    ctx: &CompileContext,
) -> Result<Pipeline, String> {
    if raw.authenticators.is_empty() {
        return Err("at least one authenticator is required".into());
    }
    if raw.authorizer.handler.is_empty() {
        return Err("an authorizer is required".into());
    }
    if raw.mutators.is_empty() {
        return Err("at least one mutator is required".into());
    }
    let authenticators = raw
        .authenticators
        .iter()
        .map(|h| {
            let config = handlers.configure(Kind::Authenticator, &h.handler, &h.config)?;
            Authenticator::compile(&h.handler, &config, ctx)
                .map_err(|e| format!("authenticator {:?}: {e}", h.handler))
        })
        .collect::<Result<_, _>>()?;
    let config = handlers.configure(
        Kind::Authorizer,
        &raw.authorizer.handler,
        &raw.authorizer.config,
    )?;
    let authorizer = Authorizer::compile(&raw.authorizer.handler, &config, ctx)
        .map_err(|e| format!("authorizer {:?}: {e}", raw.authorizer.handler))?;
    let mutators = raw
        .mutators
        .iter()
        .map(|h| {
            let config = handlers.configure(Kind::Mutator, &h.handler, &h.config)?;
            Mutator::compile(&h.handler, &config, ctx)
                .map_err(|e| format!("mutator {:?}: {e}", h.handler))
        })
        .collect::<Result<_, _>>()?;
    let errors = raw
        .errors
        .iter()
        .map(|h| {
            let config = handlers.configure(Kind::ErrorHandler, &h.handler, &h.config)?;
            ErrorHandler::compile(&h.handler, &config)
                .map_err(|e| format!("error handler {:?}: {e}", h.handler))
        })
        .collect::<Result<_, _>>()?;
    Ok(Pipeline {
        authenticators,
        authorizer,
        mutators,
        errors,
    })
}
