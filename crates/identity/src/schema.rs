//! Identity schemas: JSON Schemas for an identity's `traits`, loaded once (from `file://`,
//! `base64://`, `http://` or `https://` URLs, see [`crate::fetcher`]) and compiled into a
//! validator plus a flat list of trait fields carrying the
//! `ory.sh/kratos` extension (password identifier, verification and recovery addresses).
//! The same field list drives the UI nodes, so the form always matches the schema.

use std::path::Path;

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use crate::fetcher::{self, FetchError};
use crate::text::{self, Text};
use crate::ui::{Group, Node};

/// Why a schema could not be loaded; the config layer adds file, line and key.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The URL could not be read.
    #[error("identity schema: {0}")]
    Fetch(#[from] FetchError),
    /// The document is not JSON.
    #[error("identity schema {url} is not valid JSON: {source}")]
    Json {
        /// The URL.
        url: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// The JSON is not a usable identity schema.
    #[error("identity schema {url} is invalid: {reason}")]
    Invalid {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// The `ory.sh/kratos` extension of one trait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Extension {
    password_identifier: bool,
    verification_via: Option<String>,
    recovery_via: Option<String>,
}

/// One trait (leaf or array of leaves) of the schema.
#[derive(Debug, Clone)]
struct Field {
    /// Dotted path below `traits`, e.g. `email` or `name.first`.
    path: String,
    json_type: String,
    format: Option<String>,
    title: Option<String>,
    pattern: Option<String>,
    required: bool,
    is_array: bool,
    ext: Extension,
}

/// A compiled identity schema.
#[derive(Debug)]
pub struct IdentitySchema {
    id: String,
    raw: Value,
    validator: jsonschema::Validator,
    fields: Vec<Field>,
}

impl IdentitySchema {
    /// Loads and compiles the schema at `url`; relative `file://` paths resolve against
    /// `base_dir` (the config file's directory).
    pub fn load(id: &str, url: &str, base_dir: &Path) -> Result<Self, SchemaError> {
        let raw = fetch(url, base_dir)?;
        Self::compile(id, url, raw)
    }

    /// Compiles an already parsed schema.
    pub fn compile(id: &str, url: &str, raw: Value) -> Result<Self, SchemaError> {
        let invalid = |reason: String| SchemaError::Invalid {
            url: url.to_string(),
            reason,
        };
        let traits = raw
            .pointer("/properties/traits")
            .ok_or_else(|| invalid("it has no properties.traits".into()))?;
        if traits.get("type").and_then(Value::as_str) != Some("object") {
            return Err(invalid("properties.traits must be of type object".into()));
        }
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&raw)
            .map_err(|e| invalid(e.to_string()))?;
        let mut fields = Vec::new();
        walk(&raw, traits, "", &mut fields, 0);
        Ok(Self {
            id: id.to_string(),
            raw,
            validator,
            fields,
        })
    }

    /// The schema id (`default`, ...).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The schema document as loaded.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// Validates `traits`; returns `(node name, message)` pairs, empty when valid. A message
    /// not tied to one field carries the name `""` and belongs to the form.
    pub fn validate_traits(&self, traits: &Value) -> Vec<(String, Text)> {
        let instance = serde_json::json!({ "traits": traits });
        let mut out = Vec::new();
        for error in self.validator.iter_errors(&instance) {
            let location = error.instance_path().as_str().to_string();
            let base = location.trim_start_matches('/').replace('/', ".");
            let (name, message) = match error.kind() {
                ValidationErrorKind::Required { property } => {
                    let prop = property.as_str().unwrap_or_default().to_string();
                    let name = if base.is_empty() {
                        prop.clone()
                    } else {
                        format!("{base}.{prop}")
                    };
                    (name, text::missing_property(&prop))
                }
                ValidationErrorKind::MinLength { limit } => {
                    let actual = error.instance().as_str().map_or(0, |s| s.chars().count());
                    (base, text::min_length(*limit, actual))
                }
                ValidationErrorKind::Pattern { pattern } => (base, text::pattern_mismatch(pattern)),
                ValidationErrorKind::Format { format } => (
                    base,
                    text::validation_generic(format!(
                        "{} is not valid {:?}",
                        error.instance(),
                        format
                    )),
                ),
                _ => (base, text::validation_generic(error.to_string())),
            };
            // `traits` itself (e.g. not an object) belongs to the form.
            let name = if name == "traits" {
                String::new()
            } else {
                name
            };
            out.push((name, message));
        }
        out
    }

    /// Converts form-encoded trait strings to the types the schema declares (numbers,
    /// booleans: a checkbox sends `true`); empty strings of such fields are dropped.
    pub fn coerce_form_traits(&self, traits: &mut Value) {
        for field in self.fields.iter().filter(|f| !f.is_array) {
            let (parents, leaf) = match field.path.rsplit_once('.') {
                Some((p, l)) => (Some(p), l),
                None => (None, field.path.as_str()),
            };
            let parent = match parents {
                Some(p) => p.split('.').try_fold(&mut *traits, |v, k| v.get_mut(k)),
                None => Some(&mut *traits),
            };
            let Some(Value::Object(map)) = parent else {
                continue;
            };
            let Some(Value::String(raw)) = map.get(leaf) else {
                continue;
            };
            let converted = match field.json_type.as_str() {
                "integer" => raw.trim().parse::<i64>().ok().map(Value::from),
                "number" => raw.trim().parse::<f64>().ok().map(Value::from),
                "boolean" => match raw.trim() {
                    "true" | "on" | "1" => Some(Value::Bool(true)),
                    "false" | "off" | "0" => Some(Value::Bool(false)),
                    _ => None,
                },
                _ => continue,
            };
            match converted {
                Some(v) => {
                    map.insert(leaf.to_string(), v);
                }
                None if raw.trim().is_empty() => {
                    map.remove(leaf);
                }
                // Left as is: validation reports the type error on the node.
                None => {}
            }
        }
    }

    /// Password identifiers found in `traits`, normalised (trimmed, lower-cased).
    pub fn password_identifiers(&self, traits: &Value) -> Vec<String> {
        let mut ids: Vec<String> = self
            .fields
            .iter()
            .filter(|f| f.ext.password_identifier)
            .flat_map(|f| values_at(traits, f))
            .map(|v| normalize_identifier(&v))
            .filter(|v| !v.is_empty())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// `(via, value)` of every verifiable address in `traits`.
    pub fn verifiable_addresses(&self, traits: &Value) -> Vec<(String, String)> {
        self.addresses(traits, |e| e.verification_via.as_deref())
    }

    /// `(via, value)` of every recovery address in `traits`.
    pub fn recovery_addresses(&self, traits: &Value) -> Vec<(String, String)> {
        self.addresses(traits, |e| e.recovery_via.as_deref())
    }

    fn addresses(
        &self,
        traits: &Value,
        via: impl Fn(&Extension) -> Option<&str>,
    ) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for field in &self.fields {
            if let Some(via) = via(&field.ext) {
                for value in values_at(traits, field) {
                    let pair = (via.to_string(), normalize_identifier(&value));
                    if !pair.1.is_empty() && !out.contains(&pair) {
                        out.push(pair);
                    }
                }
            }
        }
        out
    }

    /// One input node per scalar trait, in schema order, named `traits.<path>`.
    pub fn trait_nodes(&self, group: Group) -> Vec<Node> {
        self.fields
            .iter()
            .filter(|f| !f.is_array)
            .map(|f| {
                let name = format!("traits.{}", f.path);
                let (input_type, autocomplete) = input_type_for(f);
                let mut node = Node::input(group, &name, input_type);
                if let Some(hint) = autocomplete {
                    node = node.autocomplete(hint);
                }
                if f.required {
                    node = node.required();
                }
                if let Some(p) = &f.pattern {
                    node = node.pattern(p);
                }
                if let Some(title) = &f.title {
                    node = node.label(text::label_generated(title, &name));
                }
                node
            })
            .collect()
    }

    /// The login `identifier` label: the schema title when exactly one trait is a password
    /// identifier, "ID" otherwise.
    pub fn identifier_label(&self) -> Text {
        let ids: Vec<&Field> = self
            .fields
            .iter()
            .filter(|f| f.ext.password_identifier)
            .collect();
        match ids.as_slice() {
            [one] => match &one.title {
                Some(title) => text::label_generated(title, "identifier"),
                None => text::label_id(),
            },
            _ => text::label_id(),
        }
    }
}

/// Trims and lower-cases an identifier or address, as Kratos does before storing it.
pub fn normalize_identifier(value: &str) -> String {
    value.trim().to_lowercase()
}

fn input_type_for(field: &Field) -> (&'static str, Option<&'static str>) {
    match field.format.as_deref() {
        Some("email") => return ("email", Some("email")),
        Some("tel") => return ("tel", Some("tel")),
        Some("date") => return ("date", None),
        Some("date-time") => return ("datetime-local", None),
        Some("uri") => return ("url", Some("url")),
        _ => {}
    }
    match field.json_type.as_str() {
        "number" | "integer" => ("number", None),
        "boolean" => ("checkbox", None),
        _ => ("text", None),
    }
}

/// The string values a field holds in `traits`.
fn values_at(traits: &Value, field: &Field) -> Vec<String> {
    match crate::ui::lookup_dotted(traits, &field.path) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if field.is_array => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Follows a local `$ref` (`#/definitions/x`) once; other nodes are returned unchanged.
fn deref<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) if r.starts_with('#') => root.pointer(&r[1..]).unwrap_or(node),
        _ => node,
    }
}

