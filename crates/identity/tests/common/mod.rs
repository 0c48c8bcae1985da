//! Test harness: an identity server on ephemeral ports over a fresh database, a cookie-jar
//! client, and validation of responses against Kratos's OpenAPI document.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use portcullis_db::Db;
use portcullis_db::testing::TestDb;
use portcullis_http::{Shutdown, bind, serve};
use portcullis_identity::{Identity, IdentityConfig};
use portcullis_mail::{Filter, MailCatcher};
use reqwest::cookie::Jar;
use serde_json::{Value, json};

/// `shared/reference`, beside the workspace.
pub fn reference() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference")
}

/// A running server.
pub struct Server {
    pub public: String,
    pub admin: String,
    pub identity: Identity,
    pub db: Db,
    pub mail: Option<MailCatcher>,
    shutdown: Shutdown,
    _db: TestDb,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The kratos.yml the tests run with (tutorial-like), on the given base URLs.
pub fn config_value(public: &str, admin: &str, lifespan: &str) -> Value {
    let schema = reference().join("tutorial/kratos/identity.schema.json");
    json!({
        "dsn": "memory",
        "serve": {"public": {"base_url": public}, "admin": {"base_url": admin}},
        "selfservice": {
            "default_browser_return_url": "http://127.0.0.1:4455/",
            "allowed_return_urls": ["http://127.0.0.1:4455"],
            // Tests never reach the internet: the breach lookup is off unless a test
            // points it at its own range server.
            "methods": {"password": {"enabled": true, "config": {"haveibeenpwned_enabled": false}}},
            "flows": {
                "error": {"ui_url": "http://127.0.0.1:4455/error"},
                "logout": {"after": {"default_browser_return_url": "http://127.0.0.1:4455/login"}},
                "login": {"ui_url": "http://127.0.0.1:4455/login", "lifespan": lifespan},
                "registration": {"ui_url": "http://127.0.0.1:4455/registration", "lifespan": lifespan,
                    "after": {"password": {"hooks": [{"hook": "session"}]}}}
            }
        },
        "identity": {"schemas": [{"id": "default", "url": format!("file://{}", schema.display())}]}
    })
}

/// Starts a server on `db` (dev mode: cookies without `Secure`, as over plain HTTP).
pub async fn start(db: TestDb) -> Server {
    start_with(db, "10m", true).await
}

/// Starts a server with a flow lifespan and dev switch.
pub async fn start_with(db: TestDb, lifespan: &str, dev: bool) -> Server {
    start_config(db, |public, admin| {
        IdentityConfig::from_value(
            config_value(public, admin, lifespan),
            "test kratos.yml",
            Path::new("."),
            dev,
        )
        .expect("config")
    })
    .await
}

/// Starts a server whose configuration `build` makes from the bound public and admin URLs.
pub async fn start_config(db: TestDb, build: impl FnOnce(&str, &str) -> IdentityConfig) -> Server {
    start_config_with_client(db, portcullis_http::upstream_client(), build).await
}

/// Like [`start_config`], with the client for the server's outbound calls (web hooks).
pub async fn start_config_with_client(
    db: TestDb,
    client: portcullis_http::UpstreamClient,
    build: impl FnOnce(&str, &str) -> IdentityConfig,
) -> Server {
    db.migrate(&[portcullis_identity::migrations()])
        .await
        .expect("migrate");
    let public_l = bind("127.0.0.1:0".parse().unwrap(), "identity public")
        .await
        .expect("bind");
    let admin_l = bind("127.0.0.1:0".parse().unwrap(), "identity admin")
        .await
        .expect("bind");
    let public = format!("http://{}/", public_l.local_addr().unwrap());
    let admin = format!("http://{}/", admin_l.local_addr().unwrap());
    let config = build(&public, &admin);
    let database: Db = (*db).clone();
    let identity = Identity::with_client(database.clone(), config, client)
        .await
        .expect("identity");
    let shutdown = Shutdown::new();
    tokio::spawn(serve(
        public_l,
        identity.public_router(),
        "identity public",
        shutdown.clone(),
    ));
    tokio::spawn(serve(
        admin_l,
        identity.admin_router(),
        "identity admin",
        shutdown.clone(),
    ));
    let server = Server {
        public: public.trim_end_matches('/').to_string(),
        admin: admin.trim_end_matches('/').to_string(),
        identity,
        db: database,
        mail: None,
        shutdown,
        _db: db,
    };
    // Readiness: poll instead of sleeping.
    let probe = reqwest::Client::new();
    for _ in 0..100 {
        if probe
            .get(format!("{}/health/ready", server.public))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return server;
        }
        tokio::task::yield_now().await;
    }
    panic!("identity server did not become ready");
}

