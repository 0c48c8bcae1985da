//! Settings (profile, password, privileged sessions, refresh logins) and recovery with the
//! `code` method, over real HTTP and real SMTP, on SQLite and PostgreSQL.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{
    PASSWORD, Server, assert_schema, browser, code_in, csrf_of, form_message_ids, get_json, native,
    node, start_with_mail, submit_form,
};
use portcullis_db::testing::TestDb;
use reqwest::header::{ACCEPT, LOCATION};
use serde_json::{Value, json};

const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
async fn create_identity(s: &Server, email: &str) -> String {
    common::create_identity(s, email).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A native login; returns the login response.
async fn native_login(
    s: &Server,
    email: &str,
    password: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let api = native();
    let mut req = api.get(format!(
        "{}/self-service/login/api{}",
        s.public,
        if token.is_some() { "?refresh=true" } else { "" }
    ));
    if let Some(t) = token {
        req = req.header("x-session-token", t);
    }
    let flow: Value = req.send().await.unwrap().json().await.unwrap();
    let mut req = api
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "password", "identifier": email, "password": password}));
    if let Some(t) = token {
        req = req.header("x-session-token", t);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn settings_api_flow(s: &Server, token: &str) -> Value {
    let res = native()
        .get(format!("{}/self-service/settings/api", s.public))
        .header("x-session-token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn native_settings(db: TestDb) {
    let s = start_with_mail(db, |_| {}).await;
    let id = create_identity(&s, "sam@example.com").await;
    let (status, login) = native_login(&s, "sam@example.com", PASSWORD, None).await;
    assert_eq!(status, 200);
    let token = login["session_token"].as_str().unwrap().to_string();
    let api = native();

    let res = api
        .get(format!("{}/self-service/settings/api", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let flow = settings_api_flow(&s, &token).await;
    assert_schema("settingsFlow", &flow);
    assert_eq!(flow["state"], "show_form");
    assert_eq!(flow["identity"]["id"], id.as_str());
    assert_eq!(
        node(&flow, "traits.email")["attributes"]["value"],
        "sam@example.com"
    );
    assert_eq!(node(&flow, "traits.email")["group"], "profile");
    let action = flow["ui"]["action"].as_str().unwrap().to_string();

    // Someone else's session may neither read nor submit the flow.
    create_identity(&s, "eve@example.com").await;
    let (_, eve) = native_login(&s, "eve@example.com", PASSWORD, None).await;
    let eve_token = eve["session_token"].as_str().unwrap();
    let res = api
        .get(format!(
            "{}/self-service/settings/flows?id={}",
            s.public,
            flow["id"].as_str().unwrap()
        ))
        .header("x-session-token", eve_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = api
        .post(&action)
        .header("x-session-token", eve_token)
        .json(&json!({"method": "password", "password": "an entirely new secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // Invalid traits are field errors.
    let res = api
        .post(&action)
        .header("x-session-token", &token)
        .json(&json!({"method": "profile", "traits": {"email": "not-an-email"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_schema("settingsFlow", &body);
    assert!(
        !node(&body, "traits.email")["messages"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let res = api
        .post(&action)
        .header("x-session-token", &token)
        .json(&json!({"method": "profile",
            "traits": {"email": "sam@example.com", "name": {"first": "Sam", "last": "Vimes"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let saved: Value = res.json().await.unwrap();
    assert_schema("settingsFlow", &saved);
    assert_eq!(saved["state"], "success");
    assert_eq!(form_message_ids(&saved), [1050001]);
    assert_eq!(saved["identity"]["traits"]["name"]["first"], "Sam");
    assert_eq!(
        node(&saved, "traits.name.first")["attributes"]["value"],
        "Sam"
    );

    // A fresh session is privileged: the password changes, and only the new one logs in.
    let res = api
        .post(&action)
        .header("x-session-token", &token)
        .json(&json!({"method": "password", "password": "sam"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "the policy still applies");
    let res = api
        .post(&action)
        .header("x-session-token", &token)
        .json(&json!({"method": "password", "password": "an entirely new secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        native_login(&s, "sam@example.com", PASSWORD, None).await.0,
        400
    );
    assert_eq!(
        native_login(&s, "sam@example.com", "an entirely new secret", None)
            .await
            .0,
        200
    );
}
on_both!(native_settings);

async fn privileged_sessions(db: TestDb) {
    let s = start_with_mail(db, |v| {
        v["selfservice"]["flows"]["settings"]["privileged_session_max_age"] = json!("1ms");
    })
    .await;
    create_identity(&s, "pat@example.com").await;
    let (_, login) = native_login(&s, "pat@example.com", PASSWORD, None).await;
    let token = login["session_token"].as_str().unwrap().to_string();
    let flow = settings_api_flow(&s, &token).await;
    let action = flow["ui"]["action"].as_str().unwrap().to_string();
    let api = native();
    let res = api
        .post(&action)
        .header("x-session-token", &token)
        .json(&json!({"method": "password", "password": "an entirely new secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["id"], "session_refresh_required");
    let to = body["redirect_browser_to"].as_str().unwrap();
    assert!(
        to.starts_with(&format!(
            "{}/self-service/login/browser?refresh=true&return_to=",
            s.public
        )),
        "{to}"
    );
    // Changing a login identifier is protected too; a display name is not.
    let res = api
        .post(&action)
        .header("x-session-token", &token)
        .json(&json!({"method": "profile", "traits": {"email": "pat2@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = api
        .post(&action)
        .header("x-session-token", &token)
        .json(&json!({"method": "profile", "traits": {"email": "pat@example.com", "name": {"first": "Pat"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // A refresh login re-authenticates the same session instead of issuing another.
    let refresh: Value = native()
        .get(format!("{}/self-service/login/api?refresh=true", s.public))
        .header("x-session-token", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refresh["refresh"], true);
    assert_eq!(form_message_ids(&refresh), [1010003]);
    let (status, refreshed) = native_login(&s, "pat@example.com", PASSWORD, Some(&token)).await;
    assert_eq!(status, 200);
    assert_schema("successfulNativeLogin", &refreshed);
    assert_eq!(refreshed["session"]["id"], login["session"]["id"]);
    assert_eq!(
        refreshed["session"]["authentication_methods"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(refreshed["session_token"], token.as_str());

    // Browsers are sent to the refresh login.
    let (client, _jar) = browser();
    let res = client
        .get(format!("{}/self-service/settings/browser", s.public))
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "no session: to login");
    assert_eq!(
        res.headers()[LOCATION].to_str().unwrap(),
        format!("{}/self-service/login/browser", s.public)
    );
    browser_login(&s, &client, "pat@example.com", PASSWORD).await;
    let (flow, _) = browser_settings_flow(&s, &client).await;
    let res = submit_form(
        &client,
        &flow,
        &[
            ("method", "password"),
            ("password", "an entirely new secret"),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()[LOCATION]
            .to_str()
            .unwrap()
            .contains("refresh=true")
    );
}
on_both!(privileged_sessions);

async fn browser_login(s: &Server, client: &reqwest::Client, email: &str, password: &str) {
    let flow: Value = client
        .get(format!("{}/self-service/login/browser", s.public))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let res = submit_form(
        client,
        &flow,
        &[
            ("method", "password"),
            ("identifier", email),
            ("password", password),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
}

/// Starts a browser settings flow (303 to the UI) and returns it with the UI location.
async fn browser_settings_flow(s: &Server, client: &reqwest::Client) -> (Value, String) {
    let res = client
        .get(format!("{}/self-service/settings/browser", s.public))
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(
        location.starts_with("http://127.0.0.1:4455/settings?flow="),
        "{location}"
    );
    let id = location.split("flow=").nth(1).unwrap();
    let flow = get_json(
        client,
        format!("{}/self-service/settings/flows?id={id}", s.public),
    )
    .await;
    assert_schema("settingsFlow", &flow);
    (flow, location)
}

async fn browser_settings(db: TestDb) {
    let s = start_with_mail(db, |_| {}).await;
    create_identity(&s, "bea@example.com").await;
    let (client, _jar) = browser();
    browser_login(&s, &client, "bea@example.com", PASSWORD).await;
    let (flow, location) = browser_settings_flow(&s, &client).await;
    let res = submit_form(
        &client,
        &flow,
        &[
            ("method", "profile"),
            ("traits.email", "bea@example.com"),
            ("traits.name.first", "Bea"),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()[LOCATION].to_str().unwrap(), location);
    let id = location.split("flow=").nth(1).unwrap();
    let saved = get_json(
        &client,
        format!("{}/self-service/settings/flows?id={id}", s.public),
    )
    .await;
    assert_eq!(saved["state"], "success");
    assert_eq!(form_message_ids(&saved), [1050001]);
    assert_eq!(saved["identity"]["traits"]["name"]["first"], "Bea");
    // Without the CSRF token nothing changes.
    let res = client
        .post(flow["ui"]["action"].as_str().unwrap())
        .header(ACCEPT, "application/json")
        .json(&json!({"method": "profile", "traits": {"email": "bea@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}
on_both!(browser_settings);

async fn native_recovery(db: TestDb) {
    let s = start_with_mail(db, |_| {}).await;
    let id = create_identity(&s, "rita@example.com").await;
    let api = native();
    let flow = get_json(&api, format!("{}/self-service/recovery/api", s.public)).await;
    assert_schema("recoveryFlow", &flow);
    let action = flow["ui"]["action"].as_str().unwrap().to_string();
    let res = api
        .post(&action)
        .json(&json!({"method": "code", "email": "rita@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let sent: Value = res.json().await.unwrap();
    assert_schema("recoveryFlow", &sent);
    assert_eq!(sent["state"], "sent_email");
    assert_eq!(form_message_ids(&sent), [1060003]);
    assert_eq!(node(&sent, "code")["meta"]["label"]["id"], 1070010);
    let code = code_in(&s.mail_to("rita@example.com", "recover").await);

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let res = api
        .post(&action)
        .json(&json!({"method": "code", "code": wrong}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        form_message_ids(&res.json::<Value>().await.unwrap()),
        [4060006]
    );

    let res = api
        .post(&action)
        .json(&json!({"method": "code", "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let done: Value = res.json().await.unwrap();
    assert_schema("recoveryFlow", &done);
    assert_eq!(done["state"], "passed_challenge");
    let continue_with = done["continue_with"].as_array().unwrap();
    assert_eq!(continue_with[0]["action"], "set_ory_session_token");
    assert_eq!(continue_with[1]["action"], "show_settings_ui");
    let token = continue_with[0]["ory_session_token"].as_str().unwrap();
    let settings_id = continue_with[1]["flow"]["id"].as_str().unwrap();

    let res = api
        .get(format!("{}/sessions/whoami", s.public))
        .header("x-session-token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let session: Value = res.json().await.unwrap();
    assert_eq!(session["identity"]["id"], id.as_str());
    assert_eq!(
        session["authentication_methods"][0]["method"],
        "code_recovery"
    );
    assert_eq!(
        session["identity"]["verifiable_addresses"][0]["verified"],
        true
    );

    let res = api
        .get(format!(
            "{}/self-service/settings/flows?id={settings_id}",
            s.public
        ))
        .header("x-session-token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let settings: Value = res.json().await.unwrap();
    assert_eq!(form_message_ids(&settings), [1060001]);
    let res = api
        .post(settings["ui"]["action"].as_str().unwrap())
        .header("x-session-token", token)
        .json(&json!({"method": "password", "password": "a recovered new secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        native_login(&s, "rita@example.com", "a recovered new secret", None)
            .await
            .0,
        200
    );

    // Code submissions are capped per flow (5 by default), even for the right code.
    let flow = get_json(&api, format!("{}/self-service/recovery/api", s.public)).await;
    let action = flow["ui"]["action"].as_str().unwrap().to_string();
    api.post(&action)
        .json(&json!({"method": "code", "email": "rita@example.com"}))
        .send()
        .await
        .unwrap();
    let mailbox = s.mail.as_ref().unwrap().mailbox();
    let code = loop {
        let codes: Vec<String> = mailbox
            .list(&portcullis_mail::Filter::to("rita@example.com"))
            .iter()
            .map(|m| code_in(m.text.as_deref().unwrap_or_default()))
            .collect();
        if codes.len() >= 2 {
            break codes[0].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let res = api
            .post(&action)
            .json(&json!({"method": "code", "code": wrong}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
    }
    let res = api
        .post(&action)
        .json(&json!({"method": "code", "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "attempts exhausted");
}
on_both!(native_recovery);

async fn browser_recovery(db: TestDb) {
    let s = start_with_mail(db, |_| {}).await;
    create_identity(&s, "rob@example.com").await;
    let (client, _jar) = browser();
    let res = client
        .get(format!("{}/self-service/recovery/browser", s.public))
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(location.starts_with("http://127.0.0.1:4455/recovery?flow="));
    let id = location.split("flow=").nth(1).unwrap();
    let flow = get_json(
        &client,
        format!("{}/self-service/recovery/flows?id={id}", s.public),
    )
    .await;
    assert_schema("recoveryFlow", &flow);
    let action = flow["ui"]["action"].as_str().unwrap().to_string();
    let csrf = csrf_of(&flow);
    let res = client
        .post(&action)
        .header(ACCEPT, HTML)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("method", "code"),
            ("email", "rob@example.com"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let code = code_in(&s.mail_to("rob@example.com", "recover").await);

    let res = client
        .post(&action)
        .header(ACCEPT, HTML)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("method", "code"),
            ("code", code.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let settings_location = res.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(
        settings_location.starts_with("http://127.0.0.1:4455/settings?flow="),
        "{settings_location}"
    );
    let res = client
        .get(format!("{}/sessions/whoami", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "recovery signed the browser in");
    let sid = settings_location.split("flow=").nth(1).unwrap();
    let settings = get_json(
        &client,
        format!("{}/self-service/settings/flows?id={sid}", s.public),
    )
    .await;
    assert_schema("settingsFlow", &settings);
    assert_eq!(form_message_ids(&settings), [1060001]);

    // While signed in, recovery is not offered.
    let res = client
        .get(format!("{}/self-service/recovery/browser", s.public))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // A JSON client in a browser is told to move the browser (422).
    let (other, _) = browser();
    let flow2: Value = other
        .get(format!("{}/self-service/recovery/browser", s.public))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let action2 = flow2["ui"]["action"].as_str().unwrap().to_string();
    let res = other
        .post(&action2)
        .header(ACCEPT, "application/json")
        .json(&json!({"method": "code", "email": "rob@example.com", "csrf_token": csrf_of(&flow2)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mailbox = s.mail.as_ref().unwrap().mailbox();
    let code2 = loop {
        let list = mailbox.list(&portcullis_mail::Filter::to("rob@example.com"));
        if list.len() >= 2 {
            break code_in(list[0].text.as_deref().unwrap_or_default());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let res = other
        .post(&action2)
        .header(ACCEPT, "application/json")
        .json(&json!({"method": "code", "code": code2, "csrf_token": csrf_of(&flow2)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["id"], "browser_location_change_required");
    assert!(
        body["redirect_browser_to"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:4455/settings?flow=")
    );
    let res = other
        .get(format!("{}/sessions/whoami", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
on_both!(browser_recovery);

async fn admin_recovery_code(db: TestDb) {
    let s = start_with_mail(db, |_| {}).await;
    let id = create_identity(&s, "ada@example.com").await;
    let api = native();
    let res = api
        .post(format!("{}/admin/recovery/code", s.admin))
        .json(&json!({"identity_id": id, "expires_in": "15m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_schema("recoveryCodeForIdentity", &created);
    let link = created["recovery_link"].as_str().unwrap();
    let code = created["recovery_code"].as_str().unwrap();
    assert!(link.starts_with(&format!("{}/self-service/recovery?flow=", s.public)));

    let (client, _jar) = browser();
    let res = client.get(link).header(ACCEPT, HTML).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()[LOCATION].to_str().unwrap().to_string();
    let flow_id = location.split("flow=").nth(1).unwrap();
    let flow = get_json(
        &client,
        format!("{}/self-service/recovery/flows?id={flow_id}", s.public),
    )
    .await;
    assert_eq!(flow["state"], "sent_email");
    let res = submit_form(&client, &flow, &[("method", "code"), ("code", code)]).await;
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()[LOCATION]
            .to_str()
            .unwrap()
            .starts_with("http://127.0.0.1:4455/settings?flow=")
    );

    let res = api
        .post(format!("{}/admin/recovery/code", s.admin))
        .json(&json!({"identity_id": "8f1d3c52-7a43-4f0e-9d4b-2a7b9d7c1e11"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = api
        .post(format!("{}/admin/recovery/code", s.admin))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}
on_both!(admin_recovery_code);
