//! The Route entity: which requests match, and how the path is handed on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::ForeignKey;
use super::schema::{Input, Kind, Violations, check_name, is_host};

/// Input fields and their kinds, for form decoding.
pub const FIELDS: &[(&str, Kind)] = &[
    ("id", Kind::String),
    ("name", Kind::String),
    ("protocols", Kind::Strings),
    ("methods", Kind::Strings),
    ("hosts", Kind::Strings),
    ("paths", Kind::Strings),
    ("headers", Kind::StringsMap),
    ("snis", Kind::Strings),
    ("sources", Kind::Record),
    ("destinations", Kind::Record),
    ("strip_path", Kind::Boolean),
    ("preserve_host", Kind::Boolean),
    ("regex_priority", Kind::Integer),
    ("https_redirect_status_code", Kind::Integer),
    ("path_handling", Kind::String),
    ("request_buffering", Kind::Boolean),
    ("response_buffering", Kind::Boolean),
    ("tags", Kind::Strings),
    ("service", Kind::Record),
    ("created_at", Kind::Integer),
    ("updated_at", Kind::Integer),
];

const ALL_PROTOCOLS: &str = "grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp";
const REDIRECT_CODES: &[i64] = &[426, 301, 302, 307, 308];

/// A Kong Route, serialized exactly as the Admin API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Primary key.
    pub id: Uuid,
    /// Unique name, optional.
    pub name: Option<String>,
    /// Default `["http", "https"]`.
    pub protocols: Vec<String>,
    /// Upper-case methods.
    pub methods: Option<Vec<String>>,
    /// Hosts, with optional port and one wildcard label.
    pub hosts: Option<Vec<String>>,
    /// Prefix (`/…`) or regex (`~/…`) paths.
    pub paths: Option<Vec<String>>,
    /// Header constraints: name → accepted values (`~*` values are regexes).
    pub headers: Option<BTreeMap<String, Vec<String>>>,
    /// TLS server names: requests over TLS match only with one of them (wildcards as for
    /// hosts); only with `https` among the protocols.
    pub snis: Option<Vec<String>>,
    /// Stream routes only.
    pub sources: Option<Value>,
    /// Stream routes only.
    pub destinations: Option<Value>,
    /// Remove the matched prefix before proxying, default true.
    pub strip_path: bool,
    /// Forward the client's Host header, default false.
    pub preserve_host: bool,
    /// Orders regex routes, default 0.
    pub regex_priority: i64,
    /// Status for plain-HTTP requests to HTTPS-only routes, default 426.
    pub https_redirect_status_code: i64,
    /// `v0` (default) or `v1`; like Kong's `traditional_compatible` router, v0 is applied.
    pub path_handling: String,
    /// Default true.
    pub request_buffering: bool,
    /// Default true.
    pub response_buffering: bool,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// The service requests are sent to.
    pub service: Option<ForeignKey>,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Last update time, unix seconds.
    pub updated_at: i64,
}

/// How the input names the route's service; resolved against the store by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceRef {
    /// `{"id": "…"}` or `service.id=…`.
    Id(Uuid),
    /// `{"name": "…"}` or `service.name=…`.
    Name(String),
}

super::stored!(
    Route,
    crate::store::Table {
        name: "gateway_routes",
        entity: "routes",
        columns: &["name", "service_id"],
        unique: &[("name", Some("name"))],
        endpoint_key: Some("name"),
        references: &[crate::store::Reference {
            column: "service_id",
            field: "service",
            table: "gateway_services",
            entity: "services",
            cascade: false,
        }],
    },
    |e| vec![e.name.clone(), e.service.map(|s| s.id.to_string())]
);

impl super::Entity for Route {
    const FIELDS: &'static [(&'static str, Kind)] = FIELDS;

    fn from_input(
        map: Map<String, Value>,
        id: Uuid,
        created_at: i64,
        updated_at: i64,
    ) -> Result<Self, Violations> {
        match Route::from_input(map, id, created_at, updated_at)? {
            (_, Some(ServiceRef::Name(name))) => {
                // The Admin API resolves names before validating; reaching here is a bug
                // in the caller, reported as the input error it would have been.
                let mut v = Violations::default();
                v.nested(
                    "service",
                    "name",
                    format!("unresolved service name '{name}'"),
                );
                Err(v)
            }
            (route, _) => Ok(route),
        }
    }
}

