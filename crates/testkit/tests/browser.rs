//! The self-service pages in a real browser: Debian's Chromium, headless, driven over
//! WebDriver against the whole stack (`TestStack`, every listener on `127.0.0.1:0`).
//!
//! Each test has its own stack, chromedriver and Chromium profile, so they run in parallel.
//! A failing test leaves a screenshot and the page source in `target/browser-artifacts/`
//! (or `$PORTCULLIS_ARTIFACTS`). Without Chromium the tests print `SKIPPED` and pass, except
//! under `CI=true`.
//!
//! Recovery and verification codes are read from the mail the identity server's courier sent
//! over SMTP to the stack's mail catcher, through its JSON API (`addrs.mail_api`).

use portcullis::stack::Addrs;
use portcullis_testkit::webdriver::{Browser, Viewport};
use portcullis_testkit::{Backend, TestStack, code_in, location, parse_form, wait_for_mail};
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple 42";

/// Starts a stack and a browser; `None` when the browser tests are skipped here.
async fn start(name: &str) -> Option<(TestStack, Browser)> {
    let browser = Browser::launch(name, Viewport::DESKTOP)
        .await
        .expect("browser starts")?;
    let stack = TestStack::start(Backend::Sqlite)
        .await
        .expect("stack starts")
        .expect("SQLite stacks always start");
    Some((stack, browser))
}

fn unique_email() -> String {
    format!(
        "{}@example.org",
        portcullis_db::testing::TestDb::random_name()
    )
}

/// On the registration page: fills the form and signs up.
async fn sign_up(b: &Browser, email: &str, password: &str) -> anyhow::Result<()> {
    b.fill("traits.email", email).await?;
    b.fill("password", password).await?;
    b.click("button[type=submit][value=password]").await
}

/// On the login page: fills the form and signs in.
async fn sign_in(b: &Browser, email: &str, password: &str) -> anyhow::Result<()> {
    b.fill("identifier", email).await?;
    b.fill("password", password).await?;
    b.click("button[type=submit][value=password]").await
}

/// The UI's start page shows who is signed in; its "Log out" link ends the session and lands
/// on the login page.
async fn log_out(b: &Browser, a: &Addrs, email: &str) -> anyhow::Result<()> {
    b.goto(&TestStack::url(a.ui, "/")).await?;
    b.wait_for("h1").await?;
    let text = b.text().await?;
    anyhow::ensure!(text.contains(email), "welcome page names {email}: {text}");
    b.follow("Log out").await?;
    b.wait_for_path(Some(a.ui.port()), "/login").await?;
    Ok(())
}

