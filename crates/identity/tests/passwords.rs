//! Password policy over real HTTP on SQLite and PostgreSQL: breached-password lookups against
//! a local server standing in for Have I Been Pwned's range API, the offline list, and the
//! brute-force lock on login.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use common::{
    PASSWORD, Server, assert_schema, create_identity, form_message_ids, native_login,
    native_register, node, node_message_ids, start_tweaked,
};
use portcullis_db::testing::TestDb;
use portcullis_http::{Shutdown, bind, serve};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

/// Kratos's message ids.
const BREACHED: i64 = 4000034;
const POLICY: i64 = 4000005;
const INVALID_CREDENTIALS: i64 = 4000006;
const LOCKED: i64 = 4000900;

fn sha1_upper(s: &str) -> String {
    hex::encode_upper(Sha1::digest(s.as_bytes()))
}

/// A range API on loopback: answers `GET /range/<prefix>` from `corpus` (password, count),
/// padded with a zero-count line, and records every prefix it was asked for.
struct RangeServer {
    url: String,
    asked: Arc<Mutex<Vec<String>>>,
    shutdown: Shutdown,
}

impl Drop for RangeServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

type Corpus = Arc<(Vec<(String, u64)>, Arc<Mutex<Vec<String>>>)>;

async fn range(State(state): State<Corpus>, Path(prefix): Path<String>) -> String {
    state.1.lock().unwrap().push(prefix.clone());
    let mut out = String::from("00000000000000000000000000000000000:0\r\n");
    for (hash, count) in &state.0 {
        if let Some(suffix) = hash.strip_prefix(prefix.as_str()) {
            out.push_str(&format!("{suffix}:{count}\r\n"));
        }
    }
    out
}

async fn range_server(corpus: &[(&str, u64)]) -> RangeServer {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let state: Corpus = Arc::new((
        corpus.iter().map(|(p, n)| (sha1_upper(p), *n)).collect(),
        asked.clone(),
    ));
    let app = axum::Router::new()
        .route("/range/{prefix}", axum::routing::get(range))
        .with_state(state);
    let listener = bind("127.0.0.1:0".parse().unwrap(), "range").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = Shutdown::new();
    tokio::spawn(serve(listener, app, "range", shutdown.clone()));
    RangeServer {
        url,
        asked,
        shutdown,
    }
}

fn password_config(v: &mut Value, config: Value) {
    v["selfservice"]["methods"]["password"]["config"] = config;
}

async fn register_fails_with(s: &Server, email: &str, password: &str) -> Value {
    let res = native_register(s, email, password).await;
    assert_eq!(res.status(), 400, "{password} is refused");
    let flow: Value = res.json().await.unwrap();
    assert_schema("registrationFlow", &flow);
    flow
}

async fn breached_passwords_are_refused(db: TestDb) {
    let hibp = range_server(&[
        ("password123456", 3),
        ("qwertyuiop1234", 4),
        ("correct horse battery staple", 0),
    ])
    .await;
    let url = hibp.url.clone();
    let s = start_tweaked(db, |v| {
        password_config(
            v,
            json!({"haveibeenpwned_enabled": true, "haveibeenpwned_host": url, "max_breaches": 3}),
        );
    })
    .await;

    // Seen 4 times > max_breaches 3: refused with Kratos's message on the password node.
    let flow = register_fails_with(&s, "dora@example.com", "qwertyuiop1234").await;
    let message = &node(&flow, "password")["messages"][0];
    assert_eq!(message["id"], BREACHED, "{flow:#}");
    assert_eq!(
        message["text"],
        "The password has been found in data breaches and must no longer be used."
    );
    assert_eq!(message["context"]["breaches"], 4);

    // Seen 3 times is still allowed, and so is an unknown password.
    assert_eq!(
        native_register(&s, "dora@example.com", "password123456")
            .await
            .status(),
        200
    );
    assert_eq!(
        native_register(&s, "emil@example.com", PASSWORD)
            .await
            .status(),
        200
    );

    // Only five hex digits left the server, and a repeated prefix came from the cache.
    let before = hibp.asked.lock().unwrap().clone();
    assert!(!before.is_empty());
    assert!(
        before
            .iter()
            .all(|p| p.len() == 5 && p.bytes().all(|b| b.is_ascii_hexdigit())),
        "{before:?}"
    );
    register_fails_with(&s, "fritz@example.com", "qwertyuiop1234").await;
    assert_eq!(
        *hibp.asked.lock().unwrap(),
        before,
        "answered from the cache"
    );
}
on_both!(breached_passwords_are_refused);

