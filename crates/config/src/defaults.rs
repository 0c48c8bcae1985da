//! Filling in the defaults a JSON schema declares.

use serde_json::Value;

/// Follows a local `$ref` (`#/definitions/x`, `#/$defs/x`) to the schema it names.
pub(crate) fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    let mut current = schema;
    for _ in 0..16 {
        match current.get("$ref").and_then(Value::as_str) {
            Some(r) if r.starts_with("#/") => match root.pointer(&r[1..]) {
                Some(next) => current = next,
                None => return current,
            },
            _ => return current,
        }
    }
    current
}

/// Inserts the schema's `default` for every absent object property, recursively (through
/// local `$ref`s and `allOf`). Present values, including explicit nulls, are never replaced.
pub fn fill_defaults(value: &mut Value, schema: &Value) {
    fill(value, schema, schema, 0);
}

fn fill(value: &mut Value, schema: &Value, root: &Value, depth: usize) {
    if depth > 32 {
        return;
    }
    let schema = resolve(root, schema);
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for part in all {
            fill(value, part, root, depth + 1);
        }
    }
    let (Some(obj), Some(props)) = (
        value.as_object_mut(),
        schema.get("properties").and_then(Value::as_object),
    ) else {
        return;
    };
    for (key, prop_schema) in props {
        let prop_schema_resolved = resolve(root, prop_schema);
        if !obj.contains_key(key) {
            let default = prop_schema
                .get("default")
                .or_else(|| prop_schema_resolved.get("default"));
            if let Some(d) = default {
                obj.insert(key.clone(), d.clone());
            }
        }
        if let Some(child) = obj.get_mut(key) {
            fill(child, prop_schema, root, depth + 1);
        }
    }
}