impl Route {
    /// Validates a complete input object. The `service` reference is returned separately for
    /// the caller to resolve; the returned route's `service` is set for `Id` references.
    pub fn from_input(
        map: Map<String, Value>,
        id: Uuid,
        created_at: i64,
        updated_at: i64,
    ) -> Result<(Route, Option<ServiceRef>), Violations> {
        let mut input = Input::entity(map);
        let name = input.string("name");
        if let Some(n) = &name {
            check_name(&mut input.violations, "name", n);
        }
        let protocols = read_protocols(&mut input);
        let methods = input.strings("methods", true).filter(|m| !m.is_empty());
        if let Some(ms) = &methods {
            for (i, m) in ms.iter().enumerate() {
                if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                    input
                        .violations
                        .item("methods", i, ms.len(), format!("invalid value: {m}"));
                }
            }
        }
        let hosts = input.strings("hosts", false).filter(|h| !h.is_empty());
        if let Some(hs) = &hosts {
            for (i, h) in hs.iter().enumerate() {
                if let Some(msg) = host_error(h) {
                    input.violations.item("hosts", i, hs.len(), msg);
                }
            }
        }
        let paths = input.strings("paths", false).filter(|p| !p.is_empty());
        if let Some(ps) = &paths {
            for (i, p) in ps.iter().enumerate() {
                if let Some(msg) = path_error(p) {
                    input.violations.item("paths", i, ps.len(), msg);
                }
            }
        }
        let headers = read_headers(&mut input);
        let snis = read_snis(&mut input, &protocols);
        for field in ["sources", "destinations"] {
            if input.raw(field).is_some() {
                input.violations.field(
                    field,
                    format!("cannot set '{field}' when 'protocols' is 'http' or 'https'"),
                );
            }
        }
        let strip_path = input.boolean("strip_path").unwrap_or(true);
        let preserve_host = input.boolean("preserve_host").unwrap_or(false);
        let regex_priority = input
            .integer("regex_priority", i64::MIN, i64::MAX)
            .unwrap_or(0);
        let https_redirect_status_code = input
            .integer("https_redirect_status_code", i64::MIN, i64::MAX)
            .unwrap_or(426);
        if !REDIRECT_CODES.contains(&https_redirect_status_code) {
            input.violations.field(
                "https_redirect_status_code",
                "expected one of: 426, 301, 302, 307, 308",
            );
        }
        let path_handling = input.string("path_handling").unwrap_or_else(|| "v0".into());
        if path_handling != "v0" && path_handling != "v1" {
            input
                .violations
                .field("path_handling", "expected one of: v0, v1");
        }
        let request_buffering = input.boolean("request_buffering").unwrap_or(true);
        let response_buffering = input.boolean("response_buffering").unwrap_or(true);
        let tags = super::read_tags(&mut input);
        let service_ref = read_service(&mut input);
        let https = protocols.iter().any(|p| p == "https");
        if methods.is_none()
            && hosts.is_none()
            && headers.is_none()
            && paths.is_none()
            && (snis.is_none() || !https)
            && !input.violations.has("paths")
            && !input.violations.has("headers")
            && !input.violations.has("snis")
        {
            let msg = if https {
                "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'"
            } else {
                "must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'"
            };
            input.violations.entity(msg);
        }
        let violations = input.finish();
        if !violations.is_empty() {
            return Err(violations);
        }
        let service = match &service_ref {
            Some(ServiceRef::Id(id)) => Some(ForeignKey { id: *id }),
            _ => None,
        };
        Ok((
            Route {
                id,
                name,
                protocols,
                methods,
                hosts,
                paths,
                headers,
                snis,
                sources: None,
                destinations: None,
                strip_path,
                preserve_host,
                regex_priority,
                https_redirect_status_code,
                path_handling,
                request_buffering,
                response_buffering,
                tags,
                service,
                created_at,
                updated_at,
            },
            service_ref,
        ))
    }

    /// The entity as an input object, for PATCH to merge a partial body over.
    pub fn to_input(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }
}

fn read_protocols(input: &mut Input) -> Vec<String> {
    let Some(protocols) = input.strings("protocols", true) else {
        return vec!["http".into(), "https".into()];
    };
    if protocols.is_empty() {
        input
            .violations
            .field("protocols", "length must be at least 1");
    }
    let len = protocols.len();
    for (i, p) in protocols.iter().enumerate() {
        let known = ALL_PROTOCOLS.split(", ").any(|k| k == p);
        if !known {
            input.violations.item(
                "protocols",
                i,
                len,
                format!("expected one of: {ALL_PROTOCOLS}"),
            );
        } else if p != "http" && p != "https" {
            input.violations.item(
                "protocols",
                i,
                len,
                format!("'{p}' routes are not supported by this gateway yet"),
            );
        }
    }
    protocols
}

