//! The pages over real HTTP against a small fake Kratos public API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use portcullis_http::{Shutdown, bind, serve};
use portcullis_ui::UiConfig;
use serde_json::{Value, json};

const CSRF_COOKIE: &str =
    "csrf_token_806060ca5bf70dff3caa0e5c860002aade9d470a5a4dce73bcfa7ba10778f481=cookie-secret";
const SESSION_COOKIE: &str = "ory_kratos_session=valid-session";
const BROWSER_URL: &str = "http://browser.example:4433/";

/// Cookie headers the fake received, by path.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

fn error_body(code: u16, id: &str, status: &str, message: &str) -> Value {
    json!({"error": {"id": id, "code": code, "status": status, "message": message, "reason": format!("reason for {id}")}})
}

fn text(id: i64, text: &str, kind: &str) -> Value {
    json!({"id": id, "text": text, "type": kind})
}

fn input(group: &str, name: &str, kind: &str, value: Value, label: Option<Value>) -> Value {
    let mut attributes = json!({"name": name, "type": kind, "required": kind != "submit", "disabled": false, "node_type": "input"});
    if !value.is_null() {
        attributes["value"] = value;
    }
    if kind == "password" {
        attributes["autocomplete"] = json!("current-password");
    }
    let meta = match label {
        Some(label) => json!({"label": label}),
        None => json!({}),
    };
    json!({"type": "input", "group": group, "attributes": attributes, "messages": [], "meta": meta})
}

fn login_flow() -> Value {
    json!({
        "id": "ok-login",
        "type": "browser",
        "expires_at": "2026-11-28T13:00:00Z",
        "issued_at": "2026-11-28T12:00:00Z",
        "request_url": "http://127.0.0.1:4433/self-service/login/browser?return_to=http://127.0.0.1:8000/hello",
        "return_to": "http://127.0.0.1:8000/hello",
        "refresh": false,
        "requested_aal": "aal1",
        "state": "choose_method",
        "ui": {
            "action": "http://127.0.0.1:4433/self-service/login?flow=ok-login",
            "method": "POST",
            "nodes": [
                input("default", "csrf_token", "hidden", json!("masked+csrf/token=="), None),
                input("default", "identifier", "text", json!("ada@example.com"), Some(json!({"id": 1070002, "text": "E-Mail", "type": "info", "context": {"title": "E-Mail"}}))),
                input("password", "password", "password", Value::Null, Some(text(1070001, "Password", "info"))),
                input("password", "method", "submit", json!("password"), Some(text(1010022, "Sign in with password", "info"))),
            ],
            "messages": [text(4000006, "The provided credentials are invalid, check for spelling mistakes in your password or username, email address, or phone number.", "error")]
        }
    })
}

fn registration_flow() -> Value {
    let mut password = input(
        "password",
        "password",
        "password",
        Value::Null,
        Some(text(1070001, "Password", "info")),
    );
    password["messages"] = json!([{
        "id": 4000032,
        "text": "The password must be at least 8 characters long, but got 3.",
        "type": "error",
        "context": {"min_length": 8, "actual_length": 3}
    }]);
    json!({
        "id": "ok-registration",
        "type": "browser",
        "expires_at": "2026-11-28T13:00:00Z",
        "issued_at": "2026-11-28T12:00:00Z",
        "request_url": "http://127.0.0.1:4433/self-service/registration/browser",
        "return_to": "http://127.0.0.1:8000/world",
        "state": "choose_method",
        "ui": {
            "action": "http://127.0.0.1:4433/self-service/registration?flow=ok-registration",
            "method": "POST",
            "nodes": [
                input("default", "csrf_token", "hidden", json!("masked"), None),
                input("default", "traits.email", "email", json!("<ada>@example.com"), Some(json!({"id": 1070002, "text": "E-Mail", "type": "info"}))),
                input("default", "traits.newsletter", "checkbox", json!(true), Some(json!({"id": 1070002, "text": "Newsletter", "type": "info"}))),
                password,
                input("password", "method", "submit", json!("password"), Some(text(1040001, "Sign up", "info"))),
            ]
        }
    })
}

