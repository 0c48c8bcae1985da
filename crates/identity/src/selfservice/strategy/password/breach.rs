//! Breached-password checks: Have I Been Pwned's k-anonymity range API (only the first five
//! hex digits of the password's SHA-1 leave the process) with a small in-memory cache, and an
//! optional offline list for air-gapped installs. A password seen more often than
//! `max_breaches` is refused with Kratos's message 4000034.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

use crate::text::{self, Text};

/// How many range answers the cache keeps.
const CACHE_CAPACITY: usize = 512;
/// How long a cached range answer is trusted.
const CACHE_TTL: Duration = Duration::from_secs(3600);
/// The whole lookup (connect, TLS, answer) must finish within this, or counts as a network
/// error — so offline installs that keep the default fail open quickly.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// The compiled `haveibeenpwned_*` and `breached_passwords_file` settings.
#[derive(Debug, Clone)]
pub struct BreachConfig {
    /// `haveibeenpwned_enabled`.
    pub enabled: bool,
    /// `https://<haveibeenpwned_host>`, or the host setting itself when it carries a scheme
    /// (`http://127.0.0.1:8080`, an extension for self-hosted mirrors and tests).
    pub base_url: String,
    /// `max_breaches`: a password seen more often than this is refused.
    pub max_breaches: u64,
    /// `ignore_network_errors`: a failed lookup lets the password pass.
    pub ignore_network_errors: bool,
    /// The offline list (`breached_passwords_file`), if configured.
    pub offline: Option<Arc<OfflineList>>,
}

impl BreachConfig {
    /// The range API base for a `haveibeenpwned_host` value.
    pub fn base_url_for(host: &str) -> String {
        let host = host.trim().trim_end_matches('/');
        if host.starts_with("http://") || host.starts_with("https://") {
            host.to_string()
        } else {
            format!("https://{host}")
        }
    }
}

/// Upper-case SHA-1 digests of breached passwords, with their breach count when the file
/// gave one (`HASH:COUNT`, the format of HIBP's downloadable corpus).
#[derive(Debug, Default)]
pub struct OfflineList {
    counted: HashMap<String, u64>,
    banned: HashSet<String>,
}

impl OfflineList {
    /// Reads a list: one entry a line; a line of 40 hex digits (optionally `:count`) is a
    /// SHA-1 digest, any other non-empty line a password in plain text (always refused).
    pub fn load(path: &Path) -> std::io::Result<Self> {
        Ok(Self::parse(&std::fs::read_to_string(path)?))
    }

    /// Parses the text of a list (see [`OfflineList::load`]).
    pub fn parse(text: &str) -> Self {
        let mut list = OfflineList::default();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let (head, count) = match line.split_once(':') {
                Some((h, c)) if is_sha1_hex(h) => (h, c.trim().parse::<u64>().ok()),
                _ => (line, None),
            };
            if is_sha1_hex(head) {
                let digest = head.to_ascii_uppercase();
                match count {
                    Some(n) => {
                        list.counted.insert(digest, n);
                    }
                    None => {
                        list.banned.insert(digest);
                    }
                }
            } else {
                list.banned.insert(sha1_hex(line));
            }
        }
        list
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.counted.len() + self.banned.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `Some(count)` when `digest` is listed (`u64::MAX` for entries without a count).
    fn lookup(&self, digest: &str) -> Option<u64> {
        if self.banned.contains(digest) {
            return Some(u64::MAX);
        }
        self.counted.get(digest).copied()
    }
}

