//! Templates and documents loaded from `http://` URLs served by a real local HTTP server:
//! courier template overrides (subject, HTML and plain-text bodies), a `web_hook` Jsonnet body
//! and the identity schema, each fetched once while the configuration loads; an unreachable
//! server or a non-2xx answer fails the load with the key and the reason. On SQLite and
//! PostgreSQL.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;
mod served;

use std::path::Path;
use std::time::Duration;

use common::{PASSWORD, get_json, native, start_with_mail};
use portcullis_db::testing::TestDb;
use portcullis_identity::IdentityConfig;
use portcullis_mail::Filter;
use serde_json::{Value, json};
use served::Served;

const DOCUMENTS: [&str; 5] = [
    "/t/subject.gotmpl",
    "/t/body.gotmpl",
    "/t/body.plaintext.gotmpl",
    "/t/hook.jsonnet",
    "/schemas/identity.json",
];

async fn remote_documents(db: TestDb) {
    let served = Served::start();
    let subject = served.put(DOCUMENTS[0], "Code for {{ .To }}");
    let html = served.put(
        DOCUMENTS[1],
        "<p>Your code: <b>{{ .VerificationCode }}</b></p>",
    );
    let plain = served.put(DOCUMENTS[2], "Your code: {{ .VerificationCode }}\n");
    let hook_body = served.put(
        DOCUMENTS[3],
        "function(ctx) { email: ctx.identity.traits.email, via: 'remote template' }",
    );
    let schema =
        std::fs::read_to_string(common::reference().join("tutorial/kratos/identity.schema.json"))
            .unwrap();
    let schema_url = served.put(DOCUMENTS[4], &schema);
    let hook_url = served.put("/hook", "{}");
    let s = start_with_mail(db, |v| {
        v["identity"]["schemas"] = json!([{"id": "default", "url": schema_url}]);
        v["courier"]["templates"] = json!({"verification_code": {"valid": {"email": {
            "subject": subject,
            "body": {"html": html, "plaintext": plain}
        }}}});
        v["selfservice"]["flows"]["registration"]["after"]["password"]["hooks"] = json!([
            {"hook": "web_hook", "config": {"url": hook_url, "method": "POST", "body": hook_body}},
            {"hook": "session"}
        ]);
    })
    .await;

    // The hook's body comes from the remote Jsonnet template.
    let res = common::native_register(&s, "rita@example.com", PASSWORD).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let calls = served.requests("/hook");
    assert_eq!(calls.len(), 1);
    let sent: Value = serde_json::from_str(&calls[0].body).unwrap();
    assert_eq!(
        sent,
        json!({"email": "rita@example.com", "via": "remote template"})
    );

    // The verification e-mail uses all three remote parts.
    let api = native();
    let flow = get_json(&api, format!("{}/self-service/verification/api", s.public)).await;
    let res = api
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "code", "email": "rita@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mail = tokio::time::timeout(
        Duration::from_secs(20),
        s.mail.as_ref().unwrap().mailbox().wait_for(&Filter {
            to: Some("rita@example.com".into()),
            query: Some("Code for".into()),
        }),
    )
    .await
    .expect("mail arrives");
    assert_eq!(mail.subject, "Code for rita@example.com");
    let text = mail.text.clone().unwrap_or_default();
    let code = common::code_in(&text);
    assert_eq!(text.trim(), format!("Your code: {code}"));
    assert_eq!(
        mail.html.as_deref().map(str::trim),
        Some(format!("<p>Your code: <b>{code}</b></p>").as_str())
    );

    // Each document was fetched once, when the configuration loaded, never per use.
    for path in DOCUMENTS {
        let got = served.requests(path);
        assert_eq!(got.len(), 1, "{path} fetched {} times", got.len());
        assert_eq!(got[0].method, "GET");
    }
}
on_both!(remote_documents);

fn load_error(edit: impl FnOnce(&mut Value)) -> String {
    let mut v = common::config_value("http://127.0.0.1:4433/", "http://127.0.0.1:4434/", "10m");
    edit(&mut v);
    IdentityConfig::from_value(v, "test kratos.yml", Path::new("."), true)
        .expect_err("the load fails")
        .to_string()
}

#[test]
fn unreachable_or_failing_servers_fail_the_load() {
    let served = Served::start();
    let missing = format!("{}/missing.gotmpl", served.base);
    let broken = served.put_status("/broken.jsonnet", 500, "oops");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/subject.gotmpl", l.local_addr().unwrap())
    };

    let err = load_error(|v| {
        v["courier"] = json!({"templates": {"recovery_code": {"valid": {"email": {
            "subject": missing}}}}});
    });
    assert!(
        err.contains("courier.templates.recovery_code.valid.email.subject"),
        "{err}"
    );
    assert!(
        err.contains("missing.gotmpl: the server answered 404"),
        "{err}"
    );

    let err = load_error(|v| {
        v["courier"] = json!({"templates": {"verification": {"invalid": {"email": {
            "body": {"html": closed.clone()}}}}}});
    });
    assert!(
        err.contains("courier.templates.verification.invalid.email.body.html"),
        "{err}"
    );
    assert!(err.contains(&format!("fetching {closed}")), "{err}");

    let err = load_error(|v| {
        v["selfservice"]["flows"]["registration"]["after"]["password"]["hooks"] = json!([
            {"hook": "web_hook", "config": {"url": "http://127.0.0.1:9/", "method": "POST",
                "body": broken}}
        ]);
    });
    assert!(err.contains("broken.jsonnet"), "{err}");
    assert!(err.contains("the server answered 500"), "{err}");

    let err = load_error(|v| {
        v["identity"]["schemas"] = json!([{"id": "default",
            "url": format!("{}/schemas/none.json", served.base)}]);
    });
    assert!(err.contains("identity.schemas.0.url"), "{err}");
    assert!(err.contains("the server answered 404"), "{err}");
}