/// Starts a server (dev mode) whose kratos.yml is [`config_value`] edited by `tweak`.
pub async fn start_tweaked(db: TestDb, tweak: impl FnOnce(&mut Value)) -> Server {
    start_config(db, |public, admin| {
        let mut v = config_value(public, admin, "10m");
        tweak(&mut v);
        IdentityConfig::from_value(v, "test kratos.yml", Path::new("."), true).expect("config")
    })
    .await
}

/// Starts a server with verification, recovery and settings enabled, a mail catcher on an
/// ephemeral SMTP port, and the courier worker delivering to it. `tweak` edits kratos.yml.
pub async fn start_with_mail(db: TestDb, tweak: impl FnOnce(&mut Value)) -> Server {
    let catcher = MailCatcher::new(100);
    let smtp = bind("127.0.0.1:0".parse().unwrap(), "smtp")
        .await
        .expect("bind smtp");
    let smtp_addr = smtp.local_addr().unwrap();
    let mut server = start_config(db, |public, admin| {
        let mut v = config_value(public, admin, "10m");
        let flows = &mut v["selfservice"]["flows"];
        flows["verification"] =
            json!({"enabled": true, "ui_url": "http://127.0.0.1:4455/verification"});
        flows["recovery"] = json!({"enabled": true, "ui_url": "http://127.0.0.1:4455/recovery"});
        flows["settings"] = json!({"ui_url": "http://127.0.0.1:4455/settings"});
        v["courier"] = json!({
            "smtp": {"connection_uri": format!("smtp://{smtp_addr}/?disable_starttls=true"),
                     "from_address": "accounts@portcullis.test"},
            "worker": {"pull_wait": "100ms"}
        });
        tweak(&mut v);
        IdentityConfig::from_value(v, "test kratos.yml", Path::new("."), true).expect("config")
    })
    .await;
    tokio::spawn(catcher.smtp_server(smtp, server.shutdown.clone()));
    server.identity.spawn_courier(server.shutdown.clone());
    server.mail = Some(catcher);
    server
}

impl Server {
    /// Waits (bounded) for the newest message to `to` whose text contains `needle`, and
    /// returns its plain-text body.
    pub async fn mail_to(&self, to: &str, needle: &str) -> String {
        let mailbox = self
            .mail
            .as_ref()
            .expect("server has a mail catcher")
            .mailbox();
        let filter = Filter {
            to: Some(to.to_string()),
            query: Some(needle.to_string()),
        };
        let message = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            mailbox.wait_for(&filter),
        )
        .await
        .expect("mail arrives");
        message.text.clone().unwrap_or_default()
    }
}

/// The six-digit code in a mail body.
pub fn code_in(body: &str) -> String {
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a six-digit code")
        .to_string()
}

/// A browser: cookie jar, no automatic redirects.
pub fn browser() -> (reqwest::Client, Arc<Jar>) {
    let jar = Arc::new(Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    (client, jar)
}

/// A client without cookies or redirects.
pub fn native() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Kratos's OpenAPI components, with OpenAPI's `nullable` turned into JSON Schema's `null`.
static COMPONENTS: LazyLock<Value> = LazyLock::new(|| {
    let text = std::fs::read_to_string(reference().join("kratos/api.json")).expect("api.json");
    let mut spec: Value = serde_json::from_str(&text).expect("api.json parses");
    nullable_to_null(&mut spec);
    spec["components"].clone()
});

fn nullable_to_null(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true)) {
                match map.get("type").cloned() {
                    Some(Value::String(t)) => {
                        map.insert("type".into(), json!([t, "null"]));
                    }
                    None if !map.contains_key("$ref") => {}
                    _ => {}
                }
            }
            for child in map.values_mut() {
                nullable_to_null(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(nullable_to_null),
        _ => {}
    }
}

