//! Self-service flows, sessions and logout over real HTTP, on SQLite and PostgreSQL.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{
    PASSWORD, assert_schema, browser, csrf_of, form_message_ids, get_json, native, native_login,
    native_register, node, start, start_with, submit_form,
};
use portcullis_db::testing::TestDb;
use reqwest::header::{ACCEPT, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn whoami_401() -> Value {
    json!({"error": {"code": 401, "status": "Unauthorized",
        "reason": "No valid session credentials found in the request.",
        "message": "The request could not be authorized"}})
}

fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// Starts a browser registration flow the way a browser does and returns its JSON.
async fn browser_flow(client: &reqwest::Client, public: &str, kind: &str) -> Value {
    let res = client
        .get(format!("{public}/self-service/{kind}/browser"))
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "browser init redirects to the UI");
    let location = res.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("http://127.0.0.1:4455/{kind}?flow=")),
        "{location}"
    );
    let id = location.split("flow=").nth(1).unwrap();
    let res = client
        .get(format!("{public}/self-service/{kind}/flows?id={id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn browser_registration(db: TestDb) {
    let s = start(db).await;
    let (client, jar) = browser();
    let flow = browser_flow(&client, &s.public, "registration").await;
    assert_schema("registrationFlow", &flow);
    assert_eq!(flow["type"], "browser");
    assert_eq!(
        flow["ui"]["action"],
        format!(
            "{}/self-service/registration?flow={}",
            s.public,
            flow["id"].as_str().unwrap()
        )
    );
    let email = node(&flow, "traits.email");
    assert_eq!(email["attributes"]["type"], "email");
    assert_eq!(email["attributes"]["required"], true);
    assert_eq!(email["meta"]["label"]["text"], "E-Mail");
    assert_eq!(
        node(&flow, "password")["attributes"]["autocomplete"],
        "new-password"
    );

    let res = submit_form(
        &client,
        &flow,
        &[
            ("traits.email", "Alice@Example.com"),
            ("traits.name.first", "Alice"),
            ("password", "correct horse battery staple"),
            ("method", "password"),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()[LOCATION], "http://127.0.0.1:4455/");
    let cookies = set_cookies(&res);
    let session_cookie = cookies
        .iter()
        .find(|c| c.starts_with("ory_kratos_session="))
        .expect("session cookie set");
    for attr in ["Path=/", "HttpOnly", "SameSite=Lax", "Max-Age="] {
        assert!(session_cookie.contains(attr), "{session_cookie}");
    }
    assert!(
        !session_cookie.contains("Secure"),
        "dev mode: {session_cookie}"
    );

    let res = client
        .get(format!("{}/sessions/whoami", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let identity_id = res.headers()["x-kratos-authenticated-identity-id"]
        .to_str()
        .unwrap()
        .to_string();
    let session: Value = res.json().await.unwrap();
    assert_schema("session", &session);
    assert_eq!(session["active"], true);
    assert_eq!(session["identity"]["id"], identity_id);
    assert_eq!(session["identity"]["traits"]["email"], "Alice@Example.com");
    assert_eq!(
        session["identity"]["verifiable_addresses"][0]["value"],
        "alice@example.com"
    );
    assert_eq!(session["authentication_methods"][0]["method"], "password");
    assert!(session["identity"].get("credentials").is_none());

    // The in-process check agrees with the HTTP one.
    let url = reqwest::Url::parse(&s.public).unwrap();
    let cookie_header =
        reqwest::cookie::CookieStore::cookies(&*jar, &url).map(|h| h.to_str().unwrap().to_string());
    let inproc = s
        .identity
        .whoami(cookie_header.as_deref(), None, None)
        .await
        .unwrap()
        .expect("session found in process");
    assert_eq!(inproc["id"], session["id"]);

    // The generated cookie secret was persisted: a restarted server accepts the cookie.
    let fresh_config = portcullis_identity::IdentityConfig::from_value(
        common::config_value(&format!("{}/", s.public), &format!("{}/", s.admin), "10m"),
        "restarted",
        std::path::Path::new("."),
        true,
    )
    .unwrap();
    let restarted = portcullis_identity::Identity::new(s.db.clone(), fresh_config)
        .await
        .unwrap();
    assert!(
        restarted
            .whoami(cookie_header.as_deref(), None, None)
            .await
            .unwrap()
            .is_some()
    );

    // Already signed in: the browser is sent on, JSON clients are told.
    let res = client
        .get(format!("{}/self-service/login/browser", s.public))
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let res = client
        .get(format!("{}/self-service/login/browser", s.public))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["id"], "session_already_available");

    // Browser logout.
    let res = client
        .get(format!("{}/self-service/logout/browser", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let logout: Value = res.json().await.unwrap();
    assert_schema("logoutFlow", &logout);
    assert!(
        logout["logout_token"]
            .as_str()
            .unwrap()
            .starts_with("ory_lo_")
    );
    let res = client
        .get(logout["logout_url"].as_str().unwrap())
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()[LOCATION], "http://127.0.0.1:4455/login");
    let res = client
        .get(format!("{}/sessions/whoami", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap(), whoami_401());
    // The old cookie is dead too, at once, in process and over HTTP.
    assert!(
        s.identity
            .whoami(cookie_header.as_deref(), None, None)
            .await
            .unwrap()
            .is_none()
    );
    let res = native()
        .get(format!("{}/sessions/whoami", s.public))
        .header("cookie", cookie_header.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_schema("errorGeneric", &res.json::<Value>().await.unwrap());

    // Browser login with the same account.
    let flow = browser_flow(&client, &s.public, "login").await;
    assert_schema("loginFlow", &flow);
    assert_eq!(node(&flow, "identifier")["meta"]["label"]["text"], "E-Mail");
    let res = submit_form(
        &client,
        &flow,
        &[
            ("identifier", "alice@example.com"),
            ("password", "correct horse battery staple"),
            ("method", "password"),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    let res = client
        .get(format!("{}/sessions/whoami", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
on_both!(browser_registration);

async fn login_errors(db: TestDb) {
    let s = start(db).await;
    // Register natively first.
    let res = native_register(&s, "bob@example.com", PASSWORD).await;
    assert_eq!(res.status(), 200);

    let (client, _) = browser();
    for (identifier, password) in [
        ("bob@example.com", "wrong password here"),
        ("nobody@example.com", "correct horse battery staple"),
    ] {
        let res = client
            .get(format!("{}/self-service/login/browser", s.public))
            .header(ACCEPT, "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "JSON browser init answers with the flow");
        let flow: Value = res.json().await.unwrap();
        let res = client
            .post(flow["ui"]["action"].as_str().unwrap())
            .header(ACCEPT, "application/json")
            .json(&json!({"method": "password", "identifier": identifier,
                "password": password, "csrf_token": csrf_of(&flow)}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        let updated: Value = res.json().await.unwrap();
        assert_schema("loginFlow", &updated);
        assert_eq!(form_message_ids(&updated), vec![4000006], "{updated:#}");
        assert_eq!(
            node(&updated, "identifier")["attributes"]["value"],
            identifier
        );
        assert!(
            node(&updated, "password")["attributes"]
                .get("value")
                .is_none()
        );
    }

    // A browser form post with a wrong password goes back to the UI with the flow id.
    let res = client
        .get(format!("{}/self-service/login/browser", s.public))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    let flow: Value = res.json().await.unwrap();
    let res = client
        .post(flow["ui"]["action"].as_str().unwrap())
        .form(&[
            ("csrf_token", csrf_of(&flow).as_str()),
            ("identifier", "bob@example.com"),
            ("password", "nope nope nope"),
            ("method", "password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()[LOCATION],
        format!(
            "http://127.0.0.1:4455/login?flow={}",
            flow["id"].as_str().unwrap()
        )
        .as_str()
    );

    // CSRF: a wrong token is refused with 403, a browser without the cookie cannot read flows.
    let res = client
        .post(flow["ui"]["action"].as_str().unwrap())
        .header(ACCEPT, "application/json")
        .json(&json!({"method": "password", "identifier": "bob@example.com",
            "password": "correct horse battery staple",
            "csrf_token": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let err: Value = res.json().await.unwrap();
    assert_schema("errorGeneric", &err);
    assert_eq!(err["error"]["id"], "security_csrf_violation");
    let res = native()
        .get(format!(
            "{}/self-service/login/flows?id={}",
            s.public,
            flow["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // A browser form post with a bad token lands on the error UI, which can read the error.
    let res = native()
        .post(flow["ui"]["action"].as_str().unwrap())
        .form(&[
            ("identifier", "bob@example.com"),
            ("password", "x"),
            ("method", "password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(
        location.starts_with("http://127.0.0.1:4455/error?id="),
        "{location}"
    );
    let id = location.split("id=").nth(1).unwrap();
    let res = native()
        .get(format!("{}/self-service/errors?id={id}", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let container: Value = res.json().await.unwrap();
    assert_schema("flowError", &container);
    assert_eq!(container["error"]["id"], "security_csrf_violation");

    // Unknown flows are 404 in Kratos's shape.
    let res = native()
        .get(format!(
            "{}/self-service/login/flows?id=00000000-0000-4000-8000-000000000000",
            s.public
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_schema("errorGeneric", &res.json::<Value>().await.unwrap());
}
on_both!(login_errors);

async fn registration_errors(db: TestDb) {
    let s = start(db).await;
    let api = native();
    let new_flow = || async {
        api.get(format!("{}/self-service/registration/api", s.public))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let submit = |flow: Value, body: Value| {
        let api = api.clone();
        async move {
            api.post(flow["ui"]["action"].as_str().unwrap())
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    // Missing email: 4000002 on the node.
    let flow = new_flow().await;
    assert_schema("registrationFlow", &flow);
    assert_eq!(flow["type"], "api");
    assert!(
        flow["ui"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["attributes"]["name"] != "csrf_token")
    );
    let res = submit(
        flow,
        json!({"method": "password", "password": "correct horse battery staple", "traits": {}}),
    )
    .await;
    assert_eq!(res.status(), 400);
    let updated: Value = res.json().await.unwrap();
    assert_schema("registrationFlow", &updated);
    let email = node(&updated, "traits.email");
    assert_eq!(email["messages"][0]["id"], 4000002, "{updated:#}");
    assert_eq!(email["messages"][0]["text"], "Property email is missing.");

    // Too short: 4000032 on the password node, traits kept.
    let res = submit(
        new_flow().await,
        json!({"method": "password", "password": "short", "traits": {"email": "carol@example.com"}}),
    )
    .await;
    assert_eq!(res.status(), 400);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(node(&updated, "password")["messages"][0]["id"], 4000032);
    assert_eq!(
        node(&updated, "traits.email")["attributes"]["value"],
        "carol@example.com"
    );

    // Similar to the identifier: 4000031.
    let res = submit(
        new_flow().await,
        json!({"method": "password", "password": "carol@example.com1", "traits": {"email": "carol@example.com"}}),
    )
    .await;
    assert_eq!(res.status(), 400);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(node(&updated, "password")["messages"][0]["id"], 4000031);

    // Invalid e-mail format: a message on the node, never a 500.
    let res = submit(
        new_flow().await,
        json!({"method": "password", "password": "correct horse battery staple", "traits": {"email": "not an email"}}),
    )
    .await;
    assert_eq!(res.status(), 400);
    let updated: Value = res.json().await.unwrap();
    assert!(
        !node(&updated, "traits.email")["messages"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Success, then a duplicate: 4000007 on the form.
    let body = json!({"method": "password", "password": "correct horse battery staple",
        "traits": {"email": "carol@example.com"}});
    let res = submit(new_flow().await, body.clone()).await;
    assert_eq!(res.status(), 200);
    let ok: Value = res.json().await.unwrap();
    assert_schema("successfulNativeRegistration", &ok);
    assert!(ok["session_token"].as_str().unwrap().starts_with("ory_st_"));
    assert_eq!(ok["continue_with"][0]["action"], "set_ory_session_token");
    let res = submit(new_flow().await, body).await;
    assert_eq!(res.status(), 400);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(form_message_ids(&updated), vec![4000007]);

    // API flows refuse browser-looking requests (no CSRF token protects them).
    let flow = new_flow().await;
    let res = api
        .post(flow["ui"]["action"].as_str().unwrap())
        .header("origin", "http://evil.example")
        .json(
            &json!({"method": "password", "password": "correct horse battery staple",
            "traits": {"email": "mallory@example.com"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_schema("errorGeneric", &res.json::<Value>().await.unwrap());

    // Unknown method and malformed JSON are answered, not crashed on.
    let res = submit(new_flow().await, json!({"method": "carrier-pigeon"})).await;
    assert_eq!(res.status(), 400);
    let flow = new_flow().await;
    let res = api
        .post(flow["ui"]["action"].as_str().unwrap())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_schema("errorGeneric", &res.json::<Value>().await.unwrap());
}
on_both!(registration_errors);

async fn native_sessions(db: TestDb) {
    let s = start(db).await;
    let api = native();
    let res = native_register(&s, "dave@example.com", PASSWORD).await;
    assert_eq!(res.status(), 200);

    let flow = get_json(&api, format!("{}/self-service/login/api", s.public)).await;
    assert_schema("loginFlow", &flow);
    let res = api
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(
            &json!({"method": "password", "identifier": "DAVE@example.com ",
            "password": "correct horse battery staple"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let login: Value = res.json().await.unwrap();
    assert_schema("successfulNativeLogin", &login);
    let token = login["session_token"].as_str().unwrap().to_string();

    for (header, value) in [
        ("x-session-token", token.clone()),
        ("authorization", format!("Bearer {token}")),
    ] {
        let res = api
            .get(format!("{}/sessions/whoami", s.public))
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{header}");
        let session: Value = res.json().await.unwrap();
        assert_eq!(session["id"], login["session"]["id"]);
    }
    assert!(
        s.identity
            .whoami(None, Some(&token), None)
            .await
            .unwrap()
            .is_some()
    );

    let res = api
        .delete(format!("{}/self-service/logout/api", s.public))
        .json(&json!({"session_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = api
        .get(format!("{}/sessions/whoami", s.public))
        .header("x-session-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap(), whoami_401());
    assert!(
        s.identity
            .whoami(None, Some(&token), None)
            .await
            .unwrap()
            .is_none()
    );
    let res = api
        .delete(format!("{}/self-service/logout/api", s.public))
        .json(&json!({"session_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}
on_both!(native_sessions);

async fn expired_flows(db: TestDb) {
    let s = start_with(db, "1ms", true).await;
    let api = native();
    let flow = get_json(&api, format!("{}/self-service/login/api", s.public)).await;
    // The flow lives 1ms; poll the clock rather than sleeping a fixed time.
    let expires = time::OffsetDateTime::parse(
        flow["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    while time::OffsetDateTime::now_utc() <= expires {
        tokio::task::yield_now().await;
    }
    let res = api
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "password", "identifier": "x@example.com", "password": "whatever123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 410);
    let body: Value = res.json().await.unwrap();
    assert_schema("selfServiceFlowExpiredError", &body);
    assert_eq!(body["error"]["id"], "self_service_flow_expired");
    assert_ne!(body["use_flow_id"], flow["id"]);
}
on_both!(expired_flows);

async fn secure_cookies_outside_dev(db: TestDb) {
    let s = start_with(db, "10m", false).await;
    let (client, _) = browser();
    let res = client
        .get(format!("{}/self-service/registration/browser", s.public))
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    let cookies = set_cookies(&res);
    let csrf = cookies
        .iter()
        .find(|c| c.starts_with("csrf_token_"))
        .expect("csrf cookie");
    assert!(csrf.contains("; Secure"), "{csrf}");
    assert!(csrf.contains("HttpOnly"), "{csrf}");
}
on_both!(secure_cookies_outside_dev);

async fn return_to_is_guarded(db: TestDb) {
    let s = start(db).await;
    let (client, _) = browser();
    let res = client
        .get(format!(
            "{}/self-service/registration/browser?return_to=https://evil.example/",
            s.public
        ))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["id"], "self_service_flow_return_to_forbidden");

    let res = client
        .get(format!(
            "{}/self-service/registration/browser?return_to=http://127.0.0.1:4455/hello",
            s.public
        ))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let flow: Value = res.json().await.unwrap();
    assert_eq!(flow["return_to"], "http://127.0.0.1:4455/hello");
    let res = submit_form(
        &client,
        &flow,
        &[
            ("traits.email", "erin@example.com"),
            ("password", "correct horse battery staple"),
            ("method", "password"),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()[LOCATION], "http://127.0.0.1:4455/hello");
}
on_both!(return_to_is_guarded);

async fn oversized_bodies_are_refused(db: TestDb) {
    let s = start(db).await;
    let api = native();
    let flow = get_json(&api, format!("{}/self-service/registration/api", s.public)).await;
    let huge = "x".repeat(portcullis_identity::x::MAX_BODY_BYTES + 1);
    let res = api
        .post(flow["ui"]["action"].as_str().unwrap())
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_schema("errorGeneric", &res.json::<Value>().await.unwrap());
}
on_both!(oversized_bodies_are_refused);

/// The tutorial's own kratos.yml (v0.7 keys, bcrypt hasher setting, schema path from its
/// compose file) serves a browser registration; only the base URL comes from the environment.
async fn tutorial_config_serves(db: TestDb) {
    let s = common::start_config(db, |public, _| {
        portcullis_identity::IdentityConfig::load_with_env(
            &common::reference().join("tutorial/kratos/kratos.yml"),
            true,
            [
                ("SERVE_PUBLIC_BASE_URL".to_string(), public.to_string()),
                // Offline: no breached-password lookup against the real host.
                (
                    "SELFSERVICE_METHODS_PASSWORD_CONFIG_HAVEIBEENPWNED_ENABLED".to_string(),
                    "false".to_string(),
                ),
            ],
        )
        .expect("tutorial kratos.yml")
    })
    .await;
    let (client, _) = browser();
    let flow = browser_flow(&client, &s.public, "registration").await;
    let res = submit_form(
        &client,
        &flow,
        &[
            ("traits.email", "tutorial@example.com"),
            ("password", "correct horse battery staple"),
            ("method", "password"),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    let res = client
        .get(format!("{}/sessions/whoami", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // The tutorial enables CORS (all origins): preflights are answered, origins echoed.
    let res = native()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/self-service/login/api", s.public),
        )
        .header("origin", "http://127.0.0.1:4455")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "x-session-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://127.0.0.1:4455"
    );
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    let res = native()
        .get(format!("{}/sessions/whoami", s.public))
        .header("origin", "http://127.0.0.1:4455")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://127.0.0.1:4455"
    );
}
on_both!(tutorial_config_serves);

/// Several sessions of one identity: list and revoke the others, admin views and revocation.
async fn session_management(db: TestDb) {
    let s = start(db).await;
    let api = native();
    let reg: Value = native_register(&s, "grace@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let first = reg["session_token"].as_str().unwrap().to_string();
    let identity_id = reg["identity"]["id"].as_str().unwrap().to_string();
    let mut tokens = vec![first];
    for _ in 0..2 {
        let login: Value = native_login(&s, "grace@example.com", "correct horse battery staple")
            .await
            .json()
            .await
            .unwrap();
        tokens.push(login["session_token"].as_str().unwrap().to_string());
    }
    let others: Value = api
        .get(format!("{}/sessions", s.public))
        .header("x-session-token", &tokens[0])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(others.as_array().unwrap().len(), 2);
    assert_schema("session", &others[0]);

    // Revoke one other session by id, then the rest.
    let other_id = others[0]["id"].as_str().unwrap().to_string();
    let res = api
        .delete(format!("{}/sessions/{other_id}", s.public))
        .header("x-session-token", &tokens[0])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = api
        .delete(format!("{}/sessions", s.public))
        .header("x-session-token", &tokens[0])
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"count": 1}));
    for t in &tokens[1..] {
        assert!(
            s.identity
                .whoami(None, Some(t), None)
                .await
                .unwrap()
                .is_none()
        );
    }
    assert!(
        s.identity
            .whoami(None, Some(&tokens[0]), None)
            .await
            .unwrap()
            .is_some()
    );

    // Admin: list, fetch, and revoke everything.
    let all = get_json(
        &api,
        format!("{}/admin/identities/{identity_id}/sessions", s.admin),
    )
    .await;
    assert_eq!(all.as_array().map(Vec::len), Some(3), "{all:#}");
    let active = get_json(
        &api,
        format!(
            "{}/admin/identities/{identity_id}/sessions?active=true",
            s.admin
        ),
    )
    .await;
    assert_eq!(active.as_array().unwrap().len(), 1);
    let sid = active[0]["id"].as_str().unwrap();
    let res = api
        .get(format!("{}/admin/sessions/{sid}", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = api
        .delete(format!(
            "{}/admin/identities/{identity_id}/sessions",
            s.admin
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(
        s.identity
            .whoami(None, Some(&tokens[0]), None)
            .await
            .unwrap()
            .is_none()
    );
    let res = api
        .get(format!("{}/sessions", s.public))
        .header("x-session-token", &tokens[0])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
on_both!(session_management);
