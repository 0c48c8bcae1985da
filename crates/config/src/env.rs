//! Ory-style environment overrides guided by the schema.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::defaults::resolve;

/// A key path the schema describes, with the JSON type its leaf expects.
struct Leaf {
    path: Vec<String>,
    kind: Option<String>,
}

fn collect(
    root: &Value,
    schema: &Value,
    path: &mut Vec<String>,
    out: &mut Vec<Leaf>,
    depth: usize,
) {
    if depth > 12 {
        return;
    }
    let schema = resolve(root, schema);
    let kind = match schema.get("type") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .map(str::to_string),
        _ => None,
    };
    let mut parts = vec![schema];
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        parts.extend(all.iter().map(|s| resolve(root, s)));
    }
    let mut has_props = false;
    for part in parts {
        if let Some(props) = part.get("properties").and_then(Value::as_object) {
            has_props = true;
            for (key, sub) in props {
                path.push(key.clone());
                collect(root, sub, path, out, depth + 1);
                path.pop();
            }
        }
    }
    if !path.is_empty() && (!has_props || kind.as_deref() != Some("object")) {
        out.push(Leaf {
            path: path.clone(),
            kind,
        });
    }
}

fn parse_as(raw: &str, kind: Option<&str>) -> Value {
    match kind {
        Some("integer") => raw
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.into())),
        Some("number") => raw
            .trim()
            .parse::<f64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.into())),
        Some("boolean") => match raw.trim() {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            _ => Value::String(raw.into()),
        },
        Some("array") => serde_json::from_str::<Value>(raw)
            .ok()
            .filter(Value::is_array)
            .unwrap_or_else(|| {
                Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.into()))
                        .collect(),
                )
            }),
        Some("object") => {
            serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.into()))
        }
        _ => Value::String(raw.into()),
    }
}

fn set(target: &mut Value, path: &[String], value: Value) {
    let mut cur = target;
    for key in path {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        cur = map.entry(key.clone()).or_insert(Value::Null);
    }
    *cur = value;
}

pub(crate) fn apply(
    target: &mut Value,
    schema: &Value,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Vec<String> {
    let vars: HashMap<String, String> = vars.into_iter().collect();
    let mut leaves = Vec::new();
    collect(schema, schema, &mut Vec::new(), &mut leaves, 0);
    let mut used = Vec::new();
    for leaf in leaves {
        let name = leaf.path.join("_").to_uppercase();
        if let Some(raw) = vars.get(&name) {
            set(target, &leaf.path, parse_as(raw, leaf.kind.as_deref()));
            used.push(name);
        }
    }
    used.sort();
    used.dedup();
    used
}