fn walk(root: &Value, node: &Value, prefix: &str, out: &mut Vec<Field>, depth: u8) {
    // Schemas are trusted config, but a `$ref` cycle must not loop forever.
    if depth > 16 {
        return;
    }
    let node = deref(root, node);
    let required: Vec<&str> = node
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = node.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, prop) in props {
        let prop = deref(root, prop);
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let json_type = prop
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("string")
            .to_string();
        if json_type == "object" {
            walk(root, prop, &path, out, depth + 1);
            continue;
        }
        let (leaf, is_array) = if json_type == "array" {
            (
                prop.get("items").map(|i| deref(root, i)).unwrap_or(prop),
                true,
            )
        } else {
            (prop, false)
        };
        let ext = leaf
            .get("ory.sh/kratos")
            .or_else(|| prop.get("ory.sh/kratos"))
            .map(extension)
            .unwrap_or_default();
        out.push(Field {
            path,
            json_type: if is_array { "array".into() } else { json_type },
            format: leaf
                .get("format")
                .and_then(Value::as_str)
                .map(str::to_string),
            title: prop
                .get("title")
                .and_then(Value::as_str)
                .map(str::to_string),
            pattern: leaf
                .get("pattern")
                .and_then(Value::as_str)
                .map(str::to_string),
            required: required.contains(&name.as_str()),
            is_array,
            ext,
        });
    }
}

