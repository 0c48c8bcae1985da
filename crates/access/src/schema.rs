//! The official Oathkeeper configuration schema, prepared once for validation.
//!
//! The schema is Oathkeeper's own `spec/config.schema.json` (Apache-2.0), embedded verbatim so
//! the binary validates exactly what Oathkeeper validates. Two things are adjusted in memory:
//! the relative `$id` (which would need a base URI) is dropped, and the `ory://logging-config`
//! and `ory://tracing-config` references, which point at documents shipped with Ory's
//! libraries, are inlined so that environment overrides such as `LOG_LEVEL` are known too.
//! Per-handler schemas (`spec/pipeline/<kind>.<id>.schema.json` upstream) are built from the
//! same definitions, so a merged handler config is validated against the same rules.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::{Value, json};

use crate::pipeline::Kind;

const CONFIG_SCHEMA: &str = include_str!("../schema/oathkeeper.config.schema.json");

/// Every handler Oathkeeper knows, with the schema definition its config is validated against
/// (`None`: the handler takes no config and accepts anything, as upstream's `{}` schemas).
const HANDLERS: &[(Kind, &str, Option<&str>)] = &[
    (
        Kind::Authenticator,
        "anonymous",
        Some("configAuthenticatorsAnonymous"),
    ),
    (
        Kind::Authenticator,
        "bearer_token",
        Some("configAuthenticatorsBearerToken"),
    ),
    (
        Kind::Authenticator,
        "cookie_session",
        Some("configAuthenticatorsCookieSession"),
    ),
    (Kind::Authenticator, "jwt", Some("configAuthenticatorsJwt")),
    (
        Kind::Authenticator,
        "noop",
        Some("configAuthenticatorsAnonymous"),
    ),
    (
        Kind::Authenticator,
        "oauth2_client_credentials",
        Some("configAuthenticatorsOauth2ClientCredentials"),
    ),
    (
        Kind::Authenticator,
        "oauth2_introspection",
        Some("configAuthenticatorsOauth2Introspection"),
    ),
    (
        Kind::Authenticator,
        "unauthorized",
        Some("configAuthenticatorsAnonymous"),
    ),
    (Kind::Authorizer, "allow", None),
    (Kind::Authorizer, "deny", None),
    (
        Kind::Authorizer,
        "keto_engine_acp_ory",
        Some("configAuthorizersKetoEngineAcpOry"),
    ),
    (Kind::Authorizer, "remote", Some("configAuthorizersRemote")),
    (
        Kind::Authorizer,
        "remote_json",
        Some("configAuthorizersRemoteJSON"),
    ),
    (Kind::Mutator, "cookie", Some("configMutatorsCookie")),
    (Kind::Mutator, "header", Some("configMutatorsHeader")),
    (Kind::Mutator, "hydrator", Some("configMutatorsHydrator")),
    (Kind::Mutator, "id_token", Some("configMutatorsIdToken")),
    (Kind::Mutator, "noop", None),
    (Kind::ErrorHandler, "json", Some("configErrorsJSON")),
    (Kind::ErrorHandler, "redirect", Some("configErrorsRedirect")),
    (
        Kind::ErrorHandler,
        "www_authenticate",
        Some("configErrorsWWWAuthenticate"),
    ),
];

/// The prepared schemas.
pub(crate) struct Schemas {
    /// The whole-config schema, ready for `portcullis_config` (env overrides, defaults).
    pub config: Value,
    /// The whole-config schema, compiled.
    pub config_validator: jsonschema::Validator,
    handlers: HashMap<Kind, HashMap<&'static str, Handler>>,
}

struct Handler {
    schema: Value,
    validator: jsonschema::Validator,
}

static SCHEMAS: LazyLock<Result<Schemas, String>> = LazyLock::new(build);

/// The prepared schemas, or why the embedded schema could not be prepared (a build defect).
pub(crate) fn schemas() -> Result<&'static Schemas, String> {
    SCHEMAS.as_ref().map_err(Clone::clone)
}

