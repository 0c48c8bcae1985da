//! Kong's core entities with their exact fields and defaults (Kong 3.x
//! `kong/db/schema/entities/{services,routes}.lua`), validated from an input object into a
//! typed value that serializes back with Kong's explicit `null`s.

pub mod certificate;
pub mod consumer;
pub mod plugin;
pub mod route;
pub mod schema;
pub mod service;
pub mod target;
pub mod upstream;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

pub use certificate::{CaCertificate, Certificate, Sni};
pub use consumer::Consumer;
pub use plugin::Plugin;
pub use route::Route;
pub use schema::{Kind, Violations};
pub use service::Service;
pub use target::Target;
pub use upstream::Upstream;

use crate::store::Stored;

/// Implements [`Stored`] for an entity with Kong's common fields (`id`, `tags`, integer
/// `created_at`/`updated_at`), given its table, the values of the table's extra columns
/// (`|entity| vec![…]`) and any further associated items.
macro_rules! stored {
    ($entity:ty, $table:expr, |$e:ident| $columns:expr $(, $extra:item)* $(,)?) => {
        impl crate::store::Stored for $entity {
            const TABLE: crate::store::Table = $table;
            $($extra)*
            fn id(&self) -> uuid::Uuid {
                self.id
            }
            fn columns(&self) -> Vec<Option<String>> {
                let $e = self;
                $columns
            }
            fn tags(&self) -> &[String] {
                self.tags.as_deref().unwrap_or(&[])
            }
            fn timestamps(&self) -> (i64, i64) {
                (self.created_at, self.updated_at)
            }
        }
    };
}
pub(crate) use stored;

/// An entity the Admin API manages with Kong's generic CRUD contract.
pub trait Entity: Stored + Clone {
    /// Input fields and their kinds, for form decoding.
    const FIELDS: &'static [(&'static str, Kind)];

    /// Validates a complete input object (POST, PUT, or PATCH merged over the stored entity)
    /// whose references are already resolved to `{"id": …}`.
    fn from_input(
        map: Map<String, Value>,
        id: Uuid,
        created_at: i64,
        updated_at: i64,
    ) -> Result<Self, Violations>;

    /// The entity as an input object, for PATCH to merge a partial body over.
    fn to_input(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// Query arguments that filter a listing by exact value (`/consumers?custom_id=`); each
    /// is a column of the entity's table.
    const FILTERS: &'static [&'static str] = &[];

    /// Brings an endpoint key from a path into its stored form (a target's default port).
    fn normalize_key(key: &str) -> String {
        key.to_string()
    }

    /// Merges a PATCH body over the stored entity's input.
    fn merge(mut base: Map<String, Value>, patch: Map<String, Value>) -> Map<String, Value> {
        base.extend(patch);
        base
    }
}

/// Reads a `{"id": …}` foreign key field (already resolved from names by the Admin API).
pub(crate) fn read_foreign(input: &mut schema::Input, field: &str) -> Option<ForeignKey> {
    match input.raw(field)? {
        Value::Object(mut m) => match m.remove("id").filter(|v| !v.is_null()) {
            Some(Value::String(s)) => match Uuid::parse_str(&s) {
                Ok(id) => Some(ForeignKey { id }),
                Err(_) => {
                    input
                        .violations
                        .nested(field, "id", "expected a valid UUID");
                    None
                }
            },
            Some(_) => {
                input
                    .violations
                    .nested(field, "id", "expected a valid UUID");
                None
            }
            None => {
                input.violations.nested(field, "id", "missing primary key");
                None
            }
        },
        Value::String(s) => match Uuid::parse_str(&s) {
            Ok(id) => Some(ForeignKey { id }),
            Err(_) => {
                input.violations.field(field, "expected a record");
                None
            }
        },
        _ => {
            input.violations.field(field, "expected a record");
            None
        }
    }
}

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
