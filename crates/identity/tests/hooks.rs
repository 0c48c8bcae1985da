//! After-hooks: registration sends the verification code (and `show_verification_ui` moves
//! the browser there); login's `require_verified_address` and `revoke_active_sessions`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{
    PASSWORD, Server, assert_schema, browser, code_in, csrf_of, form_message_ids, get_json, native,
    start_with_mail, submit_form,
};
use portcullis_db::testing::TestDb;
use reqwest::header::{ACCEPT, LOCATION};
use serde_json::{Value, json};

const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
/// A native registration with [`PASSWORD`] that must succeed; its JSON.
async fn register(s: &Server, email: &str) -> Value {
    let res = common::native_register(s, email, PASSWORD).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// A native login with [`PASSWORD`]: status and JSON.
async fn login(s: &Server, email: &str) -> (u16, Value) {
    let res = common::native_login(s, email, PASSWORD).await;
    (res.status().as_u16(), res.json().await.unwrap())
}

fn with_hooks(v: &mut Value) {
    v["selfservice"]["flows"]["registration"]["after"]["password"]["hooks"] =
        json!([{"hook": "session"}, {"hook": "show_verification_ui"}]);
    v["selfservice"]["flows"]["login"]["after"] = json!({"hooks": [{"hook": "require_verified_address"}, {"hook": "revoke_active_sessions"}]});
}

async fn registration_sends_verification(db: TestDb) {
    let s = start_with_mail(db, with_hooks).await;
    let done = register(&s, "nina@example.com").await;
    assert_schema("successfulNativeRegistration", &done);
    let actions: Vec<&str> = done["continue_with"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"set_ory_session_token"), "{actions:?}");
    let show = done["continue_with"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["action"] == "show_verification_ui")
        .unwrap();
    assert_eq!(show["flow"]["verifiable_address"], "nina@example.com");
    let flow_id = show["flow"]["id"].as_str().unwrap();
    assert_eq!(
        show["flow"]["url"],
        format!("http://127.0.0.1:4455/verification?flow={flow_id}")
    );

    // Not verified yet: require_verified_address refuses the login.
    let (status, refused) = login(&s, "nina@example.com").await;
    assert_eq!(status, 400);
    assert_eq!(form_message_ids(&refused), [4000010]);

    let code = code_in(&s.mail_to("nina@example.com", "verify").await);
    let api = native();
    let vflow = get_json(
        &api,
        format!("{}/self-service/verification/flows?id={flow_id}", s.public),
    )
    .await;
    assert_eq!(vflow["state"], "sent_email");
    let res = api
        .post(vflow["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "code", "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Verified: login works, and revoke_active_sessions ends the earlier sessions.
    let (status, first) = login(&s, "nina@example.com").await;
    assert_eq!(status, 200);
    let (status, second) = login(&s, "nina@example.com").await;
    assert_eq!(status, 200);
    let whoami = |token: String| {
        let api = api.clone();
        let url = format!("{}/sessions/whoami", s.public);
        async move {
            api.get(url)
                .header("x-session-token", token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        whoami(first["session_token"].as_str().unwrap().into()).await,
        401
    );
    assert_eq!(
        whoami(done["session_token"].as_str().unwrap().into()).await,
        401
    );
    assert_eq!(
        whoami(second["session_token"].as_str().unwrap().into()).await,
        200
    );
}
on_both!(registration_sends_verification);

async fn browser_registration_shows_verification(db: TestDb) {
    let s = start_with_mail(db, with_hooks).await;
    let (client, _jar) = browser();
    let flow: Value = client
        .get(format!("{}/self-service/registration/browser", s.public))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let res = submit_form(
        &client,
        &flow,
        &[
            ("method", "password"),
            ("traits.email", "otto@example.com"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    let location = res.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(
        location.starts_with("http://127.0.0.1:4455/verification?flow="),
        "{location}"
    );
    let id = location.split("flow=").nth(1).unwrap();
    // The flow is bound to the browser's new CSRF cookie.
    let vflow = get_json(
        &client,
        format!("{}/self-service/verification/flows?id={id}", s.public),
    )
    .await;
    assert_schema("verificationFlow", &vflow);
    assert_eq!(vflow["state"], "sent_email");
    let code = code_in(&s.mail_to("otto@example.com", "verify").await);
    let res = submit_form(
        &client,
        &vflow,
        &[("method", "code"), ("code", code.as_str())],
    )
    .await;
    assert_eq!(res.status(), 303);
    let done = get_json(
        &client,
        format!("{}/self-service/verification/flows?id={id}", s.public),
    )
    .await;
    assert_eq!(done["state"], "passed_challenge");
    let session = get_json(&client, format!("{}/sessions/whoami", s.public)).await;
    assert_eq!(
        session["identity"]["verifiable_addresses"][0]["verified"],
        true
    );
}
on_both!(browser_registration_shows_verification);

async fn profile_first_registration(db: TestDb) {
    let s = start_with_mail(db, |v| {
        v["selfservice"]["flows"]["registration"]["style"] = json!("profile_first");
    })
    .await;
    let (client, _jar) = browser();
    let flow: Value = client
        .get(format!("{}/self-service/registration/browser", s.public))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_schema("registrationFlow", &flow);
    let names: Vec<&str> = flow["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["attributes"]["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"password"), "{names:?}");
    let action = flow["ui"]["action"].as_str().unwrap().to_string();
    let csrf = csrf_of(&flow);

    // Step one validates the traits.
    let res = client
        .post(&action)
        .header(ACCEPT, "application/json")
        .json(&json!({"csrf_token": csrf, "method": "profile", "traits": {"email": "nope"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = client
        .post(&action)
        .header(ACCEPT, "application/json")
        .json(&json!({"csrf_token": csrf, "method": "profile", "traits": {"email": "tess@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let second: Value = res.json().await.unwrap();
    assert_schema("registrationFlow", &second);
    let email = common::node(&second, "traits.email");
    assert_eq!(email["attributes"]["type"], "hidden");
    assert_eq!(email["attributes"]["value"], "tess@example.com");
    assert_eq!(
        common::node(&second, "screen")["meta"]["label"]["id"],
        1040008
    );

    // "Back" returns to the traits form, values kept; then through to the end.
    let res = client
        .post(&action)
        .header(ACCEPT, "application/json")
        .json(&json!({"csrf_token": csrf, "screen": "previous", "traits": {"email": "tess@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let back: Value = res.json().await.unwrap();
    assert_eq!(
        common::node(&back, "traits.email")["attributes"]["type"],
        "email"
    );
    assert_eq!(
        common::node(&back, "traits.email")["attributes"]["value"],
        "tess@example.com"
    );
    let res = client
        .post(&action)
        .header(ACCEPT, HTML)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("method", "password"),
            ("traits.email", "tess@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let session = get_json(&client, format!("{}/sessions/whoami", s.public)).await;
    assert_eq!(session["identity"]["traits"]["email"], "tess@example.com");
}
on_both!(profile_first_registration);
