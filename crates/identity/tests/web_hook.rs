//! `web_hook` hooks with Jsonnet bodies against a real local HTTP receiver: the rendered body
//! and auth reach it, an interrupting hook's 4xx answer in Kratos's shape blocks registration
//! with its messages, `error "cancel"` skips the call, login hooks see the session, and
//! `https://` hooks speak TLS and verify the certificate. On
//! SQLite and PostgreSQL.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine;
use common::{PASSWORD, Server, assert_schema, config_value, get_json, native, node, start_config};
use portcullis_db::testing::TestDb;
use portcullis_identity::IdentityConfig;
use serde_json::{Value, json};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    method: Method,
    headers: HeaderMap,
    body: String,
}

type Log = Arc<Mutex<Vec<Received>>>;

/// Records every request; `/check` refuses addresses at `blocked.example` in Kratos's shape.
async fn receive(
    State(log): State<Log>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    log.lock().unwrap().push(Received {
        path: uri.path().to_string(),
        method,
        headers,
        body: body.clone(),
    });
    if uri.path() == "/check" && body.contains("@blocked.example") {
        let answer = json!({"messages": [
            {"instance_ptr": "#/traits/email", "messages": [
                {"id": 10001, "text": "This e-mail domain is not allowed.", "type": "error",
                 "context": {"domain": "blocked.example"}}]},
            {"instance_ptr": "#/", "messages": [
                {"id": 10002, "text": "Please use another address.", "type": "error"}]}
        ]});
        return (StatusCode::BAD_REQUEST, answer.to_string());
    }
    (StatusCode::OK, "{}".to_string())
}

async fn receiver() -> (String, Log) {
    let log: Log = Arc::default();
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), log)
}

fn b64(s: &str) -> String {
    format!(
        "base64://{}",
        base64::engine::general_purpose::STANDARD.encode(s)
    )
}

const CHECK_TEMPLATE: &str = r#"function(ctx) {
  email: ctx.identity.traits.email,
  flow: ctx.flow.id,
}"#;

const NOTIFY_TEMPLATE: &str = r#"
local first(list) = list[0];
function(ctx) {
  identity_id: ctx.identity.id,
  email: ctx.identity.traits.email,
  flow_id: ctx.flow.id,
  flow_type: ctx.flow.type,
  method: ctx.request_method,
  url: ctx.request_url,
  user_agent: first(ctx.request_headers['User-Agent']),
  has_cookie_header: std.objectHas(ctx.request_headers, 'Cookie'),
  session_identity: if std.objectHas(ctx, 'session') then ctx.session.identity.id else null,
}"#;

const LOGIN_TEMPLATE: &str = r#"function(ctx)
  if std.objectHas(ctx, 'session') then { session_id: ctx.session.id, identity_id: ctx.identity.id }
  else error 'cancel'
"#;

async fn start(db: TestDb, hooks_url: &str, dir: &Path) -> Server {
    let notify = dir.join("notify.jsonnet");
    std::fs::write(&notify, NOTIFY_TEMPLATE).unwrap();
    let hooks_url = hooks_url.to_string();
    let dir = dir.to_path_buf();
    start_config(db, move |public, admin| {
        let mut v = config_value(public, admin, "10m");
        let flows = &mut v["selfservice"]["flows"];
        flows["registration"]["after"]["password"]["hooks"] = json!([
            {"hook": "web_hook", "config": {
                "url": format!("{hooks_url}/check"), "method": "POST",
                "body": b64(CHECK_TEMPLATE), "can_interrupt": true,
                "auth": {"type": "basic_auth", "config": {"user": "kratos", "password": "s3cret"}}}},
            {"hook": "web_hook", "config": {
                "url": format!("{hooks_url}/notify"), "method": "POST",
                "body": "file://notify.jsonnet",
                "headers": {"X-Source": "portcullis"},
                "auth": {"type": "api_key", "config": {"name": "X-Api-Key", "value": "k-123", "in": "header"}}}},
            {"hook": "session"}
        ]);
        flows["login"]["before"] = json!({"hooks": [
            {"hook": "web_hook", "config": {
                "url": format!("{hooks_url}/login-before"), "method": "POST",
                "body": b64(LOGIN_TEMPLATE)}}
        ]});
        flows["login"]["after"] = json!({"hooks": [
            {"hook": "web_hook", "config": {
                "url": format!("{hooks_url}/login-after"), "method": "PUT",
                "body": b64(LOGIN_TEMPLATE),
                "auth": {"type": "api_key", "config": {"name": "hook_key", "value": "c-9", "in": "cookie"}}}}
        ]});
        IdentityConfig::from_value(v, "test kratos.yml", &dir, true).expect("config")
    })
    .await
}

fn requests(log: &Log, path: &str) -> Vec<Received> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == path)
        .cloned()
        .collect()
}