fn settings_flow() -> Value {
    json!({
        "id": "ok-settings",
        "type": "browser",
        "expires_at": "2026-11-28T13:00:00Z",
        "issued_at": "2026-11-28T12:00:00Z",
        "request_url": "http://127.0.0.1:4433/self-service/settings/browser",
        "state": "success",
        "identity": {"id": "9f4c-identity", "traits": {"email": "ada@example.com"}},
        "ui": {
            "action": "http://127.0.0.1:4433/self-service/settings?flow=ok-settings",
            "method": "POST",
            "nodes": [
                input("default", "csrf_token", "hidden", json!("masked"), None),
                input("profile", "traits.email", "email", json!("ada@example.com"), Some(json!({"id": 1070002, "text": "E-Mail", "type": "info"}))),
                input("profile", "method", "submit", json!("profile"), Some(text(1070003, "Save", "info"))),
                input("password", "password", "password", Value::Null, Some(text(1070001, "Password", "info"))),
                input("password", "method", "submit", json!("password"), Some(text(1070003, "Save", "info"))),
            ],
            "messages": [text(1050001, "Your changes have been saved!", "success")]
        }
    })
}

async fn flows(
    State(seen): State<Seen>,
    axum::extract::Path(kind): axum::extract::Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let cookie = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    seen.lock()
        .expect("lock")
        .push((format!("/self-service/{kind}/flows"), cookie.clone()));
    let id = query.get("id").cloned().unwrap_or_default();
    let has_csrf = cookie.as_deref().is_some_and(|c| c.contains(CSRF_COOKIE));
    match (kind.as_str(), id.as_str()) {
        (_, "expired") => (StatusCode::GONE, Json(error_body(410, "self_service_flow_expired", "Gone", "flow expired"))).into_response(),
        (_, "gone") => (StatusCode::NOT_FOUND, Json(error_body(404, "", "Not Found", "The requested resource could not be found"))).into_response(),
        (_, "broken") => (StatusCode::INTERNAL_SERVER_ERROR, Json(error_body(500, "", "Internal Server Error", "An internal server error occurred, please contact the system administrator"))).into_response(),
        (_, "garbage") => (StatusCode::OK, "this is not a flow").into_response(),
        (_, "aal2") => (StatusCode::FORBIDDEN, Json(json!({"error": {"id": "session_aal2_required", "code": 403, "message": "aal2 required"}, "redirect_browser_to": "http://browser.example:4433/self-service/login/browser?aal=aal2"}))).into_response(),
        ("settings", "needs-session") => (StatusCode::UNAUTHORIZED, Json(error_body(401, "session_inactive", "Unauthorized", "no session"))).into_response(),
        _ if !has_csrf => (StatusCode::FORBIDDEN, Json(error_body(403, "security_csrf_violation", "Forbidden", "the request was rejected to protect you from Cross-Site-Request-Forgery"))).into_response(),
        ("login", "ok-login") => (
            [(header::SET_COOKIE, "csrf_token_x=rotated; Path=/; HttpOnly; SameSite=Lax")],
            Json(login_flow()),
        )
            .into_response(),
        ("registration", "ok-registration") => Json(registration_flow()).into_response(),
        ("settings", "ok-settings") => Json(settings_flow()).into_response(),
        ("verification", "passed") => Json(json!({
            "id": "passed", "type": "browser", "state": "passed_challenge",
            "return_to": "http://127.0.0.1:8000/hello",
            "ui": {
                "action": "http://127.0.0.1:4433/self-service/verification?flow=passed",
                "method": "POST",
                "nodes": [input("default", "csrf_token", "hidden", json!("masked"), None)],
                "messages": [text(1080002, "You successfully verified your email address.", "success")]
            }
        }))
        .into_response(),
        ("login", "inactive") => {
            let mut flow = login_flow();
            flow["ui"]["messages"] = json!([text(4000010, "Account not active yet. Did you forget to verify your email address?", "error")]);
            Json(flow).into_response()
        }
        _ => (StatusCode::NOT_FOUND, Json(error_body(404, "", "Not Found", "not found"))).into_response(),
    }
}

fn has_session(headers: &HeaderMap) -> bool {
    headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains(SESSION_COOKIE))
}

