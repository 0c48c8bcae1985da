//! Kong's core entities with their exact fields and defaults (Kong 3.x
//! `kong/db/schema/entities/{services,routes}.lua`), validated from an input object into a
//! typed value that serializes back with Kong's explicit `null`s.

pub mod route;
pub mod schema;
pub mod service;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use route::Route;
pub use schema::{Kind, Violations};
pub use service::Service;

/// A foreign key as Kong writes it: `{"id": "…"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// The referenced entity's id.
    pub id: Uuid,
}

/// How an Admin API path names an entity: a UUID is the primary key, anything else the
/// endpoint key (`name` for services and routes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityKey {
    /// By primary key.
    Id(Uuid),
    /// By name.
    Name(String),
}

impl EntityKey {
    /// Classifies a path segment.
    pub fn parse(segment: &str) -> Self {
        match Uuid::parse_str(segment) {
            Ok(id) => EntityKey::Id(id),
            Err(_) => EntityKey::Name(segment.to_string()),
        }
    }
}

/// Kong's Lua-style rendering of a key for messages: `{name="foo"}`, `{id="…"}`.
pub fn lua_key(field: &str, value: &str) -> String {
    format!("{{{field}=\"{value}\"}}")
}

/// Reads and checks `tags` (a set of strings without `,` or `/`).
pub(crate) fn read_tags(input: &mut schema::Input) -> Option<Vec<String>> {
    let tags = input.strings("tags", true)?;
    let len = tags.len();
    let mut ok = true;
    for (i, tag) in tags.iter().enumerate() {
        let valid = !tag.is_empty()
            && tag
                .chars()
                .all(|c| !c.is_ascii() || (c.is_ascii_graphic() && c != ',' && c != '/'));
        if !valid {
            ok = false;
            input.violations.item(
                "tags",
                i,
                len,
                format!(
                    "invalid tag '{tag}': expected printable ascii (except `,` and `/`) or valid utf-8 sequences"
                ),
            );
        }
    }
    ok.then_some(tags)
}

/// Seconds since the epoch, Kong's timestamp unit.
pub(crate) fn now_seconds() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