async fn lookup_failures_follow_ignore_network_errors(db: TestDb) {
    // A port that refuses connections stands in for an unreachable host.
    let dead = {
        let l = bind("127.0.0.1:0".parse().unwrap(), "dead").await.unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let host = dead.clone();
    let open = start_tweaked(db, |v| {
        password_config(
            v,
            json!({"haveibeenpwned_enabled": true, "haveibeenpwned_host": host}),
        );
    })
    .await;
    assert_eq!(
        native_register(&open, "gus@example.com", PASSWORD)
            .await
            .status(),
        200,
        "fail-open by default"
    );

    let s = start_tweaked(TestDb::sqlite().await, |v| {
        password_config(
            v,
            json!({"haveibeenpwned_host": dead, "ignore_network_errors": false}),
        );
    })
    .await;
    let flow = register_fails_with(&s, "hal@example.com", PASSWORD).await;
    assert_eq!(
        node_message_ids(&flow, "password"),
        vec![POLICY],
        "{flow:#}"
    );
}
on_both!(lookup_failures_follow_ignore_network_errors);

async fn offline_list_refuses_listed_passwords(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("breached.txt");
    std::fs::write(
        &list,
        format!(
            "summer holiday 2024\n{}\n{}:2\n",
            sha1_upper("winter holiday 2024").to_lowercase(),
            sha1_upper("autumn holiday 2024"),
        ),
    )
    .unwrap();
    let file = list.display().to_string();
    let s = start_tweaked(db, |v| {
        password_config(
            v,
            json!({"haveibeenpwned_enabled": false, "breached_passwords_file": file, "max_breaches": 1}),
        );
    })
    .await;
    for (email, password) in [
        ("ida@example.com", "summer holiday 2024"),
        ("ida@example.com", "winter holiday 2024"),
        ("ida@example.com", "autumn holiday 2024"),
    ] {
        let flow = register_fails_with(&s, email, password).await;
        assert_eq!(node_message_ids(&flow, "password"), vec![BREACHED]);
    }
    // Length and identifier similarity still apply.
    let flow = register_fails_with(&s, "ida@example.com", "short").await;
    assert_eq!(node_message_ids(&flow, "password"), vec![4000032]);
    let flow = register_fails_with(&s, "ida.lundqvist@example.com", "ida.lundqvist@example").await;
    assert_eq!(node_message_ids(&flow, "password"), vec![4000031]);
    assert_eq!(
        native_register(&s, "ida@example.com", "spring holiday 2024")
            .await
            .status(),
        200
    );
}
on_both!(offline_list_refuses_listed_passwords);

/// A login answer reduced to what a client can observe: status, form message ids and
/// whether `Retry-After` was sent.
async fn observe(res: reqwest::Response) -> (u16, Vec<i64>, bool) {
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.parse::<u64>().is_ok_and(|n| n >= 1));
    let body: Value = res.json().await.unwrap();
    if status == 400 {
        assert_schema("loginFlow", &body);
    }
    (status, form_message_ids(&body), retry)
}

fn brute_force(v: &mut Value, config: Value) {
    v["selfservice"]["flows"]["login"]["brute_force"] = config;
}