async fn whoami(headers: HeaderMap) -> Response {
    if !has_session(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(error_body(
                401,
                "session_inactive",
                "Unauthorized",
                "No valid session credentials found in the request.",
            )),
        )
            .into_response();
    }
    Json(json!({
        "id": "s-1", "active": true,
        "expires_at": "2026-11-29T12:00:00Z", "authenticated_at": "2026-11-28T12:00:00Z",
        "authenticator_assurance_level": "aal1",
        "authentication_methods": [{"method": "password", "aal": "aal1", "completed_at": "2026-11-28T12:00:00Z"}],
        "identity": {"id": "9f4c-identity", "schema_id": "default", "traits": {"email": "ada@example.com", "name": {"first": "Ada"}},
                     "verifiable_addresses": [{"value": "ada@example.com", "verified": false, "via": "email", "status": "sent"}]}
    }))
    .into_response()
}

async fn logout(headers: HeaderMap, Query(query): Query<HashMap<String, String>>) -> Response {
    if !has_session(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(error_body(
                401,
                "session_inactive",
                "Unauthorized",
                "no session",
            )),
        )
            .into_response();
    }
    let return_to = query.get("return_to").cloned().unwrap_or_default();
    Json(json!({
        "logout_url": format!("http://browser.example:4433/self-service/logout?token=tok&return_to={return_to}"),
        "logout_token": "tok"
    }))
    .into_response()
}

async fn errors(Query(query): Query<HashMap<String, String>>) -> Response {
    match query.get("id").map(String::as_str) {
        Some("e1") => Json(json!({
            "id": "e1",
            "error": {"id": "security_csrf_violation", "code": 403, "status": "Forbidden",
                      "reason": "Please retry the flow and optionally clear your cookies.",
                      "message": "the request was rejected to protect you from Cross-Site-Request-Forgery"},
            "created_at": "2026-11-28T12:00:00Z"
        }))
        .into_response(),
        _ => (StatusCode::NOT_FOUND, Json(error_body(404, "", "Not Found", "not found"))).into_response(),
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(error_body(
            401,
            "session_inactive",
            "Unauthorized",
            "no session",
        )),
    )
        .into_response()
}

async fn my_sessions(headers: HeaderMap) -> Response {
    if !has_session(&headers) {
        return unauthorized();
    }
    Json(json!([{
        "id": "s-2", "active": true,
        "expires_at": "2026-11-30T08:00:00Z", "authenticated_at": "2026-11-27T08:00:00Z",
        "authentication_methods": [{"method": "password"}],
        "devices": [{"id": "d-1", "ip_address": "192.0.2.7",
                     "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"}],
        "identity": {"id": "9f4c-identity", "traits": {"email": "ada@example.com"}}
    }]))
    .into_response()
}

async fn revoke_my_session(
    State(seen): State<Seen>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    if !has_session(&headers) {
        return unauthorized();
    }
    seen.lock()
        .expect("lock")
        .push((format!("DELETE /sessions/{id}"), None));
    match id.as_str() {
        "s-2" => StatusCode::NO_CONTENT.into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            Json(error_body(
                404,
                "",
                "Not Found",
                "The session could not be found.",
            )),
        )
            .into_response(),
    }
}

async fn revoke_my_other_sessions(State(seen): State<Seen>, headers: HeaderMap) -> Response {
    if !has_session(&headers) {
        return unauthorized();
    }
    seen.lock()
        .expect("lock")
        .push(("DELETE /sessions".to_string(), None));
    Json(json!({"count": 1})).into_response()
}

struct Harness {
    ui: String,
    seen: Seen,
    client: reqwest::Client,
    shutdown: Shutdown,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn listen(app: axum::Router, shutdown: &Shutdown) -> SocketAddr {
    let listener = bind("127.0.0.1:0".parse().expect("addr"), "test")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, app, "test", shutdown.clone()));
    addr
}

async fn start_with(kratos_public: String, shutdown: Shutdown, seen: Seen) -> Harness {
    let config = UiConfig::from_env([
        ("KRATOS_PUBLIC_URL".to_string(), kratos_public),
        ("KRATOS_BROWSER_URL".to_string(), BROWSER_URL.to_string()),
    ])
    .expect("config");
    let ui = listen(portcullis_ui::router(config), &shutdown).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Harness {
        ui: format!("http://{ui}"),
        seen,
        client,
        shutdown,
    }
}

