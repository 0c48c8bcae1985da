//! The test harness: starts the same stack as `portcullis up`, every listener on
//! `127.0.0.1:0`, on a fresh SQLite or PostgreSQL database, and hands out HTTP clients that
//! behave like a browser (cookie jar, redirects observed rather than followed).

pub mod webdriver;

use std::net::{IpAddr, Ipv4Addr};

use portcullis::cli::Ports;
use portcullis::stack::{Addrs, Listeners, Stack, StackOptions};
use portcullis_db::testing::TestDb;

/// Which database a [`TestStack`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A temporary SQLite file.
    Sqlite,
    /// A new PostgreSQL database.
    Postgres,
}

/// A running stack for one test. Stops when dropped (the runtime ends with the test).
pub struct TestStack {
    /// Every bound address.
    pub addrs: Addrs,
    stack: Option<Stack>,
    _dir: tempfile::TempDir,
}

impl TestStack {
    /// Starts the stack, or `None` when the PostgreSQL suite is skipped on this machine.
    pub async fn start(backend: Backend) -> anyhow::Result<Option<TestStack>> {
        let dir = tempfile::tempdir()?;
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}/portcullis.db", dir.path().display()),
            Backend::Postgres => match TestDb::postgres_database_url().await {
                Some(url) => url,
                None => return Ok(None),
            },
        };
        let listeners =
            Listeners::bind(IpAddr::V4(Ipv4Addr::LOCALHOST), &Ports::ephemeral()).await?;
        let opts = StackOptions {
            database_url,
            data_dir: dir.path().to_path_buf(),
        };
        let stack = Stack::start(listeners, &opts).await?;
        Ok(Some(TestStack {
            addrs: stack.addrs,
            stack: Some(stack),
            _dir: dir,
        }))
    }

    /// `http://ADDR` of a listener.
    pub fn url(addr: std::net::SocketAddr, path: &str) -> String {
        format!("http://{addr}{path}")
    }

    /// Stops the stack and waits for every server to drain.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        match self.stack.take() {
            Some(stack) => stack.stop().await,
            None => Ok(()),
        }
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        if let Some(stack) = &self.stack {
            stack.shutdown_token().cancel();
        }
    }
}

/// A browser-like client: keeps cookies, does not follow redirects (tests assert each hop).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("building the test HTTP client: {e}"))
}

/// The `Location` header of a redirect, resolved against the request URL.
pub fn location(res: &reqwest::Response) -> Option<String> {
    let loc = res
        .headers()
        .get(reqwest::header::LOCATION)?
        .to_str()
        .ok()?;
    res.url().join(loc).ok().map(|u| u.to_string())
}

/// A submittable HTML form found on a page.
#[derive(Debug, Clone)]
pub struct HtmlForm {
    /// The `action` attribute (HTML entities decoded).
    pub action: String,
    /// `name=value` of every input that has a value (hidden fields such as `csrf_token`).
    pub fields: Vec<(String, String)>,
}

/// Extracts the first `<form>` of a page with its inputs. Good enough for the pages this
/// project renders itself; the browser tests cover real parsing.
pub fn parse_form(html: &str) -> Option<HtmlForm> {
    let form_re = regex::Regex::new(r#"(?s)<form[^>]*action="([^"]*)"[^>]*>(.*?)</form>"#).ok()?;
    let input_re = regex::Regex::new(r#"<input([^>]*)>"#).ok()?;
    let attr_re = regex::Regex::new(r#"([a-zA-Z_-]+)="([^"]*)""#).ok()?;
    let caps = form_re.captures(html)?;
    let action = unescape(caps.get(1)?.as_str());
    let mut fields = Vec::new();
    for input in input_re.captures_iter(caps.get(2)?.as_str()) {
        let attrs: Vec<(String, String)> = attr_re
            .captures_iter(input.get(1).map_or("", |m| m.as_str()))
            .filter_map(|a| Some((a.get(1)?.as_str().to_string(), unescape(a.get(2)?.as_str()))))
            .collect();
        let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if let (Some(name), Some(value)) = (get("name"), get("value"))
            && get("type").as_deref() != Some("submit")
        {
            fields.push((name, value));
        }
    }
    Some(HtmlForm { action, fields })
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
}

/// Waits (polling the mail catcher's JSON API at `mail_api`, up to ten seconds) for the
/// newest message to `to` whose subject contains `subject`, and returns it in full
/// (`GET /api/v1/messages/{id}`: `text`, `html`, headers, ...).
pub async fn wait_for_mail(
    mail_api: std::net::SocketAddr,
    to: &str,
    subject: &str,
) -> anyhow::Result<serde_json::Value> {
    let client = reqwest::Client::new();
    let list = reqwest::Url::parse_with_params(
        &TestStack::url(mail_api, "/api/v1/messages"),
        &[("to", to)],
    )?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found: serde_json::Value = client
            .get(list.clone())
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = found["messages"].as_array().and_then(|messages| {
            messages
                .iter()
                .find(|m| m["subject"].as_str().is_some_and(|s| s.contains(subject)))
                .and_then(|m| m["id"].as_str())
        });
        if let Some(id) = id {
            let url = TestStack::url(mail_api, &format!("/api/v1/messages/{id}"));
            return Ok(client
                .get(url)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no mail to {to} with subject {subject:?} within 10s: {found}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The one-time code in a mail's text: a line holding only digits (as Kratos' templates put it).
pub fn code_in(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|line| line.len() >= 6 && line.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
}
