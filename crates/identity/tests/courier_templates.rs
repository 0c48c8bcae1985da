//! Courier template overrides: `courier.templates.<name>.<valid|invalid>.email` with
//! `base64://` and `file://` URLs, and `courier.template_override_path`, rendered with Kratos's
//! template data (`.To`, `.RecoveryURL`, `.VerificationCode`, `.Identity.traits…`) and
//! delivered over real SMTP, on SQLite and PostgreSQL.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::path::Path;

use base64::Engine;
use common::{Server, get_json, native, start_with_mail};
use portcullis_db::testing::TestDb;
use portcullis_identity::IdentityConfig;
use portcullis_mail::Filter;
use serde_json::json;

async fn start_flow_and_send(s: &Server, kind: &str, method: &str, email: &str) {
    let api = native();
    let flow = get_json(&api, format!("{}/self-service/{kind}/api", s.public)).await;
    let res = api
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": method, "email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

async fn overridden_templates(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("recovery.body.gotmpl");
    std::fs::write(
        &body,
        "Hello {{ .Identity.traits.email }},\n\nopen {{ .RecoveryURL }} now.\n",
    )
    .unwrap();
    let overrides = dir.path().join("templates");
    std::fs::create_dir_all(overrides.join("verification_code/valid")).unwrap();
    std::fs::write(
        overrides.join("verification_code/valid/email.subject.gotmpl"),
        "Your code {{ .VerificationCode }} for {{ .To }}\n",
    )
    .unwrap();
    let subject = base64::engine::general_purpose::STANDARD.encode("Reset for {{ .To }}");
    let s = start_with_mail(db, |v| {
        v["selfservice"]["methods"]["link"] = json!({"enabled": true});
        v["selfservice"]["flows"]["recovery"]["use"] = json!("link");
        v["courier"]["template_override_path"] = json!(overrides.display().to_string());
        v["courier"]["templates"] = json!({"recovery": {"valid": {"email": {
            "subject": format!("base64://{subject}"),
            "body": {"plaintext": format!("file://{}", body.display())}
        }}}});
    })
    .await;
    let res = native()
        .post(format!("{}/admin/identities", s.admin))
        .json(&json!({"schema_id": "default", "traits": {"email": "tina@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    start_flow_and_send(&s, "recovery", "link", "tina@example.com").await;
    let mailbox = s.mail.as_ref().unwrap().mailbox();
    let wait = |query: &str| Filter {
        to: Some("tina@example.com".into()),
        query: Some(query.into()),
    };
    let mail = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        mailbox.wait_for(&wait("Reset for")),
    )
    .await
    .expect("recovery mail");
    assert_eq!(mail.subject, "Reset for tina@example.com");
    let text = mail.text.clone().unwrap_or_default();
    assert!(text.starts_with("Hello tina@example.com,"), "{text}");
    assert!(
        text.contains(&format!("open {}/self-service/recovery?flow=", s.public)),
        "{text}"
    );

    start_flow_and_send(&s, "verification", "code", "tina@example.com").await;
    let mail = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        mailbox.wait_for(&wait("Your code")),
    )
    .await
    .expect("verification mail");
    let code = common::code_in(&mail.subject);
    assert_eq!(
        mail.subject,
        format!("Your code {code} for tina@example.com")
    );
    // The body was not overridden: Kratos's default wording, with the same code.
    let text = mail.text.clone().unwrap_or_default();
    assert!(text.contains("please verify your account by entering the following code"));
    assert!(text.contains(&code));
}
on_both!(overridden_templates);

#[test]
fn unsupported_template_actions_are_refused_at_load() {
    let mut v = common::config_value("http://127.0.0.1:4433/", "http://127.0.0.1:4434/", "10m");
    let bad = base64::engine::general_purpose::STANDARD.encode("{{ if .To }}x{{ end }}");
    v["courier"] = json!({"templates": {"recovery_code": {"valid": {"email": {
        "subject": format!("base64://{bad}")}}}}});
    let err = IdentityConfig::from_value(v, "test kratos.yml", Path::new("."), true)
        .expect_err("refused")
        .to_string();
    assert!(err.contains("unsupported template action"), "{err}");
}