/// /hello → login page → "Sign up" → email and password → back on /hello, JSON; log out;
/// /hello asks to sign in again; sign in → /hello.
async fn tutorial_walk(b: &Browser, a: &Addrs) -> anyhow::Result<()> {
    let hello = TestStack::url(a.gateway, "/hello");
    let email = unique_email();

    b.goto(&hello).await?;
    let login = b.wait_for_path(Some(a.ui.port()), "/login").await?;
    anyhow::ensure!(
        login.query_pairs().any(|(k, _)| k == "flow"),
        "the login page shows a flow: {login}"
    );
    let heading = b.wait_for("h1").await?.text().await?;
    anyhow::ensure!(heading == "Sign in", "login heading: {heading}");

    b.follow("Sign up").await?;
    b.wait_for_path(Some(a.ui.port()), "/registration").await?;
    sign_up(b, &email, PASSWORD).await?;
    b.wait_for_path(Some(a.gateway.port()), "/hello").await?;
    let body = b.json().await?;
    anyhow::ensure!(
        body == json!({"message": "Hello microservice"}),
        "hello answers: {body}"
    );

    log_out(b, a, &email).await?;
    b.goto(&hello).await?;
    b.wait_for_path(Some(a.ui.port()), "/login").await?;
    sign_in(b, &email, PASSWORD).await?;
    b.wait_for_path(Some(a.gateway.port()), "/hello").await?;
    let body = b.json().await?;
    anyhow::ensure!(
        body == json!({"message": "Hello microservice"}),
        "hello answers after signing in again: {body}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_flow_sign_up_log_out_sign_in() {
    let Some((stack, browser)) = start("tutorial_flow_sign_up_log_out_sign_in").await else {
        return;
    };
    let outcome = tutorial_walk(&browser, &stack.addrs).await;
    browser.finish(outcome).await;
    stack.stop().await.expect("stack stops");
}

/// A wrong password keeps the person on the login page with Kratos' message 4000006, the
/// identifier still filled in; the right one then signs in.
async fn wrong_password_walk(b: &Browser, a: &Addrs) -> anyhow::Result<()> {
    let email = unique_email();
    b.goto(&TestStack::url(a.ui, "/registration")).await?;
    b.wait_for_path(Some(a.ui.port()), "/registration").await?;
    sign_up(b, &email, PASSWORD).await?;
    b.wait_for_path(Some(a.ui.port()), "/").await?;
    log_out(b, a, &email).await?;

    sign_in(b, &email, "not the password").await?;
    let message = b.wait_for("[data-message-id=\"4000006\"]").await?;
    let text = message.text().await?;
    anyhow::ensure!(
        text.contains("credentials are invalid"),
        "message shown: {text}"
    );
    anyhow::ensure!(
        message.attr("role").await?.as_deref() == Some("alert"),
        "the error is announced"
    );
    b.wait_for_path(Some(a.ui.port()), "/login").await?;
    let identifier = b.wait_for("input[name=identifier]").await?;
    anyhow::ensure!(
        identifier.prop("value").await?.as_deref() == Some(email.as_str()),
        "identifier kept"
    );

    sign_in(b, &email, PASSWORD).await?;
    b.wait_for_path(Some(a.ui.port()), "/").await?;
    let text = b.text().await?;
    anyhow::ensure!(text.contains(&email), "signed in as {email}: {text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_shows_a_message() {
    let Some((stack, browser)) = start("wrong_password_shows_a_message").await else {
        return;
    };
    let outcome = wrong_password_walk(&browser, &stack.addrs).await;
    browser.finish(outcome).await;
    stack.stop().await.expect("stack stops");
}

/// A too-short password is refused next to the field; unknown flows start over; unknown
/// errors and pages get a helpful page with a way back.
async fn errors_walk(b: &Browser, a: &Addrs) -> anyhow::Result<()> {
    b.goto(&TestStack::url(a.ui, "/registration")).await?;
    b.wait_for_path(Some(a.ui.port()), "/registration").await?;
    sign_up(b, &unique_email(), "short").await?;
    let error = b.wait_for(".field-invalid .message-error").await?;
    let text = error.text().await?;
    anyhow::ensure!(text.contains("at least"), "password rule explained: {text}");
    let password = b.wait_for("input[name=password]").await?;
    anyhow::ensure!(
        password.attr("aria-invalid").await?.as_deref() == Some("true"),
        "password marked invalid"
    );

    // A well-formed flow id the identity server does not know: a new flow starts.
    let unknown = "00000000-0000-4000-8000-000000000000";
    b.goto(&TestStack::url(a.ui, &format!("/login?flow={unknown}")))
        .await?;
    wait_for_new_flow(b, a, unknown).await?;

    // A malformed one: the error page says so and "Try again" starts a new flow.
    b.goto(&TestStack::url(a.ui, "/login?flow=not-a-flow-id"))
        .await?;
    b.wait_for("[role=alert] h1").await?;
    b.follow("Try again").await?;
    wait_for_new_flow(b, a, "not-a-flow-id").await?;

    b.goto(&TestStack::url(a.ui, "/error?id=no-such-error"))
        .await?;
    let heading = b.wait_for("h1").await?.text().await?;
    anyhow::ensure!(
        heading == "Error not found",
        "error page heading: {heading}"
    );
    b.follow("Go to the start page").await?;
    b.wait_for_path(Some(a.ui.port()), "/").await?;

    b.goto(&TestStack::url(a.ui, "/no-such-page")).await?;
    let heading = b.wait_for("h1").await?.text().await?;
    anyhow::ensure!(heading == "Page not found", "404 heading: {heading}");
    Ok(())
}

/// Waits for the login page to show a flow other than `old`.
async fn wait_for_new_flow(b: &Browser, a: &Addrs, old: &str) -> anyhow::Result<()> {
    let url = b.wait_for_path(Some(a.ui.port()), "/login").await?;
    let flow = url
        .query_pairs()
        .find(|(k, _)| k == "flow")
        .map(|(_, v)| v.into_owned());
    anyhow::ensure!(
        flow.as_deref().is_some_and(|f| f != old),
        "a new flow was started: {url}"
    );
    b.wait_for("input[name=identifier]").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_explained() {
    let Some((stack, browser)) = start("errors_are_explained").await else {
        return;
    };
    let outcome = errors_walk(&browser, &stack.addrs).await;
    browser.finish(outcome).await;
    stack.stop().await.expect("stack stops");
}

/// Signs in with a second, cookie-jar HTTP client: another device with its own session.
async fn sign_in_elsewhere(a: &Addrs, email: &str) -> anyhow::Result<reqwest::Client> {
    let client = portcullis_testkit::browser();
    let mut next = TestStack::url(a.ui, "/login");
    let mut page = None;
    for _ in 0..5 {
        let res = client.get(&next).send().await?;
        match location(&res) {
            Some(to) if res.status().is_redirection() => next = to,
            _ => {
                page = Some(res.text().await?);
                break;
            }
        }
    }
    let page = page.ok_or_else(|| anyhow::anyhow!("no login page after 5 redirects"))?;
    let form = parse_form(&page).ok_or_else(|| anyhow::anyhow!("no login form: {page}"))?;
    let mut fields = form.fields;
    fields.retain(|(k, _)| k != "identifier" && k != "password" && k != "method");
    fields.push(("identifier".into(), email.into()));
    fields.push(("password".into(), PASSWORD.into()));
    fields.push(("method".into(), "password".into()));
    let res = client.post(&form.action).form(&fields).send().await?;
    anyhow::ensure!(res.status().is_redirection(), "signed in elsewhere");
    Ok(client)
}

/// Whether `client` still has a session.
async fn has_session(a: &Addrs, client: &reqwest::Client) -> anyhow::Result<bool> {
    let res = client
        .get(TestStack::url(a.identity, "/sessions/whoami"))
        .send()
        .await?;
    Ok(res.status().is_success())
}

/// The sessions page lists another device's session and signs it out.
async fn sessions_walk(b: &Browser, a: &Addrs) -> anyhow::Result<()> {
    let email = unique_email();
    b.goto(&TestStack::url(a.ui, "/registration")).await?;
    sign_up(b, &email, PASSWORD).await?;
    b.wait_for_path(Some(a.ui.port()), "/").await?;
    let elsewhere = sign_in_elsewhere(a, &email).await?;
    anyhow::ensure!(
        has_session(a, &elsewhere).await?,
        "the other device is signed in"
    );

    b.follow("Your sessions").await?;
    b.wait_for_path(Some(a.ui.port()), "/sessions").await?;
    let others = b
        .client()
        .find_all(fantoccini::Locator::Css("li.session"))
        .await?;
    anyhow::ensure!(
        others.len() == 1,
        "one other session listed, not {}",
        others.len()
    );
    b.click("li.session button[type=submit]").await?;
    let notice = b.wait_for(".message-success").await?.text().await?;
    anyhow::ensure!(notice.contains("signed out"), "notice: {notice}");
    anyhow::ensure!(
        !has_session(a, &elsewhere).await?,
        "the other device's session was revoked"
    );
    let text = b.text().await?;
    anyhow::ensure!(
        text.contains("You are not signed in anywhere else."),
        "list is empty now: {text}"
    );
    // This browser is still signed in.
    b.goto(&TestStack::url(a.gateway, "/hello")).await?;
    b.wait_for_path(Some(a.gateway.port()), "/hello").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_page_revokes_another_session() {
    let Some((stack, browser)) = start("sessions_page_revokes_another_session").await else {
        return;
    };
    let outcome = sessions_walk(&browser, &stack.addrs).await;
    browser.finish(outcome).await;
    stack.stop().await.expect("stack stops");
}

/// The text part of a mail from the mail catcher's API.
fn mail_text(mail: &serde_json::Value) -> anyhow::Result<&str> {
    mail["text"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the mail has a text part: {mail}"))
}

/// Waits for the flow's success message `id` (e.g. 1050001 "Your changes have been saved!").
async fn wait_for_success(b: &Browser, id: u32) -> anyhow::Result<String> {
    let message = b
        .wait_for(&format!(".message-success[data-message-id=\"{id}\"]"))
        .await?;
    anyhow::ensure!(
        message.attr("role").await?.as_deref() == Some("status"),
        "the notice is announced"
    );
    Ok(message.text().await?)
}

/// Forgot password → email → code from the mail → settings page → new password → log out →
/// the old password fails, the new one signs in.
async fn recovery_walk(b: &Browser, a: &Addrs) -> anyhow::Result<()> {
    let email = unique_email();
    let new_password = "a brand new passphrase 43";
    b.goto(&TestStack::url(a.ui, "/registration")).await?;
    sign_up(b, &email, PASSWORD).await?;
    b.wait_for_path(Some(a.ui.port()), "/").await?;
    log_out(b, a, &email).await?;

    b.follow("Forgot your password?").await?;
    b.wait_for_path(Some(a.ui.port()), "/recovery").await?;
    let heading = b.wait_for("h1").await?.text().await?;
    anyhow::ensure!(heading == "Recover your account", "heading: {heading}");
    b.fill("email", &email).await?;
    b.click("button[type=submit][value=code]").await?;
    b.wait_for("input[name=code]").await?;
    let sent = b
        .wait_for("[data-message-id=\"1060003\"]")
        .await?
        .text()
        .await?;
    anyhow::ensure!(
        sent.contains("email"),
        "the page says a code was sent: {sent}"
    );

    let mail = wait_for_mail(a.mail_api, &email, "Recover access").await?;
    let code = code_in(mail_text(&mail)?)
        .ok_or_else(|| anyhow::anyhow!("a code in the recovery mail: {mail}"))?;
    b.fill("code", &code).await?;
    b.click("button[type=submit][value=code]").await?;

    b.wait_for_path(Some(a.ui.port()), "/settings").await?;
    b.fill("password", new_password).await?;
    // The page still shows the profile change's 1050001; wait for the answer's page.
    b.submit("button[type=submit][value=password]").await?;
    wait_for_success(b, 1050001).await?;

    log_out(b, a, &email).await?;
    sign_in(b, &email, PASSWORD).await?;
    b.wait_for("[data-message-id=\"4000006\"]").await?;
    sign_in(b, &email, new_password).await?;
    b.wait_for_path(Some(a.ui.port()), "/").await?;
    let text = b.text().await?;
    anyhow::ensure!(text.contains(&email), "signed in as {email}: {text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_by_code_sets_a_new_password() {
    let Some((stack, browser)) = start("recovery_by_code_sets_a_new_password").await else {
        return;
    };
    let outcome = recovery_walk(&browser, &stack.addrs).await;
    browser.finish(outcome).await;
    stack.stop().await.expect("stack stops");
}

/// The flow id in the verification mail's link (`...?flow=<id>&code=...`).
fn flow_in(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("flow=")?;
    let id: String = rest
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect();
    Some(id).filter(|id| !id.is_empty())
}

/// Sign up → verification mail → its code typed into the verification page → verified on the
/// welcome page and in `/sessions/whoami`.
async fn verification_walk(b: &Browser, a: &Addrs) -> anyhow::Result<()> {
    let email = unique_email();
    b.goto(&TestStack::url(a.ui, "/registration")).await?;
    sign_up(b, &email, PASSWORD).await?;
    b.wait_for_path(Some(a.ui.port()), "/").await?;
    b.wait_for(".address-unverified").await?;

    let mail = wait_for_mail(a.mail_api, &email, "verify your email").await?;
    let text = mail_text(&mail)?;
    let code = code_in(text).ok_or_else(|| anyhow::anyhow!("a code in the mail: {mail}"))?;
    let flow = flow_in(text).ok_or_else(|| anyhow::anyhow!("a flow in the mail: {mail}"))?;

    b.goto(&TestStack::url(a.ui, &format!("/verification?flow={flow}")))
        .await?;
    let heading = b.wait_for("h1").await?.text().await?;
    anyhow::ensure!(heading == "Verify your email address", "heading: {heading}");
    b.fill("code", &code).await?;
    b.click("button[type=submit][value=code]").await?;
    let notice = wait_for_success(b, 1080002).await?;
    anyhow::ensure!(notice.contains("verified"), "notice: {notice}");
    b.follow("Continue").await?;
    b.wait_for_path(Some(a.ui.port()), "/").await?;
    b.wait_for(".address-verified").await?;

    b.goto(&TestStack::url(a.identity, "/sessions/whoami"))
        .await?;
    let whoami = b.json().await?;
    let address = &whoami["identity"]["verifiable_addresses"][0];
    anyhow::ensure!(
        address["value"] == email.as_str() && address["verified"] == true,
        "whoami shows the address verified: {whoami}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_by_code_marks_the_address_verified() {
    let Some((stack, browser)) = start("verification_by_code_marks_the_address_verified").await
    else {
        return;
    };
    let outcome = verification_walk(&browser, &stack.addrs).await;
    browser.finish(outcome).await;
    stack.stop().await.expect("stack stops");
}

/// The settings page changes the email address (profile) and the password; signing in again
/// takes the new ones.
async fn settings_walk(b: &Browser, a: &Addrs) -> anyhow::Result<()> {
    let email = unique_email();
    let new_email = unique_email();
    let new_password = "another fine passphrase 44";
    b.goto(&TestStack::url(a.ui, "/registration")).await?;
    sign_up(b, &email, PASSWORD).await?;
    b.wait_for_path(Some(a.ui.port()), "/").await?;

    b.follow("Account settings").await?;
    b.wait_for_path(Some(a.ui.port()), "/settings").await?;
    let heading = b.wait_for("h1").await?.text().await?;
    anyhow::ensure!(heading == "Account settings", "heading: {heading}");
    b.fill("traits.email", &new_email).await?;
    b.click("button[type=submit][value=profile]").await?;
    wait_for_success(b, 1050001).await?;
    let shown = b.wait_for("input[name=\"traits.email\"]").await?;
    anyhow::ensure!(
        shown.prop("value").await?.as_deref() == Some(new_email.as_str()),
        "the new address is shown"
    );

    b.fill("password", new_password).await?;
    // The page still shows the profile change's 1050001; wait for the answer's page.
    b.submit("button[type=submit][value=password]").await?;
    wait_for_success(b, 1050001).await?;

    log_out(b, a, &new_email).await?;
    sign_in(b, &new_email, new_password).await?;
    b.wait_for_path(Some(a.ui.port()), "/").await?;
    let text = b.text().await?;
    anyhow::ensure!(
        text.contains(&new_email),
        "signed in as {new_email}: {text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_change_profile_and_password() {
    let Some((stack, browser)) = start("settings_change_profile_and_password").await else {
        return;
    };
    let outcome = settings_walk(&browser, &stack.addrs).await;
    browser.finish(outcome).await;
    stack.stop().await.expect("stack stops");
}

/// Sends one message to the mail catcher over plain SMTP, the way the courier would.
async fn send_mail(smtp: std::net::SocketAddr, to: &str, message: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(smtp).await?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    // Reads one reply (continuation lines have a '-' after the code) and checks its class.
    async fn reply(
        lines: &mut tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
        class: char,
    ) -> anyhow::Result<()> {
        loop {
            let line = lines
                .next_line()
                .await?
                .ok_or_else(|| anyhow::anyhow!("SMTP connection closed"))?;
            anyhow::ensure!(line.starts_with(class), "unexpected SMTP reply: {line}");
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    }
    reply(&mut lines, '2').await?;
    for (command, class) in [
        ("EHLO screenshots.local".to_string(), '2'),
        ("MAIL FROM:<no-reply@portcullis.local>".to_string(), '2'),
        (format!("RCPT TO:<{to}>"), '2'),
        ("DATA".to_string(), '3'),
    ] {
        write.write_all(format!("{command}\r\n").as_bytes()).await?;
        reply(&mut lines, class).await?;
    }
    write
        .write_all(format!("{}\r\n.\r\n", message.replace('\n', "\r\n")).as_bytes())
        .await?;
    reply(&mut lines, '2').await?;
    write.write_all(b"QUIT\r\n").await?;
    Ok(())
}

/// A recovery-code mail as the identity server's courier sends it: text and HTML parts.
fn recovery_mail(to: &str) -> String {
    format!(
        "From: Portcullis <no-reply@portcullis.local>\n\
         To: {to}\n\
         Subject: Recover access to your account\n\
         Date: Sat, 28 Nov 2026 12:00:00 +0000\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/alternative; boundary=\"b1\"\n\
         \n\
         --b1\n\
         Content-Type: text/plain; charset=utf-8\n\
         \n\
         Hi,\n\
         \n\
         please recover access to your account by entering the following code:\n\
         \n\
         482913\n\
         \n\
         --b1\n\
         Content-Type: text/html; charset=utf-8\n\
         \n\
         <p>Hi,</p><p>please recover access to your account by entering the following code:</p>\
         <p style=\"font-size:1.5em\"><b>482913</b></p>\n\
         --b1--"
    )
}

/// Where [`screenshots`] writes: `$PORTCULLIS_SCREENSHOTS`, else `docs/screenshots/`.
fn screenshots_dir() -> std::path::PathBuf {
    match std::env::var_os("PORTCULLIS_SCREENSHOTS").filter(|v| !v.is_empty()) {
        Some(dir) => dir.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots"),
    }
}

/// Every page at desktop and phone width, saved as `<page>-<desktop|phone>.png`.
async fn screenshot_walk(b: &Browser, a: &Addrs) -> anyhow::Result<()> {
    let dir = screenshots_dir();
    send_mail(a.smtp, "ada@example.org", &recovery_mail("ada@example.org")).await?;
    for (size, viewport) in [("desktop", Viewport::DESKTOP), ("phone", Viewport::PHONE)] {
        b.resize(viewport).await?;
        let shot = |page: &str| dir.join(format!("{page}-{size}.png"));

        b.goto(&TestStack::url(a.ui, "/login")).await?;
        b.wait_for("input[name=identifier]").await?;
        b.save_screenshot(&shot("login")).await?;

        b.goto(&TestStack::url(a.ui, "/registration")).await?;
        b.wait_for("input[name=\"traits.email\"]").await?;
        b.save_screenshot(&shot("registration")).await?;

        sign_up(b, "ada@example", "short").await?;
        b.wait_for(".field-invalid").await?;
        b.save_screenshot(&shot("registration-errors")).await?;

        b.goto(&TestStack::url(a.ui, "/login")).await?;
        let email = unique_email();
        b.goto(&TestStack::url(a.ui, "/registration")).await?;
        sign_up(b, &email, PASSWORD).await?;
        b.wait_for_path(Some(a.ui.port()), "/").await?;
        b.wait_for(".details").await?;
        b.save_screenshot(&shot("welcome")).await?;
        let _elsewhere = sign_in_elsewhere(a, &email).await?;
        b.goto(&TestStack::url(a.ui, "/sessions")).await?;
        b.wait_for("li.session").await?;
        b.save_screenshot(&shot("sessions")).await?;

        b.goto(&TestStack::url(a.ui, "/settings")).await?;
        b.wait_for("input[name=password]").await?;
        b.save_screenshot(&shot("settings")).await?;
        b.fill("password", "short").await?;
        b.click("button[type=submit][value=password]").await?;
        b.wait_for(".field-invalid").await?;
        b.save_screenshot(&shot("settings-errors")).await?;

        let mail = wait_for_mail(a.mail_api, &email, "verify your email").await?;
        let text = mail_text(&mail)?;
        let code = code_in(text).ok_or_else(|| anyhow::anyhow!("a code in {mail}"))?;
        let flow = flow_in(text).ok_or_else(|| anyhow::anyhow!("a flow in {mail}"))?;
        b.goto(&TestStack::url(a.ui, &format!("/verification?flow={flow}")))
            .await?;
        b.wait_for("input[name=code]").await?;
        b.save_screenshot(&shot("verification")).await?;
        b.fill("code", &code).await?;
        b.click("button[type=submit][value=code]").await?;
        wait_for_success(b, 1080002).await?;
        b.save_screenshot(&shot("verification-done")).await?;
        log_out(b, a, &email).await?;

        sign_in(b, &email, "not the password").await?;
        b.wait_for("[data-message-id=\"4000006\"]").await?;
        b.save_screenshot(&shot("login-errors")).await?;

        b.goto(&TestStack::url(a.ui, "/login?flow=not-a-flow-id"))
            .await?;
        b.wait_for("[role=alert] h1").await?;
        b.save_screenshot(&shot("error")).await?;

        b.goto(&TestStack::url(a.ui, "/recovery")).await?;
        b.wait_for("input[name=email]").await?;
        b.save_screenshot(&shot("recovery")).await?;
        b.fill("email", &email).await?;
        b.click("button[type=submit][value=code]").await?;
        b.wait_for("input[name=code]").await?;
        b.save_screenshot(&shot("recovery-code")).await?;

        b.goto(&TestStack::url(a.mail_web, "/")).await?;
        b.wait_for("table").await?;
        b.save_screenshot(&shot("mail-inbox")).await?;
        // The crafted mail with an HTML part (the courier's own mails are text only).
        let crafted = wait_for_mail(a.mail_api, "ada@example.org", "Recover access").await?;
        let id = crafted["id"].as_str().unwrap_or_default();
        b.goto(&TestStack::url(a.mail_web, &format!("/messages/{id}")))
            .await?;
        b.wait_for("iframe").await?;
        b.save_screenshot(&shot("mail-message")).await?;
    }
    Ok(())
}

/// Refreshes `docs/screenshots/`: `cargo test -p portcullis-testkit --test browser -- --ignored screenshots`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/screenshots; run by hand after changing a page"]
async fn screenshots() {
    let Some((stack, browser)) = start("screenshots").await else {
        return;
    };
    let outcome = screenshot_walk(&browser, &stack.addrs).await;
    browser.finish(outcome).await;
    stack.stop().await.expect("stack stops");
}
