//! `oathkeeper.yml`: read with `portcullis-config` (file, `SERVE_PROXY_PORT`-style environment
//! overrides, validation against the official schema with file/line/key errors), defaults
//! filled in, then compiled into the handful of typed settings the proxy needs plus each
//! handler's global config (with its schema defaults, including for disabled handlers).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use portcullis_config::{Document, fill_defaults};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::AccessError;
use crate::pipeline::{Kind, merge};
use crate::rule::Strategy;
use crate::schema::{Schemas, schemas};

/// Oathkeeper's default proxy port (Portcullis' `up` uses 8080, as the tutorial maps it).
pub const OATHKEEPER_PROXY_PORT: u16 = 4455;
/// Oathkeeper's default API port.
pub const OATHKEEPER_API_PORT: u16 = 4456;

/// A loaded, validated `oathkeeper.yml`.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    origin: String,
    proxy: Listener,
    api: Listener,
    /// `serve.proxy.trust_forwarded_headers`.
    pub trust_forwarded_headers: bool,
    /// `access_rules.repositories`.
    pub repositories: Vec<String>,
    /// `access_rules.matching_strategy`.
    pub matching_strategy: Strategy,
    /// `errors.fallback`.
    pub fallback: Vec<String>,
    pub(crate) handlers: Handlers,
    pub(crate) proxy_cors: Option<tower_http::cors::CorsLayer>,
    pub(crate) api_cors: Option<tower_http::cors::CorsLayer>,
    /// `serve.prometheus.metric_name_prefix`.
    pub metric_name_prefix: String,
    /// Environment variables that overrode the file.
    pub env_used: Vec<String>,
}

#[derive(Debug, Clone)]
struct Listener {
    host: String,
    port: Option<u16>,
}

impl Listener {
    fn addr(&self, default_port: u16) -> SocketAddr {
        let ip = self
            .host
            .parse::<IpAddr>()
            .ok()
            .or_else(|| (self.host == "localhost").then_some(IpAddr::V4(Ipv4Addr::LOCALHOST)))
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        SocketAddr::new(ip, self.port.unwrap_or(default_port))
    }
}

/// The typed part of the config, read after defaults are filled.
#[derive(Deserialize)]
struct Raw {
    serve: RawServe,
    access_rules: RawAccessRules,
    errors: RawErrors,
}

#[derive(Deserialize)]
struct RawServe {
    proxy: RawListener,
    api: RawListener,
    #[serde(default)]
    prometheus: Option<RawPrometheus>,
}

#[derive(Deserialize)]
struct RawPrometheus {
    #[serde(default)]
    metric_name_prefix: Option<String>,
}

#[derive(Deserialize)]
struct RawListener {
    #[serde(default)]
    host: String,
    #[serde(default)]
    trust_forwarded_headers: bool,
    #[serde(default)]
    cors: Option<Value>,
}

#[derive(Deserialize)]
struct RawAccessRules {
    #[serde(default)]
    repositories: Vec<String>,
    #[serde(default)]
    matching_strategy: Option<String>,
}

#[derive(Deserialize)]
struct RawErrors {
    #[serde(default)]
    fallback: Vec<String>,
}

impl AccessConfig {
    /// Loads a YAML/JSON file with environment overrides from the process environment.
    pub fn load(path: &Path) -> Result<Self, AccessError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// Loads a YAML/JSON file with the given environment overrides.
    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, AccessError> {
        Self::from_document(Document::from_file(path)?, env)
    }

