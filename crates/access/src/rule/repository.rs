//! Where access rules come from: `file://` (absolute `file:///…` or relative `file://…`, as
//! ory's urlx reads them), a bare path, `inline://<base64>`, `http://` and `https://`. Each document is a
//! JSON or YAML array of rules in Oathkeeper's format.

use std::path::PathBuf;

use base64::Engine as _;
use http_body_util::BodyExt;
use portcullis_config::{ConfigError, Document};

use super::RawRule;

/// Rules read from one repository, with the document they came from (for error lines).
#[derive(Clone)]
pub struct Loaded {
    /// The rules, in document order.
    pub rules: Vec<RawRule>,
    /// The parsed document.
    pub document: Document,
    /// The text the rules were parsed from (a watched file is re-parsed only when it changes).
    pub source: String,
}

/// Reads and parses one repository URL.
pub async fn load(
    location: &str,
    client: &portcullis_http::UpstreamClient,
) -> Result<Loaded, ConfigError> {
    let (origin, text) = fetch(location, client).await?;
    parse(&text, &origin)
}

/// The local file behind a `file://` URL or bare path; `None` for other schemes.
pub fn file_path(location: &str) -> Option<PathBuf> {
    match location.strip_prefix("file://") {
        Some(rest) => Some(PathBuf::from(rest)),
        None if location.contains("://") => None,
        None => Some(PathBuf::from(location)),
    }
}

/// Reads a local rule file: its origin (for messages) and text.
pub async fn read_file(path: &std::path::Path) -> Result<(String, String), ConfigError> {
    let origin = path.display().to_string();
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| error(&origin, format!("cannot read access rules: {e}")))?;
    Ok((origin, text))
}

fn error(origin: &str, message: String) -> ConfigError {
    ConfigError {
        origin: origin.to_string(),
        line: None,
        column: None,
        path: String::new(),
        message,
    }
}

async fn fetch(
    location: &str,
    client: &portcullis_http::UpstreamClient,
) -> Result<(String, String), ConfigError> {
    if let Some(encoded) = location.strip_prefix("inline://") {
        let origin = "inline:// access rules".to_string();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded.trim()))
            .map_err(|e| error(&origin, format!("invalid base64: {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| error(&origin, "decoded rules are not UTF-8".into()))?;
        return Ok((origin, text));
    }
    if location.starts_with("http://") || location.starts_with("https://") {
        let uri: http::Uri = location
            .parse()
            .map_err(|e| error(location, format!("invalid URL: {e}")))?;
        let response = client
            .get(uri)
            .await
            .map_err(|e| error(location, format!("cannot fetch rules: {e}")))?;
        if response.status() != http::StatusCode::OK {
            return Err(error(
                location,
                format!("cannot fetch rules: status {}", response.status()),
            ));
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| error(location, format!("cannot fetch rules: {e}")))?
            .to_bytes();
        let text = String::from_utf8(body.to_vec())
            .map_err(|_| error(location, "rules are not UTF-8".into()))?;
        return Ok((location.to_string(), text));
    }
    match file_path(location) {
        Some(path) => read_file(&path).await,
        None => Err(error(
            location,
            "unsupported access rule repository (supported: file://, inline://, http://, https://)"
                .into(),
        )),
    }
}

/// Parses a JSON or YAML array of rules; errors carry the line and the rule's index.
pub fn parse(text: &str, origin: &str) -> Result<Loaded, ConfigError> {
    let document = Document::parse(text, origin)?;
    let items = match &document.value {
        serde_json::Value::Array(items) => items.clone(),
        serde_json::Value::Object(map) if map.is_empty() => Vec::new(),
        _ => return Err(document.error_at("", "expected a list of access rules")),
    };
    let mut rules = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let id = item.get("id").and_then(|v| v.as_str()).map(str::to_string);
        let rule: RawRule = serde_json::from_value(item).map_err(|e| {
            let message = match &id {
                Some(id) => format!("rule {id:?}: invalid access rule: {e}"),
                None => format!("invalid access rule: {e}"),
            };
            document.error_at(&format!("/{i}"), message)
        })?;
        rules.push(rule);
    }
    Ok(Loaded {
        rules,
        document,
        source: text.to_string(),
    })
}