fn read_headers(input: &mut Input) -> Option<BTreeMap<String, Vec<String>>> {
    let Value::Object(map) = input.raw("headers")? else {
        input.violations.field("headers", "expected a map");
        return None;
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (name, values) in map {
        let mut fail = |msg: String| {
            input.violations.nested("headers", &name, msg);
            false
        };
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if name.eq_ignore_ascii_case("host") {
            ok = fail(
                "cannot contain 'host' header, which must be specified in the 'hosts' attribute"
                    .into(),
            );
            continue;
        }
        if !token {
            ok = fail(format!("invalid header name: '{name}'"));
            continue;
        }
        let Value::Array(items) = values else {
            ok = fail("expected an array".into());
            continue;
        };
        if items.is_empty() {
            ok = fail("length must be at least 1".into());
            continue;
        }
        let mut strings = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::String(v) => match portcullis_router::check_header_regex(&v) {
                    Ok(()) => strings.push(v),
                    Err(reason) => ok = fail(format!("invalid regex: '{v}' ({reason})")),
                },
                _ => ok = fail("expected a string".into()),
            }
        }
        out.insert(name, strings);
    }
    (ok && !out.is_empty()).then_some(out)
}

/// Reads `snis`: a set of host names (one `*` label at either end allowed, a trailing dot
/// dropped when matching), only for routes that take `https`.
fn read_snis(input: &mut Input, protocols: &[String]) -> Option<Vec<String>> {
    let snis = input.strings("snis", true).filter(|s| !s.is_empty())?;
    let len = snis.len();
    let mut ok = true;
    for (i, name) in snis.iter().enumerate() {
        let bare = name.strip_suffix('.').unwrap_or(name);
        let error = if bare == "*" {
            Some(format!("invalid value: {name}"))
        } else {
            super::certificate::sni_name_error(bare)
        };
        if let Some(msg) = error {
            input.violations.item("snis", i, len, msg);
            ok = false;
        }
    }
    if !protocols.iter().any(|p| p == "https") {
        input.violations.entity(
            "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'",
        );
        ok = false;
    }
    ok.then_some(snis)
}

fn read_service(input: &mut Input) -> Option<ServiceRef> {
    match input.raw("service")? {
        Value::Object(mut m) => {
            if let Some(id) = m.remove("id").filter(|v| !v.is_null()) {
                match id.as_str().map(Uuid::parse_str) {
                    Some(Ok(id)) => return Some(ServiceRef::Id(id)),
                    _ => input
                        .violations
                        .nested("service", "id", "expected a valid UUID"),
                }
            } else if let Some(Value::String(name)) = m.remove("name") {
                return Some(ServiceRef::Name(name));
            } else {
                input
                    .violations
                    .nested("service", "id", "missing primary key");
            }
            None
        }
        Value::String(s) => match Uuid::parse_str(&s) {
            Ok(id) => Some(ServiceRef::Id(id)),
            Err(_) => {
                input.violations.field("service", "expected a record");
                None
            }
        },
        _ => {
            input.violations.field("service", "expected a record");
            None
        }
    }
}

/// Checks one `hosts` entry: a hostname or IP, optional `:port`, at most one wildcard that
/// must be the leftmost or rightmost label.
fn host_error(raw: &str) -> Option<String> {
    if raw.matches('*').count() > 1 {
        return Some("invalid wildcard: must have at most one wildcard".into());
    }
    let (name, port) = match raw.rsplit_once(':') {
        Some((n, p)) if !n.contains(':') => (n, Some(p)),
        _ => (raw, None),
    };
    if raw.contains('*') && !(name.starts_with("*.") || name.ends_with(".*")) {
        return Some("invalid wildcard: must be placed at leftmost or rightmost label".into());
    }
    if let Some(p) = port
        && p.parse::<u16>().is_err()
    {
        return Some(format!("invalid port number: {p}"));
    }
    let bare = name.trim_start_matches("*.").trim_end_matches(".*");
    (!is_host(bare)).then(|| format!("invalid hostname: {raw}"))
}

