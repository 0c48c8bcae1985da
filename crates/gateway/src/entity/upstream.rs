//! The Upstream entity: a virtual host balanced over targets. Stored with Kong's fields and
//! defaults; [`crate::balancer`] compiles it for the proxy.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::schema::{Input, Kind, Violations, is_host};

/// Input fields and their kinds, for form decoding.
pub const FIELDS: &[(&str, Kind)] = &[
    ("id", Kind::String),
    ("name", Kind::String),
    ("algorithm", Kind::String),
    ("hash_on", Kind::String),
    ("hash_fallback", Kind::String),
    ("hash_on_header", Kind::String),
    ("hash_fallback_header", Kind::String),
    ("hash_on_cookie", Kind::String),
    ("hash_on_cookie_path", Kind::String),
    ("hash_on_query_arg", Kind::String),
    ("hash_fallback_query_arg", Kind::String),
    ("hash_on_uri_capture", Kind::String),
    ("hash_fallback_uri_capture", Kind::String),
    ("slots", Kind::Integer),
    ("healthchecks", Kind::Record),
    ("host_header", Kind::String),
    ("client_certificate", Kind::Record),
    ("use_srv_name", Kind::Boolean),
    ("tags", Kind::Strings),
    ("created_at", Kind::Integer),
    ("updated_at", Kind::Integer),
];

const ALGORITHMS: &[&str] = &[
    "consistent-hashing",
    "least-connections",
    "round-robin",
    "latency",
];
const HASH_ON: &[&str] = &[
    "none",
    "consumer",
    "ip",
    "header",
    "cookie",
    "path",
    "query_arg",
    "uri_capture",
];

/// A Kong Upstream, serialized exactly as the Admin API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upstream {
    /// Primary key.
    pub id: Uuid,
    /// Unique host name services refer to.
    pub name: String,
    /// Balancing algorithm, default `round-robin`.
    pub algorithm: String,
    /// Hash input, default `none`.
    pub hash_on: String,
    /// Fallback hash input, default `none`.
    pub hash_fallback: String,
    /// Header for `hash_on = header`.
    pub hash_on_header: Option<String>,
    /// Header for `hash_fallback = header`.
    pub hash_fallback_header: Option<String>,
    /// Cookie for `hash_on = cookie`.
    pub hash_on_cookie: Option<String>,
    /// Path of the generated cookie, default `/`.
    pub hash_on_cookie_path: String,
    /// Query argument for `hash_on = query_arg`.
    pub hash_on_query_arg: Option<String>,
    /// Query argument for `hash_fallback = query_arg`.
    pub hash_fallback_query_arg: Option<String>,
    /// Capture for `hash_on = uri_capture`.
    pub hash_on_uri_capture: Option<String>,
    /// Capture for `hash_fallback = uri_capture`.
    pub hash_fallback_uri_capture: Option<String>,
    /// Ring size, default 10000.
    pub slots: i64,
    /// Active and passive health check settings, with Kong's defaults filled in.
    pub healthchecks: Value,
    /// Host header sent to targets.
    pub host_header: Option<String>,
    /// The certificate presented to the targets when they ask for one (mutual TLS), by
    /// proxied `https` services without their own and by `https` active health checks.
    pub client_certificate: Option<super::ForeignKey>,
    /// Use the SRV name as the TLS SNI, default false.
    pub use_srv_name: bool,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Last update time, unix seconds.
    pub updated_at: i64,
}

super::stored!(
    Upstream,
    crate::store::Table {
        name: "gateway_upstreams",
        entity: "upstreams",
        columns: &["name", "client_certificate_id"],
        unique: &[("name", Some("name"))],
        endpoint_key: Some("name"),
        references: &[crate::store::Reference {
            column: "client_certificate_id",
            field: "client_certificate",
            table: "gateway_certificates",
            entity: "certificates",
            cascade: false,
        }],
    },
    |e| vec![
        Some(e.name.clone()),
        e.client_certificate.map(|c| c.id.to_string())
    ]
);