fn is_sha1_hex(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The upper-case hex SHA-1 of `password`.
pub fn sha1_hex(password: &str) -> String {
    hex::encode_upper(Sha1::digest(password.as_bytes()))
}

/// The largest range answer read (real answers, padded, are about 40 KiB).
const MAX_RANGE: usize = 4 << 20;

/// Why a range lookup failed.
#[derive(Debug, thiserror::Error)]
enum LookupError {
    #[error("request failed: {0}")]
    Http(#[from] crate::outbound::CallError),
    #[error("invalid lookup URL: {0}")]
    Url(String),
    #[error("unexpected status {0}")]
    Status(u16),
}

type Range = Arc<HashMap<String, u64>>;

/// The checker: configuration, an HTTP client and the range cache.
#[derive(Debug)]
pub struct BreachChecker {
    config: BreachConfig,
    client: portcullis_http::UpstreamClient,
    cache: Mutex<HashMap<String, (Instant, Range)>>,
}

impl BreachChecker {
    /// A checker for `config`, looking ranges up over `client`.
    pub fn new(config: BreachConfig, client: portcullis_http::UpstreamClient) -> Self {
        BreachChecker {
            config,
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Refuses `password` (4000034) when the offline list or the range API has seen it more
    /// than `max_breaches` times.
    pub async fn check(&self, password: &str) -> Result<(), Text> {
        let digest = sha1_hex(password);
        let max = self.config.max_breaches;
        if let Some(count) = self.config.offline.as_ref().and_then(|l| l.lookup(&digest))
            && count > max
        {
            return Err(text::password_breached(
                (count != u64::MAX).then_some(count),
            ));
        }
        if !self.config.enabled {
            return Ok(());
        }
        let (prefix, suffix) = digest.split_at(5);
        let range = match self.range(prefix).await {
            Ok(r) => r,
            Err(e) if self.config.ignore_network_errors => {
                tracing::warn!(error = %e, "breached-password lookup failed; password accepted (ignore_network_errors)");
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(error = %e, "breached-password lookup failed; password refused");
                return Err(text::password_policy(
                    "the password breach database could not be reached",
                ));
            }
        };
        match range.get(suffix) {
            Some(&count) if count > max => Err(text::password_breached(Some(count))),
            _ => Ok(()),
        }
    }

    /// The suffix → count map for `prefix`, from the cache or the API.
    async fn range(&self, prefix: &str) -> Result<Range, LookupError> {
        if let Some(range) = self.cached(prefix) {
            return Ok(range);
        }
        let url = format!("{}/range/{prefix}", self.config.base_url);
        let request = http::Request::get(&url)
            .header("Add-Padding", "true")
            .header(
                http::header::USER_AGENT,
                concat!("portcullis/", env!("CARGO_PKG_VERSION")),
            )
            .body(axum::body::Body::empty())
            .map_err(|e| LookupError::Url(e.to_string()))?;
        let (status, body) =
            crate::outbound::call(&self.client, request, LOOKUP_TIMEOUT, MAX_RANGE).await?;
        if !status.is_success() {
            return Err(LookupError::Status(status.as_u16()));
        }
        let range: Range = Arc::new(parse_range(&String::from_utf8_lossy(&body)));
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_CAPACITY {
                let oldest = cache
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    cache.remove(&k);
                }
            }
            cache.insert(prefix.to_string(), (Instant::now(), range.clone()));
        }
        Ok(range)
    }

    fn cached(&self, prefix: &str) -> Option<Range> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(prefix)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, r)| r.clone())
    }
}

/// Parses a range answer: `SUFFIX:COUNT` lines (padding entries have count 0).
fn parse_range(body: &str) -> HashMap<String, u64> {
    body.lines()
        .filter_map(|line| {
            let (suffix, count) = line.trim().split_once(':')?;
            let count = count.trim().parse::<u64>().ok()?;
            (count > 0).then(|| (suffix.trim().to_ascii_uppercase(), count))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_list_formats() {
        let hashed = sha1_hex("hunter22");
        let list = OfflineList::parse(&format!(
            "password123\n{}\n{}:3\n\n",
            sha1_hex("letmein!").to_lowercase(),
            hashed
        ));
        assert_eq!(list.len(), 3);
        assert_eq!(list.lookup(&sha1_hex("password123")), Some(u64::MAX));
        assert_eq!(list.lookup(&sha1_hex("letmein!")), Some(u64::MAX));
        assert_eq!(list.lookup(&hashed), Some(3));
        assert_eq!(list.lookup(&sha1_hex("something else")), None);
    }

    #[test]
    fn range_lines_and_hosts() {
        let r = parse_range("0018A45C4D1DEF81644B54AB7F969B88D65:1\r\nABC:0\nbad line\n");
        assert_eq!(r.get("0018A45C4D1DEF81644B54AB7F969B88D65"), Some(&1));
        assert_eq!(r.len(), 1);
        assert_eq!(
            BreachConfig::base_url_for("api.pwnedpasswords.com"),
            "https://api.pwnedpasswords.com"
        );
        assert_eq!(
            BreachConfig::base_url_for("http://127.0.0.1:9/"),
            "http://127.0.0.1:9"
        );
        assert_eq!(
            sha1_hex("password"),
            "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"
        );
    }
}