    /// Parses config text (no environment overrides); `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, AccessError> {
        Self::from_document(Document::parse(text, origin)?, std::iter::empty())
    }

    /// Uses a config built in code (no environment overrides, no line numbers).
    pub fn from_value(value: Value, origin: &str) -> Result<Self, AccessError> {
        Self::from_document(Document::from_value(value, origin), std::iter::empty())
    }

    fn from_document(
        mut doc: Document,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, AccessError> {
        let schemas = schemas().map_err(AccessError::Schema)?;
        let env_used = doc.apply_env(&schemas.config, env);
        doc.validate_with(&schemas.config_validator)
            .map_err(AccessError::Config)?;
        let port = |pointer: &str| {
            doc.value
                .pointer(pointer)
                .and_then(Value::as_u64)
                .map(|p| u16::try_from(p).map_err(|_| doc.error_at(pointer, "not a TCP port")))
                .transpose()
        };
        let proxy_port = port("/serve/proxy/port")?;
        let api_port = port("/serve/api/port")?;

        let mut value = doc.value.clone();
        for pointer in [
            "/serve/proxy",
            "/serve/api",
            "/access_rules",
            "/errors/handlers",
        ] {
            ensure_object(&mut value, pointer);
        }
        fill_defaults(&mut value, &schemas.config);
        let raw: Raw = serde_json::from_value(value.clone())
            .map_err(|e| doc.error_at("", format!("invalid configuration: {e}")))?;
        let matching_strategy = match raw.access_rules.matching_strategy.as_deref() {
            None | Some("") | Some("regexp") => Strategy::Regexp,
            Some("glob") => Strategy::Glob,
            Some(other) => {
                return Err(doc
                    .error_at(
                        "/access_rules/matching_strategy",
                        format!("unknown matching strategy {other:?}"),
                    )
                    .into());
            }
        };
        let cors = |name: &str, listener: &RawListener| {
            crate::cors::layer(listener.cors.as_ref())
                .map_err(|e| doc.error_at(&format!("/serve/{name}/cors"), e))
        };
        let proxy_cors = cors("proxy", &raw.serve.proxy)?;
        let api_cors = cors("api", &raw.serve.api)?;
        let metric_name_prefix = raw
            .serve
            .prometheus
            .and_then(|p| p.metric_name_prefix)
            .unwrap_or_else(|| "ory_oathkeeper_".to_string());
        Ok(Self {
            origin: doc.origin().to_string(),
            proxy: Listener {
                host: raw.serve.proxy.host,
                port: proxy_port,
            },
            api: Listener {
                host: raw.serve.api.host,
                port: api_port,
            },
            trust_forwarded_headers: raw.serve.proxy.trust_forwarded_headers,
            repositories: raw.access_rules.repositories,
            matching_strategy,
            fallback: raw.errors.fallback,
            handlers: Handlers::from_config(&value, schemas),
            proxy_cors,
            api_cors,
            metric_name_prefix,
            env_used,
        })
    }

    /// Where the config came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The proxy address: `serve.proxy.host`/`port`, with `default_port` when no port is set
    /// (Oathkeeper's is [`OATHKEEPER_PROXY_PORT`]).
    pub fn proxy_addr(&self, default_port: u16) -> SocketAddr {
        self.proxy.addr(default_port)
    }

    /// `authenticators.jwt.config.jwks_ttl` (read from the global config only, as Oathkeeper
    /// does: one key cache serves every rule); 30 s when unset or invalid.
    pub fn jwks_ttl(&self) -> std::time::Duration {
        self.handlers
            .global(Kind::Authenticator, "jwt")
            .and_then(|c| c.get("jwks_ttl"))
            .and_then(Value::as_str)
            .and_then(|t| crate::pipeline::parse_duration(t).ok())
            .unwrap_or(std::time::Duration::from_secs(30))
    }

    /// `authenticators.jwt.config.jwks_max_wait` (global only): how long a request waits for
    /// the refresh of expired keys before the stale ones answer; 1 s when unset or invalid.
    pub fn jwks_max_wait(&self) -> std::time::Duration {
        self.handlers
            .global(Kind::Authenticator, "jwt")
            .and_then(|c| c.get("jwks_max_wait"))
            .and_then(Value::as_str)
            .and_then(|t| crate::pipeline::parse_duration(t).ok())
            .unwrap_or(std::time::Duration::from_secs(1))
    }

    /// `mutators.id_token.config.jwks_url`, when the global config sets one.
    pub fn id_token_jwks_url(&self) -> Option<String> {
        self.handlers
            .global(Kind::Mutator, "id_token")
            .and_then(|c| c.get("jwks_url"))
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// The API address: `serve.api.host`/`port`, with `default_port` when no port is set
    /// (Oathkeeper's is [`OATHKEEPER_API_PORT`]).
    pub fn api_addr(&self, default_port: u16) -> SocketAddr {
        self.api.addr(default_port)
    }
}

fn ensure_object(value: &mut Value, pointer: &str) {
    let mut cur = value;
    for key in pointer.split('/').skip(1) {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        cur = map
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Every known handler's global settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct Handlers {
    map: HashMap<(Kind, String), Settings>,
}

#[derive(Debug, Clone)]
struct Settings {
    enabled: bool,
    config: Value,
}

impl Handlers {
    fn from_config(value: &Value, schemas: &Schemas) -> Self {
        let mut map = HashMap::new();
        for kind in [
            Kind::Authenticator,
            Kind::Authorizer,
            Kind::Mutator,
            Kind::ErrorHandler,
        ] {
            for id in Schemas::known(kind) {
                let entry = value.pointer(&format!("{}/{id}", kind.config_pointer()));
                let enabled = entry
                    .and_then(|e| e.get("enabled"))
                    .and_then(Value::as_bool)
                    // Oathkeeper's schema default turns the JSON error handler on.
                    .unwrap_or(kind == Kind::ErrorHandler && id == "json");
                let mut config = entry
                    .and_then(|e| e.get("config"))
                    .filter(|c| c.is_object())
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Map::new()));
                if let Some(schema) = schemas.handler_schema(kind, id) {
                    fill_defaults(&mut config, schema);
                }
                map.insert((kind, id.to_string()), Settings { enabled, config });
            }
        }
        Self { map }
    }

    /// The global config of handler `id` (schema defaults filled), enabled or not.
    pub fn global(&self, kind: Kind, id: &str) -> Option<&Value> {
        self.map.get(&(kind, id.to_string())).map(|s| &s.config)
    }

    /// The merged config of handler `id` for one rule (global deep-merged with the rule's),
    /// validated against the handler's schema; errors say why the rule cannot use it.
    pub fn configure(&self, kind: Kind, id: &str, rule_config: &Value) -> Result<Value, String> {
        let noun = kind.noun();
        let settings = self
            .map
            .get(&(kind, id.to_string()))
            .ok_or_else(|| format!("unknown {noun} {id:?}"))?;
        if !settings.enabled {
            return Err(format!(
                "{noun} {id:?} is not enabled (set {}.{id}.enabled: true)",
                portcullis_config::dotted(kind.config_pointer())
            ));
        }
        let merged = merge(&settings.config, rule_config);
        let validator = schemas()
            .map_err(|e| format!("built-in schema: {e}"))?
            .handler_validator(kind, id)
            .ok_or_else(|| format!("unknown {noun} {id:?}"))?;
        let problems: Vec<String> = validator
            .iter_errors(&merged)
            .map(|e| {
                let path = portcullis_config::dotted(e.instance_path().as_str());
                if path.is_empty() {
                    e.to_string()
                } else {
                    format!("{path}: {e}")
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(merged)
        } else {
            Err(format!("{noun} {id:?} config: {}", problems.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_fill_in_including_disabled_handlers() {
        let c = AccessConfig::from_value(json!({}), "t").expect("empty config is valid");
        assert_eq!(c.fallback, vec!["json"]);
        assert_eq!(c.matching_strategy, Strategy::Regexp);
        assert_eq!(c.proxy_addr(8080).port(), 8080);
        assert_eq!(c.api_addr(OATHKEEPER_API_PORT).port(), 4456);
        // The JSON error handler is enabled by default; others are not.
        assert!(
            c.handlers
                .configure(Kind::ErrorHandler, "json", &Value::Null)
                .is_ok()
        );
        let err = c
            .handlers
            .configure(Kind::Authenticator, "anonymous", &Value::Null)
            .expect_err("disabled");
        assert!(err.contains("authenticators.anonymous.enabled"), "{err}");
        assert!(
            c.handlers
                .configure(Kind::Authenticator, "nope", &Value::Null)
                .is_err()
        );
    }

    #[test]
    fn rule_config_merges_over_global_and_is_validated() {
        let c = AccessConfig::from_value(
            json!({"errors": {"handlers": {"redirect": {"enabled": true, "config": {
                "to": "http://a/login", "when": [{"error": ["unauthorized"]}]}}}}}),
            "t",
        )
        .expect("valid");
        let merged = c
            .handlers
            .configure(
                Kind::ErrorHandler,
                "redirect",
                &json!({"to": "http://b/login"}),
            )
            .expect("valid merge");
        assert_eq!(merged["to"], json!("http://b/login"));
        assert_eq!(merged["when"], json!([{"error": ["unauthorized"]}]));
        assert_eq!(merged["code"], json!(302), "schema default");
        let err = c
            .handlers
            .configure(Kind::ErrorHandler, "redirect", &json!({"code": 307}))
            .expect_err("307 is not allowed");
        assert!(err.contains("code"), "{err}");
    }

    #[test]
    fn schema_errors_name_file_line_and_key() {
        let err = AccessConfig::parse("serve:\n  proxy:\n    port: nope\n", "oathkeeper.yml")
            .expect_err("invalid");
        let msg = err.to_string();
        assert!(msg.starts_with("oathkeeper.yml:3:"), "{msg}");
        assert!(msg.contains("serve.proxy.port"), "{msg}");
        let err = AccessConfig::parse(
            "authenticators:\n  cookie_session:\n    enabled: true\n    config: {}\n",
            "o.yml",
        )
        .expect_err("check_session_url is required");
        assert!(err.to_string().contains("o.yml:"), "{err}");
    }

    #[test]
    fn env_overrides_apply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("oathkeeper.yml");
        std::fs::write(&path, "serve:\n  proxy:\n    port: 1\n").expect("write");
        let c = AccessConfig::load_with_env(
            &path,
            [
                ("SERVE_PROXY_PORT".to_string(), "4999".to_string()),
                (
                    "ACCESS_RULES_MATCHING_STRATEGY".to_string(),
                    "glob".to_string(),
                ),
                ("LOG_LEVEL".to_string(), "debug".to_string()),
            ],
        )
        .expect("valid");
        assert_eq!(c.proxy_addr(8080).port(), 4999);
        assert_eq!(c.matching_strategy, Strategy::Glob);
        assert_eq!(c.env_used.len(), 3);
    }
}
