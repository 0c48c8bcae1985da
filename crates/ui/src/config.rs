//! Where the identity server is, read the way kratos-selfservice-ui-node reads it.

use std::time::Duration;

use url::Url;

/// The port the UI listens on when `PORT` is not set (Kratos' quickstart convention).
pub const DEFAULT_PORT: u16 = 4455;

/// The identity server assumed when neither `KRATOS_PUBLIC_URL` nor `ORY_SDK_URL` is set.
pub const DEFAULT_KRATOS_PUBLIC_URL: &str = "http://127.0.0.1:4433/";

/// Errors in the UI's configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A URL variable does not parse.
    #[error("{var}: {value:?} is not a valid URL: {source}")]
    InvalidUrl {
        /// The variable or flag name.
        var: &'static str,
        /// What was given.
        value: String,
        /// The parse error.
        source: url::ParseError,
    },
    /// The server-side identity URL is not plain `http` (no TLS client is built in), or the
    /// browser URL is not `http`/`https`.
    #[error(
        "{var}: {value:?} must be an http:// URL (the UI reaches the identity server without TLS)"
    )]
    UnsupportedScheme {
        /// The variable or flag name.
        var: &'static str,
        /// What was given.
        value: String,
    },
    /// `PORT` is not a port number.
    #[error("PORT: {value:?} is not a port number")]
    InvalidPort {
        /// What was given.
        value: String,
    },
}

/// The UI's runtime configuration.
#[derive(Debug, Clone)]
pub struct UiConfig {
    /// Base URL the UI server uses to call the identity server's public API
    /// (`KRATOS_PUBLIC_URL`, falling back to `ORY_SDK_URL`). Must be `http://`.
    pub kratos_public_url: Url,
    /// Base URL of the same public API as the browser reaches it; used for redirects
    /// (`KRATOS_BROWSER_URL`, defaults to `kratos_public_url`).
    pub kratos_browser_url: Url,
    /// Port to listen on (`PORT`, default [`DEFAULT_PORT`]); the binary binds it.
    pub port: u16,
    /// How long one call to the identity server may take before the page reports it unreachable.
    pub request_timeout: Duration,
}

impl UiConfig {
    /// A configuration on the default port: `kratos_public_url` for server-side calls (must be
    /// `http://`; [`UiConfig::from_env`] checks that), `kratos_browser_url` for redirects.
    pub fn new(kratos_public_url: Url, kratos_browser_url: Url) -> Self {
        Self {
            kratos_public_url,
            kratos_browser_url,
            port: DEFAULT_PORT,
            request_timeout: Duration::from_secs(10),
        }
    }

    /// Reads `KRATOS_PUBLIC_URL` (or `ORY_SDK_URL`), `KRATOS_BROWSER_URL` and `PORT` from
    /// `vars` (e.g. `std::env::vars()`); empty values count as unset.
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut public = None;
        let mut sdk = None;
        let mut browser = None;
        let mut port = None;
        for (key, value) in vars {
            if value.trim().is_empty() {
                continue;
            }
            match key.as_str() {
                "KRATOS_PUBLIC_URL" => public = Some(value),
                "ORY_SDK_URL" => sdk = Some(value),
                "KRATOS_BROWSER_URL" => browser = Some(value),
                "PORT" => port = Some(value),
                _ => {}
            }
        }
        let (public_var, public) = match (public, sdk) {
            (Some(value), _) => ("KRATOS_PUBLIC_URL", value),
            (None, Some(value)) => ("ORY_SDK_URL", value),
            (None, None) => ("KRATOS_PUBLIC_URL", DEFAULT_KRATOS_PUBLIC_URL.to_string()),
        };
        let public_url = parse_url(public_var, &public)?;
        check_http(public_var, &public_url)?;
        let mut config = Self::new(public_url.clone(), public_url);
        if let Some(browser) = browser {
            let url = parse_url("KRATOS_BROWSER_URL", &browser)?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ConfigError::UnsupportedScheme {
                    var: "KRATOS_BROWSER_URL",
                    value: url.to_string(),
                });
            }
            config.kratos_browser_url = url;
        }
        if let Some(port) = port {
            config.port = port
                .trim()
                .parse()
                .map_err(|_| ConfigError::InvalidPort { value: port })?;
        }
        Ok(config)
    }
}

/// Parses a URL given for `var`, naming the variable on failure.
pub fn parse_url(var: &'static str, value: &str) -> Result<Url, ConfigError> {
    Url::parse(value.trim()).map_err(|source| ConfigError::InvalidUrl {
        var,
        value: value.to_string(),
        source,
    })
}

fn check_http(var: &'static str, url: &Url) -> Result<(), ConfigError> {
    if url.scheme() == "http" {
        Ok(())
    } else {
        Err(ConfigError::UnsupportedScheme {
            var,
            value: url.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_point_at_the_local_identity_server() {
        let config = UiConfig::from_env(vars(&[])).expect("config");
        assert_eq!(config.kratos_public_url.as_str(), DEFAULT_KRATOS_PUBLIC_URL);
        assert_eq!(config.kratos_browser_url, config.kratos_public_url);
        assert_eq!(config.port, DEFAULT_PORT);
    }

    #[test]
    fn reads_ui_node_variables() {
        let config = UiConfig::from_env(vars(&[
            ("KRATOS_PUBLIC_URL", "http://kratos:4433/"),
            ("KRATOS_BROWSER_URL", "https://id.example.com/"),
            ("PORT", "3000"),
        ]))
        .expect("config");
        assert_eq!(config.kratos_public_url.as_str(), "http://kratos:4433/");
        assert_eq!(
            config.kratos_browser_url.as_str(),
            "https://id.example.com/"
        );
        assert_eq!(config.port, 3000);
    }

    #[test]
    fn ory_sdk_url_is_the_fallback() {
        let config =
            UiConfig::from_env(vars(&[("ORY_SDK_URL", "http://sdk:4433")])).expect("config");
        assert_eq!(config.kratos_public_url.as_str(), "http://sdk:4433/");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err =
            UiConfig::from_env(vars(&[("KRATOS_BROWSER_URL", "not a url")])).expect_err("invalid");
        assert!(err.to_string().starts_with("KRATOS_BROWSER_URL"), "{err}");
        let err = UiConfig::from_env(vars(&[("PORT", "99999")])).expect_err("invalid");
        assert!(err.to_string().contains("PORT"), "{err}");
        let err =
            UiConfig::from_env(vars(&[("KRATOS_PUBLIC_URL", "https://x/")])).expect_err("tls");
        assert!(err.to_string().contains("http://"), "{err}");
    }
}
