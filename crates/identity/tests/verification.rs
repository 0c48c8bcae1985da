//! Verification with the `code` method and the courier, over real HTTP and real SMTP (the
//! workspace's mail catcher), on SQLite and PostgreSQL.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{
    Server, assert_schema, browser, code_in, csrf_of, form_message_ids, get_json, native, node,
    start_with_mail,
};
use portcullis_db::testing::TestDb;
use reqwest::header::{ACCEPT, LOCATION};
use serde_json::{Value, json};

const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// Creates an identity through the admin API and returns its id.
pub async fn create_identity(s: &Server, email: &str) -> String {
    let res = native()
        .post(format!("{}/admin/identities", s.admin))
        .json(&json!({"schema_id": "default", "traits": {"email": email},
            "credentials": {"password": {"config": {"password": "correct horse battery staple"}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn identity_json(s: &Server, id: &str) -> Value {
    native()
        .get(format!("{}/admin/identities/{id}", s.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls the admin API until the courier reports the message to `to` as `status`.
async fn courier_message(s: &Server, to: &str, status: &str) -> Value {
    let api = native();
    for _ in 0..400 {
        let list: Vec<Value> = api
            .get(format!("{}/admin/courier/messages", s.admin))
            .query(&[("recipient", to), ("status", status)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(m) = list.into_iter().next() {
            return m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no {status} message to {to}");
}

async fn native_verification(db: TestDb) {
    let s = start_with_mail(db, |_| {}).await;
    let id = create_identity(&s, "vera@example.com").await;
    let before = identity_json(&s, &id).await;
    assert_eq!(before["verifiable_addresses"][0]["verified"], false);
    assert_eq!(before["verifiable_addresses"][0]["status"], "pending");

    let api = native();
    let flow = get_json(&api, format!("{}/self-service/verification/api", s.public)).await;
    assert_schema("verificationFlow", &flow);
    assert_eq!(flow["state"], "choose_method");
    assert_eq!(node(&flow, "email")["group"], "code");
    let action = flow["ui"]["action"].as_str().unwrap().to_string();

    // Missing and malformed addresses are field errors.
    let res = api
        .post(&action)
        .json(&json!({"method": "code"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(node(&body, "email")["messages"][0]["id"], 4000002);
    let res = api
        .post(&action)
        .json(&json!({"method": "code", "email": "not-an-address"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        node(&res.json::<Value>().await.unwrap(), "email")["messages"][0]["id"],
        4000040
    );

    let res = api
        .post(&action)
        .json(&json!({"method": "code", "email": "Vera@Example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let sent: Value = res.json().await.unwrap();
    assert_schema("verificationFlow", &sent);
    assert_eq!(sent["state"], "sent_email");
    assert_eq!(form_message_ids(&sent), [1080003]);
    assert_eq!(node(&sent, "code")["meta"]["label"]["id"], 1070011);
    let mail = s.mail_to("vera@example.com", "verify").await;
    let code = code_in(&mail);
    assert!(mail.contains(&format!(
        "/self-service/verification?flow={}&code={code}",
        flow["id"].as_str().unwrap()
    )));

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let res = api
        .post(&action)
        .json(&json!({"method": "code", "code": wrong}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(form_message_ids(&body), [4070006]);

    let res = api
        .post(&action)
        .json(&json!({"method": "code", "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let done: Value = res.json().await.unwrap();
    assert_schema("verificationFlow", &done);
    assert_eq!(done["state"], "passed_challenge");
    assert_eq!(form_message_ids(&done), [1080002]);
    assert_eq!(done["ui"]["messages"][0]["type"], "success");
    let after = identity_json(&s, &id).await;
    assert_eq!(after["verifiable_addresses"][0]["verified"], true);
    assert_eq!(after["verifiable_addresses"][0]["status"], "completed");
    assert!(after["verifiable_addresses"][0]["verified_at"].is_string());

    // The code is single-use and the flow is done.
    let res = api
        .post(&action)
        .json(&json!({"method": "code", "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        form_message_ids(&res.json::<Value>().await.unwrap()),
        [4070002]
    );

    // The courier's record of it.
    let message = courier_message(&s, "vera@example.com", "sent").await;
    assert_schema("message", &message);
    assert_eq!(message["template_type"], "verification_code_valid");
    assert_eq!(message["send_count"], 1);
    let res = api
        .get(format!(
            "{}/admin/courier/messages/{}",
            s.admin,
            message["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let full: Value = res.json().await.unwrap();
    assert_schema("message", &full);
    assert_eq!(full["dispatches"][0]["status"], "success");
    let res = api
        .get(format!("{}/admin/courier/messages?status=bogus", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = api
        .get(format!(
            "{}/admin/courier/messages/{}",
            s.admin,
            uuid_like()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = api
        .get(format!("{}/courier/messages/not-a-uuid", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}
on_both!(native_verification);

fn uuid_like() -> &'static str {
    "8f1d3c52-7a43-4f0e-9d4b-2a7b9d7c1e11"
}

async fn browser_verification(db: TestDb) {
    let s = start_with_mail(db, |_| {}).await;
    let id = create_identity(&s, "bruno@example.com").await;
    let (client, _jar) = browser();
    let res = client
        .get(format!("{}/self-service/verification/browser", s.public))
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(
        location.starts_with("http://127.0.0.1:4455/verification?flow="),
        "{location}"
    );
    let flow_id = location.split("flow=").nth(1).unwrap().to_string();
    let flow = get_json(
        &client,
        format!("{}/self-service/verification/flows?id={flow_id}", s.public),
    )
    .await;
    assert_schema("verificationFlow", &flow);
    let action = flow["ui"]["action"].as_str().unwrap().to_string();

    // Without the CSRF token the submission is refused (error page for a form post).
    let res = client
        .post(&action)
        .header(ACCEPT, HTML)
        .form(&[("method", "code"), ("email", "bruno@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()[LOCATION]
            .to_str()
            .unwrap()
            .starts_with("http://127.0.0.1:4455/error?id=")
    );

    // An unknown address sees the same answer, and nothing is sent.
    let res = client
        .post(&action)
        .header(ACCEPT, HTML)
        .form(&[
            ("csrf_token", csrf_of(&flow).as_str()),
            ("method", "code"),
            ("email", "nobody@example.com"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()[LOCATION].to_str().unwrap(), location);
    let res = client
        .post(&action)
        .header(ACCEPT, HTML)
        .form(&[
            ("csrf_token", csrf_of(&flow).as_str()),
            ("method", "code"),
            ("email", "bruno@example.com"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let mail = s.mail_to("bruno@example.com", "verify").await;
    let link = mail
        .lines()
        .find(|l| l.contains("/self-service/verification?flow="))
        .unwrap()
        .trim()
        .to_string();
    let unknown: Vec<Value> = native()
        .get(format!(
            "{}/admin/courier/messages?recipient=nobody@example.com",
            s.admin
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(unknown.is_empty());

    // Following the e-mailed link verifies without a form and shows the result in the UI.
    let res = client.get(&link).header(ACCEPT, HTML).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()[LOCATION].to_str().unwrap(), location);
    let done = get_json(
        &client,
        format!("{}/self-service/verification/flows?id={flow_id}", s.public),
    )
    .await;
    assert_eq!(done["state"], "passed_challenge");
    assert_eq!(form_message_ids(&done), [1080002]);
    let after = identity_json(&s, &id).await;
    assert_eq!(after["verifiable_addresses"][0]["verified"], true);
}
on_both!(browser_verification);