async fn repeated_failures_lock_the_identifier(db: TestDb) {
    let s = start_tweaked(db, |v| {
        brute_force(
            v,
            json!({"max_attempts": 3, "max_attempts_per_ip": 0, "lockout": "2s", "max_lockout": "4s"}),
        );
    })
    .await;
    create_identity(&s, "jo@example.com").await;

    // Each sequence is checked right after its lock, so the short lock cannot expire first.
    let mut unknown = Vec::new();
    for _ in 0..3 {
        unknown
            .push(observe(native_login(&s, "nobody@example.com", "wrong password!").await).await);
    }
    let unknown_right = observe(native_login(&s, "nobody@example.com", PASSWORD).await).await;
    let mut known = Vec::new();
    for _ in 0..3 {
        known.push(observe(native_login(&s, "jo@example.com", "wrong password!").await).await);
    }
    // While locked, even the right password is refused, the same way as for no account.
    let mut right = observe(native_login(&s, "jo@example.com", PASSWORD).await).await;
    let failed = (400, vec![INVALID_CREDENTIALS], false);
    let locked = (400, vec![LOCKED], true);
    assert_eq!(known, vec![failed.clone(), failed.clone(), locked.clone()]);
    assert_eq!(right, locked);
    assert_eq!(
        unknown, known,
        "an unknown identifier is answered identically"
    );
    assert_eq!(unknown_right, right);
    // The lock message tells how long to wait.
    let res = native_login(&s, "JO@example.com", PASSWORD).await;
    let flow: Value = res.json().await.unwrap();
    assert_eq!(flow["ui"]["messages"][0]["id"], LOCKED);
    assert!(flow["ui"]["messages"][0]["context"]["retry_after_seconds"].as_u64() >= Some(1));

    // After the back-off the right password works (poll, bounded).
    for _ in 0..400 {
        if right.0 == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        right = observe(native_login(&s, "jo@example.com", PASSWORD).await).await;
    }
    assert_eq!(right.0, 200, "unlocked after the back-off");

    // The success reset the counter: two more failures do not lock.
    for _ in 0..2 {
        assert_eq!(
            observe(native_login(&s, "jo@example.com", "wrong password!").await).await,
            failed
        );
    }
    assert_eq!(
        observe(native_login(&s, "jo@example.com", PASSWORD).await)
            .await
            .0,
        200
    );
}
on_both!(repeated_failures_lock_the_identifier);

async fn repeated_failures_lock_the_client_ip(db: TestDb) {
    let s = start_tweaked(db, |v| {
        brute_force(
            v,
            json!({"max_attempts": 0, "max_attempts_per_ip": 4, "lockout": "1h"}),
        );
    })
    .await;
    create_identity(&s, "kim@example.com").await;
    for i in 0..3 {
        let who = format!("guess{i}@example.com");
        assert_eq!(
            observe(native_login(&s, &who, "wrong password!").await)
                .await
                .1,
            vec![INVALID_CREDENTIALS]
        );
    }
    let locked = (400, vec![LOCKED], true);
    assert_eq!(
        observe(native_login(&s, "guess3@example.com", "wrong password!").await).await,
        locked
    );
    // Every identifier is now refused from this address.
    assert_eq!(
        observe(native_login(&s, "kim@example.com", PASSWORD).await).await,
        locked
    );
}
on_both!(repeated_failures_lock_the_client_ip);

/// The extension keys are taken out before Kratos's schema validates the file, and are
/// themselves checked: bad values name their key.
#[test]
fn extension_keys_are_validated() {
    let config = |tweak: &dyn Fn(&mut Value)| {
        let mut v = common::config_value("http://127.0.0.1:4433/", "http://127.0.0.1:4434/", "10m");
        tweak(&mut v);
        portcullis_identity::IdentityConfig::from_value(
            v,
            "test kratos.yml",
            std::path::Path::new("."),
            true,
        )
    };
    assert!(config(&|v| brute_force(v, json!({"max_attempts": 3, "lockout": "10s"}))).is_ok());
    let err = config(&|v| brute_force(v, json!({"lockout": "soon"})))
        .unwrap_err()
        .to_string();
    assert!(err.contains("brute_force.lockout"), "{err}");
    let err = config(&|v| brute_force(v, json!({"max_atempts": 3})))
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_atempts"), "{err}");
    let err = config(&|v| {
        password_config(
            v,
            json!({"breached_passwords_file": "/nonexistent/list.txt"}),
        )
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("breached_passwords_file"), "{err}");
    // Unknown keys elsewhere are still refused by Kratos's schema.
    assert!(config(&|v| password_config(v, json!({"no_such_key": true}))).is_err());
}
