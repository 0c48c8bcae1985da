//! The tutorial, end to end over real HTTP, as a browser with a cookie jar walks it:
//! /hello → login page → sign up → /hello → log out → /hello redirects again.

use portcullis_testkit::{Backend, TestStack, browser, location, parse_form};
use reqwest::StatusCode;
use serde_json::Value;

async fn tutorial_flow(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await.expect("stack starts") else {
        return;
    };
    let a = stack.addrs;
    let hello = TestStack::url(a.gateway, "/hello");
    let client = browser();

    // 1. A browser without a session is sent to the login UI, carrying return_to.
    let res = client
        .get(&hello)
        .header("Accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .expect("GET /hello");
    assert_eq!(res.status(), StatusCode::FOUND);
    let to = location(&res).expect("redirect location");
    let to_url = url::Url::parse(&to).expect("absolute redirect");
    assert_eq!(to_url.port(), Some(a.ui.port()), "{to}");
    assert_eq!(to_url.path(), "/login");
    let return_to: String = to_url
        .query_pairs()
        .find(|(k, _)| k == "return_to")
        .map(|(_, v)| v.into_owned())
        .expect("return_to carried");
    assert_eq!(return_to, hello);

    // 2. An API client gets a JSON 401 instead.
    let res = client
        .get(&hello)
        .header("Accept", "application/json")
        .send()
        .await
        .expect("GET /hello json");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await.expect("json error body");
    assert_eq!(body["error"]["code"], 401, "{body}");

    // 3. Sign up through the UI: the registration page redirects to the identity server,
    //    which creates a flow and sends the browser back to the UI with ?flow=.
    let reg_start = format!(
        "http://{}/registration?return_to={}",
        a.ui,
        url::form_urlencoded::byte_serialize(hello.as_bytes()).collect::<String>()
    );
    let mut next = reg_start;
    let mut page = None;
    for _ in 0..5 {
        let res = client
            .get(&next)
            .header("Accept", "text/html")
            .send()
            .await
            .expect("registration hop");
        if res.status().is_redirection() {
            next = location(&res).expect("hop location");
            continue;
        }
        assert_eq!(res.status(), StatusCode::OK, "registration page at {next}");
        page = Some(res.text().await.expect("page body"));
        break;
    }
    let page = page.expect("registration page reached");
    let form = parse_form(&page).expect("registration form");
    assert!(
        form.fields
            .iter()
            .any(|(k, v)| k == "csrf_token" && !v.is_empty()),
        "csrf token rendered: {form:?}"
    );
    let mut fields = form.fields.clone();
    fields.retain(|(k, _)| k != "traits.email" && k != "password" && k != "method");
    let email = format!(
        "{}@example.org",
        portcullis_db::testing::TestDb::random_name()
    );
    fields.push(("traits.email".into(), email.clone()));
    fields.push(("password".into(), "correct horse battery staple 42".into()));
    fields.push(("method".into(), "password".into()));
    let res = client
        .post(&form.action)
        .header("Accept", "text/html")
        .form(&fields)
        .send()
        .await
        .expect("submit registration");
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "registration accepted");
    assert_eq!(
        location(&res).as_deref(),
        Some(hello.as_str()),
        "back where we started"
    );

    // 4. With the session cookie, the protected services answer.
    let res = client
        .get(&hello)
        .header("Accept", "text/html")
        .send()
        .await
        .expect("hello");
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("hello json");
    assert_eq!(body, serde_json::json!({"message": "Hello microservice"}));
    let res = client
        .get(TestStack::url(a.gateway, "/world"))
        .send()
        .await
        .expect("world");
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("world json");
    assert_eq!(body, serde_json::json!({"message": "World microservice"}));

    // The identity server knows who we are.
    let who: Value = client
        .get(TestStack::url(a.identity, "/sessions/whoami"))
        .send()
        .await
        .expect("whoami")
        .json()
        .await
        .expect("whoami json");
    assert_eq!(who["identity"]["traits"]["email"], email.as_str(), "{who}");

    // 5. Log out through the UI.
    let mut next = TestStack::url(a.ui, "/logout");
    for _ in 0..5 {
        let res = client
            .get(&next)
            .header("Accept", "text/html")
            .send()
            .await
            .expect("logout hop");
        match location(&res) {
            Some(to) if res.status().is_redirection() => next = to,
            _ => break,
        }
    }

    // 6. The session is gone: /hello redirects to login again.
    let res = client
        .get(&hello)
        .header("Accept", "text/html")
        .send()
        .await
        .expect("hello again");
    assert_eq!(res.status(), StatusCode::FOUND);
    assert!(location(&res).expect("location").contains("/login"));

    stack.stop().await.expect("stack stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_flow_sqlite() {
    tutorial_flow(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_flow_postgres() {
    tutorial_flow(Backend::Postgres).await;
}
