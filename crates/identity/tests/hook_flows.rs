//! `web_hook`s on settings, recovery and verification, and `response.parse` on registration
//! and settings, against a real local hook server whose answers each test sets: `before`
//! hooks (a refusal answers the API init with error JSON and sends browsers to the error UI),
//! pre-persist interruptions and identity changes (nothing stored on refusal; changed traits
//! re-validated; the stored identity read back through the admin API), interrupting recovery
//! and verification hooks (400 / 303 with the hook's messages, never 500), and `https://` hooks
//! trusted through a private CA given to [`Identity::with_client`]. On SQLite and PostgreSQL.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use base64::Engine;
use common::{
    PASSWORD, Server, assert_schema, browser, code_in, create_identity, csrf_of, form_message_ids,
    get_json, native, native_login, node, node_message_ids, start_with_mail, submit_form,
};
use portcullis_db::testing::TestDb;
use reqwest::header::{ACCEPT, LOCATION};
use serde_json::{Value, json};

const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// A hook server: records every call (path, JSON body) and answers each path with what the
/// test set, else 200 `{}`.
#[derive(Clone, Default)]
struct Hooks {
    url: String,
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    answers: Arc<Mutex<HashMap<String, (u16, String)>>>,
}

impl Hooks {
    async fn start() -> Hooks {
        let mut hooks = Hooks::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        hooks.url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(hooks.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        hooks
    }

    fn answer(&self, path: &str, status: u16, body: Value) {
        self.answers
            .lock()
            .unwrap()
            .insert(path.to_string(), (status, body.to_string()));
    }

    /// The bodies of the calls to `path`, oldest first.
    fn calls(&self, path: &str) -> Vec<Value> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// A `web_hook` entry calling `path` with `template` (Jsonnet) as its body.
    fn hook(&self, path: &str, template: &str, extra: Value) -> Value {
        let mut config = json!({"url": format!("{}{path}", self.url), "method": "POST",
            "body": b64(template)});
        if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
            config.extend(extra.clone());
        }
        json!({"hook": "web_hook", "config": config})
    }
}

async fn answer(State(hooks): State<Hooks>, uri: Uri, body: String) -> (StatusCode, String) {
    let path = uri.path().to_string();
    let parsed = serde_json::from_str(&body).unwrap_or(Value::Null);
    hooks.calls.lock().unwrap().push((path.clone(), parsed));
    let (status, body) = hooks
        .answers
        .lock()
        .unwrap()
        .get(&path)
        .cloned()
        .unwrap_or((200, "{}".into()));
    (StatusCode::from_u16(status).unwrap(), body)
}

fn b64(s: &str) -> String {
    format!(
        "base64://{}",
        base64::engine::general_purpose::STANDARD.encode(s)
    )
}

/// Kratos's interrupting answer: one message on `traits.email`, one on the form.
fn refusal() -> Value {
    json!({"messages": [
        {"instance_ptr": "#/traits/email", "messages": [
            {"id": 10001, "text": "This address is not allowed.", "type": "error"}]},
        {"instance_ptr": "#/", "messages": [
            {"id": 10002, "text": "Ask support for help.", "type": "error"}]}
    ]})
}

const FLOW_TEMPLATE: &str = r#"function(ctx) {
  flow_id: ctx.flow.id,
  flow_type: ctx.flow.type,
  identity_id: if std.objectHas(ctx.flow, 'identity') then ctx.flow.identity.id else null,
}"#;

const IDENTITY_TEMPLATE: &str = r#"function(ctx) {
  identity_id: ctx.identity.id,
  email: ctx.identity.traits.email,
  first: if std.objectHas(ctx.identity.traits, 'name') then ctx.identity.traits.name.first else null,
  session_id: if std.objectHas(ctx, 'session') then ctx.session.id else null,
}"#;

