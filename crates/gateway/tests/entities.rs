//! The Admin API beyond services and routes (issue 3 §1): nesting, tags, consumers, plugins,
//! upstreams and targets, schemas and endpoints, OPTIONS and 405 — on SQLite and PostgreSQL.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use portcullis_db::testing::TestDb;
use reqwest::Method;
use serde_json::{Value, json};

use common::{Stack, start};

async fn delete(s: &Stack, path: &str) -> (u16, Value) {
    let res = s
        .http
        .delete(format!("{}{path}", s.admin))
        .send()
        .await
        .expect("delete");
    common::status_json(res).await
}

fn ids(page: &Value) -> Vec<String> {
    let mut v: Vec<String> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["name"].as_str().unwrap_or("").to_string())
        .collect();
    v.sort();
    v
}

async fn nesting_and_tags(db: TestDb) {
    let s = start(db).await;
    for (name, tags) in [
        ("a", json!(["x", "y"])),
        ("b", json!(["x"])),
        ("c", json!(["z"])),
    ] {
        let (st, body) = s
            .json(
                Method::POST,
                "/services",
                json!({"name": name, "host": "up.test", "tags": tags}),
            )
            .await;
        assert_eq!(st, 201, "{body}");
    }
    let (st, route) = s
        .json(
            Method::POST,
            "/services/a/routes",
            json!({"name": "ra", "paths": ["/a"], "tags": ["x"]}),
        )
        .await;
    assert_eq!(st, 201, "{route}");

    // Nested item endpoints see only their parent's children.
    assert_eq!(s.get("/services/a/routes/ra").await.1["id"], route["id"]);
    let rid = route["id"].as_str().unwrap();
    assert_eq!(s.get(&format!("/services/a/routes/{rid}")).await.0, 200);
    assert_eq!(
        s.get("/services/b/routes/ra").await,
        (404, json!({"message": "Not found"}))
    );
    let (st, patched) = s
        .json(
            Method::PATCH,
            "/services/a/routes/ra",
            json!({"paths": ["/a2"]}),
        )
        .await;
    assert_eq!((st, patched["paths"].clone()), (200, json!(["/a2"])));
    assert_eq!(
        s.json(Method::PATCH, "/services/b/routes/ra", json!({}))
            .await
            .0,
        404
    );
    let (st, put) = s
        .json(
            Method::PUT,
            "/services/b/routes/rb",
            json!({"paths": ["/b"]}),
        )
        .await;
    assert_eq!(st, 200, "{put}");
    assert_eq!(put["service"]["id"], s.get("/services/b").await.1["id"]);

    // The parent seen from the child.
    let (st, svc) = s.get("/routes/ra/service").await;
    assert_eq!((st, svc["name"].clone()), (200, json!("a")));
    let (st, svc) = s
        .json(Method::PATCH, "/routes/ra/service", json!({"retries": 1}))
        .await;
    assert_eq!((st, svc["retries"].clone()), (200, json!(1)));
    assert_eq!(
        delete(&s, "/routes/ra/service").await,
        (405, json!({"message": "Method not allowed"}))
    );
    s.json(
        Method::POST,
        "/routes",
        json!({"name": "lonely", "hosts": ["l.test"]}),
    )
    .await;
    assert_eq!(s.get("/routes/lonely/service").await.0, 404);
    assert_eq!(delete(&s, "/routes/lonely/service").await.0, 404);

    // Tag filters: `,` is AND, `/` is OR, mixing is invalid.
    assert_eq!(ids(&s.get("/services?tags=x").await.1), ["a", "b"]);
    assert_eq!(ids(&s.get("/services?tags=x,y").await.1), ["a"]);
    assert_eq!(ids(&s.get("/services?tags=y/z").await.1), ["a", "c"]);
    assert_eq!(ids(&s.get("/routes?tags=x").await.1), ["ra"]);
    let (st, body) = s.get("/services?tags=x,y/z").await;
    assert_eq!(st, 400);
    assert_eq!(body["code"], 11);
    assert_eq!(body["name"], "invalid options");
    let (_, page) = s.get("/services?tags=x&size=1").await;
    let next = page["next"].as_str().expect("next");
    assert!(
        next.contains("&tags=x") && next.contains("&size=1"),
        "{next}"
    );
    assert_eq!(ids(&s.get(next).await.1).len(), 1);
    // Tag changes follow updates.
    s.json(Method::PATCH, "/services/b", json!({"tags": ["z"]}))
        .await;
    assert_eq!(ids(&s.get("/services?tags=z").await.1), ["b", "c"]);

    // /tags and /tags/{tag}.
    let (st, all) = s.get("/tags").await;
    assert_eq!(st, 200);
    let rows = all["data"].as_array().expect("rows");
    assert_eq!(rows.len(), 5, "{all}");
    assert!(
        rows.iter()
            .any(|r| r["entity_name"] == "routes" && r["tag"] == "x")
    );
    let (_, x) = s.get("/tags/x").await;
    let names: Vec<&str> = x["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["entity_name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"services") && names.contains(&"routes"));
    let (_, first) = s.get("/tags?size=2").await;
    let (_, second) = s.get(first["next"].as_str().expect("next")).await;
    assert_eq!(second["data"].as_array().map(Vec::len), Some(2));
    assert_ne!(first["data"][0], second["data"][0]);
    // Deleting an entity removes its tags.
    delete(&s, "/services/a/routes/ra").await;
    assert_eq!(
        s.get("/tags/x").await.1["data"].as_array().map(Vec::len),
        Some(1)
    );
}
on_both!(nesting_tags, nesting_and_tags);

