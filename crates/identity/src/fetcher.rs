//! Reading what a configuration URL names (Kratos's `fetcher`). Identity schemas, courier
//! templates, `web_hook` bodies and the session tokenizer's key sets and claims mappers all
//! load through [`fetch`], so every one of them accepts the same URLs:
//!
//! - `base64://DATA` — standard or URL-safe alphabet, padded or not;
//! - `file://PATH` or a bare path — a relative path resolves against the config's directory;
//! - `http://` / `https://` — a `GET` with the shared upstream client of `portcullis-http`
//!   (the operating system's trust roots), bounded by [`TIMEOUT`] and [`MAX_BYTES`]; anything
//!   but a 2xx answer is an error, and redirects are not followed.
//!
//! Everything is read once, while the configuration compiles, so an unreachable template
//! server fails the start with the URL and the reason instead of failing requests later.
//! Configuration loading is synchronous (it also reads files) and may run inside a Tokio
//! runtime, so a remote fetch runs on a short-lived helper thread with its own runtime: the
//! caller's runtime is never re-entered.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// How long one remote fetch (connect, answer and body) may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The largest document a remote fetch accepts.
pub const MAX_BYTES: usize = 4 << 20;

/// Why a URL could not be read; each names the URL or file.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A scheme other than `file`, `base64`, `http` or `https`.
    #[error("unsupported URL {0:?}: use file://, base64://, http:// or https://")]
    Unsupported(String),
    /// The `base64://` payload does not decode.
    #[error("{0:?} is not valid base64")]
    Base64(String),
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The resolved path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The remote server could not be reached, was too slow, or its answer was too large.
    #[error("fetching {url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The remote server answered with a non-2xx status.
    #[error("fetching {url}: the server answered {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The document is not UTF-8 text.
    #[error("{0} is not UTF-8 text")]
    NotText(String),
}

/// The bytes behind `url`; relative paths resolve against `base_dir`.
pub fn fetch(url: &str, base_dir: &Path) -> Result<Vec<u8>, FetchError> {
    if let Some(data) = url.strip_prefix("base64://") {
        let data = data.trim();
        return STANDARD
            .decode(data)
            .or_else(|_| URL_SAFE.decode(data))
            .or_else(|_| STANDARD_NO_PAD.decode(data))
            .or_else(|_| URL_SAFE_NO_PAD.decode(data))
            .map_err(|_| FetchError::Base64(shorten(url)));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return fetch_remote(url);
    }
    let path = file_path(url, base_dir).ok_or_else(|| FetchError::Unsupported(shorten(url)))?;
    std::fs::read(&path).map_err(|source| FetchError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// [`fetch`] for text documents (templates, Jsonnet, JSON).
pub fn fetch_text(url: &str, base_dir: &Path) -> Result<String, FetchError> {
    String::from_utf8(fetch(url, base_dir)?).map_err(|_| FetchError::NotText(shorten(url)))
}

/// Resolves `url` to a file path: `file:///abs`, `file://rel` (relative to `base_dir`) or a
/// plain path; `None` for any other scheme.
pub fn file_path(url: &str, base_dir: &Path) -> Option<PathBuf> {
    let path = if let Some(rest) = url.strip_prefix("file://") {
        rest
    } else if url.contains("://") {
        return None;
    } else {
        url
    };
    let p = Path::new(path);
    Some(if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    })
}

/// Long `base64://` URLs are cut in messages: the payload is not useful there.
fn shorten(url: &str) -> String {
    const KEEP: usize = 60;
    if url.chars().count() <= KEEP {
        url.to_string()
    } else {
        format!("{}…", url.chars().take(KEEP).collect::<String>())
    }
}

/// A blocking `GET` on a helper thread with its own current-thread runtime.
fn fetch_remote(url: &str) -> Result<Vec<u8>, FetchError> {
    let fail = |reason: String| FetchError::Http {
        url: url.to_string(),
        reason,
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| fail(e.to_string()))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| fail(format!("starting the fetch runtime: {e}")))?;
                runtime.block_on(get(uri, url))
            })
            .join()
            .unwrap_or_else(|_| Err(fail("the fetching thread panicked".into())))
    })
}

async fn get(uri: http::Uri, url: &str) -> Result<Vec<u8>, FetchError> {
    let fail = |reason: String| FetchError::Http {
        url: url.to_string(),
        reason,
    };
    let request = http::Request::get(uri)
        .header(http::header::USER_AGENT, "portcullis")
        .body(axum::body::Body::empty())
        .map_err(|e| fail(e.to_string()))?;
    // The client's connection tasks live on this helper runtime, so it is built here.
    let client = portcullis_http::upstream_client();
    let (status, body) = crate::outbound::call(&client, request, TIMEOUT, MAX_BYTES)
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !status.is_success() {
        return Err(FetchError::Status {
            url: url.to_string(),
            status: status.as_u16(),
        });
    }
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_file_urls() {
        let text = "hello {{ .To }}";
        for engine in [STANDARD, URL_SAFE_NO_PAD] {
            let url = format!("base64://{}", engine.encode(text));
            assert_eq!(fetch_text(&url, Path::new("/")).expect("decodes"), text);
        }
        assert!(matches!(
            fetch("base64://%%%", Path::new("/")),
            Err(FetchError::Base64(_))
        ));
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("t.txt"), text).expect("write");
        for url in ["file://t.txt", "t.txt"] {
            assert_eq!(fetch_text(url, dir.path()).expect("reads"), text);
        }
        let abs = format!("file://{}", dir.path().join("t.txt").display());
        assert_eq!(fetch_text(&abs, Path::new("/")).expect("reads"), text);
        assert!(matches!(
            fetch("file://missing.txt", dir.path()),
            Err(FetchError::Read { .. })
        ));
        assert!(matches!(
            fetch("ftp://example.com/t.txt", dir.path()),
            Err(FetchError::Unsupported(_))
        ));
        assert_eq!(
            file_path("file://schemas/x.json", Path::new("/etc/kratos")),
            Some(PathBuf::from("/etc/kratos/schemas/x.json"))
        );
    }
}
