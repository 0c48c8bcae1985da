//! DB-less mode (issue 3 §5): `kong.yml` at start, `POST /config` replacing everything, and
//! a read-only Admin API, over real HTTP.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use portcullis_gateway::{Gateway, GatewayOptions};
use portcullis_http::Shutdown;
use reqwest::Method;
use serde_json::{Value, json};

use common::Stack;

async fn start(file: Option<&Path>) -> Stack {
    let gateway = Gateway::from_declarative(file, GatewayOptions::default())
        .await
        .expect("dbless gateway");
    common::serve_gateway(gateway, None).await
}

fn tutorial_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/tutorial/config/kong.yaml")
}

const KONG_YML: &str = r#"
_format_version: "3.0"
_transform: true
services:
  - name: echo
    url: http://ECHO
    tags: [demo]
    routes:
      - name: nested
        paths: [/nested]
        plugins:
          - name: cors
    plugins:
      - name: rate-limiting
        config: {minute: 5}
routes:
  - name: top
    paths: [/top]
    service: echo
  - name: by-record
    hosts: [by-record.test]
    service: {name: echo}
consumers:
  - username: alice
    custom_id: a1
    plugins:
      - name: request-transformer
plugins:
  - name: correlation-id
  - name: request-termination
    service: echo
    consumer: alice
upstreams:
  - name: backend.internal
    targets:
      - target: 10.0.0.1
        weight: 50
      - target: 10.0.0.2:81
"#;

#[tokio::test]
async fn the_tutorials_kong_yaml_loads() {
    let file = tutorial_file();
    assert!(file.exists(), "{}", file.display());
    let s = start(Some(&file)).await;
    assert_eq!(
        s.get("/services").await,
        (200, json!({"data": [], "next": null}))
    );
    assert_eq!(s.get("/status").await.0, 200);
}