async fn consumers_and_plugins(db: TestDb) {
    let s = start(db).await;
    let (st, body) = s.json(Method::POST, "/consumers", json!({})).await;
    assert_eq!(st, 400);
    assert_eq!(
        body["message"],
        "schema violation (at least one of these fields must be non-empty: 'custom_id', 'username')"
    );
    let (st, alice) = s
        .form(
            Method::POST,
            "/consumers",
            "username=alice&custom_id=c1&tags[]=t",
        )
        .await;
    assert_eq!(st, 201, "{alice}");
    assert_eq!(alice["tags"], json!(["t"]));
    let (st, bob) = s
        .json(Method::POST, "/consumers", json!({"custom_id": "c2"}))
        .await;
    assert_eq!((st, bob["username"].clone()), (201, Value::Null));
    let (st, body) = s
        .json(Method::POST, "/consumers", json!({"username": "alice"}))
        .await;
    assert_eq!(st, 409);
    assert_eq!(
        body["message"],
        "UNIQUE violation detected on '{username=\"alice\"}'"
    );
    assert_eq!(s.get("/consumers/alice").await.1["id"], alice["id"]);
    let (_, found) = s.get("/consumers?custom_id=c2").await;
    assert_eq!(found["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(found["data"][0]["id"], bob["id"]);

    s.json(
        Method::POST,
        "/services",
        json!({"name": "svc", "host": "h.test"}),
    )
    .await;
    s.json(
        Method::POST,
        "/services/svc/routes",
        json!({"name": "r", "paths": ["/"]}),
    )
    .await;

    // A global plugin, with Kong's defaults.
    let (st, global) = s
        .json(
            Method::POST,
            "/plugins",
            json!({"name": "cors", "config": {"origins": ["*"]}}),
        )
        .await;
    assert_eq!(st, 201, "{global}");
    assert_eq!(global["enabled"], true);
    assert_eq!(
        global["protocols"],
        json!(["grpc", "grpcs", "http", "https"])
    );
    assert_eq!(global["service"], Value::Null);
    assert_eq!(global["config"], json!({"origins": ["*"]}));
    // Scoped by name reference, and through nested endpoints.
    let (st, scoped) = s
        .json(
            Method::POST,
            "/plugins",
            json!({"name": "cors", "service": {"name": "svc"}, "instance_name": "svc-cors"}),
        )
        .await;
    assert_eq!(st, 201, "{scoped}");
    let svc_id = s.get("/services/svc").await.1["id"].clone();
    assert_eq!(scoped["service"], json!({"id": svc_id}));
    assert_eq!(s.get("/plugins/svc-cors").await.1["id"], scoped["id"]);
    let (st, on_route) = s
        .form(
            Method::POST,
            "/routes/r/plugins",
            "name=key-auth&config.key_names[]=apikey",
        )
        .await;
    assert_eq!(st, 201, "{on_route}");
    assert_eq!(on_route["config"], json!({"key_names": ["apikey"]}));
    let (st, on_consumer) = s
        .json(
            Method::POST,
            "/consumers/alice/plugins",
            json!({"name": "rate-limiting", "config": {"minute": 5}, "enabled": false}),
        )
        .await;
    assert_eq!(st, 201, "{on_consumer}");
    assert_eq!(on_consumer["consumer"]["id"], alice["id"]);
    assert_eq!(
        s.get("/services/svc/plugins").await.1["data"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        s.get("/routes/r/plugins").await.1["data"][0]["name"],
        "key-auth"
    );
    assert_eq!(
        s.get("/plugins").await.1["data"].as_array().map(Vec::len),
        Some(4)
    );

    // Kong's errors: one plugin per name and scope, unknown plugins, consumer-less ones,
    // unresolvable references.
    let (st, body) = s
        .json(
            Method::POST,
            "/services/svc/plugins",
            json!({"name": "cors"}),
        )
        .await;
    assert_eq!(st, 409, "{body}");
    assert_eq!(
        body["message"],
        format!(
            "UNIQUE violation detected on '{{consumer=null,name=\"cors\",route=null,service={{id=\"{}\"}}}}'",
            svc_id.as_str().unwrap()
        )
    );
    let (st, body) = s
        .json(Method::POST, "/plugins", json!({"name": "nope"}))
        .await;
    assert_eq!(st, 400);
    assert_eq!(
        body["fields"]["name"],
        "plugin 'nope' not enabled; add it to the 'plugins' configuration property"
    );
    let (st, body) = s
        .json(
            Method::POST,
            "/plugins",
            json!({"name": "key-auth", "consumer": {"username": "alice"}}),
        )
        .await;
    assert_eq!(
        (st, body["fields"]["consumer"].clone()),
        (400, json!("value must be null"))
    );
    let (st, body) = s
        .json(
            Method::POST,
            "/plugins",
            json!({"name": "cors", "route": {"name": "ghost"}}),
        )
        .await;
    assert_eq!((st, body["code"].clone()), (400, json!(13)), "{body}");
    let (st, body) = s
        .json(
            Method::POST,
            "/plugins",
            json!({"name": "cors", "config": 3, "protocols": ["ftp"]}),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(body["fields"]["config"], "expected a record");
    // PATCH keeps the scope; toggling `enabled`.
    let (st, p) = s
        .json(
            Method::PATCH,
            "/plugins/svc-cors",
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(
        (st, p["enabled"].clone(), p["service"].clone()),
        (200, json!(false), json!({"id": svc_id}))
    );

    // Deleting a route or consumer takes its plugins along; a service still has routes.
    assert_eq!(delete(&s, "/routes/r").await.0, 204);
    assert_eq!(
        s.get(&format!("/plugins/{}", on_route["id"].as_str().unwrap()))
            .await
            .0,
        404
    );
    assert_eq!(delete(&s, "/consumers/alice").await.0, 204);
    assert_eq!(
        s.get("/plugins").await.1["data"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(delete(&s, "/services/svc").await.0, 204);
    assert_eq!(
        s.get("/plugins").await.1["data"].as_array().map(Vec::len),
        Some(1)
    );
}
on_both!(consumers_plugins, consumers_and_plugins);

async fn upstreams_and_targets(db: TestDb) {
    let s = start(db).await;
    let (st, up) = s
        .json(
            Method::POST,
            "/upstreams",
            json!({"name": "backend.internal"}),
        )
        .await;
    assert_eq!(st, 201, "{up}");
    assert_eq!(up["algorithm"], "round-robin");
    assert_eq!(up["hash_on"], "none");
    assert_eq!(up["hash_on_cookie_path"], "/");
    assert_eq!(up["slots"], 10000);
    assert_eq!(up["use_srv_name"], false);
    assert_eq!(up["healthchecks"]["active"]["http_path"], "/");
    assert_eq!(
        up["healthchecks"]["passive"]["unhealthy"]["http_statuses"],
        json!([429, 500, 503])
    );
    assert_eq!(up["healthchecks"]["threshold"], 0);
    let (st, up2) = s
        .json(
            Method::PUT,
            "/upstreams/hashing",
            json!({"hash_on": "header", "hash_on_header": "x-user",
                   "healthchecks": {"active": {"healthy": {"interval": 5}}}}),
        )
        .await;
    assert_eq!(st, 200, "{up2}");
    assert_eq!(up2["algorithm"], "consistent-hashing");
    assert_eq!(up2["healthchecks"]["active"]["healthy"]["interval"], 5);
    assert_eq!(up2["healthchecks"]["active"]["healthy"]["successes"], 0);
    for (body, field, msg) in [
        (
            json!({"name": "10.0.0.1"}),
            "name",
            "Invalid name ('10.0.0.1'); no ip addresses allowed",
        ),
        (
            json!({"name": "a.test:80"}),
            "name",
            "Invalid name ('a.test:80'); no port allowed",
        ),
        (
            json!({"name": "u", "slots": 5}),
            "slots",
            "value should be between 10 and 65536",
        ),
        (
            json!({"name": "u", "hash_on": "header"}),
            "hash_on_header",
            "required field missing",
        ),
        (
            json!({"name": "u", "healthchecks": {"active": {"nope": 1}}}),
            "healthchecks",
            "",
        ),
    ] {
        let (st, err) = s.json(Method::POST, "/upstreams", body).await;
        assert_eq!(st, 400, "{err}");
        if msg.is_empty() {
            assert!(err["fields"][field].is_object(), "{err}");
        } else {
            assert_eq!(err["fields"][field], msg, "{err}");
        }
    }

    // Targets live under their upstream; the port defaults to 8000.
    let (st, t) = s
        .form(
            Method::POST,
            "/upstreams/backend.internal/targets",
            "target=10.0.0.1&weight=50",
        )
        .await;
    assert_eq!(st, 201, "{t}");
    assert_eq!(t["target"], "10.0.0.1:8000");
    assert_eq!(
        (t["weight"].clone(), t["upstream"]["id"].clone()),
        (json!(50), up["id"].clone())
    );
    assert!(t["created_at"].is_number());
    let (st, body) = s
        .json(
            Method::POST,
            "/upstreams/backend.internal/targets",
            json!({"target": "10.0.0.1:8000"}),
        )
        .await;
    assert_eq!(st, 409, "{body}");
    // The same address under another upstream is fine.
    assert_eq!(
        s.json(
            Method::POST,
            "/upstreams/hashing/targets",
            json!({"target": "10.0.0.1"})
        )
        .await
        .0,
        201
    );
    let (st, got) = s
        .get("/upstreams/backend.internal/targets/10.0.0.1:8000")
        .await;
    assert_eq!((st, got["id"].clone()), (200, t["id"].clone()));
    assert_eq!(
        s.get("/upstreams/backend.internal/targets/10.0.0.1")
            .await
            .0,
        200
    );
    let (st, w) = s
        .json(
            Method::PATCH,
            "/upstreams/backend.internal/targets/10.0.0.1",
            json!({"weight": 0}),
        )
        .await;
    assert_eq!((st, w["weight"].clone()), (200, json!(0)));
    let (st, err) = s
        .json(
            Method::POST,
            "/upstreams/backend.internal/targets",
            json!({"target": "bad host"}),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(
        err["fields"]["target"],
        "Invalid target ('bad host'); not a valid hostname or ip address"
    );
    assert_eq!(
        s.get("/targets").await.0,
        404,
        "top-level targets are not exposed"
    );
    assert_eq!(
        s.get("/upstreams/backend.internal/targets").await.1["data"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // Deleting the upstream deletes its targets.
    assert_eq!(delete(&s, "/upstreams/backend.internal").await.0, 204);
    let (st, _) = s
        .json(
            Method::POST,
            "/upstreams",
            json!({"name": "backend.internal", "id": up["id"]}),
        )
        .await;
    assert_eq!(st, 201);
    assert_eq!(
        s.get("/upstreams/backend.internal/targets").await.1,
        json!({"data": [], "next": null})
    );
}
on_both!(upstreams_targets, upstreams_and_targets);

#[tokio::test]
async fn schemas_endpoints_options_and_405() {
    let s = start(TestDb::sqlite().await).await;
    let (st, schema) = s.get("/schemas/routes").await;
    assert_eq!(st, 200);
    let fields = schema["fields"].as_array().expect("fields");
    let field = |name: &str| {
        fields
            .iter()
            .find_map(|f| f.get(name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        field("strip_path"),
        json!({"type": "boolean", "default": true})
    );
    assert_eq!(field("https_redirect_status_code")["default"], 426);
    assert_eq!(
        field("service"),
        json!({"type": "foreign", "reference": "services"})
    );
    assert_eq!(field("name")["unique"], true);
    assert_eq!(field("id")["uuid"], true);
    assert_eq!(s.get("/schemas/upstreams").await.0, 200);
    assert_eq!(
        s.get("/schemas/nope").await,
        (404, json!({"message": "No entity named 'nope'"}))
    );

    let (_, endpoints) = s.get("/endpoints").await;
    let list: Vec<&str> = endpoints["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for e in [
        "/services/{services}/routes/{routes}",
        "/upstreams/{upstreams}/targets",
        "/consumers/{consumers}/plugins",
        "/tags/{tags}",
        "/routes/{routes}/service",
    ] {
        assert!(list.contains(&e), "{e} missing from {list:?}");
    }

    let res = s
        .http
        .request(Method::OPTIONS, format!("{}/services/x", s.admin))
        .send()
        .await
        .expect("options");
    assert_eq!(res.status(), 204);
    assert_eq!(
        res.headers()["allow"],
        "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"
    );
    assert_eq!(
        res.headers()["access-control-allow-methods"],
        "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"
    );
    let res = s
        .http
        .request(Method::OPTIONS, format!("{}/consumers", s.admin))
        .send()
        .await
        .expect("options");
    assert_eq!(res.headers()["allow"], "GET, HEAD, OPTIONS, POST");
    let (st, body) = s.json(Method::DELETE, "/consumers", json!({})).await;
    assert_eq!((st, body), (405, json!({"message": "Method not allowed"})));
    let (st, _) = s.json(Method::POST, "/status", json!({})).await;
    assert_eq!(st, 405);
    let res = s
        .http
        .head(format!("{}/services", s.admin))
        .send()
        .await
        .expect("head");
    assert_eq!(res.status(), 200);
}
