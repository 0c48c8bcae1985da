//! Imported password hashes (bcrypt, argon2, PBKDF2, scrypt) over the admin API, login with
//! them, their upgrade to the configured algorithm, and `hashers.algorithm: bcrypt`; on
//! SQLite and PostgreSQL.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{Server, assert_schema, config_value, get_json, native, start, start_config};
use portcullis_db::testing::TestDb;
use portcullis_identity::IdentityConfig;
use serde_json::{Value, json};
use sqlx::Row;

const PASSWORD: &str = "correct horse battery";

/// Hashes of [`PASSWORD`] in each importable format (made with Python's hashlib for PBKDF2
/// and scrypt, Kratos's `$pbkdf2-...` / `$scrypt$ln=N,...` layout).
const IMPORTS: &[(&str, &str)] = &[
    (
        "pbkdf2",
        "$pbkdf2-sha256$i=1000,l=32$MDEyMzQ1Njc4OWFiY2RlZg$BVALGMmC/K/8ELErc5VgJxyPFApArIZRCQsqjEgZWJ4",
    ),
    (
        "scrypt",
        "$scrypt$ln=1024,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg==$xXt6EAFzAOlee5Hgl8R5+kLA6sDARjRcMGtm6fZJsa8=",
    ),
];
/// OpenBSD's bcrypt test vector for the password `U*U`, in the three prefixes PHP, Go and
/// OpenBSD write.
const BCRYPT_UU: &str = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";

async fn import(s: &Server, email: &str, hash: &str) -> reqwest::Response {
    native()
        .post(format!("{}/admin/identities", s.admin))
        .json(&json!({"schema_id": "default", "traits": {"email": email},
            "credentials": {"password": {"config": {"hashed_password": hash}}}}))
        .send()
        .await
        .unwrap()
}

async fn login(s: &Server, email: &str, password: &str) -> reqwest::StatusCode {
    common::native_login(s, email, password).await.status()
}

async fn stored_hash(s: &Server, id: &str) -> String {
    let row = sqlx::query(
        "SELECT config FROM identity_credentials WHERE identity_id = $1 AND type = 'password'",
    )
    .bind(id.to_string())
    .fetch_one(s.db.pool())
    .await
    .unwrap();
    let config: String = row.get("config");
    let config: Value = serde_json::from_str(&config).unwrap();
    config["hashed_password"].as_str().unwrap().to_string()
}

async fn imported_hashes_log_in_and_upgrade(db: TestDb) {
    let s = start(db).await;
    let mut imports: Vec<(String, String, &str)> = IMPORTS
        .iter()
        .map(|(name, hash)| (format!("{name}@example.com"), hash.to_string(), PASSWORD))
        .collect();
    for prefix in ["$2a$", "$2b$", "$2y$"] {
        imports.push((
            format!("bcrypt-{}@example.com", &prefix[2..3]),
            BCRYPT_UU.replacen("$2a$", prefix, 1),
            "U*U",
        ));
    }
    for (email, hash, password) in &imports {
        let res = import(&s, email, hash).await;
        assert_eq!(res.status(), 201, "{email}");
        let created: Value = res.json().await.unwrap();
        assert_schema("identity", &created);
        let id = created["id"].as_str().unwrap();
        assert_eq!(&stored_hash(&s, id).await, hash);
        assert_eq!(login(&s, email, "wrong password").await, 400, "{email}");
        assert_eq!(&stored_hash(&s, id).await, hash, "no upgrade on failure");
        assert_eq!(login(&s, email, password).await, 200, "{email}");
        let upgraded = stored_hash(&s, id).await;
        assert!(upgraded.starts_with("$argon2id$"), "{email}: {upgraded}");
        assert_eq!(
            login(&s, email, password).await,
            200,
            "{email} after upgrade"
        );
        assert_eq!(stored_hash(&s, id).await, upgraded, "argon2id is kept");
    }

    // Malformed, unsupported and over-expensive hashes are refused with 400, never stored.
    for hash in [
        "$2a$31$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
        "$pbkdf2-sha256$i=999999999,l=32$MDEy$BVALGMmC/K/8ELErc5VgJxyPFApArIZRCQsqjEgZWJ4",
        "$scrypt$ln=1048576,r=16,p=8$MDEy$xXt6EAFzAOlee5Hgl8R5+kLA6sDARjRcMGtm6fZJsa8=",
        "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        "$md5$abc",
        "plaintext",
    ] {
        let res = import(&s, "refused@example.com", hash).await;
        assert_eq!(res.status(), 400, "{hash}");
        let body: Value = res.json().await.unwrap();
        assert_schema("errorGeneric", &body);
        assert!(
            body["error"]["reason"]
                .as_str()
                .unwrap()
                .starts_with("Unable to import hashed password"),
            "{body}"
        );
    }
}
on_both!(imported_hashes_log_in_and_upgrade);

async fn bcrypt_configured(db: TestDb) {
    let s = start_config(db, |public, admin| {
        let mut config = config_value(public, admin, "10m");
        config["hashers"] = json!({"algorithm": "bcrypt", "bcrypt": {"cost": 8}});
        IdentityConfig::from_value(config, "test kratos.yml", Path::new("."), true).expect("config")
    })
    .await;
    let api = native();
    let res = api
        .post(format!("{}/admin/identities", s.admin))
        .json(
            &json!({"schema_id": "default", "traits": {"email": "bea@example.com"},
            "credentials": {"password": {"config": {"password": PASSWORD}}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The tutorial's cost 8 is raised to OWASP's minimum work factor 10.
    let hash = stored_hash(&s, &id).await;
    assert!(hash.starts_with("$2b$10$"), "{hash}");
    assert_eq!(login(&s, "bea@example.com", PASSWORD).await, 200);
    assert_eq!(stored_hash(&s, &id).await, hash, "bcrypt is kept");

    // An imported scrypt hash is upgraded to bcrypt, the configured algorithm.
    let res = import(&s, "scrypt@example.com", IMPORTS[1].1).await;
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(login(&s, "scrypt@example.com", PASSWORD).await, 200);
    assert!(stored_hash(&s, &id).await.starts_with("$2b$10$"));

    // Registration refuses passwords bcrypt would truncate (4000033).
    let flow = get_json(&api, format!("{}/self-service/registration/api", s.public)).await;
    let res = api
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(
            &json!({"method": "password", "traits": {"email": "long@example.com"},
            "password": "Zq8#kLm2!vRt".repeat(7)}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let flow: Value = res.json().await.unwrap();
    assert_eq!(
        common::node(&flow, "password")["messages"][0]["id"],
        4000033,
        "{flow}"
    );
}
on_both!(bcrypt_configured);
