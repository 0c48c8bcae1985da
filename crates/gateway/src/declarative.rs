//! DB-less mode's declarative configuration (`kong.yml`, notes §5.3): parsed from YAML or
//! JSON, nested entities flattened into their parents' references, names resolved, every
//! entity validated by the same code as the Admin API, all errors collected into a tree that
//! mirrors the file.
//!
//! Key decision: a loaded configuration is written whole into a private in-memory SQLite
//! store in one transaction ([`crate::store::GatewayStore::replace_all`]), so DB-less mode
//! reuses every read path of the Admin API and the same table build; "read-only" is
//! enforced at the Admin API's edge.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::entity::{
    CaCertificate, Certificate, Consumer, Entity, ForeignKey, Plugin, Route, Service, Sni, Target,
    Upstream, Violations,
};

/// The `_format_version`s Kong 3.x accepts.
pub const FORMAT_VERSIONS: &[&str] = &["1.1", "2.1", "3.0"];

/// Namespace for the ids of entities declared without one: the same declaration gets the
/// same id on every load and every node.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6b0c_9d1e_3f41_4c8a_9e0d_2a7b_5c3e_1f90);

/// A validated configuration, every reference resolved to an id.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Services.
    pub services: Vec<Service>,
    /// Routes.
    pub routes: Vec<Route>,
    /// Consumers.
    pub consumers: Vec<Consumer>,
    /// Plugins.
    pub plugins: Vec<Plugin>,
    /// Upstreams.
    pub upstreams: Vec<Upstream>,
    /// Targets.
    pub targets: Vec<Target>,
    /// Certificates (their `snis` are in [`Config::snis`]).
    pub certificates: Vec<Certificate>,
    /// SNIs.
    pub snis: Vec<Sni>,
    /// CA certificates.
    pub ca_certificates: Vec<CaCertificate>,
}

impl Config {
    /// The entities as `POST /config` reports them: `{services: [...], routes: [...], ...}`.
    pub fn to_json(&self) -> Value {
        json!({
            "services": self.services,
            "routes": self.routes,
            "consumers": self.consumers,
            "plugins": self.plugins,
            "upstreams": self.upstreams,
            "targets": self.targets,
            "certificates": self.certificates,
            "snis": self.snis,
            "ca_certificates": self.ca_certificates,
        })
    }
}

/// Why a declarative configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeclarativeError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not YAML or JSON.
    #[error("failed parsing declarative configuration: {0}")]
    Parse(String),
    /// Entities failed validation.
    #[error("declarative config is invalid: {}", .lines.join("; "))]
    Invalid {
        /// `path: message` lines, in file order.
        lines: Vec<String>,
        /// The errors as a tree mirroring the file.
        fields: Value,
    },
}

/// Parses YAML (or JSON, a subset of it) into a value.
pub fn parse(text: &str) -> Result<Value, DeclarativeError> {
    serde_yaml::from_str::<Value>(text).map_err(|e| DeclarativeError::Parse(e.to_string()))
}

