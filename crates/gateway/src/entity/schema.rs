//! Kong's schema-violation reporting and the typed field readers the entities are built with.
//!
//! Input arrives as a JSON object (a JSON body, or a form body decoded by
//! [`crate::admin::args`]); readers take known fields out of it and record Kong-worded
//! violations, so whatever is left over at the end is an "unknown field".

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The kinds of field the form decoder must convert strings into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    String,
    /// An integer.
    Integer,
    /// A boolean.
    Boolean,
    /// An array or set of strings.
    Strings,
    /// A record (`service`): nested keys, values left as sent.
    Record,
    /// A map of strings to arrays of strings (`headers`): a scalar value becomes a
    /// one-element array.
    StringsMap,
}

/// Collected schema violations: per-field messages (nested for records, positional for
/// arrays) plus entity-level checks, reported as Kong's code 2.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Violations {
    fields: BTreeMap<String, Value>,
    entity: Vec<String>,
    /// Flattened `path: message` lines for the summary message, in insertion order.
    lines: Vec<String>,
}

impl Violations {
    /// No violation recorded.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Records a message on a top-level field.
    pub fn field(&mut self, name: &str, msg: impl Into<String>) {
        let msg = msg.into();
        self.lines.push(format!("{name}: {msg}"));
        self.fields.insert(name.to_string(), Value::String(msg));
    }

    /// Records a message on a field of a record field (`service.id`).
    pub fn nested(&mut self, name: &str, sub: &str, msg: impl Into<String>) {
        let msg = msg.into();
        self.lines.push(format!("{name}.{sub}: {msg}"));
        let entry = self
            .fields
            .entry(name.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(sub.to_string(), Value::String(msg));
        }
    }

    /// Records a message on element `index` (0-based) of an array field of length `len`.
    pub fn item(&mut self, name: &str, index: usize, len: usize, msg: impl Into<String>) {
        let msg = msg.into();
        self.lines.push(format!("{name}.{}: {msg}", index + 1));
        let entry = self
            .fields
            .entry(name.to_string())
            .or_insert_with(|| Value::Array(vec![Value::Null; len]));
        if let Value::Array(items) = entry
            && let Some(slot) = items.get_mut(index)
        {
            *slot = Value::String(msg);
        }
    }

    /// Records an entity-level check failure (reported under `@entity`).
    pub fn entity(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        self.lines.push(msg.clone());
        self.entity.push(msg);
    }

    /// Whether `name` already has a violation.
    pub fn has(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }

    /// Kong's summary: `schema violation (a: x)` or `N schema violations (a: x; b: y)`.
    pub fn message(&self) -> String {
        match self.lines.len() {
            1 => format!("schema violation ({})", self.lines[0]),
            n => format!("{n} schema violations ({})", self.lines.join("; ")),
        }
    }

    /// The `fields` object of the error body.
    pub fn fields_json(&self) -> Value {
        let mut out: Map<String, Value> = self
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !self.entity.is_empty() {
            out.insert(
                "@entity".to_string(),
                Value::Array(self.entity.iter().cloned().map(Value::String).collect()),
            );
        }
        Value::Object(out)
    }
}

/// Reads fields out of an input object, recording violations as it goes.
pub struct Input {
    map: Map<String, Value>,
    /// Violations found so far.
    pub violations: Violations,
}

impl Input {
    /// Wraps an input object.
    pub fn new(map: Map<String, Value>) -> Self {
        Self {
            map,
            violations: Violations::default(),
        }
    }

    /// Wraps an entity's input object without the fields the caller decides (`id`,
    /// `created_at`, `updated_at`: given ones are ignored, as in Kong).
    pub fn entity(map: Map<String, Value>) -> Self {
        let mut input = Self::new(map);
        for ignored in ["id", "created_at", "updated_at"] {
            input.map.remove(ignored);
        }
        input
    }