#[tokio::test]
async fn declarative_config_routes_and_is_read_only() {
    let up = Shutdown::new();
    let echo = common::echo_upstream(&up).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("kong.yml");
    std::fs::write(&file, KONG_YML.replace("ECHO", &echo.to_string())).expect("write");
    let s = start(Some(&file)).await;

    // Everything is there, nested entities pointing at their parents.
    let (_, svc) = s.get("/services/echo").await;
    assert_eq!(svc["port"], echo.port());
    assert_eq!(svc["tags"], json!(["demo"]));
    let (_, nested) = s.get("/routes/nested").await;
    assert_eq!(nested["service"]["id"], svc["id"]);
    assert_eq!(s.get("/routes/top").await.1["service"]["id"], svc["id"]);
    assert_eq!(
        s.get("/routes/by-record").await.1["service"]["id"],
        svc["id"]
    );
    assert_eq!(
        s.get("/plugins").await.1["data"].as_array().map(Vec::len),
        Some(5)
    );
    assert_eq!(
        s.get("/routes/nested/plugins").await.1["data"][0]["name"],
        "cors"
    );
    assert_eq!(
        s.get("/consumers/alice/plugins").await.1["data"][0]["name"],
        "request-transformer"
    );
    let (_, targets) = s.get("/upstreams/backend.internal/targets").await;
    let mut names: Vec<&str> = targets["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["target"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["10.0.0.1:8000", "10.0.0.2:81"]);
    assert_eq!(
        s.get("/tags/demo").await.1["data"].as_array().map(Vec::len),
        Some(1)
    );

    // The proxy routes by it.
    for path in ["/nested/x", "/top/y"] {
        let res = s
            .http
            .get(format!("{}{path}", s.proxy))
            .send()
            .await
            .expect("proxy");
        assert_eq!(res.status(), 200, "{path}");
    }

    // Ids of entities declared without one are stable across loads.
    let again = start(Some(&file)).await;
    assert_eq!(again.get("/services/echo").await.1["id"], svc["id"]);
    assert_eq!(again.get("/routes/nested").await.1["id"], nested["id"]);

    // Entity writes are refused the way Kong refuses them.
    let (st, body) = s
        .json(Method::POST, "/services", json!({"host": "x.test"}))
        .await;
    assert_eq!(st, 405);
    assert_eq!(
        body,
        json!({"code": 12, "name": "operation unsupported",
               "message": "cannot create 'services' entities when not using a database"})
    );
    let (_, body) = s.json(Method::PUT, "/routes/top", json!({})).await;
    assert_eq!(
        body["message"],
        "cannot create or update 'routes' entities when not using a database"
    );
    let (_, body) = s
        .json(Method::PATCH, "/services/echo/routes/nested", json!({}))
        .await;
    assert_eq!(
        body["message"],
        "cannot update 'routes' entities when not using a database"
    );
    let (st, body) = s
        .json(
            Method::DELETE,
            "/upstreams/backend.internal/targets/10.0.0.1",
            json!({}),
        )
        .await;
    assert_eq!(st, 405);
    assert_eq!(
        body["message"],
        "cannot delete 'targets' entities when not using a database"
    );

    // GET /config gives the configuration back as YAML.
    let (st, cfg) = s.get("/config").await;
    assert_eq!(st, 200);
    let yaml = cfg["config"].as_str().expect("yaml");
    assert!(
        yaml.contains("_format_version: '3.0'") || yaml.contains("_format_version: \"3.0\""),
        "{yaml}"
    );
    assert!(yaml.contains("backend.internal"));
    up.cancel();
}

#[tokio::test]
async fn post_config_replaces_everything_or_nothing() {
    let up = Shutdown::new();
    let echo = common::echo_upstream(&up).await;
    let s = start(None).await;
    let status = |path: &'static str| {
        let (http, proxy) = (s.http.clone(), s.proxy.clone());
        async move {
            http.get(format!("{proxy}{path}"))
                .send()
                .await
                .expect("proxy")
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("/one").await, 404);

    // JSON body.
    let (st, loaded) = s
        .json(
            Method::POST,
            "/config",
            json!({"_format_version": "3.0", "services": [
                {"name": "e", "url": format!("http://{echo}"), "routes": [{"name": "one", "paths": ["/one"]}]}
            ]}),
        )
        .await;
    assert_eq!(st, 201, "{loaded}");
    assert_eq!(loaded["services"][0]["name"], "e");
    assert_eq!(loaded["routes"][0]["name"], "one");
    assert_eq!(status("/one").await, 200);

    // YAML body: the old routes are gone, the new ones route.
    let yaml = format!(
        "_format_version: \"2.1\"\nservices:\n  - name: e\n    url: http://{echo}\n    routes:\n      - paths: [/two]\n"
    );
    let res = s
        .http
        .post(format!("{}/config", s.admin))
        .header("content-type", "text/yaml")
        .body(yaml)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 201);
    assert_eq!(status("/one").await, 404);
    assert_eq!(status("/two").await, 200);

    // A form `config` field holding the document.
    let doc = format!(
        "{{\"_format_version\": \"1.1\", \"services\": [{{\"name\": \"e\", \"url\": \"http://{echo}\", \"routes\": [{{\"paths\": [\"/three\"]}}]}}]}}"
    );
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("config", &doc)
        .finish();
    let (st, _) = s.form(Method::POST, "/config", &body).await;
    assert_eq!(st, 201);
    assert_eq!(status("/three").await, 200);

    // Invalid: every error reported at its place in the file, nothing applied.
    let (st, err) = s
        .json(
            Method::POST,
            "/config",
            json!({"_format_version": "3.0",
                   "services": [
                       {"name": "ok", "host": "ok.test", "routes": [{"paths": ["x"]}]},
                       {"name": "ok", "port": 99999}
                   ],
                   "routes": [{"paths": ["/r"], "service": "ghost"}],
                   "bogus": []}),
        )
        .await;
    assert_eq!(st, 400, "{err}");
    assert_eq!(err["code"], 14);
    assert_eq!(err["name"], "invalid declarative configuration");
    let msg = err["message"].as_str().unwrap();
    assert!(msg.starts_with("declarative config is invalid: "), "{msg}");
    let f = &err["fields"];
    assert_eq!(
        f["services"][0]["routes"][0]["paths"][0],
        "should start with: / (fixed path) or ~/ (regex path)"
    );
    assert_eq!(
        f["services"][1]["port"],
        "value should be between 0 and 65535"
    );
    assert!(f["services"][1]["@entity"].is_null());
    assert!(
        f["routes"][0]["service"]
            .as_str()
            .is_some_and(|m| m.contains("ghost")),
        "{f}"
    );
    assert_eq!(f["bogus"], "unknown field");
    assert_eq!(
        status("/three").await,
        200,
        "the previous configuration stays"
    );

    for (doc, field) in [
        (json!({"services": []}), "required field missing"),
        (
            json!({"_format_version": "4.0"}),
            "expected one of: 1.1, 2.1, 3.0",
        ),
    ] {
        let (st, err) = s.json(Method::POST, "/config", doc).await;
        assert_eq!(
            (st, err["fields"]["_format_version"].clone()),
            (400, json!(field))
        );
    }
    let res = s
        .http
        .post(format!("{}/config", s.admin))
        .header("content-type", "application/yaml")
        .body("services: [")
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.expect("json");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .starts_with("failed parsing declarative configuration")
    );
    up.cancel();
}

/// With a database, `/config` is not available, as in Kong.
#[tokio::test]
async fn config_endpoint_needs_db_less_mode() {
    let s = common::start(portcullis_db::testing::TestDb::sqlite().await).await;
    let msg = json!({"message": "this endpoint is only available when Kong is configured to not use a database"});
    assert_eq!(s.get("/config").await, (400, msg.clone()));
    assert_eq!(
        s.json(Method::POST, "/config", json!({"_format_version": "3.0"}))
            .await,
        (400, msg)
    );
}