/// Asserts that `value` validates against `#/components/schemas/<name>` of Kratos's spec.
pub fn assert_schema(name: &str, value: &Value) {
    let schema = json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": *COMPONENTS,
    });
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .build(&schema)
        .expect("spec schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "response does not match {name}: {errors:#?}\n{value:#}"
    );
}

/// The value of the `csrf_token` node.
pub fn csrf_of(flow: &Value) -> String {
    node(flow, "csrf_token")["attributes"]["value"]
        .as_str()
        .expect("csrf token")
        .to_string()
}

/// The node called `name`.
pub fn node<'a>(flow: &'a Value, name: &str) -> &'a Value {
    flow["ui"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["attributes"]["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {flow:#}"))
}

/// The message ids on the form.
pub fn form_message_ids(flow: &Value) -> Vec<i64> {
    flow["ui"]["messages"]
        .as_array()
        .map(|m| m.iter().filter_map(|t| t["id"].as_i64()).collect())
        .unwrap_or_default()
}

/// Runs a scenario on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test]
            async fn sqlite() {
                let db = portcullis_db::testing::TestDb::sqlite().await;
                super::$scenario(db).await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(db) = portcullis_db::testing::TestDb::postgres().await else {
                    return;
                };
                super::$scenario(db).await;
            }
        }
    };
}

/// The password the helpers use unless told otherwise.
pub const PASSWORD: &str = "correct horse battery staple";

/// GETs `url` and parses the JSON answer.
pub async fn get_json(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// `POST /admin/identities` for the default schema with `email`, and a plain password when
/// given (the response is returned unchecked).
pub async fn admin_create(s: &Server, email: &str, password: Option<&str>) -> reqwest::Response {
    let mut body = json!({"schema_id": "default", "traits": {"email": email}});
    if let Some(p) = password {
        body["credentials"] = json!({"password": {"config": {"password": p}}});
    }
    native()
        .post(format!("{}/admin/identities", s.admin))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Creates an identity with [`PASSWORD`] through the admin API; returns its JSON.
pub async fn create_identity(s: &Server, email: &str) -> Value {
    let res = admin_create(s, email, Some(PASSWORD)).await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

/// A native (API flow) login with `identifier` and `password`; the raw response.
pub async fn native_login(s: &Server, identifier: &str, password: &str) -> reqwest::Response {
    let api = native();
    let flow = get_json(&api, format!("{}/self-service/login/api", s.public)).await;
    api.post(flow["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "password", "identifier": identifier, "password": password}))
        .send()
        .await
        .unwrap()
}

/// A native (API flow) registration with `email` and `password`; the raw response.
pub async fn native_register(s: &Server, email: &str, password: &str) -> reqwest::Response {
    let api = native();
    let flow = get_json(&api, format!("{}/self-service/registration/api", s.public)).await;
    api.post(flow["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "password", "password": password, "traits": {"email": email}}))
        .send()
        .await
        .unwrap()
}

/// The message ids on the node called `name`.
pub fn node_message_ids(flow: &Value, name: &str) -> Vec<i64> {
    node(flow, name)["messages"]
        .as_array()
        .map(|m| m.iter().filter_map(|t| t["id"].as_i64()).collect())
        .unwrap_or_default()
}

/// A browser form post to `flow`'s action (HTML accepted, the flow's CSRF token added before
/// `fields`); the raw response.
pub async fn submit_form(
    client: &reqwest::Client,
    flow: &Value,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = csrf_of(flow);
    let mut form: Vec<(&str, &str)> = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    client
        .post(flow["ui"]["action"].as_str().unwrap())
        .header(
            reqwest::header::ACCEPT,
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .form(&form)
        .send()
        .await
        .unwrap()
}