    /// Removes a field, returning `None` when absent or `null`.
    pub fn raw(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name).filter(|v| !v.is_null())
    }

    /// Whether the input mentions `name` (even as `null`).
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// A string field.
    pub fn string(&mut self, name: &str) -> Option<String> {
        match self.raw(name)? {
            Value::String(s) => Some(s),
            _ => {
                self.violations.field(name, "expected a string");
                None
            }
        }
    }

    /// An integer field within `min..=max`.
    pub fn integer(&mut self, name: &str, min: i64, max: i64) -> Option<i64> {
        let v = self.raw(name)?;
        let Some(n) = v.as_i64().or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }) else {
            self.violations.field(name, "expected an integer");
            return None;
        };
        if n < min || n > max {
            self.violations
                .field(name, format!("value should be between {min} and {max}"));
            return None;
        }
        Some(n)
    }

    /// A boolean field.
    pub fn boolean(&mut self, name: &str) -> Option<bool> {
        match self.raw(name)? {
            Value::Bool(b) => Some(b),
            _ => {
                self.violations.field(name, "expected a boolean");
                None
            }
        }
    }

    /// An array of strings, or with `set` a set (duplicates dropped).
    pub fn strings(&mut self, name: &str, set: bool) -> Option<Vec<String>> {
        let Value::Array(items) = self.raw(name)? else {
            let what = if set { "a set" } else { "an array" };
            self.violations.field(name, format!("expected {what}"));
            return None;
        };
        let len = items.len();
        let mut out = Vec::with_capacity(len);
        let mut ok = true;
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Value::String(s) => {
                    if !(set && out.contains(&s)) {
                        out.push(s);
                    }
                }
                _ => {
                    self.violations.item(name, i, len, "expected a string");
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// Records every field left unread as an unknown field.
    pub fn finish(mut self) -> Violations {
        let rest: Vec<String> = self.map.keys().cloned().collect();
        for key in rest {
            self.violations.field(&key, "unknown field");
        }
        self.violations
    }
}

/// Converts form-decoded strings into the types the schema expects: integers and booleans
/// are parsed, a scalar sent for an array field becomes a one-element array. Unparseable
/// values are left as strings, so validation reports them with Kong's type message.
pub fn coerce_form(map: &mut Map<String, Value>, fields: &[(&str, Kind)]) {
    for (name, kind) in fields {
        let Some(v) = map.get_mut(*name) else {
            continue;
        };
        match kind {
            Kind::Integer => {
                if let Value::String(s) = v
                    && let Ok(n) = s.trim().parse::<i64>()
                {
                    *v = Value::from(n);
                }
            }
            Kind::Boolean => {
                if let Value::String(s) = v {
                    match s.as_str() {
                        "true" => *v = Value::Bool(true),
                        "false" => *v = Value::Bool(false),
                        _ => {}
                    }
                }
            }
            Kind::Strings => {
                if let Value::String(_) = v {
                    *v = Value::Array(vec![v.take()]);
                }
            }
            Kind::StringsMap => {
                if let Value::Object(m) = v {
                    for item in m.values_mut() {
                        if let Value::String(_) = item {
                            *item = Value::Array(vec![item.take()]);
                        }
                    }
                }
            }
            Kind::String | Kind::Record => {}
        }
    }
}

/// Kong's `utf8_name` rule: ASCII alphanumerics, `.`, `-`, `_`, `~`, and any non-ASCII.
pub fn check_name(v: &mut Violations, field: &str, name: &str) -> bool {
    let ok = !name.is_empty()
        && name.chars().all(|c| {
            !c.is_ascii() || c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '~')
        });
    if !ok {
        v.field(
            field,
            format!(
                "invalid value '{name}': the only accepted ascii characters are alphanumerics or ., -, _, and ~"
            ),
        );
    }
    ok
}

/// Whether `s` is a valid hostname or IP address (no port).
pub fn is_host(s: &str) -> bool {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// Validates a service path: starts with `/`, no empty segments, RFC 3986 characters only.
pub fn path_error(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some("should start with: /".to_string());
    }
    if path.contains("//") {
        return Some("must not have empty segments".to_string());
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'%' {
            let valid = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !valid {
                let end = (i + 3).min(path.len());
                let bad = path.get(i..end).unwrap_or("%");
                return Some(format!("invalid url-encoded value: '{bad}'"));
            }
            i += 3;
            continue;
        }
        let allowed = c.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&c);
        if !allowed {
            return Some(format!(
                "invalid path: '{path}' (characters outside of the reserved list of RFC 3986 found)"
            ));
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_follow_kong() {
        let mut v = Violations::default();
        v.field("host", "required field missing");
        assert_eq!(
            v.message(),
            "schema violation (host: required field missing)"
        );
        v.item("paths", 1, 2, "must not have empty segments");
        v.entity(
            "must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'",
        );
        assert!(
            v.message()
                .starts_with("3 schema violations (host: required field missing; paths.2:")
        );
        assert_eq!(
            v.fields_json()["paths"],
            serde_json::json!([null, "must not have empty segments"])
        );
        assert!(v.fields_json()["@entity"].is_array());
    }

    #[test]
    fn form_values_are_coerced() {
        let mut m = Map::new();
        m.insert("port".into(), "8080".into());
        m.insert("strip_path".into(), "false".into());
        m.insert("paths".into(), "/".into());
        m.insert("retries".into(), "many".into());
        coerce_form(
            &mut m,
            &[
                ("port", Kind::Integer),
                ("strip_path", Kind::Boolean),
                ("paths", Kind::Strings),
                ("retries", Kind::Integer),
            ],
        );
        assert_eq!(
            Value::Object(m),
            serde_json::json!({"port": 8080, "strip_path": false, "paths": ["/"], "retries": "many"})
        );
    }

    #[test]
    fn hosts_and_paths() {
        assert!(is_host("oathkeeper"));
        assert!(is_host("10.0.0.1"));
        assert!(is_host("::1"));
        assert!(!is_host("a b"));
        assert!(!is_host("a:80"));
        assert_eq!(path_error("/a/b%20c"), None);
        assert_eq!(path_error("a").as_deref(), Some("should start with: /"));
        assert_eq!(
            path_error("/a//b").as_deref(),
            Some("must not have empty segments")
        );
        assert!(path_error("/a b").is_some());
        assert!(path_error("/%zz").is_some());
    }
}
