//! Drives Debian's Chromium headless through chromedriver, for the browser tests.
//!
//! Every [`Browser`] starts its own chromedriver on an ephemeral port (`--port=0`; the port is
//! read from its banner) and its own Chromium with a fresh profile directory, so tests run in
//! parallel without sharing cookies or ports. chromedriver runs in its own process group, and
//! dropping the [`Browser`] ends that group, Chromium included, even when a test panics.
//!
//! Where the binaries are: `PORTCULLIS_CHROMIUM` / `PORTCULLIS_CHROMEDRIVER`, else
//! `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and `chromium-driver`
//! packages). Missing binaries skip the test with a `SKIPPED` line, except under `CI=true`,
//! where they fail it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// How long a page may take to show what a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// The Chromium switches every test browser gets: headless, no sandbox (CI runs as root), and
/// nothing that phones home or updates itself in the middle of a test.
pub const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--lang=en-US",
    "--accept-lang=en-US",
];

/// A viewport size in CSS pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewport {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl Viewport {
    /// A desktop window, 1280×900.
    pub const DESKTOP: Viewport = Viewport {
        width: 1280,
        height: 900,
    };
    /// A phone, 390×844 (a current iPhone's CSS viewport).
    pub const PHONE: Viewport = Viewport {
        width: 390,
        height: 844,
    };
}

/// The chromedriver and Chromium binaries to use.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The browser.
    pub chromium: PathBuf,
    /// The WebDriver server.
    pub chromedriver: PathBuf,
}

impl Binaries {
    /// Finds both binaries; `Ok(None)` (after printing a `SKIPPED` line naming `test`) when
    /// either is missing outside CI, an error when it is missing under `CI=true`.
    pub fn find(test: &str) -> anyhow::Result<Option<Binaries>> {
        let pick = |var: &str, default: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(default))
        };
        let chromium = pick("PORTCULLIS_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = pick("PORTCULLIS_CHROMEDRIVER", "/usr/bin/chromedriver");
        let missing: Vec<String> = [&chromium, &chromedriver]
            .into_iter()
            .filter(|p| !p.is_file())
            .map(|p| p.display().to_string())
            .collect();
        if missing.is_empty() {
            return Ok(Some(Binaries {
                chromium,
                chromedriver,
            }));
        }
        let what = missing.join(" and ");
        if std::env::var("CI").as_deref() == Ok("true") {
            bail!(
                "{test}: {what} not found, and CI=true requires the browser tests \
                 (apt-get install chromium chromium-driver)"
            );
        }
        eprintln!(
            "SKIPPED browser test {test}: {what} not found \
             (apt-get install chromium chromium-driver, or set PORTCULLIS_CHROMIUM / PORTCULLIS_CHROMEDRIVER)"
        );
        Ok(None)
    }
}

/// Where failure screenshots go: `$PORTCULLIS_ARTIFACTS`, else `target/browser-artifacts/` in
/// the workspace.
pub fn artifacts_dir() -> PathBuf {
    match std::env::var_os("PORTCULLIS_ARTIFACTS").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts"),
    }
}

/// A chromedriver process in its own process group; the group is killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start(binary: &Path) -> anyhow::Result<Driver> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(binary)
            .arg("--port=0")
            .arg("--log-level=WARNING")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("chromedriver stdout")?;
        let (tx, rx) = mpsc::channel();
        // Keeps draining the pipe after the banner so chromedriver never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = banner_port(&line).filter(|_| !sent) {
                    sent = tx.send(port).is_ok();
                }
            }
        });
        let mut driver = Driver { child, port: 0 };
        driver.port = rx
            .recv_timeout(PATIENCE)
            .map_err(|_| anyhow!("chromedriver did not report its port"))?;
        Ok(driver)
    }
}

