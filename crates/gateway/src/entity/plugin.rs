//! The Plugin entity: a named plugin configured globally or scoped to a service, route
//! and/or consumer. Stored and scoped with Kong's rules; plugin behaviour (and each plugin's
//! own config schema with its defaults) is a separate issue, so `config` is kept as sent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::schema::{Input, Kind, Violations, check_name};
use super::{ForeignKey, read_foreign};
use crate::store::Reference;

/// Input fields and their kinds, for form decoding.
pub const FIELDS: &[(&str, Kind)] = &[
    ("id", Kind::String),
    ("name", Kind::String),
    ("instance_name", Kind::String),
    ("route", Kind::Record),
    ("service", Kind::Record),
    ("consumer", Kind::Record),
    ("config", Kind::Record),
    ("protocols", Kind::Strings),
    ("enabled", Kind::Boolean),
    ("tags", Kind::Strings),
    ("created_at", Kind::Integer),
    ("updated_at", Kind::Integer),
];

/// The plugins bundled with Kong 3.x, which a Kong node enables by default (`plugins =
/// bundled`).
pub const BUNDLED: &[&str] = &[
    "acl",
    "acme",
    "ai-prompt-decorator",
    "ai-prompt-guard",
    "ai-prompt-template",
    "ai-proxy",
    "ai-request-transformer",
    "ai-response-transformer",
    "aws-lambda",
    "azure-functions",
    "basic-auth",
    "bot-detection",
    "correlation-id",
    "cors",
    "datadog",
    "file-log",
    "grpc-gateway",
    "grpc-web",
    "hmac-auth",
    "http-log",
    "ip-restriction",
    "jwt",
    "key-auth",
    "ldap-auth",
    "loggly",
    "oauth2",
    "opentelemetry",
    "post-function",
    "pre-function",
    "prometheus",
    "proxy-cache",
    "rate-limiting",
    "redirect",
    "request-size-limiting",
    "request-termination",
    "request-transformer",
    "response-ratelimiting",
    "response-transformer",
    "session",
    "standard-webhooks",
    "statsd",
    "syslog",
    "tcp-log",
    "udp-log",
    "zipkin",
];

/// Plugins that identify the consumer and so cannot be scoped to one (`no_consumer`).
const NO_CONSUMER: &[&str] = &[
    "acl",
    "basic-auth",
    "cors",
    "hmac-auth",
    "jwt",
    "key-auth",
    "ldap-auth",
    "oauth2",
];

const PROTOCOLS: &str = "grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp, ws, wss";

/// A Kong Plugin instance, serialized exactly as the Admin API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plugin {
    /// Primary key.
    pub id: Uuid,
    /// The plugin's name (`key-auth`).
    pub name: String,
    /// Unique instance name (the endpoint key).
    pub instance_name: Option<String>,
    /// Scoped to this route.
    pub route: Option<ForeignKey>,
    /// Scoped to this service.
    pub service: Option<ForeignKey>,
    /// Scoped to this consumer.
    pub consumer: Option<ForeignKey>,
    /// The plugin's configuration.
    pub config: Value,
    /// Protocols it runs on, default `grpc, grpcs, http, https`.
    pub protocols: Vec<String>,
    /// Default true.
    pub enabled: bool,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Last update time, unix seconds.
    pub updated_at: i64,
}

const fn reference(
    column: &'static str,
    field: &'static str,
    table: &'static str,
    entity: &'static str,
) -> Reference {
    Reference {
        column,
        field,
        table,
        entity,
        cascade: true,
    }
}

super::stored!(
    Plugin,
    crate::store::Table {
        name: "gateway_plugins",
        entity: "plugins",
        columns: &[
            "name",
            "instance_name",
            "route_id",
            "service_id",
            "consumer_id",
            "scope_key",
        ],
        unique: &[
            ("instance_name", Some("instance_name")),
            ("scope_key", None),
        ],
        endpoint_key: Some("instance_name"),
        references: &[
            reference("route_id", "route", "gateway_routes", "routes"),
            reference("service_id", "service", "gateway_services", "services"),
            reference("consumer_id", "consumer", "gateway_consumers", "consumers"),
        ],
    },
    |e| {
        let fk = |f: &Option<ForeignKey>| f.map(|f| f.id.to_string());
        vec![
            Some(e.name.clone()),
            e.instance_name.clone(),
            fk(&e.route),
            fk(&e.service),
            fk(&e.consumer),
            Some(e.scope_key()),
        ]
    }
);

impl Plugin {
    /// Kong's compound unique key, rendered as Kong renders it in the 409 message:
    /// `{consumer=null,name="key-auth",route=null,service={id="…"}}`.
    pub fn scope_key(&self) -> String {
        let fk = |f: &Option<ForeignKey>| match f {
            Some(f) => format!("{{id=\"{}\"}}", f.id),
            None => "null".to_string(),
        };
        format!(
            "{{consumer={},name=\"{}\",route={},service={}}}",
            fk(&self.consumer),
            self.name,
            fk(&self.route),
            fk(&self.service)
        )
    }
}

impl super::Entity for Plugin {
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
            Some(n) if !BUNDLED.contains(&n.as_str()) => input.violations.field(
                "name",
                format!("plugin '{n}' not enabled; add it to the 'plugins' configuration property"),
            ),
            _ => {}
        }
        let instance_name = input.string("instance_name");
        if let Some(n) = &instance_name {
            check_name(&mut input.violations, "instance_name", n);
        }
        let route = read_foreign(&mut input, "route");
        let service = read_foreign(&mut input, "service");
        let consumer = read_foreign(&mut input, "consumer");
        if consumer.is_some() && name.as_deref().is_some_and(|n| NO_CONSUMER.contains(&n)) {
            input.violations.field("consumer", "value must be null");
        }
        let config = match input.raw("config") {
            None => Value::Object(Map::new()),
            Some(Value::Object(m)) => Value::Object(m),
            Some(_) => {
                input.violations.field("config", "expected a record");
                Value::Null
            }
        };
        let protocols = input.strings("protocols", true).unwrap_or_else(|| {
            ["grpc", "grpcs", "http", "https"]
                .map(String::from)
                .to_vec()
        });
        let len = protocols.len();
        for (i, p) in protocols.iter().enumerate() {
            if !PROTOCOLS.split(", ").any(|k| k == p) {
                input
                    .violations
                    .item("protocols", i, len, format!("expected one of: {PROTOCOLS}"));
            }
        }
        if protocols.is_empty() {
            input
                .violations
                .field("protocols", "length must be at least 1");
        }
        let enabled = input.boolean("enabled").unwrap_or(true);
        let tags = super::read_tags(&mut input);
        let violations = input.finish();
        match name {
            Some(name) if violations.is_empty() => Ok(Plugin {
                id,
                name,
                instance_name,
                route,
                service,
                consumer,
                config,
                protocols,
                enabled,
                tags,
                created_at,
                updated_at,
            }),
            _ => Err(violations),
        }
    }
}