impl Schemas {
    /// The schema of one handler's config, if Oathkeeper knows the handler.
    pub fn handler_schema(&self, kind: Kind, id: &str) -> Option<&Value> {
        self.handlers.get(&kind)?.get(id).map(|h| &h.schema)
    }

    /// The compiled schema of one handler's config, if Oathkeeper knows the handler.
    pub fn handler_validator(&self, kind: Kind, id: &str) -> Option<&jsonschema::Validator> {
        self.handlers.get(&kind)?.get(id).map(|h| &h.validator)
    }

    /// Ids of every handler of `kind` that Oathkeeper knows.
    pub fn known(kind: Kind) -> impl Iterator<Item = &'static str> {
        HANDLERS
            .iter()
            .filter(move |(k, _, _)| *k == kind)
            .map(|(_, id, _)| *id)
    }
}

fn build() -> Result<Schemas, String> {
    let mut config: Value = serde_json::from_str(CONFIG_SCHEMA)
        .map_err(|e| format!("embedded Oathkeeper schema is not JSON: {e}"))?;
    if let Some(obj) = config.as_object_mut() {
        obj.remove("$id");
    }
    inline_ory_refs(&mut config);
    let config_validator = portcullis_config::compile_schema(&config)?;
    let definitions = config
        .get("definitions")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut handlers: HashMap<Kind, HashMap<&'static str, Handler>> = HashMap::new();
    for (kind, id, definition) in HANDLERS {
        let schema = match definition {
            Some(def) => json!({
                "$schema": "http://json-schema.org/draft-07/schema#",
                "definitions": definitions,
                "allOf": [{"$ref": format!("#/definitions/{def}")}],
            }),
            None => json!({}),
        };
        let validator = portcullis_config::compile_schema(&schema)?;
        handlers
            .entry(*kind)
            .or_default()
            .insert(*id, Handler { schema, validator });
    }
    Ok(Schemas {
        config,
        config_validator,
        handlers,
    })
}

/// Replaces references to Ory's shared schemas with inline equivalents.
fn inline_ory_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                let inline = match r.as_str() {
                    "ory://logging-config" => Some(logging_schema()),
                    r if r.starts_with("ory://") => Some(json!({"type": "object"})),
                    _ => None,
                };
                if let Some(inline) = inline {
                    *value = inline;
                    return;
                }
            }
            map.values_mut().for_each(inline_ory_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(inline_ory_refs),
        _ => {}
    }
}

/// Ory's logging config (`ory/x/logrusx`), reduced to the keys Oathkeeper documents.
fn logging_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "level": {"type": "string", "enum": ["panic", "fatal", "error", "warn", "warning", "info", "debug", "trace"]},
            "format": {"type": "string", "enum": ["json", "json_pretty", "text"]},
            "leak_sensitive_values": {"type": "boolean", "default": false},
            "redaction_text": {"type": "string"}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schema_prepares_and_knows_every_handler() {
        let s = schemas().expect("schema prepares");
        for kind in [
            Kind::Authenticator,
            Kind::Authorizer,
            Kind::Mutator,
            Kind::ErrorHandler,
        ] {
            for id in Schemas::known(kind) {
                assert!(s.handler_validator(kind, id).is_some(), "{id}");
            }
        }
        let redirect = s
            .handler_validator(Kind::ErrorHandler, "redirect")
            .expect("known");
        assert!(!redirect.is_valid(&json!({})), "`to` is required");
        assert!(redirect.is_valid(&json!({"to": "http://x/login", "code": 302})));
        assert!(!redirect.is_valid(&json!({"to": "http://x/login", "nope": 1})));
    }

    #[test]
    fn embedded_schema_is_the_official_one() {
        let reference = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/reference/oathkeeper/config.schema.json");
        if let Ok(text) = std::fs::read_to_string(&reference) {
            assert_eq!(
                text,
                CONFIG_SCHEMA,
                "embedded schema drifted from {}",
                reference.display()
            );
        }
    }
}
