//! The Admin API over real HTTP, on SQLite and PostgreSQL.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use reqwest::Method;
use serde_json::{Value, json};

use common::start;

/// The tutorial's own calls (`kong.config.sh`), byte for byte: form bodies, trailing slash.
async fn tutorial_calls(db: portcullis_db::testing::TestDb) {
    let s = start(db).await;
    let (status, svc) = s
        .form(
            Method::POST,
            "/services/",
            "name=secure-api&url=http://oathkeeper:4455",
        )
        .await;
    assert_eq!(status, 201, "{svc}");
    assert_eq!(svc["name"], "secure-api");
    assert_eq!(svc["protocol"], "http");
    assert_eq!(svc["host"], "oathkeeper");
    assert_eq!(svc["port"], 4455);
    assert_eq!(svc["path"], Value::Null);
    assert_eq!(svc["retries"], 5);
    assert_eq!(svc["connect_timeout"], 60000);
    assert_eq!(svc["enabled"], true);
    assert!(
        svc["created_at"]
            .as_i64()
            .is_some_and(|t| t > 1_600_000_000 && t < 10_000_000_000)
    );

    let (status, route) = s
        .form(
            Method::POST,
            "/services/secure-api/routes",
            "paths[]=/&name=hello",
        )
        .await;
    assert_eq!(status, 201, "{route}");
    assert_eq!(route["paths"], json!(["/"]));
    assert_eq!(route["name"], "hello");
    assert_eq!(route["service"], json!({"id": svc["id"]}));
    assert_eq!(route["strip_path"], true);
    assert_eq!(route["protocols"], json!(["http", "https"]));
    assert_eq!(route["methods"], Value::Null);

    // Repeated keys and dotted foreign keys, as other Kong clients send them.
    let (status, r2) = s
        .form(
            Method::POST,
            "/routes",
            &format!(
                "paths=/a&paths=/b&service.id={}&strip_path=false&regex_priority=3",
                svc["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(status, 201, "{r2}");
    assert_eq!(r2["paths"], json!(["/a", "/b"]));
    assert_eq!(r2["strip_path"], false);
    assert_eq!(r2["regex_priority"], 3);
    assert_eq!(r2["name"], Value::Null);
}
on_both!(tutorial, tutorial_calls);

async fn crud(db: portcullis_db::testing::TestDb) {
    let s = start(db).await;
    let (_, svc) = s
        .json(
            Method::POST,
            "/services",
            json!({"name": "a", "url": "http://up.test/base"}),
        )
        .await;
    let id = svc["id"].as_str().unwrap().to_string();
    assert_eq!(svc["path"], "/base");
    assert_eq!(s.get("/services/a").await.1["id"], id.as_str());
    assert_eq!(s.get(&format!("/services/{id}")).await.1["name"], "a");

    let (status, patched) = s
        .json(
            Method::PATCH,
            "/services/a",
            json!({"retries": 3, "tags": ["x"]}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (patched["retries"].clone(), patched["host"].clone()),
        (json!(3), json!("up.test"))
    );
    assert_eq!(patched["created_at"], svc["created_at"]);
    let (_, patched) = s
        .form(Method::PATCH, "/services/a", "url=https://other.test")
        .await;
    assert_eq!(
        (patched["protocol"].clone(), patched["port"].clone()),
        (json!("https"), json!(443))
    );
    assert_eq!(patched["path"], Value::Null);
    assert_eq!(patched["retries"], 3);

    // PUT upserts by name: 200 both times, same id the second time.
    let (status, put) = s
        .json(Method::PUT, "/services/b", json!({"host": "b.test"}))
        .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(put["name"], "b");
    let (_, put2) = s
        .json(Method::PUT, "/services/b", json!({"host": "b2.test"}))
        .await;
    assert_eq!(
        (put2["id"].clone(), put2["host"].clone()),
        (put["id"].clone(), json!("b2.test"))
    );

    // Pagination: size=1 walks both services through `next`.
    let (_, page) = s.get("/services?size=1").await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
    let next = page["next"].as_str().expect("next").to_string();
    assert!(
        next.starts_with("/services?offset=") && next.ends_with("&size=1"),
        "{next}"
    );
    let (_, page2) = s.get(&next).await;
    assert_eq!(page2["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(page2["next"], Value::Null);
    assert_ne!(page["data"][0]["id"], page2["data"][0]["id"]);
    assert_eq!(s.get("/routes").await.1, json!({"data": [], "next": null}));

    // Routes: create under a service by name, read, patch, list nested, delete.
    let (status, r) = s
        .json(
            Method::POST,
            "/routes",
            json!({"name": "r", "hosts": ["h.test"], "service": {"name": "a"}}),
        )
        .await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["service"]["id"], id.as_str());
    let (status, r) = s
        .json(
            Method::PATCH,
            "/routes/r",
            json!({"paths": ["/p"], "methods": ["GET"]}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["paths"].clone(), r["hosts"].clone()),
        (json!(["/p"]), json!(["h.test"]))
    );
    let (_, nested) = s.get("/services/a/routes").await;
    assert_eq!(nested["data"][0]["id"], r["id"]);
    assert_eq!(s.get("/services/b/routes").await.1["data"], json!([]));
    let (status, put) = s
        .json(Method::PUT, "/routes/r2", json!({"paths": ["/q"]}))
        .await;
    assert_eq!(
        (status, put["name"].clone(), put["service"].clone()),
        (200, json!("r2"), Value::Null)
    );

    // A referenced service cannot go; once its routes are gone it can. DELETE is idempotent.
    let (status, body) = delete(&s, "/services/a").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"code": 4, "name": "foreign key violation",
               "message": "an existing 'routes' entity references this 'services' entity",
               "fields": {"@referenced_by": "routes"}})
    );
    assert_eq!(delete(&s, "/routes/r").await.0, 204);
    assert_eq!(delete(&s, "/routes/r").await.0, 204);
    assert_eq!(delete(&s, "/services/a").await.0, 204);
    assert_eq!(
        s.get("/services/a").await,
        (404, json!({"message": "Not found"}))
    );
    assert_eq!(delete(&s, "/services/a").await.0, 204);
}
on_both!(crud_round_trip, crud);

async fn delete(s: &common::Stack, path: &str) -> (u16, Value) {
    let res = s
        .http
        .delete(format!("{}{path}", s.admin))
        .send()
        .await
        .expect("delete");
    common::status_json(res).await
}

async fn errors(db: portcullis_db::testing::TestDb) {
    let s = start(db).await;
    s.json(
        Method::POST,
        "/services",
        json!({"name": "taken", "host": "h"}),
    )
    .await;

    let (status, body) = s
        .json(
            Method::POST,
            "/services",
            json!({"name": "taken", "host": "h"}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        body,
        json!({"code": 5, "name": "unique constraint violation",
               "message": "UNIQUE violation detected on '{name=\"taken\"}'",
               "fields": {"name": "taken"}})
    );

    let (status, body) = s.form(Method::POST, "/services", "name=x&port=abc").await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], 2);
    assert_eq!(body["name"], "schema violation");
    assert_eq!(body["fields"]["host"], "required field missing");
    assert_eq!(body["fields"]["port"], "expected an integer");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("2 schema violations ("),
        "{body}"
    );

    let (status, body) = s
        .json(
            Method::POST,
            "/routes",
            json!({"paths": ["nope"], "bogus": 1}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["fields"]["paths"],
        json!(["should start with: / (fixed path) or ~/ (regex path)"])
    );
    assert_eq!(body["fields"]["bogus"], "unknown field");

    let (status, body) = s
        .form(Method::POST, "/routes", "paths[]=/&service.name=ghost")
        .await;
    assert_eq!((status, body["code"].clone()), (400, json!(13)), "{body}");
    let ghost = uuid::Uuid::new_v4();
    let (status, body) = s
        .json(
            Method::POST,
            "/routes",
            json!({"paths": ["/"], "service": {"id": ghost}}),
        )
        .await;
    assert_eq!((status, body["code"].clone()), (400, json!(4)), "{body}");
    assert_eq!(body["fields"], json!({"service": {"id": ghost}}));
    assert_eq!(
        s.form(Method::POST, "/services/ghost/routes", "paths[]=/")
            .await,
        (404, json!({"message": "Not found"}))
    );

    let (_, svc) = s.get("/services/taken").await;
    let (status, body) = s
        .json(
            Method::POST,
            "/services",
            json!({"id": svc["id"], "host": "h"}),
        )
        .await;
    assert_eq!((status, body["code"].clone()), (400, json!(3)), "{body}");

    // Transport-level errors.
    let res = s
        .http
        .post(format!("{}/services", s.admin))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .expect("req");
    assert_eq!(res.status().as_u16(), 415);
    let res = s
        .http
        .post(format!("{}/services", s.admin))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("req");
    assert_eq!(
        common::status_json(res).await,
        (400, json!({"message": "Cannot parse JSON body"}))
    );
    let res = s
        .http
        .delete(format!("{}/services", s.admin))
        .send()
        .await
        .expect("req");
    assert_eq!(
        common::status_json(res).await,
        (405, json!({"message": "Method not allowed"}))
    );
    assert_eq!(
        s.get("/nowhere").await,
        (404, json!({"message": "Not found"}))
    );
    let (status, body) = s.get("/services?size=abc").await;
    assert_eq!(
        (status, body["code"].clone(), body["message"].clone()),
        (400, json!(9), json!("size must be a number"))
    );
    let (status, body) = s.get("/services?offset=!!!").await;
    assert_eq!((status, body["code"].clone()), (400, json!(7)));
    assert_eq!(s.get("/services/not-there").await.0, 404);
    let (status, _) = s
        .json(Method::PATCH, "/routes/not-there", json!({"paths": ["/"]}))
        .await;
    assert_eq!(status, 404);
}
on_both!(error_shapes, errors);

async fn info(db: portcullis_db::testing::TestDb) {
    let s = start(db).await;
    let res = s
        .http
        .get(format!("{}/", s.admin))
        .send()
        .await
        .expect("root");
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let (status, root) = common::status_json(res).await;
    assert_eq!(status, 200);
    assert_eq!(root["version"], portcullis_gateway::KONG_VERSION);
    assert_eq!(root["tagline"], "Welcome to kong");
    let (status, st) = s.get("/status").await;
    assert_eq!(
        (status, st["database"]["reachable"].clone()),
        (200, json!(true))
    );
}
on_both!(root_and_status, info);

/// With `admin_token` set, every Admin API request needs `Kong-Admin-Token`; a missing or
/// wrong token is a 401 in Kong's shape, and the proxy is unaffected.
#[tokio::test]
async fn admin_token_guards_the_admin_api() {
    let db = portcullis_db::testing::TestDb::sqlite().await;
    db.migrate(&[portcullis_gateway::migrations()])
        .await
        .expect("migrate");
    let options = portcullis_gateway::GatewayOptions {
        admin_token: Some(portcullis_core::Secret::new("s3cret".to_string())),
        ..Default::default()
    };
    let handle = (*db).clone();
    let s = common::start_with(handle, options, Some(db)).await;
    let unauthorized =
        json!({"message": "Invalid credentials. Token or User credentials required"});
    assert_eq!(s.get("/services").await, (401, unauthorized.clone()));
    for token in ["wrong", "s3cret2", ""] {
        let res = s
            .http
            .get(format!("{}/services", s.admin))
            .header("kong-admin-token", token)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 401);
        assert!(res.headers().contains_key("access-control-allow-origin"));
    }
    let res = s
        .http
        .post(format!("{}/services", s.admin))
        .header("Kong-Admin-Token", "s3cret")
        .json(&json!({"name": "a", "url": "http://a.test"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 201);
    let res = s
        .http
        .get(format!("{}/services/a", s.admin))
        .header("Kong-Admin-Token", "s3cret")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    // The proxy never asks for it.
    let res = s
        .http
        .get(format!("{}/nowhere", s.proxy))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 404);
}
