//! The Consumer entity: who is calling, named by `username` and/or `custom_id`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::schema::{Input, Kind, Violations};

/// Input fields and their kinds, for form decoding.
pub const FIELDS: &[(&str, Kind)] = &[
    ("id", Kind::String),
    ("username", Kind::String),
    ("custom_id", Kind::String),
    ("tags", Kind::Strings),
    ("created_at", Kind::Integer),
    ("updated_at", Kind::Integer),
];

/// A Kong Consumer, serialized exactly as the Admin API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consumer {
    /// Primary key.
    pub id: Uuid,
    /// Unique user name (the endpoint key).
    pub username: Option<String>,
    /// Unique id from another system.
    pub custom_id: Option<String>,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Last update time, unix seconds.
    pub updated_at: i64,
}

super::stored!(
    Consumer,
    crate::store::Table {
        name: "gateway_consumers",
        entity: "consumers",
        columns: &["username", "custom_id"],
        unique: &[
            ("username", Some("username")),
            ("custom_id", Some("custom_id")),
        ],
        endpoint_key: Some("username"),
        references: &[],
    },
    |e| vec![e.username.clone(), e.custom_id.clone()]
);

impl super::Entity for Consumer {
    const FIELDS: &'static [(&'static str, Kind)] = FIELDS;
    const FILTERS: &'static [&'static str] = &["custom_id"];

    fn from_input(
        map: Map<String, Value>,
        id: Uuid,
        created_at: i64,
        updated_at: i64,
    ) -> Result<Self, Violations> {
        let mut input = Input::entity(map);
        let username = input.string("username");
        let custom_id = input.string("custom_id");
        let tags = super::read_tags(&mut input);
        if username.is_none()
            && custom_id.is_none()
            && !input.violations.has("username")
            && !input.violations.has("custom_id")
        {
            input
                .violations
                .entity("at least one of these fields must be non-empty: 'custom_id', 'username'");
        }
        let violations = input.finish();
        if !violations.is_empty() {
            return Err(violations);
        }
        Ok(Consumer {
            id,
            username,
            custom_id,
            tags,
            created_at,
            updated_at,
        })
    }
}