/// Reads and compiles a `kong.yml`.
pub fn from_file(path: &std::path::Path) -> Result<Config, DeclarativeError> {
    let text = std::fs::read_to_string(path).map_err(|source| DeclarativeError::Read {
        file: path.display().to_string(),
        source,
    })?;
    compile(parse(&text)?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Service,
    Route,
    Consumer,
    Plugin,
    Upstream,
    Target,
    Certificate,
    Sni,
    CaCertificate,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Service => "services",
            Kind::Route => "routes",
            Kind::Consumer => "consumers",
            Kind::Plugin => "plugins",
            Kind::Upstream => "upstreams",
            Kind::Target => "targets",
            Kind::Certificate => "certificates",
            Kind::Sni => "snis",
            Kind::CaCertificate => "ca_certificates",
        }
    }

    fn from_key(key: &str) -> Option<Kind> {
        [
            Kind::Service,
            Kind::Route,
            Kind::Consumer,
            Kind::Plugin,
            Kind::Upstream,
            Kind::Target,
            Kind::Certificate,
            Kind::Sni,
            Kind::CaCertificate,
        ]
        .into_iter()
        .find(|k| k.key() == key)
    }

    /// The field naming an entity (`name`, `username`, `instance_name`, `target`).
    fn endpoint_key(self) -> &'static str {
        match self {
            Kind::Consumer => "username",
            Kind::Plugin => "instance_name",
            Kind::Target => "target",
            // Named by nothing but their id (or where they sit in the file).
            Kind::Certificate | Kind::CaCertificate => "id",
            _ => "name",
        }
    }

    /// Kinds that may be nested under this one.
    fn children(self) -> &'static [Kind] {
        match self {
            Kind::Service => &[Kind::Route, Kind::Plugin],
            Kind::Route | Kind::Consumer => &[Kind::Plugin],
            Kind::Upstream => &[Kind::Target],
            Kind::Certificate => &[Kind::Sni],
            Kind::Plugin | Kind::Target | Kind::Sni | Kind::CaCertificate => &[],
        }
    }

    /// The reference field a child of this kind points back with.
    fn as_reference(self) -> &'static str {
        match self {
            Kind::Service => "service",
            Kind::Route => "route",
            Kind::Consumer => "consumer",
            Kind::Upstream => "upstream",
            Kind::Certificate => "certificate",
            Kind::Plugin | Kind::Target | Kind::Sni | Kind::CaCertificate => "",
        }
    }

    /// The reference fields entities of this kind may hold.
    fn references(self) -> &'static [(&'static str, Kind)] {
        match self {
            Kind::Service => &[("client_certificate", Kind::Certificate)],
            Kind::Route => &[("service", Kind::Service)],
            Kind::Plugin => &[
                ("service", Kind::Service),
                ("route", Kind::Route),
                ("consumer", Kind::Consumer),
            ],
            Kind::Upstream => &[("client_certificate", Kind::Certificate)],
            Kind::Target => &[("upstream", Kind::Upstream)],
            Kind::Sni => &[("certificate", Kind::Certificate)],
            _ => &[],
        }
    }
}

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

struct Raw {
    kind: Kind,
    path: Vec<Seg>,
    map: Map<String, Value>,
    id: Uuid,
}

/// Collects errors into the tree and the flat list.
#[derive(Default)]
struct Errors {
    tree: Value,
    lines: Vec<String>,
}

impl Errors {
    fn add(&mut self, path: &[Seg], fields: Value, line: String) {
        let prefix = render(path);
        self.lines.push(if prefix.is_empty() {
            line
        } else {
            format!("{prefix}: {line}")
        });
        insert_at(&mut self.tree, path, fields);
    }

    fn field(&mut self, path: &[Seg], field: &str, msg: &str) {
        let mut p = path.to_vec();
        p.push(Seg::Key(field.to_string()));
        self.add(&p, Value::String(msg.to_string()), msg.to_string());
    }
}

fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{}]", i + 1)),
        }
    }
    out
}

fn insert_at(tree: &mut Value, path: &[Seg], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        merge(tree, value);
        return;
    };
    match first {
        Seg::Key(k) => {
            if !tree.is_object() {
                *tree = Value::Object(Map::new());
            }
            if let Value::Object(m) = tree {
                insert_at(m.entry(k.clone()).or_insert(Value::Null), rest, value);
            }
        }
        Seg::Index(i) => {
            if !tree.is_array() {
                *tree = Value::Array(Vec::new());
            }
            if let Value::Array(items) = tree {
                if items.len() <= *i {
                    items.resize(i + 1, Value::Null);
                }
                insert_at(&mut items[*i], rest, value);
            }
        }
    }
}

fn merge(slot: &mut Value, value: Value) {
    match (slot, value) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, value) => *slot = value,
    }
}

