//! The admin API over real HTTP, on SQLite and PostgreSQL.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{assert_schema, create_identity, get_json, native, native_login, start};
use portcullis_db::testing::TestDb;
use serde_json::{Value, json};

async fn identities_crud(db: TestDb) {
    let s = start(db).await;
    let api = native();
    let res = api
        .post(format!("{}/admin/identities", s.admin))
        .json(
            &json!({"schema_id": "default", "traits": {"email": "frank@example.com"},
            "credentials": {"password": {"config": {"password": "correct horse battery staple"}}},
            "metadata_public": {"plan": "free"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let created: Value = res.json().await.unwrap();
    assert_schema("identity", &created);
    let id = created["id"].as_str().unwrap().to_string();
    assert!(
        location.ends_with(&format!("/admin/identities/{id}")),
        "{location}"
    );
    assert_eq!(
        created["credentials"]["password"]["identifiers"],
        json!(["frank@example.com"])
    );
    assert!(created["credentials"]["password"].get("config").is_none());
    assert_eq!(
        created["schema_url"],
        format!("{}/schemas/ZGVmYXVsdA", s.public)
    );

    // The imported password logs in natively.
    let res = native_login(&s, "frank@example.com", "correct horse battery staple").await;
    assert_eq!(res.status(), 200);

    // Listed, fetched with and without the /admin prefix.
    let res = api
        .get(format!("{}/admin/identities", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("link"));
    let list: Value = res.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_schema("identity", &list[0]);
    for path in [
        format!("/admin/identities/{id}"),
        format!("/identities/{id}"),
    ] {
        let res = api.get(format!("{}{path}", s.admin)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let got: Value = res.json().await.unwrap();
        assert_eq!(got["traits"]["email"], "frank@example.com");
        assert_eq!(got["metadata_public"]["plan"], "free");
    }

    // Conflicts and invalid traits.
    let res = api
        .post(format!("{}/admin/identities", s.admin))
        .json(&json!({"schema_id": "default", "traits": {"email": "frank@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    assert_schema("errorGeneric", &res.json::<Value>().await.unwrap());
    let res = api
        .post(format!("{}/admin/identities", s.admin))
        .json(&json!({"schema_id": "default", "traits": {"email": 42}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_schema("errorGeneric", &res.json::<Value>().await.unwrap());
    let res = api
        .post(format!("{}/admin/identities", s.admin))
        .json(&json!({"traits": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // Delete, then 404.
    let res = api
        .delete(format!("{}/admin/identities/{id}", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = api
        .get(format!("{}/admin/identities/{id}", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let err: Value = res.json().await.unwrap();
    assert_schema("errorGeneric", &err);
    assert_eq!(err["error"]["code"], 404);
    let res = api
        .delete(format!("{}/identities/not-a-uuid", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // Health and schemas.
    for base in [&s.public, &s.admin] {
        let res = api
            .get(format!("{base}/health/alive"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    }
    let res = api
        .get(format!("{}/admin/health/ready", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let schemas = get_json(&api, format!("{}/schemas", s.public)).await;
    assert_schema("identitySchemas", &schemas);
    assert_eq!(schemas[0]["id"], "default");
    for id in ["default", "ZGVmYXVsdA"] {
        let res = api
            .get(format!("{}/schemas/{id}", s.public))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let schema: Value = res.json().await.unwrap();
        assert_eq!(schema["title"], "Person");
    }
    let res = api
        .get(format!("{}/schemas/nope", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = api
        .get(format!("{}/no/such/route", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_schema("errorGeneric", &res.json::<Value>().await.unwrap());
}
on_both!(identities_crud);

async fn identities_update_and_patch(db: TestDb) {
    let s = start(db).await;
    let api = native();
    let created = create_identity(&s, "gina@example.com").await;
    let id = created["id"].as_str().unwrap();
    let url = format!("{}/admin/identities/{id}", s.admin);

    // PUT replaces traits, state and metadata; identifiers and addresses follow the traits.
    let res = api
        .put(&url)
        .json(&json!({"schema_id": "default", "state": "inactive",
            "traits": {"email": "gina2@example.com"}, "metadata_admin": {"tier": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    assert_schema("identity", &updated);
    assert_eq!(updated["state"], "inactive");
    assert!(updated["state_changed_at"].is_string());
    assert_eq!(updated["traits"]["email"], "gina2@example.com");
    assert_eq!(updated["metadata_admin"], json!({"tier": 2}));
    assert_eq!(updated["metadata_public"], Value::Null);
    assert_eq!(
        updated["credentials"]["password"]["identifiers"],
        json!(["gina2@example.com"])
    );
    assert_eq!(
        updated["verifiable_addresses"][0]["value"],
        "gina2@example.com"
    );

    // Invalid traits, unknown states and missing fields are 400; unknown ids 404.
    for body in [
        json!({"schema_id": "default", "state": "active", "traits": {"email": "not-an-email"}}),
        json!({"schema_id": "default", "state": "sleeping", "traits": {"email": "g@example.com"}}),
        json!({"schema_id": "default", "traits": {"email": "g@example.com"}}),
        json!({"schema_id": "nope", "state": "active", "traits": {"email": "g@example.com"}}),
    ] {
        let res = api.put(&url).json(&body).send().await.unwrap();
        assert_eq!(res.status(), 400, "{body}");
        assert_schema("errorGeneric", &res.json::<Value>().await.unwrap());
    }
    let res = api
        .put(format!(
            "{}/admin/identities/{}",
            s.admin,
            uuid_like_missing()
        ))
        .json(&json!({"schema_id": "default", "state": "active", "traits": {"email": "x@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // PUT with a new password replaces the credential; the new one logs in.
    let res = api
        .put(&url)
        .json(&json!({"schema_id": "default", "state": "active",
            "traits": {"email": "gina2@example.com"},
            "credentials": {"password": {"config": {"password": "a different passphrase 42"}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = native_login(&s, "gina2@example.com", "a different passphrase 42").await;
    assert_eq!(res.status(), 200);

    // A second identity's email may not be taken over: 409.
    create_identity(&s, "hank@example.com").await;
    let res = api
        .put(&url)
        .json(&json!({"schema_id": "default", "state": "active", "traits": {"email": "hank@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);

    // PATCH applies RFC 6902 operations.
    let res = api
        .patch(&url)
        .header("content-type", "application/json-patch+json")
        .json(&json!([
            {"op": "replace", "path": "/traits/email", "value": "gina3@example.com"},
            {"op": "add", "path": "/metadata_public", "value": {"plan": "pro"}},
            {"op": "remove", "path": "/metadata_admin"},
            {"op": "test", "path": "/state", "value": "active"}
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let patched: Value = res.json().await.unwrap();
    assert_schema("identity", &patched);
    assert_eq!(patched["traits"]["email"], "gina3@example.com");
    assert_eq!(patched["metadata_public"], json!({"plan": "pro"}));
    assert_eq!(patched["metadata_admin"], Value::Null);
    assert_eq!(
        patched["credentials"]["password"]["identifiers"],
        json!(["gina3@example.com"])
    );

    // Denied paths, failing tests, invalid results and garbage are 400.
    for ops in [
        json!([{"op": "replace", "path": "/id", "value": "00000000-0000-0000-0000-000000000000"}]),
        json!([{"op": "remove", "path": "/credentials/password"}]),
        json!([{"op": "copy", "from": "/credentials", "path": "/metadata_public"}]),
        json!([{"op": "test", "path": "/state", "value": "inactive"}]),
        json!([{"op": "replace", "path": "/traits/email", "value": 7}]),
        json!([{"op": "remove", "path": "/state"}]),
        json!([{"op": "explode", "path": "/state"}]),
        json!({"op": "replace"}),
    ] {
        let res = api.patch(&url).json(&ops).send().await.unwrap();
        assert_eq!(res.status(), 400, "{ops}");
        assert_schema("errorGeneric", &res.json::<Value>().await.unwrap());
    }
    let unchanged: Value = api.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(unchanged["traits"]["email"], "gina3@example.com");
}
on_both!(identities_update_and_patch);

fn uuid_like_missing() -> &'static str {
    "3c6c2b43-7d2f-4c43-9d5b-0d7f6f3b8a11"
}

/// Kratos's cross-port redirects: admin routes on the public port and self-service routes on
/// the admin port answer 307 to the other port's base URL, path and query kept; following
/// one keeps the method and body.
async fn cross_port_redirects(db: TestDb) {
    let s = start(db).await;
    let api = native();
    for (base, path, other) in [
        (&s.public, "/admin/identities?page_size=1", &s.admin),
        (&s.public, "/admin/identities/abc/sessions", &s.admin),
        (&s.public, "/admin/courier/messages", &s.admin),
        (&s.public, "/admin/recovery/code", &s.admin),
        (&s.admin, "/self-service/login/api?refresh=true", &s.public),
        (&s.admin, "/schemas/default", &s.public),
    ] {
        let res = api.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status(), 307, "{base}{path}");
        assert_eq!(
            res.headers()["location"].to_str().unwrap(),
            format!("{other}{path}")
        );
    }
    // Following the redirect with the body (reqwest re-sends it on 307) creates the identity.
    let follow = reqwest::Client::new();
    let res = follow
        .post(format!("{}/admin/identities", s.public))
        .json(&json!({"schema_id": "default", "traits": {"email": "hop@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.url().as_str(), format!("{}/admin/identities", s.admin));
    // Public routes that are not cross-port stay 404 on the public port.
    let res = api
        .get(format!("{}/admin/sessions/abc", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}
on_both!(cross_port_redirects);