async fn start() -> Harness {
    let shutdown = Shutdown::new();
    let seen = Seen::default();
    let kratos = axum::Router::new()
        .route("/self-service/{kind}/flows", get(flows))
        .route("/sessions/whoami", get(whoami))
        .route("/self-service/logout/browser", get(logout))
        .route("/self-service/errors", get(errors))
        .route(
            "/sessions",
            get(my_sessions).delete(revoke_my_other_sessions),
        )
        .route("/sessions/{id}", delete(revoke_my_session))
        .with_state(seen.clone());
    let kratos = listen(kratos, &shutdown).await;
    start_with(format!("http://{kratos}/"), shutdown, seen).await
}

impl Harness {
    async fn get(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.ui));
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.send().await.expect("request")
    }
}

/// Saves a rendered page under `$PORTCULLIS_UI_DUMP/` (for looking at it in a browser).
fn dump(name: &str, html: &str) {
    if let Ok(dir) = std::env::var("PORTCULLIS_UI_DUMP") {
        std::fs::write(format!("{dir}/{name}.html"), html).expect("dump");
    }
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_string()
}

#[tokio::test]
async fn login_without_flow_starts_one_carrying_return_to() {
    let h = start().await;
    let res = h
        .get(
            "/login?return_to=http%3A%2F%2F127.0.0.1%3A8000%2Fhello&refresh=true&unrelated=1",
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        "http://browser.example:4433/self-service/login/browser?return_to=http%3A%2F%2F127.0.0.1%3A8000%2Fhello&refresh=true"
    );
    let res = h.get("/registration", None).await;
    assert_eq!(
        location(&res),
        "http://browser.example:4433/self-service/registration/browser"
    );
    let res = h.get("/recovery?return_to=x", None).await;
    assert_eq!(
        location(&res),
        "http://browser.example:4433/self-service/recovery/browser?return_to=x"
    );
}