async fn register(s: &Server, email: &str) -> (StatusCode, Value, Value) {
    let api = native();
    let flow = get_json(&api, format!("{}/self-service/registration/api", s.public)).await;
    let res = api
        .post(flow["ui"]["action"].as_str().unwrap())
        .header("User-Agent", "hook-test/1.0")
        .json(&json!({"method": "password", "traits": {"email": email},
            "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, flow, res.json().await.unwrap())
}

async fn registration_web_hooks(db: TestDb) {
    let (url, log) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let s = start(db, &url, dir.path()).await;

    // An interrupting hook refuses the address: 400 with its messages, nothing stored.
    let (status, flow, body) = register(&s, "mallory@blocked.example").await;
    assert_eq!(status, 400);
    assert_schema("registrationFlow", &body);
    let email = node(&body, "traits.email");
    assert_eq!(email["messages"][0]["id"], 10001);
    assert_eq!(
        email["messages"][0]["text"],
        "This e-mail domain is not allowed."
    );
    assert_eq!(email["messages"][0]["context"]["domain"], "blocked.example");
    assert_eq!(body["ui"]["messages"][0]["id"], 10002);
    let check = requests(&log, "/check");
    assert_eq!(check.len(), 1);
    assert_eq!(check[0].method, Method::POST);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("kratos:s3cret")
    );
    assert_eq!(check[0].headers["authorization"], expected.as_str());
    assert_eq!(check[0].headers["content-type"], "application/json");
    let rendered: Value = serde_json::from_str(&check[0].body).unwrap();
    assert_eq!(
        rendered,
        json!({"email": "mallory@blocked.example", "flow": flow["id"]})
    );
    assert!(requests(&log, "/notify").is_empty());
    let identities: Vec<Value> = native()
        .get(format!("{}/admin/identities", s.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(identities.is_empty(), "{identities:#?}");

    // An accepted address: both hooks run, the second after the identity is stored.
    let (status, flow, body) = register(&s, "alice@example.com").await;
    assert_eq!(status, 200, "{body:#}");
    let id = body["identity"]["id"].as_str().unwrap();
    let notify = requests(&log, "/notify");
    assert_eq!(notify.len(), 1);
    assert_eq!(notify[0].headers["x-api-key"], "k-123");
    assert_eq!(notify[0].headers["x-source"], "portcullis");
    let rendered: Value = serde_json::from_str(&notify[0].body).unwrap();
    assert_eq!(
        rendered,
        json!({
            "identity_id": id,
            "email": "alice@example.com",
            "flow_id": flow["id"],
            "flow_type": "api",
            "method": "POST",
            "url": format!("{}/self-service/registration?flow={}", s.public, flow["id"].as_str().unwrap()),
            "user_agent": "hook-test/1.0",
            "has_cookie_header": false,
            "session_identity": id,
        })
    );
}
on_both!(registration_web_hooks);

async fn login_web_hooks(db: TestDb) {
    let (url, log) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let s = start(db, &url, dir.path()).await;
    let (status, _, _) = register(&s, "bob@example.com").await;
    assert_eq!(status, 200);

    let api = native();
    let flow = get_json(&api, format!("{}/self-service/login/api", s.public)).await;
    // The before hook's template has no session and cancels itself: no call was made.
    assert!(requests(&log, "/login-before").is_empty());
    let res = api
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(
            &json!({"method": "password", "identifier": "bob@example.com",
            "password": PASSWORD}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let after = requests(&log, "/login-after");
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].method, Method::PUT);
    assert_eq!(after[0].headers["cookie"], "hook_key=c-9");
    let rendered: Value = serde_json::from_str(&after[0].body).unwrap();
    assert_eq!(rendered["session_id"], body["session"]["id"]);
    assert_eq!(rendered["identity_id"], body["session"]["identity"]["id"]);
}
on_both!(login_web_hooks);

#[test]
fn bad_hook_configs_are_refused_with_their_path() {
    let mut v = config_value("http://127.0.0.1:4433/", "http://127.0.0.1:4434/", "10m");
    v["selfservice"]["flows"]["registration"]["after"]["password"]["hooks"] = json!([
        {"hook": "web_hook", "config": {"url": "http://127.0.0.1:1/", "method": "POST",
            "body": "file:///does/not/exist.jsonnet"}}
    ]);
    let err = IdentityConfig::from_value(v, "test kratos.yml", Path::new("."), true)
        .expect_err("a missing template is an error")
        .to_string();
    assert!(err.contains("exist.jsonnet"), "{err}");
}

/// A TLS listener with a self-signed certificate (trusted by no root) for `127.0.0.1`; the
/// receiver gets the outcome of the first TLS handshake a client starts.
async fn untrusted_tls_listener() -> (String, tokio::sync::oneshot::Receiver<std::io::Result<()>>) {
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = tx.send(acceptor.accept(tcp).await.map(drop));
    });
    (format!("https://{addr}"), rx)
}

/// A hook to an `https://` URL speaks TLS and verifies the certificate: against a server
/// whose certificate no root vouches for, the client aborts the handshake with an alert and
/// the flow fails.
async fn https_web_hooks_use_tls(db: TestDb) {
    let (url, handshake) = untrusted_tls_listener().await;
    let url_addr = url.trim_start_matches("https://").to_string();
    let s = start_config(db, move |public, admin| {
        let mut v = config_value(public, admin, "10m");
        v["selfservice"]["flows"]["login"]["before"] = json!({"hooks": [
            {"hook": "web_hook", "config": {"url": format!("{url}/login-before"), "method": "POST",
                "body": b64("function(ctx) { flow_id: ctx.flow.id }")}}
        ]});
        IdentityConfig::from_value(v, "test kratos.yml", Path::new("."), true).expect("config")
    })
    .await;
    let res = native()
        .get(format!("{}/self-service/login/api", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    assert_schema("errorGeneric", &res.json::<Value>().await.unwrap());
    // Had the hook not connected, this plain connection (closed at once) would be the one
    // accepted, and its handshake would end without an alert; once the hook's handshake is
    // over the listener is gone and this connection is refused.
    let _ = tokio::net::TcpStream::connect(url_addr.as_str()).await;
    let err = handshake
        .await
        .unwrap()
        .expect_err("the client must refuse the certificate");
    assert!(
        err.to_string().contains("received fatal alert"),
        "the client did not abort the TLS handshake: {err}"
    );
}
on_both!(https_web_hooks_use_tls);
