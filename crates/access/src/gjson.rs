//! The subset of GJSON paths Oathkeeper configs use to pick `subject` and `extra` out of a
//! session check response: `@this` (the whole document) and dotted keys with array indexes
//! (`identity.id`, `identity.traits.emails.0`), `\.` escaping a literal dot.

use serde_json::Value;

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(Vec<String>);

impl Path {
    /// Parses a path; `@this` and the empty path select the whole document.
    pub fn parse(text: &str) -> Self {
        if text == "@this" || text.is_empty() {
            return Self(Vec::new());
        }
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(next) = chars.next() {
                        current.push(next);
                    }
                }
                '.' => parts.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
        parts.push(current);
        Self(parts)
    }

    /// The value at this path, if present.
    pub fn get<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        let mut cur = doc;
        for part in &self.0 {
            cur = match cur {
                Value::Object(map) => map.get(part)?,
                Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_select_like_gjson() {
        let doc = json!({"identity": {"id": "abc", "traits": {"emails": ["a@x"]}}, "a.b": 1});
        assert_eq!(Path::parse("@this").get(&doc), Some(&doc));
        assert_eq!(Path::parse("identity.id").get(&doc), Some(&json!("abc")));
        assert_eq!(
            Path::parse("identity.traits.emails.0").get(&doc),
            Some(&json!("a@x"))
        );
        assert_eq!(Path::parse(r"a\.b").get(&doc), Some(&json!(1)));
        assert_eq!(Path::parse("identity.nope").get(&doc), None);
    }
}
