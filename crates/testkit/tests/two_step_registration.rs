//! Kratos' two-step (`registration.style: profile_first`) sign-up, driven through the login
//! UI against the real identity server: traits first, then the password, then a session.

use std::net::{Ipv4Addr, SocketAddr};

use portcullis_db::testing::TestDb;
use portcullis_http::Shutdown;
use portcullis_identity::{Identity, IdentityConfig};
use portcullis_testkit::{browser, location, parse_form};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../portcullis/assets/identity.schema.json"
);

/// Follows redirects (GET, `Accept: text/html`) until a page answers 200; returns its URL
/// and body.
async fn page_at(client: &reqwest::Client, mut url: String) -> (String, String) {
    for _ in 0..5 {
        let res = client
            .get(&url)
            .header("Accept", "text/html")
            .send()
            .await
            .expect("page hop");
        if res.status().is_redirection() {
            url = location(&res).expect("hop location");
            continue;
        }
        assert_eq!(res.status(), StatusCode::OK, "page at {url}");
        return (url, res.text().await.expect("page body"));
    }
    panic!("too many redirects from {url}");
}

#[tokio::test]
async fn profile_first_registration_through_the_ui() {
    let db = TestDb::sqlite().await;
    db.migrate(&[portcullis_identity::migrations()])
        .await
        .expect("migrate");
    let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let l_identity = portcullis_http::bind(localhost, "identity public API")
        .await
        .expect("bind identity");
    let l_ui = portcullis_http::bind(localhost, "login UI")
        .await
        .expect("bind ui");
    let identity_url = format!("http://{}", l_identity.local_addr().expect("addr"));
    let ui_url = format!("http://{}", l_ui.local_addr().expect("addr"));

    let dir = tempfile::tempdir().expect("temp dir");
    let config = IdentityConfig::from_value(
        json!({
            "dsn": "memory",
            "serve": {"public": {"base_url": format!("{identity_url}/")}},
            "selfservice": {
                "default_browser_return_url": format!("{ui_url}/"),
                "allowed_return_urls": [format!("{ui_url}/")],
                "methods": {"password": {"enabled": true, "config": {"haveibeenpwned_enabled": false}}},
                "flows": {
                    "error": {"ui_url": format!("{ui_url}/error")},
                    "login": {"ui_url": format!("{ui_url}/login")},
                    "registration": {
                        "ui_url": format!("{ui_url}/registration"),
                        "style": "profile_first",
                        "after": {"password": {"hooks": [{"hook": "session"}]}}
                    }
                }
            },
            "identity": {
                "default_schema_id": "default",
                "schemas": [{"id": "default", "url": format!("file://{SCHEMA}")}]
            }
        }),
        "test",
        dir.path(),
        true,
    )
    .expect("identity config");
    let identity = Identity::new((*db).clone(), config)
        .await
        .expect("identity");
    let ui = portcullis_ui::router(portcullis_ui::UiConfig::new(
        identity_url.parse().expect("url"),
        identity_url.parse().expect("url"),
    ));
    let shutdown = Shutdown::new();
    let servers = [
        tokio::spawn(portcullis_http::serve(
            l_identity,
            identity.public_router(),
            "identity public API",
            shutdown.clone(),
        )),
        tokio::spawn(portcullis_http::serve(
            l_ui,
            ui,
            "login UI",
            shutdown.clone(),
        )),
    ];
    let client = browser();

    // Step 1: the traits only, submitted with `method=profile`.
    let (url, page) = page_at(&client, format!("{ui_url}/registration")).await;
    assert!(
        url.starts_with(&format!("{ui_url}/registration?flow=")),
        "{url}"
    );
    assert!(page.contains(r#"name="traits.email""#), "{page}");
    assert!(
        page.contains(r#"name="method""#) && page.contains(r#"value="profile""#),
        "{page}"
    );
    assert!(
        !page.contains(r#"name="password""#),
        "no password yet: {page}"
    );
    let form = parse_form(&page).expect("step 1 form");
    let email = format!("{}@example.org", TestDb::random_name());
    let mut fields = form.fields.clone();
    fields.retain(|(k, _)| !k.starts_with("traits.") && k != "method");
    fields.push(("traits.email".into(), email.clone()));
    fields.push(("method".into(), "profile".into()));
    let res = client
        .post(&form.action)
        .header("Accept", "text/html")
        .form(&fields)
        .send()
        .await
        .expect("submit traits");
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "traits accepted");
    let back = location(&res).expect("back to the UI");
    assert!(
        back.starts_with(&format!("{ui_url}/registration?flow=")),
        "{back}"
    );

    // Step 2: the password, with the email carried along.
    let (_, page) = page_at(&client, back).await;
    assert!(
        page.contains(r#"name="password""#),
        "password asked: {page}"
    );
    let form = parse_form(&page).expect("step 2 form");
    assert!(
        form.fields
            .iter()
            .any(|(k, v)| k == "traits.email" && v == &email),
        "email carried: {form:?}"
    );
    let mut fields = form.fields.clone();
    fields.retain(|(k, _)| k != "password" && k != "method" && k != "screen");
    fields.push(("password".into(), "correct horse battery staple 42".into()));
    fields.push(("method".into(), "password".into()));
    let res = client
        .post(&form.action)
        .header("Accept", "text/html")
        .form(&fields)
        .send()
        .await
        .expect("submit password");
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "registration accepted");

    // The browser now holds a session for that identity.
    let who: Value = client
        .get(format!("{identity_url}/sessions/whoami"))
        .send()
        .await
        .expect("whoami")
        .json()
        .await
        .expect("whoami json");
    assert_eq!(who["identity"]["traits"]["email"], email.as_str(), "{who}");

    shutdown.cancel();
    for server in servers {
        server.await.expect("join").expect("server stops cleanly");
    }
}