/// Validates a parsed declarative document into a [`Config`].
pub fn compile(doc: Value) -> Result<Config, DeclarativeError> {
    let mut errors = Errors::default();
    let Value::Object(mut top) = doc else {
        return Err(DeclarativeError::Parse(
            "expected an object at the top level".into(),
        ));
    };
    match top.remove("_format_version") {
        Some(Value::String(v)) if FORMAT_VERSIONS.contains(&v.as_str()) => {}
        None | Some(Value::Null) => errors.field(&[], "_format_version", "required field missing"),
        Some(_) => errors.field(
            &[],
            "_format_version",
            &format!("expected one of: {}", FORMAT_VERSIONS.join(", ")),
        ),
    }
    match top.remove("_transform") {
        None | Some(Value::Bool(_)) => {}
        Some(_) => errors.field(&[], "_transform", "expected a boolean"),
    }
    for ignored in ["_comment", "_ignore", "_workspace", "_info"] {
        top.remove(ignored);
    }
    let mut raws = Vec::new();
    for (key, value) in top {
        let path = vec![Seg::Key(key.clone())];
        match Kind::from_key(&key) {
            Some(kind) => collect(kind, value, path, None, &mut raws, &mut errors),
            None if is_unsupported(&key) => errors.field(
                &[],
                &key,
                &format!("'{key}' entities are not supported by this gateway yet"),
            ),
            None => errors.field(&[], &key, "unknown field"),
        }
    }
    let config = build(raws, &mut errors);
    if errors.lines.is_empty() {
        Ok(config)
    } else {
        Err(DeclarativeError::Invalid {
            lines: errors.lines,
            fields: errors.tree,
        })
    }
}

fn is_unsupported(key: &str) -> bool {
    matches!(
        key,
        "vaults"
            | "keyauth_credentials"
            | "basicauth_credentials"
            | "jwt_secrets"
            | "acls"
            | "hmacauth_credentials"
            | "oauth2_credentials"
    )
}

/// Flattens `value` (an array of `kind` entities) and their nested children into `raws`.
fn collect(
    kind: Kind,
    value: Value,
    path: Vec<Seg>,
    parent: Option<(Kind, Uuid)>,
    raws: &mut Vec<Raw>,
    errors: &mut Errors,
) {
    let Value::Array(items) = value else {
        if !value.is_null() {
            errors.add(
                &path,
                json!("expected an array"),
                "expected an array".into(),
            );
        }
        return;
    };
    for (i, item) in items.into_iter().enumerate() {
        let mut here = path.clone();
        here.push(Seg::Index(i));
        let Value::Object(mut map) = item else {
            errors.add(
                &here,
                json!("expected a record"),
                "expected a record".into(),
            );
            continue;
        };
        map.remove("_comment");
        if let Some(Value::Bool(true)) = map.remove("_ignore") {
            continue;
        }
        if let Some((pkind, pid)) = parent {
            map.insert(pkind.as_reference().to_string(), json!({ "id": pid }));
        }
        let id = match map.get("id") {
            Some(Value::String(s)) => match Uuid::parse_str(s) {
                Ok(id) => id,
                Err(_) => {
                    errors.field(&here, "id", "expected a valid UUID");
                    continue;
                }
            },
            _ => derived_id(kind, &map, parent, &here),
        };
        map.remove("id");
        let mut children = Vec::new();
        for child in kind.children() {
            if let Some(v) = map.remove(child.key()) {
                let mut p = here.clone();
                p.push(Seg::Key(child.key().to_string()));
                children.push((*child, v, p));
            }
        }
        raws.push(Raw {
            kind,
            path: here,
            map,
            id,
        });
        for (child, v, p) in children {
            collect(child, v, p, Some((kind, id)), raws, errors);
        }
    }
}

/// A stable id for an entity declared without one: from its endpoint key (and parent), or
/// from where it sits in the file.
fn derived_id(
    kind: Kind,
    map: &Map<String, Value>,
    parent: Option<(Kind, Uuid)>,
    path: &[Seg],
) -> Uuid {
    let parent = parent.map(|(_, id)| id.to_string()).unwrap_or_default();
    let name = match map.get(kind.endpoint_key()) {
        Some(Value::String(key)) => format!("{}:{parent}:{key}", kind.key()),
        _ => format!("{}:{parent}:{}", kind.key(), render(path)),
    };
    Uuid::new_v5(&ID_NAMESPACE, name.as_bytes())
}

