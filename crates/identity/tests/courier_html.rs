//! HTML e-mail bodies: every courier message is sent over real SMTP to the mail catcher as
//! `multipart/alternative` with a plain-text and an HTML part; `body.html` overrides (config
//! URL or `email.body.gotmpl` under `template_override_path`) escape their values; the
//! message `/admin/courier/messages` shows keeps Kratos's `body` (the plain text). On SQLite
//! and PostgreSQL.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use base64::Engine;
use common::{Server, assert_schema, get_json, native, start_with_mail};
use portcullis_db::testing::TestDb;
use portcullis_mail::{Filter, Message};
use serde_json::{Value, json};

async fn send_flow(s: &Server, kind: &str, email: &str) {
    let api = native();
    let flow = get_json(&api, format!("{}/self-service/{kind}/api", s.public)).await;
    let res = api
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "code", "email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

async fn wait_mail(s: &Server, to: &str, query: &str) -> std::sync::Arc<Message> {
    let filter = Filter {
        to: Some(to.into()),
        query: Some(query.into()),
    };
    tokio::time::timeout(
        Duration::from_secs(20),
        s.mail.as_ref().unwrap().mailbox().wait_for(&filter),
    )
    .await
    .expect("mail arrives")
}

/// A body part as sent: SMTP may have turned its line ends into CRLF.
fn part(p: &Option<String>) -> String {
    p.clone().unwrap_or_default().replace("\r\n", "\n")
}

fn content_type(mail: &Message) -> String {
    mail.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-type"))
        .map(|h| h.value.clone())
        .unwrap_or_default()
}

async fn messages_to(s: &Server, to: &str) -> Vec<Value> {
    let list = get_json(
        &native(),
        format!("{}/admin/courier/messages?recipient={to}", s.admin),
    )
    .await;
    list.as_array().expect("a list").clone()
}

async fn built_in_bodies(db: TestDb) {
    let s = start_with_mail(db, |_| {}).await;
    let res = native()
        .post(format!("{}/admin/identities", s.admin))
        .json(&json!({"schema_id": "default", "traits": {"email": "hana@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    send_flow(&s, "verification", "hana@example.com").await;
    let mail = wait_mail(&s, "hana@example.com", "verify your account").await;
    assert!(
        content_type(&mail).starts_with("multipart/alternative"),
        "{:?}",
        mail.headers
    );
    let (text, html) = (part(&mail.text), part(&mail.html));
    let code = common::code_in(&text);
    assert!(text.contains("please verify your account by entering the following code"));
    assert!(!text.contains('<'), "plain text has no markup: {text}");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains(&format!(">{code}</p>")), "{html}");
    // The one-click link, escaped inside the attribute (`&` → `&amp;`).
    let link = text
        .lines()
        .find(|l| l.starts_with("http"))
        .expect("a link in the text");
    assert!(link.contains('&'), "{link}");
    assert!(
        html.contains(&format!("<a href=\"{}\">", link.replace('&', "&amp;"))),
        "{html}"
    );

    // The stored message keeps Kratos's `body`: the plain text, never the HTML.
    let listed = messages_to(&s, "hana@example.com").await;
    assert_eq!(listed.len(), 1);
    assert_schema("message", &listed[0]);
    assert_eq!(listed[0]["body"].as_str(), Some(text.as_str()));
    assert_eq!(listed[0]["template_type"], "verification_code_valid");
}
on_both!(built_in_bodies);

async fn html_overrides(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let overrides = dir.path().join("templates");
    std::fs::create_dir_all(overrides.join("recovery_code/valid")).unwrap();
    std::fs::write(
        overrides.join("recovery_code/valid/email.body.gotmpl"),
        "<html><body><p>Code for {{ .Identity.traits.name.first }}: <b>{{ .RecoveryCode }}</b></p></body></html>\n",
    )
    .unwrap();
    let html = base64::engine::general_purpose::STANDARD
        .encode("<p>Verify <a href=\"{{ .VerificationURL }}\">here</a> for {{ .To }}</p>");
    let plain =
        base64::engine::general_purpose::STANDARD.encode("Verify at {{ .VerificationURL }}\n");
    let s = start_with_mail(db, |v| {
        v["courier"]["template_override_path"] = json!(format!("file://{}", overrides.display()));
        v["courier"]["templates"] = json!({"verification_code": {"valid": {"email": {
            "body": {"html": format!("base64://{html}"), "plaintext": format!("base64://{plain}")}
        }}}});
    })
    .await;
    let res = native()
        .post(format!("{}/admin/identities", s.admin))
        .json(&json!({"schema_id": "default", "traits": {"email": "vic@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    send_flow(&s, "verification", "vic@example.com").await;
    let mail = wait_mail(&s, "vic@example.com", "Verify at").await;
    let (text, html) = (part(&mail.text), part(&mail.html));
    let url = text
        .trim()
        .strip_prefix("Verify at ")
        .expect("the override's text");
    assert_eq!(
        html,
        format!(
            "<p>Verify <a href=\"{}\">here</a> for vic@example.com</p>",
            url.replace('&', "&amp;")
        )
    );
    assert_eq!(
        messages_to(&s, "vic@example.com").await[0]["body"].as_str(),
        Some(text.as_str())
    );

    // The file override under template_override_path: HTML replaced, plain text built in. A
    // trait value that is markup arrives escaped in the HTML part.
    let email = "wes@example.com";
    let res = native()
        .post(format!("{}/admin/identities", s.admin))
        .json(&json!({"schema_id": "default",
            "traits": {"email": email, "name": {"first": "<b>Wes</b> & 'co'"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    send_flow(&s, "recovery", email).await;
    let mail = wait_mail(&s, email, "recover access").await;
    let text = part(&mail.text);
    let code = common::code_in(&text);
    assert!(text.contains("please recover access to your account by entering the following code"));
    assert_eq!(
        part(&mail.html),
        format!(
            "<html><body><p>Code for &lt;b&gt;Wes&lt;/b&gt; &amp; &#39;co&#39;: <b>{code}</b></p></body></html>\n"
        )
    );
}
on_both!(html_overrides);
