//! The Service entity: where matched requests go.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::ForeignKey;
use super::schema::{Input, Kind, Violations, check_name, is_host, path_error};

/// Protocols Kong accepts for a service.
pub const PROTOCOLS: &[&str] = &[
    "grpc",
    "grpcs",
    "http",
    "https",
    "tcp",
    "tls",
    "tls_passthrough",
    "udp",
];

/// Input fields and their kinds, for form decoding.
pub const FIELDS: &[(&str, Kind)] = &[
    ("id", Kind::String),
    ("name", Kind::String),
    ("url", Kind::String),
    ("protocol", Kind::String),
    ("host", Kind::String),
    ("port", Kind::Integer),
    ("path", Kind::String),
    ("retries", Kind::Integer),
    ("connect_timeout", Kind::Integer),
    ("write_timeout", Kind::Integer),
    ("read_timeout", Kind::Integer),
    ("enabled", Kind::Boolean),
    ("tags", Kind::Strings),
    ("client_certificate", Kind::Record),
    ("tls_verify", Kind::Boolean),
    ("tls_verify_depth", Kind::Integer),
    ("ca_certificates", Kind::Strings),
    ("created_at", Kind::Integer),
    ("updated_at", Kind::Integer),
];

const MAX_TIMEOUT: i64 = 2_147_483_646;

/// A Kong Service, serialized exactly as the Admin API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Primary key.
    pub id: Uuid,
    /// Unique name, optional.
    pub name: Option<String>,
    /// Upstream protocol, default `http`.
    pub protocol: String,
    /// Upstream host name or IP.
    pub host: String,
    /// Upstream port, default 80.
    pub port: i64,
    /// Upstream base path.
    pub path: Option<String>,
    /// Retries on connection failure, default 5.
    pub retries: i64,
    /// Connect timeout in ms, default 60000.
    pub connect_timeout: i64,
    /// Write timeout in ms, default 60000.
    pub write_timeout: i64,
    /// Read timeout in ms, default 60000.
    pub read_timeout: i64,
    /// Disabled services' routes are left out of the router.
    pub enabled: bool,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// The certificate presented to the upstream when it asks for one (mutual TLS).
    pub client_certificate: Option<ForeignKey>,
    /// Verify the upstream certificate (`null` = global default: off).
    pub tls_verify: Option<bool>,
    /// At most this many intermediate certificates when verifying.
    pub tls_verify_depth: Option<i64>,
    /// Ids of the CA certificates that are the trust roots when verifying (instead of the
    /// system's).
    pub ca_certificates: Option<Vec<String>>,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Last update time, unix seconds.
    pub updated_at: i64,
}

/// The parts of a `url` shorthand.
#[derive(Debug, PartialEq, Eq)]
pub struct UrlParts {
    /// Scheme, or the one inferred from the port.
    pub protocol: String,
    /// Host.
    pub host: String,
    /// Port, or the scheme's default.
    pub port: i64,
    /// Path, `None` when the URL has none.
    pub path: Option<String>,
}

/// Parses Kong's `url` shorthand: `scheme://host[:port][/path]`; a missing scheme is
/// inferred from the port (443 → https, otherwise http).
pub fn parse_url(raw: &str) -> Result<UrlParts, String> {
    let (scheme, rest) = match raw.split_once("://") {
        Some((s, r)) => (Some(s.to_ascii_lowercase()), r),
        None => (None, raw),
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i..].to_string())),
        None => (rest, None),
    };
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (ip, tail) = v6.split_once(']').ok_or("invalid url")?;
        (ip.to_string(), tail.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err("missing host in url".to_string());
    }
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("invalid port in url: '{p}'"))?,
        ),
        None => None,
    };
    let protocol = match (scheme, port) {
        (Some(s), _) => s,
        (None, Some(443)) => "https".to_string(),
        (None, _) => "http".to_string(),
    };
    let port = port.map_or(if protocol == "https" { 443 } else { 80 }, i64::from);
    Ok(UrlParts {
        protocol,
        host,
        port,
        path,
    })
}