fn extension(ext: &Value) -> Extension {
    Extension {
        password_identifier: ext
            .pointer("/credentials/password/identifier")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        verification_via: ext
            .pointer("/verification/via")
            .and_then(Value::as_str)
            .map(str::to_string),
        recovery_via: ext
            .pointer("/recovery/via")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// Reads the schema document behind `url`.
fn fetch(url: &str, base_dir: &Path) -> Result<Value, SchemaError> {
    let bytes = fetcher::fetch(url, base_dir)?;
    serde_json::from_slice(&bytes).map_err(|source| SchemaError::Json {
        url: url.chars().take(80).collect(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tutorial() -> IdentitySchema {
        IdentitySchema::compile(
            "default",
            "test",
            json!({
              "$schema": "http://json-schema.org/draft-07/schema#",
              "type": "object",
              "properties": {"traits": {"type": "object", "properties": {
                "email": {"type": "string", "format": "email", "title": "E-Mail", "minLength": 3,
                  "ory.sh/kratos": {"credentials": {"password": {"identifier": true}},
                    "verification": {"via": "email"}, "recovery": {"via": "email"}}},
                "name": {"type": "object", "properties": {
                  "first": {"title": "First Name", "type": "string"},
                  "last": {"title": "Last Name", "type": "string"}}}},
                "required": ["email"], "additionalProperties": false}}
            }),
        )
        .expect("schema compiles")
    }

    #[test]
    fn missing_and_malformed_traits_name_their_node() {
        let s = tutorial();
        let errors = s.validate_traits(&json!({}));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "traits.email");
        assert_eq!(errors[0].1.id, 4000002);
        let errors = s.validate_traits(&json!({"email": "not-an-email"}));
        assert_eq!(errors[0].0, "traits.email", "{errors:?}");
        assert!(
            s.validate_traits(&json!({"email": "a@example.com"}))
                .is_empty()
        );
    }

    #[test]
    fn extension_yields_identifiers_and_addresses() {
        let s = tutorial();
        let traits = json!({"email": " Foo@Example.com", "name": {"first": "F"}});
        assert_eq!(s.password_identifiers(&traits), vec!["foo@example.com"]);
        assert_eq!(
            s.verifiable_addresses(&traits),
            vec![("email".to_string(), "foo@example.com".to_string())]
        );
        assert_eq!(s.recovery_addresses(&traits).len(), 1);
        let names: Vec<String> = s
            .trait_nodes(Group::Default)
            .iter()
            .map(|n| n.name().to_string())
            .collect();
        assert_eq!(
            names,
            ["traits.email", "traits.name.first", "traits.name.last"]
        );
        assert_eq!(s.identifier_label().text, "E-Mail");
    }

    #[test]
    fn form_strings_become_declared_types() {
        let s = IdentitySchema::compile(
            "t",
            "test",
            json!({"properties": {"traits": {"type": "object", "properties": {
                "age": {"type": "integer"}, "news": {"type": "boolean"},
                "p": {"type": "object", "properties": {"h": {"type": "number"}}},
                "name": {"type": "string"}}}}}),
        )
        .expect("compiles");
        let mut traits = json!({"age": "42", "news": "true", "p": {"h": "1.5"}, "name": "7"});
        s.coerce_form_traits(&mut traits);
        assert_eq!(
            traits,
            json!({"age": 42, "news": true, "p": {"h": 1.5}, "name": "7"})
        );
        let mut traits = json!({"age": "", "news": "maybe"});
        s.coerce_form_traits(&mut traits);
        assert_eq!(traits, json!({"news": "maybe"}));
    }

    #[test]
    fn base64_urls_resolve_and_unknown_schemes_are_refused() {
        use base64::Engine;
        let raw =
            r#"{"properties":{"traits":{"type":"object","properties":{"u":{"type":"string"}}}}}"#;
        let url = format!(
            "base64://{}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        assert!(IdentitySchema::load("b", &url, Path::new("/")).is_ok());
        assert!(matches!(
            IdentitySchema::load("h", "ftp://example.com/s.json", Path::new("/")),
            Err(SchemaError::Fetch(FetchError::Unsupported(_)))
        ));
    }
}