/// The port in chromedriver's "ChromeDriver was started successfully on port 34195." line.
fn banner_port(line: &str) -> Option<u16> {
    let rest = line.split("started successfully on port ").nth(1)?;
    rest.trim_end_matches(['.', ' ']).parse().ok()
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The negative id addresses the whole group: chromedriver and the Chromium it started.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One headless Chromium, driven over WebDriver.
pub struct Browser {
    client: Client,
    name: String,
    _profile: tempfile::TempDir,
    _driver: Driver,
}

impl Browser {
    /// Starts chromedriver and Chromium for the test `name` at `viewport`; `Ok(None)` when the
    /// binaries are missing outside CI (see [`Binaries::find`]).
    pub async fn launch(name: &str, viewport: Viewport) -> anyhow::Result<Option<Browser>> {
        let Some(binaries) = Binaries::find(name)? else {
            return Ok(None);
        };
        let driver = Driver::start(&binaries.chromedriver)?;
        let profile = tempfile::Builder::new()
            .prefix("portcullis-chromium-")
            .tempdir()?;
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!(
            "--window-size={},{}",
            viewport.width, viewport.height
        ));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binaries.chromium,
                "args": args,
                "prefs": {"intl.accept_languages": "en-US,en"},
            },
        });
        let Value::Object(capabilities) = capabilities else {
            bail!("capabilities are a JSON object");
        };
        let url = format!("http://127.0.0.1:{}", driver.port);
        let client = wait_ready(&url, || async {
            ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
        })
        .await?;
        let browser = Browser {
            client,
            name: name.to_string(),
            _profile: profile,
            _driver: driver,
        };
        browser.resize(viewport).await?;
        Ok(Some(browser))
    }

    /// The WebDriver client, for anything the helpers below do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Makes the page's viewport (not the window) `viewport` large.
    pub async fn resize(&self, viewport: Viewport) -> anyhow::Result<()> {
        // The window includes no browser chrome in headless mode, but measure to be sure.
        self.client
            .set_window_size(viewport.width, viewport.height)
            .await?;
        let inner = self
            .client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await?;
        let dim = |i: usize| inner.get(i).and_then(Value::as_u64).unwrap_or(0) as u32;
        let (w, h) = (dim(0), dim(1));
        if (w, h) != (viewport.width, viewport.height) && w > 0 && h > 0 {
            self.client
                .set_window_size(
                    viewport.width + viewport.width.saturating_sub(w),
                    viewport.height + viewport.height.saturating_sub(h),
                )
                .await?;
        }
        Ok(())
    }

    /// Navigates to `url`.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("opening {url}"))
    }

    /// The current URL.
    pub async fn url(&self) -> anyhow::Result<url::Url> {
        Ok(self.client.current_url().await?)
    }

    /// Waits until the current URL's path is `path` (and its port `port`, when given).
    pub async fn wait_for_path(&self, port: Option<u16>, path: &str) -> anyhow::Result<url::Url> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let url = self.url().await?;
            if url.path() == path && (port.is_none() || url.port() == port) {
                return Ok(url);
            }
            if Instant::now() > deadline {
                bail!("expected to arrive at {path} (port {port:?}), still at {url}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for an element matching the CSS selector.
    pub async fn wait_for(&self, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("waiting for {css:?}"))
    }

    /// Types `value` into the input named `name` (clearing it first).
    pub async fn fill(&self, name: &str, value: &str) -> anyhow::Result<()> {
        let input = self
            .wait_for(&format!("input[name={}]", css_string(name)))
            .await?;
        input.clear().await?;
        input.send_keys(value).await?;
        Ok(())
    }

    /// Clicks the submit button whose visible text is `text`.
    pub async fn press(&self, text: &str) -> anyhow::Result<()> {
        let button = self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(&format!(
                "//button[normalize-space(.)={}]",
                xpath_string(text)
            )))
            .await
            .with_context(|| format!("looking for the button {text:?}"))?;
        button.click().await?;
        Ok(())
    }

    /// Clicks the element matching the CSS selector.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.wait_for(css).await?.click().await?;
        Ok(())
    }

    /// Clicks the element matching the CSS selector and waits until the browser has left the
    /// page it was on (that page's root element went stale), so that later lookups cannot
    /// find elements of the old page, such as a notice with the same id as the expected one.
    pub async fn submit(&self, css: &str) -> anyhow::Result<()> {
        let old_root = self.client.find(Locator::Css("html")).await?;
        self.click(css).await?;
        let deadline = Instant::now() + PATIENCE;
        while old_root.tag_name().await.is_ok() {
            if Instant::now() > deadline {
                bail!("the page did not change after clicking {css:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Follows the link whose visible text is `text`.
    pub async fn follow(&self, text: &str) -> anyhow::Result<()> {
        let link = self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::LinkText(text))
            .await
            .with_context(|| format!("looking for the link {text:?}"))?;
        link.click().await?;
        Ok(())
    }

    /// The page's visible text.
    pub async fn text(&self) -> anyhow::Result<String> {
        let body = self.client.find(Locator::Css("body")).await?;
        Ok(body.text().await?)
    }

    /// The page's text parsed as JSON (Chromium shows a JSON response as plain text).
    pub async fn json(&self) -> anyhow::Result<Value> {
        let text = self.text().await?;
        serde_json::from_str(text.trim()).with_context(|| format!("page is not JSON: {text}"))
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        Ok(self.client.screenshot().await?)
    }

    /// Saves a PNG of the viewport to `path` (creating its directory).
    pub async fn save_screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let png = self.screenshot().await?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// Ends the test: on `Err`, saves a screenshot and the page source under
    /// [`artifacts_dir`] and panics with the error and where they are; then closes the browser.
    pub async fn finish(self, outcome: anyhow::Result<()>) {
        if let Err(error) = outcome {
            let dir = artifacts_dir();
            let png = dir.join(format!("{}.png", self.name));
            let html = dir.join(format!("{}.html", self.name));
            let url = self.where_am_i().await;
            let saved = match self.save_screenshot(&png).await {
                Ok(()) => format!("screenshot: {}", png.display()),
                Err(e) => format!("no screenshot ({e})"),
            };
            if let Ok(source) = self.client.source().await {
                let _ = std::fs::write(&html, source);
            }
            let _ = self.client.clone().close().await;
            panic!(
                "browser test {} failed at {url}: {error:#}\n{saved}\npage source: {}",
                self.name,
                html.display()
            );
        }
        let _ = self.client.clone().close().await;
    }

    /// The current URL for error messages; bounded, because the session may be broken.
    async fn where_am_i(&self) -> String {
        match tokio::time::timeout(Duration::from_secs(2), self.client.current_url()).await {
            Ok(Ok(url)) => url.to_string(),
            _ => "an unknown page".to_string(),
        }
    }
}

/// Retries `connect` until chromedriver accepts the session (it may still be starting).
async fn wait_ready<F, Fut>(url: &str, connect: F) -> anyhow::Result<Client>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Client, fantoccini::error::NewSessionError>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        match connect().await {
            Ok(client) => return Ok(client),
            Err(error) if Instant::now() > deadline => {
                return Err(anyhow!("no WebDriver session from {url}: {error}"));
            }
            Err(fantoccini::error::NewSessionError::SessionNotCreated(error)) => {
                bail!("Chromium did not start: {error}");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// `s` as a quoted CSS string.
fn css_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `s` as an XPath string literal (XPath 1.0 has no escapes; split around double quotes).
fn xpath_string(s: &str) -> String {
    if !s.contains('"') {
        return format!("\"{s}\"");
    }
    let parts: Vec<String> = s.split('"').map(|p| format!("\"{p}\"")).collect();
    format!("concat({})", parts.join(", '\"', "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_port_from_the_banner() {
        assert_eq!(
            banner_port("ChromeDriver was started successfully on port 34195."),
            Some(34195)
        );
        assert_eq!(banner_port("Only local connections are allowed."), None);
    }

    #[test]
    fn quotes_selectors() {
        assert_eq!(css_string("traits.email"), "\"traits.email\"");
        assert_eq!(xpath_string("Sign in"), "\"Sign in\"");
        assert_eq!(xpath_string("a\"b"), "concat(\"a\", '\"', \"b\")");
    }
}