super::stored!(
    Service,
    crate::store::Table {
        name: "gateway_services",
        entity: "services",
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
        e.name.clone(),
        e.client_certificate.map(|c| c.id.to_string())
    ]
);

impl super::Entity for Service {
    const FIELDS: &'static [(&'static str, Kind)] = FIELDS;

    fn from_input(
        map: Map<String, Value>,
        id: Uuid,
        created_at: i64,
        updated_at: i64,
    ) -> Result<Self, Violations> {
        Service::from_input(map, id, created_at, updated_at)
    }

    /// A `url` in the patch replaces all four fields it stands for.
    fn merge(mut base: Map<String, Value>, patch: Map<String, Value>) -> Map<String, Value> {
        if patch.contains_key("url") {
            for f in ["protocol", "host", "port", "path"] {
                base.remove(f);
            }
        }
        base.extend(patch);
        base
    }
}

impl Service {
    /// The service's `connect_timeout`, `write_timeout` and `read_timeout` (milliseconds,
    /// validated as 1 or more) as durations.
    pub fn timeouts(&self) -> portcullis_http::Timeouts {
        let millis = |ms: i64| Duration::from_millis(u64::try_from(ms).unwrap_or(60_000));
        portcullis_http::Timeouts {
            connect: millis(self.connect_timeout),
            write: millis(self.write_timeout),
            read: millis(self.read_timeout),
        }
    }

    /// Validates a complete input object (POST, PUT, or PATCH merged over the stored entity)
    /// into a service with the given identity and timestamps.
    pub fn from_input(
        map: Map<String, Value>,
        id: Uuid,
        created_at: i64,
        updated_at: i64,
    ) -> Result<Service, Violations> {
        let mut input = Input::entity(map);
        let mut parts = None;
        if input.contains("url") {
            match input.raw("url") {
                Some(Value::String(u)) => match parse_url(&u) {
                    Ok(p) => {
                        for f in ["protocol", "host", "port", "path"] {
                            input.raw(f);
                        }
                        parts = Some(p);
                    }
                    Err(msg) => input.violations.field("url", msg),
                },
                Some(_) => input.violations.field("url", "expected a string"),
                None => {}
            }
        }
        let name = input.string("name");
        if let Some(n) = &name {
            check_name(&mut input.violations, "name", n);
        }
        let (protocol, host, port, path) = match parts {
            Some(p) => (Some(p.protocol), Some(p.host), Some(p.port), p.path),
            None => (
                input.string("protocol"),
                input.string("host"),
                input.integer("port", 0, 65535),
                input.string("path"),
            ),
        };
        let protocol = protocol.unwrap_or_else(|| "http".to_string());
        if !PROTOCOLS.contains(&protocol.as_str()) {
            input.violations.field(
                "protocol",
                format!("expected one of: {}", PROTOCOLS.join(", ")),
            );
        }
        let v = &mut input.violations;
        let host = match host {
            Some(h) if is_host(&h) => Some(h),
            Some(h) => {
                let bare = h.rsplit_once(':').map(|(n, _)| n).unwrap_or("");
                if !h.contains("::") && is_host(bare) {
                    v.field("host", "must not have a port");
                } else {
                    v.field("host", format!("invalid hostname: {h}"));
                }
                None
            }
            None => {
                if !v.has("host") && !v.has("url") {
                    v.field("host", "required field missing");
                }
                None
            }
        };
        if let Some(p) = &path {
            if let Some(msg) = path_error(p) {
                v.field("path", msg);
            } else if ["grpc", "grpcs", "tcp", "tls", "tls_passthrough", "udp"]
                .contains(&protocol.as_str())
            {
                v.field("path", "value must be null");
            }
        }
        let retries = input.integer("retries", 0, 32767).unwrap_or(5);
        let connect_timeout = input
            .integer("connect_timeout", 1, MAX_TIMEOUT)
            .unwrap_or(60000);
        let write_timeout = input
            .integer("write_timeout", 1, MAX_TIMEOUT)
            .unwrap_or(60000);
        let read_timeout = input
            .integer("read_timeout", 1, MAX_TIMEOUT)
            .unwrap_or(60000);
        let enabled = input.boolean("enabled").unwrap_or(true);
        let tags = super::read_tags(&mut input);
        let tls = matches!(protocol.as_str(), "https" | "tls");
        let tls_verify = input.boolean("tls_verify");
        let tls_verify_depth = input.integer("tls_verify_depth", 0, 64);
        let ca_certificates = input.strings("ca_certificates", false);
        let client_certificate = super::read_foreign(&mut input, "client_certificate");
        for (field, set) in [
            ("tls_verify", tls_verify.is_some()),
            ("tls_verify_depth", tls_verify_depth.is_some()),
            ("ca_certificates", ca_certificates.is_some()),
            ("client_certificate", client_certificate.is_some()),
        ] {
            if set && !tls {
                input.violations.field(field, "value must be null");
            }
        }
        if let Some(cas) = &ca_certificates {
            for (i, ca) in cas.iter().enumerate() {
                if Uuid::parse_str(ca).is_err() {
                    input
                        .violations
                        .item("ca_certificates", i, cas.len(), "expected a valid UUID");
                }
            }
        }
        let violations = input.finish();
        match (violations.is_empty(), host) {
            (true, Some(host)) => Ok(Service {
                id,
                name,
                protocol,
                host,
                port: port.unwrap_or(80),
                path,
                retries,
                connect_timeout,
                write_timeout,
                read_timeout,
                enabled,
                tags,
                client_certificate,
                tls_verify,
                tls_verify_depth,
                ca_certificates,
                created_at,
                updated_at,
            }),
            (_, _) => Err(violations),
        }
    }