/// Kong's `healthchecks` defaults (notes §4.2).
pub fn default_healthchecks() -> Value {
    json!({
        "threshold": 0,
        "active": {
            "type": "http",
            "timeout": 1,
            "concurrency": 10,
            "http_path": "/",
            "https_sni": null,
            "https_verify_certificate": true,
            "headers": null,
            "healthy": {"interval": 0, "http_statuses": [200, 302], "successes": 0},
            "unhealthy": {
                "interval": 0,
                "http_statuses": [429, 404, 500, 501, 502, 503, 504, 505],
                "tcp_failures": 0,
                "timeouts": 0,
                "http_failures": 0
            }
        },
        "passive": {
            "type": "http",
            "healthy": {
                "http_statuses": [200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
                                  300, 301, 302, 303, 304, 305, 306, 307, 308],
                "successes": 0
            },
            "unhealthy": {
                "http_statuses": [429, 500, 503],
                "tcp_failures": 0,
                "timeouts": 0,
                "http_failures": 0
            }
        }
    })
}

/// Overlays `patch` onto `base`, object by object.
fn overlay(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => overlay(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, p) => *b = p,
    }
}

/// Checks every field in `value` exists in `shape` with the same JSON type (numbers,
/// strings, booleans, arrays), reporting the first mismatch's dotted path.
fn shape_error(shape: &Value, value: &Value, path: &str) -> Option<String> {
    match (shape, value) {
        (Value::Object(s), Value::Object(v)) => v.iter().find_map(|(k, item)| {
            let here = format!("{path}.{k}");
            match s.get(k) {
                None => Some(format!("{here}: unknown field")),
                Some(Value::Null) => None,
                Some(sub) => shape_error(sub, item, &here),
            }
        }),
        (Value::Object(_), _) => Some(format!("{path}: expected a record")),
        (Value::Number(_), Value::Number(n)) if n.as_i64().is_some_and(|n| n >= 0) => None,
        // Intervals and timeouts are seconds and may be fractional, as in Kong.
        (Value::Number(_), Value::Number(n))
            if (path.ends_with(".interval") || path.ends_with(".timeout"))
                && n.as_f64().is_some_and(|f| f >= 0.0) =>
        {
            None
        }
        (Value::Number(_), _) => Some(format!("{path}: expected a non-negative integer")),
        (Value::Bool(_), Value::Bool(_)) | (Value::String(_), Value::String(_)) => None,
        (Value::Array(_), Value::Array(_)) => None,
        (_, Value::Null) => None,
        _ => Some(format!("{path}: invalid type")),
    }
}