/// The identity as the admin API has it.
async fn admin_identity(s: &Server, id: &str) -> Value {
    let res = native()
        .get(format!("{}/admin/identities/{id}", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn session_token(s: &Server, email: &str, password: &str) -> String {
    let res = native_login(s, email, password).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["session_token"].as_str().unwrap().to_string()
}

/// Starts a browser flow of `kind` with an HTML `Accept`; the response.
async fn browser_init(s: &Server, client: &reqwest::Client, kind: &str) -> reqwest::Response {
    client
        .get(format!("{}/self-service/{kind}/browser", s.public))
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap()
}

async fn before_hooks(db: TestDb) {
    let hooks = Hooks::start().await;
    let h = hooks.clone();
    let s = start_with_mail(db, move |v| {
        let flows = &mut v["selfservice"]["flows"];
        for kind in ["settings", "recovery", "verification"] {
            flows[kind]["before"]["hooks"] = json!([h.hook(
                &format!("/before/{kind}"),
                FLOW_TEMPLATE,
                json!({"can_interrupt": true})
            )]);
        }
    })
    .await;
    let id = create_identity(&s, "bo@example.com").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let token = session_token(&s, "bo@example.com", PASSWORD).await;
    let api = native();
    let init = |kind: &str| {
        let req = api.get(format!("{}/self-service/{kind}/api", s.public));
        if kind == "settings" {
            req.header("x-session-token", token.as_str())
        } else {
            req
        }
    };

    // Accepted: each init runs its flow's hook with the new flow.
    for kind in ["settings", "recovery", "verification"] {
        let res = init(kind).send().await.unwrap();
        assert_eq!(res.status(), 200, "{kind}");
        let flow: Value = res.json().await.unwrap();
        assert_schema(&format!("{kind}Flow"), &flow);
        let calls = hooks.calls(&format!("/before/{kind}"));
        assert_eq!(calls.len(), 1, "{kind}");
        assert_eq!(calls[0]["flow_id"], flow["id"], "{kind}");
        assert_eq!(calls[0]["flow_type"], "api", "{kind}");
        let expected_identity = if kind == "settings" {
            json!(id)
        } else {
            Value::Null
        };
        assert_eq!(calls[0]["identity_id"], expected_identity, "{kind}");
    }

    // Interrupted: API inits answer 400 with the hook's text; browsers go to the error UI.
    let (client, _jar) = browser();
    let browser_session = {
        let flow: Value = client
            .get(format!("{}/self-service/login/browser", s.public))
            .header(ACCEPT, "application/json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let fields = [
            ("method", "password"),
            ("identifier", "bo@example.com"),
            ("password", PASSWORD),
        ];
        submit_form(&client, &flow, &fields).await.status()
    };
    assert_eq!(browser_session, 303);
    for kind in ["settings", "recovery", "verification"] {
        hooks.answer(&format!("/before/{kind}"), 403, refusal());
        let res = init(kind).send().await.unwrap();
        assert_eq!(res.status(), 400, "{kind}");
        let body: Value = res.json().await.unwrap();
        assert_schema("errorGeneric", &body);
        let reason = body["error"]["message"].as_str().unwrap().to_string()
            + body["error"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("This address is not allowed."), "{body:#}");

        // Recovery refuses signed-in browsers before any hook; use a fresh one there.
        let res = if kind == "settings" {
            browser_init(&s, &client, kind).await
        } else {
            browser_init(&s, &browser().0, kind).await
        };
        assert_eq!(res.status(), 303, "{kind}");
        let location = res.headers()[LOCATION].to_str().unwrap();
        assert!(
            location.starts_with("http://127.0.0.1:4455/error?id="),
            "{kind}: {location}"
        );

        // A failing hook (5xx, no Kratos body) is an error, also never a flow.
        hooks.answer(&format!("/before/{kind}"), 502, json!("bad gateway"));
        let res = init(kind).send().await.unwrap();
        assert_eq!(res.status(), 500, "{kind}");
        assert_schema("errorGeneric", &res.json::<Value>().await.unwrap());
    }
}
on_both!(before_hooks);

async fn settings_pre_persist(db: TestDb) {
    let hooks = Hooks::start().await;
    let h = hooks.clone();
    let s = start_with_mail(db, move |v| {
        v["selfservice"]["flows"]["settings"]["after"] = json!({
            "profile": {"hooks": [h.hook("/check", IDENTITY_TEMPLATE, json!({"response": {"parse": true}}))]},
            "password": {"hooks": [h.hook("/password-check", IDENTITY_TEMPLATE, json!({"can_interrupt": true}))]},
            "hooks": [h.hook("/notify", IDENTITY_TEMPLATE, json!({}))],
        });
    })
    .await;
    let id = create_identity(&s, "sue@example.com").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let token = session_token(&s, "sue@example.com", PASSWORD).await;
    let api = native();
    let submit = |body: Value| {
        let api = api.clone();
        let token = token.clone();
        let public = s.public.clone();
        async move {
            let flow: Value = api
                .get(format!("{public}/self-service/settings/api"))
                .header("x-session-token", &token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let res = api
                .post(flow["ui"]["action"].as_str().unwrap())
                .header("x-session-token", &token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let profile = |email: &str, first: &str| json!({"method": "profile", "traits": {"email": email, "name": {"first": first}}});

    // Interrupted before anything is stored: 400 with the hook's messages, identity as it was.
    hooks.answer("/check", 422, refusal());
    let (status, body) = submit(profile("sue@blocked.example", "Sue")).await;
    assert_eq!(status, 400, "{body:#}");
    assert_schema("settingsFlow", &body);
    assert_eq!(node_message_ids(&body, "traits.email"), [10001]);
    assert_eq!(form_message_ids(&body), [10002]);
    let check = hooks.calls("/check");
    assert_eq!(check.len(), 1);
    assert_eq!(check[0]["email"], "sue@blocked.example");
    assert_eq!(check[0]["identity_id"], id.as_str());
    assert!(hooks.calls("/notify").is_empty());
    let stored = admin_identity(&s, &id).await;
    assert_eq!(stored["traits"], json!({"email": "sue@example.com"}));

    // A refusal without messages in Kratos's shape still only interrupts: a generic message.
    hooks.answer("/check", 403, json!("forbidden"));
    let (status, body) = submit(profile("sue@blocked.example", "Sue")).await;
    assert_eq!(status, 400, "{body:#}");
    assert_eq!(form_message_ids(&body), [4000001]);
    assert_eq!(
        admin_identity(&s, &id).await["traits"]["email"],
        "sue@example.com"
    );

    // The hook's answer changes the identity before it is stored.
    hooks.answer(
        "/check",
        200,
        json!({"identity": {
            "traits": {"email": "sue@example.com", "name": {"first": "Susan", "last": "Hook"}},
            "metadata_public": {"plan": "gold"},
            "metadata_admin": {"crm_id": "c-42"}}}),
    );
    let (status, body) = submit(profile("sue@example.com", "Sue")).await;
    assert_eq!(status, 200, "{body:#}");
    assert_schema("settingsFlow", &body);
    assert_eq!(body["state"], "success");
    assert_eq!(body["identity"]["traits"]["name"]["first"], "Susan");
    let stored = admin_identity(&s, &id).await;
    assert_eq!(
        stored["traits"]["name"],
        json!({"first": "Susan", "last": "Hook"})
    );
    assert_eq!(stored["metadata_public"], json!({"plan": "gold"}));
    assert_eq!(stored["metadata_admin"], json!({"crm_id": "c-42"}));
    // The post-persist hook sees what was stored.
    let notify = hooks.calls("/notify");
    assert_eq!(notify.len(), 1);
    assert_eq!(notify[0]["first"], "Susan");

    // Traits a hook sets are validated: the flow's 400 with the field's message.
    hooks.answer(
        "/check",
        200,
        json!({"identity": {"traits": {"email": "not-an-address"}}}),
    );
    let (status, body) = submit(profile("sue@example.com", "Sue")).await;
    assert_eq!(status, 400, "{body:#}");
    assert_schema("settingsFlow", &body);
    assert_eq!(node_message_ids(&body, "traits.email"), [4000001]);
    let stored = admin_identity(&s, &id).await;
    assert_eq!(stored["traits"]["email"], "sue@example.com");
    assert_eq!(stored["traits"]["name"]["first"], "Susan");

    // A hook that changes the address: addresses and the login identifier follow.
    hooks.answer(
        "/check",
        200,
        json!({"identity": {"traits": {"email": "susan@example.com"}, "metadata_admin": null}}),
    );
    let (status, body) = submit(profile("sue@example.com", "Sue")).await;
    assert_eq!(status, 200, "{body:#}");
    let stored = admin_identity(&s, &id).await;
    assert_eq!(stored["traits"], json!({"email": "susan@example.com"}));
    assert_eq!(stored["metadata_admin"], Value::Null);
    assert_eq!(stored["metadata_public"], json!({"plan": "gold"}));
    assert_eq!(
        stored["verifiable_addresses"][0]["value"],
        "susan@example.com"
    );
    assert_eq!(
        stored["recovery_addresses"][0]["value"],
        "susan@example.com"
    );
    assert_eq!(
        native_login(&s, "susan@example.com", PASSWORD)
            .await
            .status(),
        200
    );
    assert_eq!(
        native_login(&s, "sue@example.com", PASSWORD).await.status(),
        400
    );

    // Each method runs its own hooks (and the global ones): the password method's
    // interrupting hook refuses, nothing changes.
    assert!(hooks.calls("/password-check").is_empty());
    let profile_checks = hooks.calls("/check").len();
    let notified = hooks.calls("/notify").len();
    hooks.answer("/password-check", 400, refusal());
    let new_password = "another horse battery staple";
    let (status, body) = submit(json!({"method": "password", "password": new_password})).await;
    assert_eq!(status, 400, "{body:#}");
    assert_eq!(form_message_ids(&body), [10002]);
    assert_eq!(hooks.calls("/password-check").len(), 1);
    assert_eq!(hooks.calls("/notify").len(), notified);
    let login = native_login(&s, "susan@example.com", new_password).await;
    assert_eq!(login.status(), 400);
    hooks.answer("/password-check", 200, json!({}));
    let (status, body) = submit(json!({"method": "password", "password": new_password})).await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(hooks.calls("/password-check").len(), 2);
    assert_eq!(hooks.calls("/notify").len(), notified + 1);
    assert_eq!(hooks.calls("/check").len(), profile_checks);
    let login = native_login(&s, "susan@example.com", new_password).await;
    assert_eq!(login.status(), 200);
}
on_both!(settings_pre_persist);

/// Browsers are sent back to the settings UI, whose flow shows the hook's messages.
async fn browser_settings_interrupted(db: TestDb) {
    let hooks = Hooks::start().await;
    let h = hooks.clone();
    let s = start_with_mail(db, move |v| {
        v["selfservice"]["flows"]["settings"]["after"]["hooks"] =
            json!([h.hook("/check", IDENTITY_TEMPLATE, json!({"can_interrupt": true}))]);
    })
    .await;
    create_identity(&s, "bea@example.com").await;
    let (client, _jar) = browser();
    let flow: Value = client
        .get(format!("{}/self-service/login/browser", s.public))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fields = [
        ("method", "password"),
        ("identifier", "bea@example.com"),
        ("password", PASSWORD),
    ];
    assert_eq!(submit_form(&client, &flow, &fields).await.status(), 303);
    let res = browser_init(&s, &client, "settings").await;
    assert_eq!(res.status(), 303);
    let location = res.headers()[LOCATION].to_str().unwrap().to_string();
    let flow_id = location.split("flow=").nth(1).unwrap().to_string();
    let flow = get_json(
        &client,
        format!("{}/self-service/settings/flows?id={flow_id}", s.public),
    )
    .await;
    hooks.answer("/check", 400, refusal());
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
    let shown = get_json(
        &client,
        format!("{}/self-service/settings/flows?id={flow_id}", s.public),
    )
    .await;
    assert_schema("settingsFlow", &shown);
    assert_eq!(shown["state"], "show_form");
    assert_eq!(node_message_ids(&shown, "traits.email"), [10001]);
    assert_eq!(form_message_ids(&shown), [10002]);
    let whoami = get_json(&client, format!("{}/sessions/whoami", s.public)).await;
    assert!(
        whoami["identity"]["traits"].get("name").is_none(),
        "{whoami:#}"
    );
}
on_both!(browser_settings_interrupted);

async fn registration_parse(db: TestDb) {
    let hooks = Hooks::start().await;
    let h = hooks.clone();
    let s = start_with_mail(db, move |v| {
        v["selfservice"]["flows"]["registration"]["after"]["password"]["hooks"] = json!([
            h.hook("/enrich", IDENTITY_TEMPLATE, json!({"response": {"parse": true}})),
            h.hook("/second", IDENTITY_TEMPLATE, json!({"can_interrupt": true})),
            {"hook": "session"}
        ]);
        v["selfservice"]["flows"]["login"]["after"]["hooks"] = json!([h.hook(
            "/login-parse",
            IDENTITY_TEMPLATE,
            json!({"response": {"parse": true}})
        )]);
    })
    .await;
    let register = |email: &str| {
        let email = email.to_string();
        let s = &s;
        async move {
            let res = common::native_register(s, &email, PASSWORD).await;
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };

    hooks.answer(
        "/enrich",
        200,
        json!({"identity": {
            "traits": {"email": "reg@example.com", "name": {"first": "Hooked"}},
            "metadata_public": {"source": "hook"},
            "metadata_admin": {"score": 7}}}),
    );
    let (status, body) = register("reg@example.com").await;
    assert_eq!(status, 200, "{body:#}");
    assert_schema("successfulNativeRegistration", &body);
    assert_eq!(body["identity"]["traits"]["name"]["first"], "Hooked");
    let id = body["identity"]["id"].as_str().unwrap();
    // The next hook saw the changed identity; the stored one carries the changes.
    assert_eq!(hooks.calls("/second")[0]["first"], "Hooked");
    let stored = admin_identity(&s, id).await;
    assert_eq!(stored["traits"]["name"], json!({"first": "Hooked"}));
    assert_eq!(stored["metadata_public"], json!({"source": "hook"}));
    assert_eq!(stored["metadata_admin"], json!({"score": 7}));

    // Login takes no identity changes: a parse hook's answer is not read there.
    let login_answer = "OK, not JSON";
    hooks
        .answers
        .lock()
        .unwrap()
        .insert("/login-parse".into(), (200, login_answer.into()));
    assert_eq!(
        native_login(&s, "reg@example.com", PASSWORD).await.status(),
        200
    );
    assert_eq!(hooks.calls("/login-parse").len(), 1);

    // An answer that is not JSON where it could change the identity fails the flow.
    hooks
        .answers
        .lock()
        .unwrap()
        .insert("/enrich".into(), (200, login_answer.into()));
    let (status, body) = register("third@example.com").await;
    assert_eq!(status, 500, "{body:#}");
    assert_schema("errorGeneric", &body);

    // Invalid traits from the hook: the registration form's 400, nothing stored.
    hooks.answer(
        "/enrich",
        200,
        json!({"identity": {"traits": {"email": "x@example.com", "nickname": "extra"}}}),
    );
    let (status, body) = register("other@example.com").await;
    assert_eq!(status, 400, "{body:#}");
    assert_schema("registrationFlow", &body);
    assert!(
        !body["ui"]["messages"].as_array().unwrap().is_empty(),
        "{body:#}"
    );
    assert_eq!(
        node(&body, "traits.email")["attributes"]["value"],
        "other@example.com"
    );
    let all: Vec<Value> = get_json(&native(), format!("{}/admin/identities", s.admin))
        .await
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(all.len(), 1, "{all:#?}");
}
on_both!(registration_parse);

async fn recovery_interrupted(db: TestDb) {
    let hooks = Hooks::start().await;
    let h = hooks.clone();
    let s = start_with_mail(db, move |v| {
        v["selfservice"]["flows"]["recovery"]["after"] =
            json!({"hooks": [h.hook("/recovered", IDENTITY_TEMPLATE, json!({"can_interrupt": true}))]});
    })
    .await;
    let id = create_identity(&s, "rae@example.com").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let api = native();
    let flow = get_json(&api, format!("{}/self-service/recovery/api", s.public)).await;
    let action = flow["ui"]["action"].as_str().unwrap().to_string();
    let res = api
        .post(&action)
        .json(&json!({"method": "code", "email": "rae@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let code = code_in(&s.mail_to("rae@example.com", "recover").await);

    hooks.answer("/recovered", 403, refusal());
    let res = api
        .post(&action)
        .json(&json!({"method": "code", "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_schema("recoveryFlow", &body);
    assert!(body.get("continue_with").is_none(), "{body:#}");
    // The flow starts over at the address form, carrying the hook's messages.
    assert_eq!(body["state"], "choose_method");
    assert_eq!(form_message_ids(&body), [10001, 10002]);
    node(&body, "email");
    // The session the hook was shown never reached the client and is no longer active.
    let calls = hooks.calls("/recovered");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["identity_id"], id.as_str());
    let session_id = calls[0]["session_id"].as_str().unwrap();
    let session = get_json(&api, format!("{}/admin/sessions/{session_id}", s.admin)).await;
    assert_eq!(session["active"], false, "{session:#}");
    // The same flow accepts an address again.
    let res = api
        .post(&action)
        .json(&json!({"method": "code", "email": "rae@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["state"], "sent_email");

    // Browsers are sent back to the recovery UI without a session cookie.
    create_identity(&s, "rex@example.com").await;
    let (client, jar) = browser();
    let res = browser_init(&s, &client, "recovery").await;
    let location = res.headers()[LOCATION].to_str().unwrap().to_string();
    let flow_id = location.split("flow=").nth(1).unwrap().to_string();
    let flow = get_json(
        &client,
        format!("{}/self-service/recovery/flows?id={flow_id}", s.public),
    )
    .await;
    let fields = [("method", "code"), ("email", "rex@example.com")];
    assert_eq!(submit_form(&client, &flow, &fields).await.status(), 303);
    let code = code_in(&s.mail_to("rex@example.com", "recover").await);
    let fields = [("method", "code"), ("code", code.as_str())];
    let res = submit_form(&client, &flow, &fields).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()[LOCATION].to_str().unwrap(), location);
    let cookies =
        reqwest::cookie::CookieStore::cookies(jar.as_ref(), &s.public.parse::<url::Url>().unwrap())
            .map(|c| c.to_str().unwrap().to_string())
            .unwrap_or_default();
    assert!(!cookies.contains("ory_kratos_session"), "{cookies}");
    let shown = get_json(
        &client,
        format!("{}/self-service/recovery/flows?id={flow_id}", s.public),
    )
    .await;
    assert_eq!(shown["state"], "choose_method");
    assert_eq!(form_message_ids(&shown), [10001, 10002]);
    csrf_of(&shown);
}
on_both!(recovery_interrupted);

async fn verification_interrupted(db: TestDb) {
    let hooks = Hooks::start().await;
    let h = hooks.clone();
    let s = start_with_mail(db, move |v| {
        v["selfservice"]["flows"]["verification"]["after"] =
            json!({"hooks": [h.hook("/verified", IDENTITY_TEMPLATE, json!({"can_interrupt": true}))]});
    })
    .await;
    let id = create_identity(&s, "vic@example.com").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let api = native();
    let flow = get_json(&api, format!("{}/self-service/verification/api", s.public)).await;
    let action = flow["ui"]["action"].as_str().unwrap().to_string();
    let res = api
        .post(&action)
        .json(&json!({"method": "code", "email": "vic@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let code = code_in(&s.mail_to("vic@example.com", "verify").await);
    hooks.answer("/verified", 400, refusal());
    let res = api
        .post(&action)
        .json(&json!({"method": "code", "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_schema("verificationFlow", &body);
    // The code proved the address, so it stays verified; the flow is passed and shows the
    // hook's messages instead of the success message.
    assert_eq!(body["state"], "passed_challenge");
    assert_eq!(form_message_ids(&body), [10001, 10002]);
    assert_eq!(hooks.calls("/verified")[0]["identity_id"], id.as_str());
    let stored = admin_identity(&s, &id).await;
    assert_eq!(stored["verifiable_addresses"][0]["verified"], true);

    // The e-mailed link in a browser: 303 back to the verification UI with the messages.
    create_identity(&s, "val@example.com").await;
    let (client, _jar) = browser();
    let res = browser_init(&s, &client, "verification").await;
    let location = res.headers()[LOCATION].to_str().unwrap().to_string();
    let flow_id = location.split("flow=").nth(1).unwrap().to_string();
    let flow = get_json(
        &client,
        format!("{}/self-service/verification/flows?id={flow_id}", s.public),
    )
    .await;
    let fields = [("method", "code"), ("email", "val@example.com")];
    assert_eq!(submit_form(&client, &flow, &fields).await.status(), 303);
    let mail = s.mail_to("val@example.com", "verify").await;
    let link = mail
        .split_whitespace()
        .find(|w| w.contains("/self-service/verification?flow="))
        .unwrap()
        .to_string();
    let res = client.get(&link).header(ACCEPT, HTML).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()[LOCATION].to_str().unwrap(), location);
    let shown = get_json(
        &client,
        format!("{}/self-service/verification/flows?id={flow_id}", s.public),
    )
    .await;
    assert_eq!(shown["state"], "passed_challenge");
    assert_eq!(form_message_ids(&shown), [10001, 10002]);
}
on_both!(verification_interrupted);

/// A private CA and a certificate it signed for `127.0.0.1`; the CA's PEM and a server config.
fn private_pki() -> (String, tokio_rustls::rustls::ServerConfig) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let server = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    (ca_cert.pem(), server)
}

/// An HTTPS hook server: every request's body goes to the returned log; answers 200 `{}`.
async fn https_receiver(
    config: tokio_rustls::rustls::ServerConfig,
) -> (String, Arc<Mutex<Vec<String>>>) {
    use http_body_util::BodyExt;
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let received = log.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, log) = (acceptor.clone(), received.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let log = log.clone();
                        async move {
                            let body = req.into_body().collect().await?.to_bytes();
                            log.lock()
                                .unwrap()
                                .push(String::from_utf8_lossy(&body).into_owned());
                            Ok::<_, hyper::Error>(hyper::Response::new(axum::body::Body::from(
                                "{}",
                            )))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (url, log)
}

/// `https://` hooks are verified against the client's roots: with the private CA added
/// through [`portcullis_identity::Identity::with_client`] the call succeeds (no process
/// environment is changed, so parallel tests are unaffected).
async fn https_hooks_trust_the_given_roots(db: TestDb) {
    let (ca_pem, server) = private_pki();
    let (url, log) = https_receiver(server).await;
    let client = portcullis_http::upstream_client_trusting(ca_pem.as_bytes()).unwrap();
    let s = common::start_config_with_client(db, client, move |public, admin| {
        let mut v = common::config_value(public, admin, "10m");
        v["selfservice"]["flows"]["login"]["before"] = json!({"hooks": [
            {"hook": "web_hook", "config": {"url": format!("{url}/login-before"), "method": "POST",
                "body": b64("function(ctx) { flow_id: ctx.flow.id }")}}
        ]});
        portcullis_identity::IdentityConfig::from_value(v, "test kratos.yml", Path::new("."), true)
            .unwrap()
    })
    .await;
    let res = native()
        .get(format!("{}/self-service/login/api", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let flow: Value = res.json().await.unwrap();
    let bodies = log.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    let sent: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(sent["flow_id"], flow["id"]);
}
on_both!(https_hooks_trust_the_given_roots);