fn build(raws: Vec<Raw>, errors: &mut Errors) -> Config {
    // Names and ids per kind, for references and duplicate checks.
    let mut by_key: HashMap<(Kind, String), Uuid> = HashMap::new();
    let mut ids: HashSet<(Kind, Uuid)> = HashSet::new();
    for raw in &raws {
        if !ids.insert((raw.kind, raw.id)) {
            errors.add(
                &raw.path,
                json!(format!("uniqueness violation: '{}' entity with primary key set to '{}' already declared", raw.kind.key(), raw.id)),
                format!("uniqueness violation: '{}' entity with primary key set to '{}' already declared", raw.kind.key(), raw.id),
            );
        }
        // Targets are named within their upstream; the store reports those duplicates.
        if raw.kind == Kind::Target {
            continue;
        }
        if let Some(Value::String(key)) = raw.map.get(raw.kind.endpoint_key())
            && by_key.insert((raw.kind, key.clone()), raw.id).is_some()
        {
            let msg = format!(
                "uniqueness violation: '{}' entity with {} set to '{key}' already declared",
                raw.kind.key(),
                raw.kind.endpoint_key()
            );
            errors.add(&raw.path, json!(msg), msg.clone());
        }
    }
    let now = crate::entity::now_seconds();
    let mut config = Config::default();
    for mut raw in raws {
        let mut ok = true;
        for (field, target) in raw.kind.references() {
            let Some(given) = raw.map.get(*field).cloned() else {
                continue;
            };
            let resolved = match &given {
                Value::Null => continue,
                Value::String(s) => lookup(s, *target, &by_key, &ids),
                Value::Object(o) => match (o.get("id"), o.get(target.endpoint_key())) {
                    (Some(Value::String(s)), _) | (None, Some(Value::String(s))) => {
                        lookup(s, *target, &by_key, &ids)
                    }
                    _ => None,
                },
                _ => None,
            };
            match resolved {
                Some(id) => {
                    raw.map.insert(field.to_string(), json!(ForeignKey { id }));
                }
                None => {
                    ok = false;
                    let shown = match &given {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    errors.field(
                        &raw.path,
                        field,
                        &format!(
                            "could not find {} '{shown}' in this configuration",
                            target.key().trim_end_matches('s')
                        ),
                    );
                }
            }
        }
        if !ok {
            continue;
        }
        let result = match raw.kind {
            Kind::Service => validate(raw.map, raw.id, now).map(|e| config.services.push(e)),
            Kind::Route => validate(raw.map, raw.id, now).map(|e| config.routes.push(e)),
            Kind::Consumer => validate(raw.map, raw.id, now).map(|e| config.consumers.push(e)),
            Kind::Plugin => validate(raw.map, raw.id, now).map(|e| config.plugins.push(e)),
            Kind::Upstream => validate(raw.map, raw.id, now).map(|e| config.upstreams.push(e)),
            Kind::Target => validate(raw.map, raw.id, now).map(|e| config.targets.push(e)),
            Kind::Certificate => {
                validate(raw.map, raw.id, now).map(|e| config.certificates.push(e))
            }
            Kind::Sni => validate(raw.map, raw.id, now).map(|e| config.snis.push(e)),
            Kind::CaCertificate => {
                validate(raw.map, raw.id, now).map(|e| config.ca_certificates.push(e))
            }
        };
        if let Err(v) = result {
            errors.add(&raw.path, v.fields_json(), v.message());
        }
    }
    config
}

fn lookup(
    s: &str,
    kind: Kind,
    by_key: &HashMap<(Kind, String), Uuid>,
    ids: &HashSet<(Kind, Uuid)>,
) -> Option<Uuid> {
    if let Ok(id) = Uuid::parse_str(s)
        && ids.contains(&(kind, id))
    {
        return Some(id);
    }
    by_key.get(&(kind, s.to_string())).copied()
}

fn validate<T: Entity>(map: Map<String, Value>, id: Uuid, now: i64) -> Result<T, Violations> {
    T::from_input(map, id, now, now)
}
