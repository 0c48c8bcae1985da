//! The `link` method for recovery and verification (`use: link`), and the admin recovery
//! link, over real HTTP and real SMTP (the workspace's mail catcher), on SQLite and PostgreSQL.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{
    Server, assert_schema, browser, csrf_of, form_message_ids, get_json, native, node,
    start_with_mail,
};
use portcullis_db::testing::TestDb;
use reqwest::header::{ACCEPT, LOCATION};
use serde_json::{Value, json};

async fn start(db: TestDb) -> Server {
    start_with_mail(db, |v| {
        v["selfservice"]["methods"]["link"] = json!({"enabled": true});
        v["selfservice"]["flows"]["recovery"]["use"] = json!("link");
        v["selfservice"]["flows"]["verification"]["use"] = json!("link");
    })
    .await
}

/// Creates an identity (with a password) through the admin API; returns its id.
async fn create_identity(s: &Server, email: &str) -> String {
    common::create_identity(s, email).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The link to `path` (`/self-service/recovery` or `/self-service/verification`) in a body.
fn link_in(s: &Server, body: &str, path: &str) -> String {
    let prefix = format!("{}{path}?flow=", s.public);
    body.split_whitespace()
        .find(|w| w.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} link in {body}"))
        .to_string()
}

fn query_of(link: &str, name: &str) -> String {
    url::Url::parse(link)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn location(res: &reqwest::Response) -> String {
    res.headers()[LOCATION].to_str().unwrap().to_string()
}

/// Fetches a browser flow named in a UI location (`…?flow=<id>`) with the browser's cookies.
async fn browser_flow(s: &Server, client: &reqwest::Client, kind: &str, ui: &str) -> Value {
    let id = query_of(ui, "flow");
    let res = client
        .get(format!("{}/self-service/{kind}/flows", s.public))
        .query(&[("id", id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn browser_recovery_by_link(db: TestDb) {
    let s = start(db).await;
    let id = create_identity(&s, "rita@example.com").await;
    let (client, _) = browser();
    let flow: Value = client
        .get(format!("{}/self-service/recovery/browser", s.public))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_schema("recoveryFlow", &flow);
    assert_eq!(node(&flow, "email")["group"], "link");
    assert_eq!(node(&flow, "email")["attributes"]["type"], "email");
    assert_eq!(node(&flow, "method")["attributes"]["value"], "link");
    assert_eq!(node(&flow, "method")["meta"]["label"]["id"], 1070005);
    let action = flow["ui"]["action"].as_str().unwrap().to_string();

    // The code method is not what this flow uses.
    let res = client
        .post(&action)
        .header(ACCEPT, "application/json")
        .json(&json!({"method": "code", "email": "rita@example.com", "csrf_token": csrf_of(&flow)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        form_message_ids(&res.json::<Value>().await.unwrap()),
        [4000001]
    );

    let res = client
        .post(&action)
        .header(ACCEPT, "application/json")
        .json(&json!({"method": "link", "email": "Rita@Example.com", "csrf_token": csrf_of(&flow)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let sent: Value = res.json().await.unwrap();
    assert_schema("recoveryFlow", &sent);
    assert_eq!(sent["state"], "sent_email");
    assert_eq!(sent["active"], "link");
    assert_eq!(form_message_ids(&sent), [1060002]);
    assert_eq!(
        node(&sent, "email")["attributes"]["value"],
        "rita@example.com"
    );

    let mail = s.mail_to("rita@example.com", "recover access").await;
    assert!(
        mail.contains("please recover access to your account by clicking the following link"),
        "{mail}"
    );
    let link = link_in(&s, &mail, "/self-service/recovery");
    assert_eq!(query_of(&link, "flow"), flow["id"].as_str().unwrap());
    let token = query_of(&link, "token");
    assert_eq!(token.len(), 32);
    // Only a digest is stored.
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM selfservice_link_tokens")
        .fetch_all(s.db.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].contains(&token));
    let messages: Vec<Value> = native()
        .get(format!("{}/admin/courier/messages", s.admin))
        .query(&[("recipient", "rita@example.com")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(messages[0]["template_type"], "recovery_valid");
    assert_schema("message", &messages[0]);

    // Opening the link signs in (a privileged session) and opens the settings UI.
    let res = client.get(&link).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let to = location(&res);
    assert!(
        to.starts_with("http://127.0.0.1:4455/settings?flow="),
        "{to}"
    );
    let whoami: Value = client
        .get(format!("{}/sessions/whoami", s.public))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whoami["identity"]["id"], id.as_str());
    assert_eq!(
        whoami["authentication_methods"][0]["method"],
        "link_recovery"
    );
    let settings = browser_flow(&s, &client, "settings", &to).await;
    assert_eq!(form_message_ids(&settings), [1060001]);

    // The link works once: a second visit starts a new flow that says why.
    let (other, _) = browser();
    let res = other.get(&link).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let to = location(&res);
    assert!(
        to.starts_with("http://127.0.0.1:4455/recovery?flow="),
        "{to}"
    );
    assert_ne!(query_of(&to, "flow"), flow["id"].as_str().unwrap());
    let retry = browser_flow(&s, &other, "recovery", &to).await;
    assert_schema("recoveryFlow", &retry);
    assert_eq!(form_message_ids(&retry), [4060004]);

    // A made-up token is refused the same way.
    let forged = link.replace(&token, "x".repeat(32).as_str());
    let res = other.get(&forged).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let retry = browser_flow(&s, &other, "recovery", &location(&res)).await;
    assert_eq!(form_message_ids(&retry), [4060004]);
}
on_both!(browser_recovery_by_link);

async fn admin_recovery_link(db: TestDb) {
    let s = start(db).await;
    let id = create_identity(&s, "adam@example.com").await;
    let api = native();
    let res = api
        .post(format!("{}/admin/recovery/link", s.admin))
        .json(&json!({"identity_id": id, "expires_in": "30m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_schema("recoveryLinkForIdentity", &body);
    let link = body["recovery_link"].as_str().unwrap().to_string();
    assert!(link.starts_with(&format!("{}/self-service/recovery?flow=", s.public)));
    let expires = time::OffsetDateTime::parse(
        body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(left > time::Duration::minutes(25) && left <= time::Duration::minutes(30));

    let (client, _) = browser();
    let res = client.get(&link).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with("http://127.0.0.1:4455/settings?flow="));
    let res = client
        .get(format!("{}/sessions/whoami", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // An expired link starts a new flow with the expiry message.
    let res = api
        .post(format!("{}/admin/recovery/link", s.admin))
        .json(&json!({"identity_id": id, "expires_in": "1ms"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let link = res.json::<Value>().await.unwrap()["recovery_link"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (late, _) = browser();
    let res = late.get(&link).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let retry = browser_flow(&s, &late, "recovery", &location(&res)).await;
    assert_eq!(form_message_ids(&retry), [4060005]);

    // Errors: unknown identity, bad duration, bad body.
    let res = api
        .post(format!("{}/admin/recovery/link", s.admin))
        .json(&json!({"identity_id": uuid::Uuid::new_v4()}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_schema("errorGeneric", &res.json::<Value>().await.unwrap());
    for body in [
        json!({"identity_id": id, "expires_in": "soon"}),
        json!({"identity_id": "nope"}),
    ] {
        let res = api
            .post(format!("{}/admin/recovery/link", s.admin))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        assert_schema("errorGeneric", &res.json::<Value>().await.unwrap());
    }
}
on_both!(admin_recovery_link);

async fn verification_by_link(db: TestDb) {
    let s = start(db).await;
    let id = create_identity(&s, "vic@example.com").await;
    let (client, _) = browser();
    let flow: Value = client
        .get(format!("{}/self-service/verification/browser", s.public))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_schema("verificationFlow", &flow);
    assert_eq!(node(&flow, "email")["group"], "link");
    // A browser form post: 303 back to the UI, which shows the "link sent" state.
    let res = client
        .post(flow["ui"]["action"].as_str().unwrap())
        .form(&[
            ("method", "link"),
            ("email", "vic@example.com"),
            ("csrf_token", csrf_of(&flow).as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let sent = browser_flow(&s, &client, "verification", &location(&res)).await;
    assert_eq!(sent["state"], "sent_email");
    assert_eq!(form_message_ids(&sent), [1080001]);

    let mail = s.mail_to("vic@example.com", "verify your account").await;
    assert!(
        mail.contains("please verify your account by clicking the following link"),
        "{mail}"
    );
    let link = link_in(&s, &mail, "/self-service/verification");
    let res = client.get(&link).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let to = location(&res);
    assert_eq!(
        to,
        format!(
            "http://127.0.0.1:4455/verification?flow={}",
            flow["id"].as_str().unwrap()
        )
    );
    let done = browser_flow(&s, &client, "verification", &to).await;
    assert_schema("verificationFlow", &done);
    assert_eq!(done["state"], "passed_challenge");
    assert_eq!(form_message_ids(&done), [1080002]);
    let identity = get_json(&native(), format!("{}/admin/identities/{id}", s.admin)).await;
    assert_eq!(identity["verifiable_addresses"][0]["verified"], true);
    assert_eq!(identity["verifiable_addresses"][0]["status"], "completed");

    // Used again, by a native app: 303 to the JSON of a new flow carrying 4070001.
    let api = native();
    let flow = get_json(&api, format!("{}/self-service/verification/api", s.public)).await;
    let res = api
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "link", "email": "vic@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mail = s
        .mail_to("vic@example.com", flow["id"].as_str().unwrap())
        .await;
    let link = link_in(&s, &mail, "/self-service/verification");
    let res = api.get(&link).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let done: Value = res.json().await.unwrap();
    assert_eq!(done["state"], "passed_challenge");
    let res = api.get(&link).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let to = location(&res);
    assert!(
        to.starts_with(&format!("{}/self-service/verification/flows?id=", s.public)),
        "{to}"
    );
    let retry: Value = api.get(&to).send().await.unwrap().json().await.unwrap();
    assert_schema("verificationFlow", &retry);
    assert_eq!(form_message_ids(&retry), [4070001]);
}
on_both!(verification_by_link);
