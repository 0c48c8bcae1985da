//! Configuration files as the anchored systems read them: YAML or JSON, overridden by
//! environment variables, validated against the upstream's published JSON schema, with
//! defaults filled in.
//!
//! Key decision: a config is kept as a [`Document`] — the parsed `serde_json::Value` plus a map
//! from every JSON pointer to the line it came from — until it has been validated, so every
//! error (syntax, schema or a component's own semantic check) names the file, the line and the
//! key. Components then deserialize the validated value into their own typed raw config and
//! compile that into a runtime snapshot; nothing here knows any component's keys.

mod defaults;
mod env;
mod lines;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde_json::Value;

pub use defaults::fill_defaults;

/// A configuration problem, located as precisely as the source allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file (or a description such as `"built-in"`) the value came from.
    pub origin: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Dotted key path of the offending value (`serve.public.base_url`), empty for the root.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A parsed configuration value that remembers where each key came from.
#[derive(Debug, Clone)]
pub struct Document {
    /// The configuration as JSON.
    pub value: Value,
    origin: String,
    lines: HashMap<String, (usize, usize)>,
}

impl Document {
    /// Reads and parses a YAML or JSON file (JSON is valid YAML).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            line: None,
            column: None,
            path: String::new(),
            message: format!("cannot read file: {e}"),
        })?;
        Self::parse(&text, &origin)
    }

    /// Parses YAML or JSON text; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let value: Value = if text.trim().is_empty() {
            Value::Object(serde_json::Map::new())
        } else {
            serde_yaml::from_str(text).map_err(|e| {
                let loc = e.location();
                ConfigError {
                    origin: origin.to_string(),
                    line: loc.as_ref().map(|l| l.line()),
                    column: loc.as_ref().map(|l| l.column()),
                    path: String::new(),
                    message: format!("invalid YAML/JSON: {e}"),
                }
            })?
        };
        Ok(Self {
            value,
            origin: origin.to_string(),
            lines: lines::index(text),
        })
    }

    /// Wraps a value built in code (no line information).
    pub fn from_value(value: Value, origin: &str) -> Self {
        Self {
            value,
            origin: origin.to_string(),
            lines: HashMap::new(),
        }
    }

    /// Where the document came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The 1-based line of the value at `pointer` (a JSON pointer), or of its nearest parent
    /// that has one.
    pub fn line_of(&self, pointer: &str) -> Option<(usize, usize)> {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.lines.get(p) {
                return Some(*pos);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }

    /// Builds an error about the value at `pointer` (a JSON pointer such as `/serve/port`).
    pub fn error_at(&self, pointer: &str, message: impl Into<String>) -> ConfigError {
        let pos = self.line_of(pointer);
        ConfigError {
            origin: self.origin.clone(),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            path: dotted(pointer),
            message: message.into(),
        }
    }

    /// Applies environment overrides the way Ory's services do: every leaf key the `schema`
    /// describes can be set by the variable named after its path, upper-cased and joined with
    /// `_` (`serve.public.base_url` ← `SERVE_PUBLIC_BASE_URL`). Values are parsed according to
    /// the schema's type (JSON or comma-separated lists for arrays). Returns the variables used.
    pub fn apply_env(
        &mut self,
        schema: &Value,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Vec<String> {
        env::apply(&mut self.value, schema, vars)
    }

    /// Validates against a JSON schema; unknown external `$ref`s are treated as permissive.
    /// Reports every violation, each with its line.
    pub fn validate(&self, schema: &Value) -> Result<(), Vec<ConfigError>> {
        let validator = compile_schema(schema).map_err(|e| {
            vec![ConfigError {
                origin: "built-in schema".into(),
                line: None,
                column: None,
                path: String::new(),
                message: e,
            }]
        })?;
        self.validate_with(&validator)
    }

    /// Validates against an already compiled schema.
    pub fn validate_with(&self, validator: &jsonschema::Validator) -> Result<(), Vec<ConfigError>> {
        let errors: Vec<ConfigError> = validator
            .iter_errors(&self.value)
            .map(|e| self.error_at(e.instance_path().as_str(), e.to_string()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Compiles a JSON schema, resolving unknown external references to an empty (permissive)
/// schema: the upstream schemas point at documents (`ory://…`) that only matter to tooling.
pub fn compile_schema(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::options()
        .with_retriever(Permissive)
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| format!("invalid schema: {e}"))
}

struct Permissive;

impl jsonschema::Retrieve for Permissive {
    fn retrieve(
        &self,
        _uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Value::Object(serde_json::Map::new()))
    }
}

/// Turns a JSON pointer into a dotted path (`/a/b/0` → `a.b.0`).
pub fn dotted(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

/// Joins all errors into one multi-line message.
pub fn join_errors(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const YAML: &str = "serve:\n  public:\n    port: not-a-number\n    base_url: http://x/\nlist:\n  - a\n  - b: 1\n";

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "serve": {"type": "object", "properties": {"public": {"$ref": "#/definitions/listener"}}},
                "list": {"type": "array"},
                "log": {"type": "object", "properties": {"level": {"type": "string", "default": "info"}}, "default": {}}
            },
            "definitions": {
                "listener": {"type": "object", "additionalProperties": false, "properties": {
                    "port": {"type": "integer", "default": 4433},
                    "base_url": {"type": "string"},
                    "tracing": {"$ref": "ory://tracing-config"}
                }}
            }
        })
    }

    #[test]
    fn schema_errors_name_file_line_and_key() {
        let doc = Document::parse(YAML, "kratos.yml").expect("parses");
        let errs = doc.validate(&schema()).expect_err("port is invalid");
        assert_eq!(errs.len(), 1);
        let e = &errs[0];
        assert_eq!(
            (e.origin.as_str(), e.line, e.path.as_str()),
            ("kratos.yml", Some(3), "serve.public.port")
        );
        assert!(e.to_string().starts_with("kratos.yml:3:"), "{e}");
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let err = Document::parse("a: [1, 2\nb: c\n", "x.yml").expect_err("broken");
        assert!(err.line.is_some());
        assert_eq!(err.origin, "x.yml");
    }

    #[test]
    fn lines_of_sequence_items_are_known() {
        let doc = Document::parse(YAML, "f").expect("parses");
        assert_eq!(doc.line_of("/list/1/b").map(|p| p.0), Some(7));
        assert_eq!(doc.line_of("/list/0").map(|p| p.0), Some(6));
        assert_eq!(doc.line_of("/serve/public/missing").map(|p| p.0), Some(2));
    }

    #[test]
    fn env_overrides_follow_the_schema() {
        let mut doc =
            Document::parse("serve:\n  public:\n    base_url: http://x/\n", "f").expect("parses");
        let used = doc.apply_env(
            &schema(),
            [
                ("SERVE_PUBLIC_PORT".to_string(), "5000".to_string()),
                ("SERVE_PUBLIC_BASE_URL".to_string(), "http://y/".to_string()),
                ("LIST".to_string(), "a,b".to_string()),
                ("UNRELATED".to_string(), "1".to_string()),
            ],
        );
        assert_eq!(used.len(), 3);
        assert_eq!(doc.value["serve"]["public"]["port"], json!(5000));
        assert_eq!(doc.value["serve"]["public"]["base_url"], json!("http://y/"));
        assert_eq!(doc.value["list"], json!(["a", "b"]));
        assert!(doc.validate(&schema()).is_ok());
    }

    #[test]
    fn defaults_are_filled_where_absent() {
        let mut v = json!({"serve": {"public": {"base_url": "x"}}});
        fill_defaults(&mut v, &schema());
        assert_eq!(v["serve"]["public"]["port"], json!(4433));
        assert_eq!(v["log"]["level"], json!("info"));
    }
}