#[tokio::test]
async fn login_flow_renders_nodes_and_forwards_cookies() {
    let h = start().await;
    let cookie = format!("{CSRF_COOKIE}; other=1");
    let res = h.get("/login?flow=ok-login", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        res.headers()
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok()),
        Some("csrf_token_x=rotated; Path=/; HttpOnly; SameSite=Lax")
    );
    assert!(res.headers().get(header::CACHE_CONTROL).is_some());
    let html = res.text().await.expect("body");
    let seen = h.seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        vec![("/self-service/login/flows".to_string(), Some(cookie))]
    );

    assert!(html.contains(r#"<form class="flow-form" action="http://127.0.0.1:4433/self-service/login?flow=ok-login" method="post" data-group="password">"#), "{html}");
    assert!(
        html.contains(r#"<input type="hidden" name="csrf_token" value="masked+csrf/token==">"#),
        "{html}"
    );
    assert!(html.contains(r#"<label for="f0-1-identifier">E-Mail<span class="required" aria-hidden="true"> *</span></label>"#), "{html}");
    assert!(
        html.contains(
            r#"name="identifier" type="text" value="ada@example.com" required autofocus>"#
        ),
        "{html}"
    );
    assert!(
        html.contains(r#"<label for="f0-2-password">Password"#),
        "{html}"
    );
    assert!(
        html.contains(r#"type="password" value="" required autocomplete="current-password">"#),
        "{html}"
    );
    assert!(html.contains(r#"<button type="submit" class="button" name="method" value="password">Sign in with password</button>"#), "{html}");
    assert!(
        html.contains(
            r#"data-message-id="4000006" role="alert">The provided credentials are invalid"#
        ),
        "{html}"
    );
    assert!(
        html.contains(
            r#"<a href="/registration?return_to=http%3A%2F%2F127.0.0.1%3A8000%2Fhello">Sign up</a>"#
        ),
        "{html}"
    );
    assert!(
        html.contains("<title>Sign in · Portcullis</title>"),
        "{html}"
    );
    dump("login", &html);
}

#[tokio::test]
async fn registration_renders_field_errors_and_escapes_values() {
    let h = start().await;
    let res = h
        .get("/registration?flow=ok-registration", Some(CSRF_COOKIE))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.expect("body");
    dump("registration", &html);
    assert!(
        html.contains(r#"value="&lt;ada&gt;@example.com""#),
        "{html}"
    );
    assert!(!html.contains("<ada>"), "{html}");
    assert!(html.contains(r#"type="checkbox" id="f0-2-traits-newsletter" name="traits.newsletter" value="true" checked"#), "{html}");
    assert!(
        html.contains(r#"aria-invalid="true" aria-describedby="f0-3-msg-0" autofocus>"#),
        "{html}"
    );
    assert!(html.contains(r#"id="f0-3-msg-0" data-message-id="4000032" role="alert">The password must be at least 8 characters long, but got 3.</p>"#), "{html}");
    assert!(
        html.contains(
            r#"<a href="/login?return_to=http%3A%2F%2F127.0.0.1%3A8000%2Fworld">Sign in</a>"#
        ),
        "{html}"
    );
}

#[tokio::test]
async fn inactive_accounts_are_offered_verification() {
    let h = start().await;
    let html = h
        .get("/login?flow=inactive", Some(CSRF_COOKIE))
        .await
        .text()
        .await
        .expect("body");
    assert!(
        html.contains(r#"data-message-id="4000010" role="alert">Account not active yet."#),
        "{html}"
    );
    assert!(html.contains(r#"<a href="/verification?return_to=http%3A%2F%2F127.0.0.1%3A8000%2Fhello">Verify it now</a>"#), "{html}");
}

#[tokio::test]
async fn passed_verification_offers_continue_without_an_empty_form() {
    let h = start().await;
    let html = h
        .get("/verification?flow=passed", Some(CSRF_COOKIE))
        .await
        .text()
        .await
        .expect("body");
    assert!(
        html.contains(r#"data-message-id="1080002" role="status""#),
        "{html}"
    );
    assert!(
        html.contains(r#"<a href="http://127.0.0.1:8000/hello" class="button">Continue</a>"#),
        "{html}"
    );
    assert!(!html.contains("<form"), "{html}");
    assert!(!html.contains("Remember your credentials?"), "{html}");
}

#[tokio::test]
async fn settings_get_one_form_per_method() {
    let h = start().await;
    let res = h.get("/settings?flow=ok-settings", Some(CSRF_COOKIE)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.expect("body");
    dump("settings", &html);
    assert!(
        html.contains(r#"data-message-id="1050001" role="status">Your changes have been saved!"#),
        "{html}"
    );
    let forms: Vec<&str> = html.split("<form ").skip(1).collect();
    assert_eq!(forms.len(), 2, "{html}");
    assert!(
        forms[0].contains(r#"data-group="profile""#) && forms[0].contains(">Profile</h2>"),
        "{html}"
    );
    assert!(
        forms[1].contains(r#"data-group="password""#) && forms[1].contains(">Change password</h2>"),
        "{html}"
    );
    for form in &forms {
        assert!(
            form.contains(r#"<input type="hidden" name="csrf_token" value="masked">"#),
            "{form}"
        );
    }
    assert!(
        forms[0].contains(r#"name="traits.email""#) && !forms[0].contains(r#"name="password""#)
    );
    assert!(
        forms[1].contains(r#"name="password""#) && !forms[1].contains(r#"name="traits.email""#)
    );
}

#[tokio::test]
async fn pages_speak_the_browsers_language() {
    let h = start().await;
    let german = |path: &str, cookie: &'static str| {
        h.client
            .get(format!("{}{path}", h.ui))
            .header(header::ACCEPT_LANGUAGE, "de-DE,de;q=0.9,en;q=0.5")
            .header(header::COOKIE, cookie)
            .send()
    };
    let html = german("/login?flow=ok-login", CSRF_COOKIE)
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    dump("login-de", &html);
    assert!(html.contains(r#"<html lang="de">"#), "{html}");
    assert!(html.contains("<h1>Anmelden</h1>"), "{html}");
    assert!(
        html.contains(">Die angegebenen Zugangsdaten sind ungültig."),
        "{html}"
    );
    assert!(html.contains(">Passwort<span"), "{html}");
    assert!(html.contains(">Mit Passwort anmelden</button>"), "{html}");
    assert!(html.contains(">Registrieren</a>"), "{html}");
    // A label taken from the identity schema is shown as the schema says.
    assert!(html.contains(">E-Mail<span"), "{html}");

    let html = german("/registration?flow=ok-registration", CSRF_COOKIE)
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(
        html.contains(">Das Passwort muss mindestens 8 Zeichen lang sein, hat aber 3.</p>"),
        "{html}"
    );

    let html = german("/nope", "")
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(html.contains("<h1>Seite nicht gefunden</h1>"), "{html}");
    let english = h.get("/login?flow=ok-login", Some(CSRF_COOKIE)).await;
    let html = english.text().await.expect("body");
    assert!(html.contains(r#"<html lang="en">"#), "{html}");
}

#[tokio::test]
async fn unusable_flows_start_over_keeping_return_to() {
    let h = start().await;
    for id in ["expired", "gone", "ok-login"] {
        // `ok-login` without the CSRF cookie is a 403 from the identity server.
        let res = h
            .get(
                &format!("/login?flow={id}&return_to=http%3A%2F%2Fa%2Fb"),
                None,
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{id}");
        assert_eq!(
            location(&res),
            "http://browser.example:4433/self-service/login/browser?return_to=http%3A%2F%2Fa%2Fb",
            "{id}"
        );
    }
    let res = h.get("/login?flow=aal2", None).await;
    assert_eq!(
        location(&res),
        "http://browser.example:4433/self-service/login/browser?aal=aal2"
    );
    let res = h
        .get("/settings?flow=needs-session&return_to=x", None)
        .await;
    assert_eq!(
        location(&res),
        "http://browser.example:4433/self-service/login/browser?return_to=x"
    );
}

#[tokio::test]
async fn identity_server_errors_show_an_error_page() {
    let h = start().await;
    let res = h.get("/login?flow=broken", Some(CSRF_COOKIE)).await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let html = res.text().await.expect("body");
    assert!(
        html.contains("The identity server reported an error"),
        "{html}"
    );
    assert!(html.contains("An internal server error occurred"), "{html}");
    assert!(
        html.contains(r#"<a class="button" href="/login">Try again</a>"#),
        "{html}"
    );

    let res = h.get("/login?flow=garbage", Some(CSRF_COOKIE)).await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let html = res.text().await.expect("body");
    assert!(
        html.contains("Unexpected answer from the identity server"),
        "{html}"
    );
}

#[tokio::test]
async fn unreachable_identity_server_is_explained() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let h = start_with(format!("http://{addr}/"), Shutdown::new(), Seen::default()).await;
    for path in ["/login?flow=abc", "/", "/logout", "/error?id=x"] {
        let res = h.get(path, None).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        let html = res.text().await.expect("body");
        dump("unreachable", &html);
        assert!(
            html.contains("The identity server is not reachable"),
            "{path}: {html}"
        );
        assert!(html.contains(&addr.to_string()), "{path}: {html}");
        assert!(html.contains(r#"role="alert""#), "{path}: {html}");
    }
    // Starting a flow needs no server-side call: the browser is sent to the identity server.
    let res = h.get("/login", None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn stored_errors_are_shown() {
    let h = start().await;
    let res = h.get("/error?id=e1", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.expect("body");
    dump("error", &html);
    assert!(html.contains("<h1>Forbidden</h1>"), "{html}");
    assert!(
        html.contains("the request was rejected to protect you from Cross-Site-Request-Forgery"),
        "{html}"
    );
    assert!(
        html.contains("<code>security_csrf_violation</code>"),
        "{html}"
    );
    assert!(html.contains("Please retry the flow"), "{html}");

    let res = h.get("/error?id=unknown", None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = h.get("/error", None).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn welcome_shows_the_session_or_sign_in_links() {
    let h = start().await;
    let html = h
        .get("/", Some(SESSION_COOKIE))
        .await
        .text()
        .await
        .expect("body");
    dump("welcome", &html);
    assert!(
        html.contains("You are signed in as <strong>ada@example.com</strong>"),
        "{html}"
    );
    assert!(html.contains("<dt>Name › first</dt><dd>Ada</dd>"), "{html}");
    assert!(html.contains("<dd>2026-11-29 12:00 UTC</dd>"), "{html}");
    assert!(
        html.contains(r#"href="/sessions">Your sessions</a>"#),
        "{html}"
    );
    assert!(html.contains(r#"href="/logout">Log out</a>"#), "{html}");
    assert!(
        html.contains(r#"<dd class="address-unverified">Not verified · <a href="/verification">Verify it now</a></dd>"#),
        "{html}"
    );

    let res = h.get("/welcome", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.expect("body");
    assert!(html.contains("You are not signed in."), "{html}");
    assert!(html.contains(r#"href="/login">Sign in</a>"#), "{html}");
    assert!(
        html.contains(r#"href="/registration">Sign up</a>"#),
        "{html}"
    );
}

#[tokio::test]
async fn logout_follows_the_logout_url_or_goes_to_login() {
    let h = start().await;
    let res = h.get("/logout", Some(SESSION_COOKIE)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        "http://browser.example:4433/self-service/logout?token=tok&return_to="
    );
    let res = h
        .get("/logout?return_to=http%3A%2F%2Fa%2F", Some(SESSION_COOKIE))
        .await;
    assert_eq!(
        location(&res),
        "http://browser.example:4433/self-service/logout?token=tok&return_to=http://a/"
    );
    let res = h.get("/logout", None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login");
}

#[tokio::test]
async fn health_assets_and_unknown_pages() {
    let h = start().await;
    for path in ["/health/alive", "/health/ready"] {
        let res = h.get(path, None).await;
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.expect("json");
        assert_eq!(body, json!({"status": "ok"}));
    }
    let res = h.get("/assets/portcullis.css", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("text/css; charset=utf-8")
    );
    let res = h.get("/nope", None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.text().await.expect("body").contains("Page not found"));
}

#[tokio::test]
async fn sessions_lists_and_revokes_own_sessions() {
    let h = start().await;
    let res = h.get("/sessions", None).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "signed out: sign in first"
    );
    assert_eq!(location(&res), "/login");

    let res = h.get("/sessions", Some(SESSION_COOKIE)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.expect("body");
    dump("sessions", &html);
    assert!(html.contains("<dd>Safari on iPhone</dd>"), "{html}");
    assert!(html.contains("<dd>192.0.2.7</dd>"), "{html}");
    assert!(html.contains("<dd>2026-11-30 08:00 UTC</dd>"), "{html}");
    assert!(html.contains(r#"action="/sessions/s-2/revoke""#), "{html}");
    assert!(html.contains(r#"action="/sessions/revoke""#), "{html}");
    let german = h
        .client
        .get(format!("{}/sessions", h.ui))
        .header(header::COOKIE, SESSION_COOKIE)
        .header(header::ACCEPT_LANGUAGE, "de")
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(german.contains("<dt>Gerät</dt>"), "{german}");

    let post = |path: &str, origin: &str| {
        h.client
            .post(format!("{}{path}", h.ui))
            .header(header::COOKIE, SESSION_COOKIE)
            .header(header::ORIGIN, origin.to_string())
            .send()
    };
    let own_origin = h.ui.clone();
    let res = post("/sessions/s-2/revoke", &own_origin)
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/sessions?revoked=one");
    let res = post("/sessions/revoke", &own_origin).await.expect("post");
    assert_eq!(location(&res), "/sessions?revoked=all");
    let html = h
        .get("/sessions?revoked=all", Some(SESSION_COOKIE))
        .await
        .text()
        .await
        .expect("body");
    assert!(
        html.contains("All other sessions were signed out."),
        "{html}"
    );

    // Unknown sessions get an error page, cross-site posts never reach the identity server.
    let res = post("/sessions/nope/revoke", &own_origin)
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = post("/sessions/s-2/revoke", "http://evil.example")
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let seen: Vec<String> = h
        .seen
        .lock()
        .expect("lock")
        .iter()
        .map(|(path, _)| path.clone())
        .filter(|path| path.starts_with("DELETE"))
        .collect();
    assert_eq!(
        seen,
        [
            "DELETE /sessions/s-2",
            "DELETE /sessions",
            "DELETE /sessions/nope"
        ]
    );
}
