//! The Target entity: one `host:port` behind an upstream, with a weight.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::schema::{Input, Kind, Violations, is_host};
use super::{ForeignKey, read_foreign};

/// Input fields and their kinds, for form decoding.
pub const FIELDS: &[(&str, Kind)] = &[
    ("id", Kind::String),
    ("target", Kind::String),
    ("weight", Kind::Integer),
    ("upstream", Kind::Record),
    ("tags", Kind::Strings),
    ("created_at", Kind::Integer),
    ("updated_at", Kind::Integer),
];

/// A Kong Target, serialized exactly as the Admin API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Primary key.
    pub id: Uuid,
    /// `host:port`, normalized (the port defaults to 8000).
    pub target: String,
    /// Default 100; 0 disables the target.
    pub weight: i64,
    /// The upstream it belongs to.
    pub upstream: ForeignKey,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// Creation time, unix seconds (Kong reports targets' times as floats).
    pub created_at: f64,
    /// Last update time, unix seconds.
    pub updated_at: f64,
}

impl crate::store::Stored for Target {
    const TABLE: crate::store::Table = crate::store::Table {
        name: "gateway_targets",
        entity: "targets",
        columns: &["upstream_id", "target", "upstream_target"],
        unique: &[("upstream_target", None)],
        endpoint_key: Some("target"),
        references: &[crate::store::Reference {
            column: "upstream_id",
            field: "upstream",
            table: "gateway_upstreams",
            entity: "upstreams",
            cascade: true,
        }],
    };
    fn id(&self) -> Uuid {
        self.id
    }
    fn columns(&self) -> Vec<Option<String>> {
        vec![
            Some(self.upstream.id.to_string()),
            Some(self.target.clone()),
            Some(format!(
                "{{target=\"{}\",upstream={{id=\"{}\"}}}}",
                self.target, self.upstream.id
            )),
        ]
    }
    fn tags(&self) -> &[String] {
        self.tags.as_deref().unwrap_or(&[])
    }
    fn timestamps(&self) -> (i64, i64) {
        (self.created_at as i64, self.updated_at as i64)
    }
}

/// Normalizes `host[:port]` (port default 8000, IPv6 in brackets), or explains why not.
pub fn normalize_target(raw: &str) -> Result<String, String> {
    let invalid = || format!("Invalid target ('{raw}'); not a valid hostname or ip address");
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        let (ip, tail) = rest.split_once(']').ok_or_else(invalid)?;
        let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| invalid())?;
        (format!("[{ip}]"), tail.strip_prefix(':'))
    } else if raw.matches(':').count() > 1 {
        let ip: std::net::Ipv6Addr = raw.parse().map_err(|_| invalid())?;
        (format!("[{ip}]"), None)
    } else {
        match raw.split_once(':') {
            Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
            None => (raw.to_ascii_lowercase(), None),
        }
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if !is_host(bare) {
        return Err(invalid());
    }
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| invalid())?,
        None => 8000,
    };
    Ok(format!("{host}:{port}"))
}

impl super::Entity for Target {
    const FIELDS: &'static [(&'static str, Kind)] = FIELDS;

    fn normalize_key(key: &str) -> String {
        match uuid::Uuid::parse_str(key) {
            Ok(_) => key.to_string(),
            Err(_) => normalize_target(key).unwrap_or_else(|_| key.to_string()),
        }
    }

    fn from_input(
        map: Map<String, Value>,
        id: Uuid,
        created_at: i64,
        updated_at: i64,
    ) -> Result<Self, Violations> {
        let mut input = Input::entity(map);
        let target = match input.string("target") {
            Some(t) => match normalize_target(&t) {
                Ok(t) => Some(t),
                Err(msg) => {
                    input.violations.field("target", msg);
                    None
                }
            },
            None => {
                if !input.violations.has("target") {
                    input.violations.field("target", "required field missing");
                }
                None
            }
        };
        let weight = input.integer("weight", 0, 65535).unwrap_or(100);
        let upstream = read_foreign(&mut input, "upstream");
        if upstream.is_none() && !input.violations.has("upstream") {
            input.violations.field("upstream", "required field missing");
        }
        let tags = super::read_tags(&mut input);
        let violations = input.finish();
        match (target, upstream) {
            (Some(target), Some(upstream)) if violations.is_empty() => Ok(Target {
                id,
                target,
                weight,
                upstream,
                tags,
                created_at: created_at as f64,
                updated_at: updated_at as f64,
            }),
            _ => Err(violations),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_normalize() {
        assert_eq!(normalize_target("A.test").as_deref(), Ok("a.test:8000"));
        assert_eq!(
            normalize_target("10.0.0.1:81").as_deref(),
            Ok("10.0.0.1:81")
        );
        assert_eq!(normalize_target("::1").as_deref(), Ok("[::1]:8000"));
        assert_eq!(normalize_target("[::1]:9").as_deref(), Ok("[::1]:9"));
        assert!(normalize_target("a b").is_err());
        assert!(normalize_target("a:99999").is_err());
    }
}
