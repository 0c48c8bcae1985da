//! Admin identities over real HTTP on SQLite and PostgreSQL: batch creation, credentials in
//! responses, list filters and keyset pagination with Kratos's `Link` header.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{PASSWORD, Server, assert_schema, create_identity, native, start};
use portcullis_db::testing::TestDb;
use serde_json::{Value, json};

const FIRST: &str = "00000000-0000-0000-0000-000000000000";

async fn get(s: &Server, path_and_query: &str) -> reqwest::Response {
    native()
        .get(format!("{}{path_and_query}", s.admin))
        .send()
        .await
        .unwrap()
}

async fn batch(s: &Server, body: &Value) -> reqwest::Response {
    native()
        .patch(format!("{}/admin/identities", s.admin))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn batch_create(db: TestDb) {
    let s = start(db).await;
    let p1 = "6f1c8a52-3b0e-4c7e-9a0b-1d2e3f405162";
    let p2 = "7a2d9b63-4c1f-4d8f-8b1c-2e3f40516273";
    let res = batch(
        &s,
        &json!({"identities": [
            {"patch_id": p1, "create": {"schema_id": "default", "traits": {"email": "ann@example.com"},
                "credentials": {"password": {"config": {"password": PASSWORD}}}}},
            {"patch_id": p2, "create": {"schema_id": "default", "traits": {"email": "not an email"}}},
            {"create": {"schema_id": "default", "traits": {"email": "ANN@example.com"}}},
            {"create": {"schema_id": "default", "traits": {"email": "bob@example.com"}, "state": "inactive"}},
            {"patch_id": "nope"}
        ]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_schema("batchPatchIdentitiesResponse", &body);
    let items = body["identities"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    let actions: Vec<&str> = items
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create", "error", "error", "create", "error"]);
    assert_eq!(items[0]["patch_id"], p1);
    assert_eq!(items[1]["patch_id"], p2);
    assert_eq!(items[1]["error"]["code"], 400);
    assert_eq!(items[2]["error"]["code"], 409, "duplicate within the batch");
    assert!(items[2].get("patch_id").is_none());
    assert_eq!(items[4]["error"]["code"], 400);

    // The created identities exist, with their password and state.
    let ann = items[0]["identity"].as_str().unwrap();
    let res = common::native_login(&s, "ann@example.com", PASSWORD).await;
    assert_eq!(res.status(), 200);
    let bob: Value = get(
        &s,
        &format!(
            "/admin/identities/{}",
            items[3]["identity"].as_str().unwrap()
        ),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(bob["state"], "inactive");
    assert_ne!(bob["id"], ann);

    // Batch limits: 200 items with plain-text passwords, and a body without identities.
    let many: Vec<Value> = (0..201)
        .map(|i| json!({"create": {"schema_id": "default", "traits": {"email": format!("u{i}@example.com")},
            "credentials": {"password": {"config": {"password": PASSWORD}}}}}))
        .collect();
    let res = batch(&s, &json!({ "identities": many })).await;
    assert_eq!(res.status(), 400);
    assert_schema("errorGeneric", &res.json::<Value>().await.unwrap());
    let res = batch(&s, &json!({})).await;
    assert_eq!(res.status(), 400);
}
on_both!(batch_create);

async fn include_credential(db: TestDb) {
    let s = start(db).await;
    let id = create_identity(&s, "cai@example.com").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let plain: Value = get(&s, &format!("/admin/identities/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_schema("identity", &plain);
    assert!(plain["credentials"]["password"].get("config").is_none());
    let with: Value = get(
        &s,
        &format!("/admin/identities/{id}?include_credential=password&include_credential=oidc"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_schema("identity", &with);
    let hash = with["credentials"]["password"]["config"]["hashed_password"]
        .as_str()
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let listed: Vec<Value> = get(&s, "/admin/identities?include_credential=password")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed[0]["credentials"]["password"]["config"]["hashed_password"],
        hash
    );
}
on_both!(include_credential);

async fn list_filters(db: TestDb) {
    let s = start(db).await;
    let mut ids = Vec::new();
    for email in ["dan@example.com", "dana@example.org", "eve@example.com"] {
        ids.push(
            create_identity(&s, email).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let emails = |list: &[Value]| -> Vec<String> {
        let mut v: Vec<String> = list
            .iter()
            .map(|i| i["traits"]["email"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let list: Vec<Value> = get(
        &s,
        "/admin/identities?credentials_identifier=DAN@example.com",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(emails(&list), ["dan@example.com"]);
    for item in &list {
        assert_schema("identity", item);
    }
    let list: Vec<Value> = get(
        &s,
        "/admin/identities?preview_credentials_identifier_similar=DAN",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(emails(&list), ["dan@example.com", "dana@example.org"]);
    let list: Vec<Value> = get(&s, "/admin/identities?credentials_identifier_similar=%25")
        .await
        .json()
        .await
        .unwrap();
    assert!(list.is_empty(), "% is matched literally");
    let list: Vec<Value> = get(
        &s,
        &format!("/admin/identities?ids={}&ids={}", ids[0], ids[2]),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(emails(&list), ["dan@example.com", "eve@example.com"]);
    for bad in [
        "/admin/identities?ids=not-a-uuid",
        "/admin/identities?credentials_identifier=a&preview_credentials_identifier_similar=b",
        "/admin/identities?page_token=garbage",
        "/admin/identities?page_size=zero",
    ] {
        let res = get(&s, bad).await;
        assert_eq!(res.status(), 400, "{bad}");
        assert_schema("errorGeneric", &res.json::<Value>().await.unwrap());
    }
}
on_both!(list_filters);

/// The `<target>` of the link with `rel`.
fn link_of(res: &reqwest::Response, rel: &str) -> Option<String> {
    let header = res.headers().get("link")?.to_str().unwrap().to_string();
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        (params.trim() == format!("rel=\"{rel}\"")).then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

async fn keyset_pagination(db: TestDb) {
    let s = start(db).await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(
            create_identity(&s, &format!("page{i}@example.com")).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let mut sorted = created.clone();
    sorted.sort();

    let res = get(&s, "/admin/identities?page_size=2").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["link"].to_str().unwrap(),
        format!(
            "</admin/identities?page_size=2&page_token={FIRST}>; rel=\"first\",\
             </admin/identities?page_size=2&page_token={}>; rel=\"next\"",
            sorted[1]
        )
    );
    let mut seen = Vec::new();
    let mut next = Some("/admin/identities?page_size=2".to_string());
    let mut pages = 0;
    while let Some(path) = next {
        pages += 1;
        assert!(pages <= 5, "pagination terminates");
        let res = get(&s, &path).await;
        assert_eq!(res.status(), 200);
        next = link_of(&res, "next");
        assert!(link_of(&res, "first").is_some());
        let page: Vec<Value> = res.json().await.unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|i| i["id"].as_str().unwrap().to_string()));
    }
    assert_eq!(seen, sorted, "every identity once, in id order");
    assert_eq!(pages, 3);

    // Other parameters are kept in the links, keys sorted as Kratos does.
    let res = get(
        &s,
        "/admin/identities?page_size=10&include_credential=password",
    )
    .await;
    assert_eq!(
        res.headers()["link"].to_str().unwrap(),
        format!(
            "</admin/identities?include_credential=password&page_size=10&page_token={FIRST}>; rel=\"first\""
        )
    );

    // Legacy page/per_page (0-based pages in creation order).
    let res = get(&s, "/admin/identities?per_page=2&page=1").await;
    assert_eq!(res.status(), 200);
    assert!(link_of(&res, "next").is_some());
    let page: Vec<Value> = res.json().await.unwrap();
    let ids: Vec<&str> = page.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [created[2].as_str(), created[3].as_str()]);
}
on_both!(keyset_pagination);