/// Checks one `paths` entry (notes §1.7).
fn path_error(p: &str) -> Option<String> {
    if !(p.starts_with('/') || p.starts_with("~/")) {
        return Some("should start with: / (fixed path) or ~/ (regex path)".into());
    }
    if p.contains("//") {
        return Some("must not have empty segments".into());
    }
    if p.starts_with('~') {
        return portcullis_router::check_regex_path(p)
            .err()
            .map(|reason| format!("invalid regex: '{p}' ({reason})"));
    }
    if p.chars().any(|c| c.is_ascii_control() || c == ' ') {
        return Some(format!(
            "invalid path: '{p}' (characters outside of the reserved list of RFC 3986 found)"
        ));
    }
    let normalized = portcullis_router::normalize(p);
    (normalized != p).then(|| format!("non-normalized path, consider use '{normalized}' instead"))
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
    fn defaults_are_kongs() {
        let (r, sref) = Route::from_input(
            obj(json!({"paths": ["/"], "name": "hello"})),
            Uuid::new_v4(),
            1,
            1,
        )
        .expect("valid");
        assert_eq!(sref, None);
        let v = serde_json::to_value(&r).expect("json");
        assert_eq!(v["protocols"], json!(["http", "https"]));
        assert_eq!(v["strip_path"], true);
        assert_eq!(v["preserve_host"], false);
        assert_eq!(v["https_redirect_status_code"], 426);
        assert_eq!(v["path_handling"], "v0");
        assert_eq!(v["regex_priority"], 0);
        assert_eq!(v["methods"], Value::Null);
        assert_eq!(v["service"], Value::Null);
        assert_eq!(v["headers"], Value::Null);
    }

    #[test]
    fn field_rules() {
        let err = Route::from_input(obj(json!({})), Uuid::new_v4(), 1, 1).expect_err("no fields");
        assert_eq!(
            err.message(),
            "schema violation (must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https')"
        );
        let err = Route::from_input(
            obj(json!({"paths": ["/ok", "x", "/a//b", "/a/../b", "~/(bad", "/a\u{0}"], "methods": ["get"], "hosts": ["*.a.*", "a.*.b"], "protocols": ["http", "ftp"], "service": {"id": "nope"}})),
            Uuid::new_v4(),
            1,
            1,
        )
        .expect_err("invalid");
        let f = err.fields_json();
        assert_eq!(f["paths"][0], Value::Null);
        assert_eq!(
            f["paths"][1],
            "should start with: / (fixed path) or ~/ (regex path)"
        );
        assert_eq!(f["paths"][2], "must not have empty segments");
        assert_eq!(
            f["paths"][3],
            "non-normalized path, consider use '/b' instead"
        );
        assert!(
            f["paths"][4]
                .as_str()
                .is_some_and(|m| m.starts_with("invalid regex"))
        );
        assert!(
            f["paths"][5]
                .as_str()
                .is_some_and(|m| m.starts_with("invalid path"))
        );
        assert_eq!(f["methods"][0], "invalid value: get");
        assert_eq!(
            f["hosts"][0],
            "invalid wildcard: must have at most one wildcard"
        );
        assert_eq!(
            f["hosts"][1],
            "invalid wildcard: must be placed at leftmost or rightmost label"
        );
        assert!(
            f["protocols"][1]
                .as_str()
                .is_some_and(|m| m.starts_with("expected one of"))
        );
        assert_eq!(f["service"]["id"], "expected a valid UUID");
    }

    #[test]
    fn snis_need_https_and_valid_names() {
        let (r, _) = Route::from_input(
            obj(json!({"snis": ["api.test", "*.wild.test"], "protocols": ["https"]})),
            Uuid::new_v4(),
            1,
            1,
        )
        .expect("snis alone are enough for https");
        assert_eq!(
            r.snis.as_deref(),
            Some(&["api.test".to_string(), "*.wild.test".to_string()][..])
        );
        let err = Route::from_input(
            obj(json!({"snis": ["api.test"], "paths": ["/"], "protocols": ["http"]})),
            Uuid::new_v4(),
            1,
            1,
        )
        .expect_err("http only");
        assert_eq!(
            err.message(),
            "schema violation ('snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough')"
        );
        let err = Route::from_input(
            obj(json!({"snis": ["ok.test", "a.*.b", "*", "10.0.0.1"], "paths": ["/"]})),
            Uuid::new_v4(),
            1,
            1,
        )
        .expect_err("invalid names");
        let f = err.fields_json();
        assert_eq!(f["snis"][0], Value::Null);
        assert_eq!(
            f["snis"][1],
            "wildcard must be leftmost or rightmost character"
        );
        assert_eq!(f["snis"][2], "invalid value: *");
        assert_eq!(f["snis"][3], "invalid value: 10.0.0.1");
    }

    #[test]
    fn service_reference_forms() {
        let id = Uuid::new_v4();
        let (r, sref) = Route::from_input(
            obj(json!({"paths": ["/"], "service": {"id": id.to_string()}})),
            Uuid::new_v4(),
            1,
            1,
        )
        .expect("valid");
        assert_eq!(sref, Some(ServiceRef::Id(id)));
        assert_eq!(r.service, Some(ForeignKey { id }));
        let (_, sref) = Route::from_input(
            obj(json!({"hosts": ["a.test:8000"], "service": {"name": "s"}})),
            Uuid::new_v4(),
            1,
            1,
        )
        .expect("valid");
        assert_eq!(sref, Some(ServiceRef::Name("s".into())));
    }
}