impl super::Entity for Upstream {
    const FIELDS: &'static [(&'static str, Kind)] = FIELDS;

    fn from_input(
        map: Map<String, Value>,
        id: Uuid,
        created_at: i64,
        updated_at: i64,
    ) -> Result<Self, Violations> {
        let mut input = Input::entity(map);
        let name = input.string("name");
        match &name {
            None if !input.violations.has("name") => {
                input.violations.field("name", "required field missing");
            }
            Some(n) if n.parse::<std::net::IpAddr>().is_ok() => input.violations.field(
                "name",
                format!("Invalid name ('{n}'); no ip addresses allowed"),
            ),
            Some(n) if n.contains(':') => input
                .violations
                .field("name", format!("Invalid name ('{n}'); no port allowed")),
            Some(n) if !is_host(n) => input.violations.field(
                "name",
                format!("Invalid name ('{n}'); must be a valid hostname"),
            ),
            _ => {}
        }
        let hash_on = input.string("hash_on").unwrap_or_else(|| "none".into());
        let hash_fallback = input
            .string("hash_fallback")
            .unwrap_or_else(|| "none".into());
        let default_algorithm = if hash_on == "none" {
            "round-robin"
        } else {
            "consistent-hashing"
        };
        let algorithm = input
            .string("algorithm")
            .unwrap_or_else(|| default_algorithm.into());
        if !ALGORITHMS.contains(&algorithm.as_str()) {
            input.violations.field(
                "algorithm",
                format!("expected one of: {}", ALGORITHMS.join(", ")),
            );
        }
        for (field, value) in [("hash_on", &hash_on), ("hash_fallback", &hash_fallback)] {
            if !HASH_ON.contains(&value.as_str()) {
                input
                    .violations
                    .field(field, format!("expected one of: {}", HASH_ON.join(", ")));
            }
        }
        let mut companions = Vec::new();
        for f in [
            "hash_on_header",
            "hash_fallback_header",
            "hash_on_cookie",
            "hash_on_query_arg",
            "hash_fallback_query_arg",
            "hash_on_uri_capture",
            "hash_fallback_uri_capture",
        ] {
            companions.push(input.string(f));
        }
        let [
            on_header,
            fb_header,
            on_cookie,
            on_query,
            fb_query,
            on_capture,
            fb_capture,
        ] = <[Option<String>; 7]>::try_from(companions).unwrap_or_default();
        let cookie_path = input
            .string("hash_on_cookie_path")
            .unwrap_or_else(|| "/".into());
        let conditional =
            |field: &str, on: &str, needed: &str, value: &Option<String>, v: &mut Violations| {
                if on == needed && value.is_none() {
                    v.field(field, "required field missing");
                    v.entity(format!(
                        "failed conditional validation given value of field '{}'",
                        if field.starts_with("hash_on") {
                            "hash_on"
                        } else {
                            "hash_fallback"
                        }
                    ));
                }
            };
        let v = &mut input.violations;
        conditional("hash_on_header", &hash_on, "header", &on_header, v);
        conditional(
            "hash_fallback_header",
            &hash_fallback,
            "header",
            &fb_header,
            v,
        );
        conditional("hash_on_cookie", &hash_on, "cookie", &on_cookie, v);
        conditional("hash_on_query_arg", &hash_on, "query_arg", &on_query, v);
        conditional(
            "hash_fallback_query_arg",
            &hash_fallback,
            "query_arg",
            &fb_query,
            v,
        );
        conditional(
            "hash_on_uri_capture",
            &hash_on,
            "uri_capture",
            &on_capture,
            v,
        );
        conditional(
            "hash_fallback_uri_capture",
            &hash_fallback,
            "uri_capture",
            &fb_capture,
            v,
        );
        if (hash_on == "none" || hash_on == "cookie") && hash_fallback != "none" {
            v.field("hash_fallback", "must be 'none'");
        }
        if hash_on == "header"
            && hash_fallback == "header"
            && on_header.is_some()
            && on_header == fb_header
        {
            v.entity(
                "values of these fields must be distinct: 'hash_on_header', 'hash_fallback_header'",
            );
        }
        let slots = input.integer("slots", 10, 65536).unwrap_or(10000);
        let mut healthchecks = default_healthchecks();
        match input.raw("healthchecks") {
            None => {}
            Some(given @ Value::Object(_)) => {
                match shape_error(&healthchecks, &given, "healthchecks") {
                    Some(msg) => {
                        let (path, text) = msg.split_once(": ").unwrap_or(("healthchecks", &msg));
                        let sub = path.strip_prefix("healthchecks.").unwrap_or(path);
                        input.violations.nested("healthchecks", sub, text);
                    }
                    None => overlay(&mut healthchecks, given),
                }
            }
            Some(_) => input.violations.field("healthchecks", "expected a record"),
        }
        let host_header = input.string("host_header");
        if let Some(h) = &host_header {
            let bare = match h.rsplit_once(':') {
                Some((n, p)) if p.parse::<u16>().is_ok() => n,
                _ => h.as_str(),
            };
            if !is_host(bare) {
                input
                    .violations
                    .field("host_header", format!("invalid hostname: {h}"));
            }
        }
        let client_certificate = super::read_foreign(&mut input, "client_certificate");
        let use_srv_name = input.boolean("use_srv_name").unwrap_or(false);
        let tags = super::read_tags(&mut input);
        let violations = input.finish();
        match name {
            Some(name) if violations.is_empty() => Ok(Upstream {
                id,
                name,
                algorithm,
                hash_on,
                hash_fallback,
                hash_on_header: on_header,
                hash_fallback_header: fb_header,
                hash_on_cookie: on_cookie,
                hash_on_cookie_path: cookie_path,
                hash_on_query_arg: on_query,
                hash_fallback_query_arg: fb_query,
                hash_on_uri_capture: on_capture,
                hash_fallback_uri_capture: fb_capture,
                slots,
                healthchecks,
                host_header,
                client_certificate,
                use_srv_name,
                tags,
                created_at,
                updated_at,
            }),
            _ => Err(violations),
        }
    }
}