    /// The entity as an input object, for PATCH to merge a partial body over.
    pub fn to_input(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn url_shorthand_expands() {
        assert_eq!(
            parse_url("http://oathkeeper:4455"),
            Ok(UrlParts {
                protocol: "http".into(),
                host: "oathkeeper".into(),
                port: 4455,
                path: None
            })
        );
        let p = parse_url("https://api.test/v1/x?q=1").expect("url");
        assert_eq!((p.port, p.path.as_deref()), (443, Some("/v1/x")));
        assert_eq!(parse_url("example.com:443").expect("url").protocol, "https");
        assert!(parse_url("http://:80").is_err());
        assert!(parse_url("http://h:99999").is_err());
    }

    #[test]
    fn defaults_are_kongs() {
        let id = Uuid::new_v4();
        let s = Service::from_input(
            obj(json!({"name": "secure-api", "url": "http://oathkeeper:4455"})),
            id,
            1,
            1,
        )
        .expect("valid");
        let v = serde_json::to_value(&s).expect("json");
        assert_eq!(v["protocol"], "http");
        assert_eq!(v["port"], 4455);
        assert_eq!(v["path"], Value::Null);
        assert_eq!(v["retries"], 5);
        assert_eq!(v["read_timeout"], 60000);
        assert_eq!(v["enabled"], true);
        assert_eq!(v["tags"], Value::Null);
        assert_eq!(v["tls_verify"], Value::Null);
    }

    #[test]
    fn violations_are_reported_per_field() {
        let err = Service::from_input(
            obj(json!({"name": "bad name", "port": 70000, "retries": "x", "nope": 1})),
            Uuid::new_v4(),
            1,
            1,
        )
        .expect_err("invalid");
        let f = err.fields_json();
        assert_eq!(f["host"], "required field missing");
        assert_eq!(f["port"], "value should be between 0 and 65535");
        assert_eq!(f["retries"], "expected an integer");
        assert_eq!(f["nope"], "unknown field");
        assert!(
            f["name"]
                .as_str()
                .is_some_and(|m| m.starts_with("invalid value 'bad name'"))
        );
        let err = Service::from_input(obj(json!({"host": "h:80"})), Uuid::new_v4(), 1, 1)
            .expect_err("port in host");
        assert_eq!(
            err.message(),
            "schema violation (host: must not have a port)"
        );
    }
}
