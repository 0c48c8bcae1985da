//! The admin API over real HTTP, on SQLite and PostgreSQL.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{assert_schema, native, start};
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
    let flow: Value = api
        .get(format!("{}/self-service/login/api", s.public))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let res = api
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(
            &json!({"method": "password", "identifier": "frank@example.com",
            "password": "correct horse battery staple"}),
        )
        .send()
        .await
        .unwrap();
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
    let schemas: Value = api
        .get(format!("{}/schemas", s.public))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
