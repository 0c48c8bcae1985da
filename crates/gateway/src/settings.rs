//! `GatewaySettings`: the subset of Kong's configuration the gateway honours, read the way
//! Kong reads it — a `kong.conf` file (`key = value`, `#` comments) overridden by `KONG_*`
//! environment variables — with errors that name the file, line and key (or variable).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use portcullis_core::Secret;

/// Errors reading settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A line or value is invalid.
    #[error("{origin}: {key}: {message}")]
    Invalid {
        /// `file:line`, or `environment variable KONG_X`.
        origin: String,
        /// The setting's key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Where the gateway keeps its entities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// The embedded SQLite store (our default; the binary picks the file).
    Sqlite,
    /// PostgreSQL at this URL, built from the `pg_*` settings.
    Postgres(Secret<String>),
    /// DB-less: the configuration is `declarative_config` (see `Gateway::from_declarative`).
    Off,
}

/// A listener entry flagged `ssl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsListen {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The entry carries `http2`: ALPN offers `h2` (else only `http/1.1` is spoken).
    pub http2: bool,
}

/// The gateway's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    /// Plain-HTTP proxy listeners (`proxy_listen` entries without `ssl`); empty when `off`.
    pub proxy_listen: Vec<SocketAddr>,
    /// TLS proxy listeners (`proxy_listen` entries flagged `ssl`, e.g. `0.0.0.0:8443 http2`).
    pub proxy_listen_tls: Vec<TlsListen>,
    /// `ssl_cert` / `ssl_cert_key`: the default certificate's PEM files, in pairs (empty: a
    /// self-signed certificate is generated at start-up).
    pub ssl_cert: Vec<(std::path::PathBuf, std::path::PathBuf)>,
    /// Plain-HTTP Admin API listeners (`admin_listen` entries without `ssl`).
    pub admin_listen: Vec<SocketAddr>,
    /// TLS Admin API listeners (`admin_listen` entries flagged `ssl`, e.g.
    /// `127.0.0.1:8444 http2`).
    pub admin_listen_tls: Vec<TlsListen>,
    /// `admin_ssl_cert` / `admin_ssl_cert_key`: the TLS Admin API's certificate files, in
    /// pairs (empty: a self-signed certificate is generated at start-up).
    pub admin_ssl_cert: Vec<(std::path::PathBuf, std::path::PathBuf)>,
    /// The store.
    pub database: Database,
    /// `admin_token`: when set, the Admin API requires it in the `Kong-Admin-Token` header.
    pub admin_token: Option<Secret<String>>,
    /// `declarative_config`: the `kong.yml` loaded when `database = off`.
    pub declarative_config: Option<std::path::PathBuf>,
    /// `portcullis_passive_recovery_interval` (seconds, default 10, 0 = off): how often
    /// targets that passive health checks made unhealthy are re-probed (an extension).
    pub passive_recovery: Option<std::time::Duration>,
    /// `trusted_ips`, `real_ip_header`, `real_ip_recursive`: which peers' forwarding headers
    /// the proxy believes, and where it reads their client's address.
    pub trusted_ips: crate::proxy::TrustedIps,
}

struct Raw {
    proxy_listen: (String, String),
    admin_listen: (String, String),
    ssl_cert: (String, String),
    ssl_cert_key: (String, String),
    admin_ssl_cert: (String, String),
    admin_ssl_cert_key: (String, String),
    database: (String, String),
    pg_host: String,
    pg_port: (String, String),
    pg_user: String,
    pg_password: Option<String>,
    pg_database: String,
    admin_token: Option<String>,
    declarative_config: Option<String>,
    passive_recovery: (String, String),
    trusted_ips: (String, String),
    real_ip_header: (String, String),
    real_ip_recursive: (String, String),
}

impl GatewaySettings {
    /// Reads `conf` (when given) and then the `KONG_*` variables among `env`, which win.
    pub fn load(
        conf: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let default_origin = "default".to_string();
        let mut raw = Raw {
            proxy_listen: ("0.0.0.0:8000 reuseport backlog=16384, 0.0.0.0:8443 http2 ssl reuseport backlog=16384".into(), default_origin.clone()),
            admin_listen: ("127.0.0.1:8001 reuseport backlog=16384, 127.0.0.1:8444 http2 ssl reuseport backlog=16384".into(), default_origin.clone()),
            ssl_cert: (String::new(), default_origin.clone()),
            ssl_cert_key: (String::new(), default_origin.clone()),
            admin_ssl_cert: (String::new(), default_origin.clone()),
            admin_ssl_cert_key: (String::new(), default_origin.clone()),
            database: ("sqlite".into(), default_origin.clone()),
            pg_host: "127.0.0.1".into(),
            pg_port: ("5432".into(), default_origin.clone()),
            pg_user: "kong".into(),
            pg_password: None,
            pg_database: "kong".into(),
            admin_token: None,
            declarative_config: None,
            passive_recovery: ("10".into(), "default".into()),
            trusted_ips: (String::new(), default_origin.clone()),
            real_ip_header: ("X-Real-IP".into(), default_origin.clone()),
            real_ip_recursive: ("off".into(), default_origin),
        };
        if let Some(path) = conf {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                file: file.clone(),
                source,
            })?;
            for (n, line) in text.lines().enumerate() {
                let origin = format!("{file}:{}", n + 1);
                let line = strip_comment(line);
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let Some((key, value)) = line.split_once('=') else {
                    return Err(SettingsError::Invalid {
                        origin,
                        key: line.to_string(),
                        message: "expected `key = value`".into(),
                    });
                };
                raw.set(&key.trim().to_ascii_lowercase(), value.trim(), origin);
            }
        }
        for (name, value) in env {
            if let Some(key) = name.strip_prefix("KONG_") {
                let origin = format!("environment variable {name}");
                raw.set(&key.to_ascii_lowercase(), value.trim(), origin);
            }
        }
        raw.compile()
    }
}

/// Kong treats `#` as a comment start unless escaped as `\#`.
fn strip_comment(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'#') => {
                out.push('#');
                chars.next();
            }
            '#' => break,
            c => out.push(c),
        }
    }
    out
}

impl Raw {
    fn set(&mut self, key: &str, value: &str, origin: String) {
        let value = value.to_string();
        match key {
            "proxy_listen" => self.proxy_listen = (value, origin),
            "admin_listen" => self.admin_listen = (value, origin),
            "ssl_cert" => self.ssl_cert = (value, origin),
            "ssl_cert_key" => self.ssl_cert_key = (value, origin),
            "admin_ssl_cert" => self.admin_ssl_cert = (value, origin),
            "admin_ssl_cert_key" => self.admin_ssl_cert_key = (value, origin),
            "database" => self.database = (value, origin),
            "pg_host" => self.pg_host = value,
            "pg_port" => self.pg_port = (value, origin),
            "pg_user" => self.pg_user = value,
            "pg_password" => self.pg_password = Some(value).filter(|v| !v.is_empty()),
            "pg_database" => self.pg_database = value,
            "admin_token" => self.admin_token = Some(value).filter(|v| !v.is_empty()),
            "declarative_config" => {
                self.declarative_config = Some(value).filter(|v| !v.is_empty());
            }
            "portcullis_passive_recovery_interval" => self.passive_recovery = (value, origin),
            "trusted_ips" => self.trusted_ips = (value, origin),
            "real_ip_header" => self.real_ip_header = (value, origin),
            "real_ip_recursive" => self.real_ip_recursive = (value, origin),
            // Kong has hundreds of properties; the ones not listed here do not apply yet.
            _ => tracing::debug!(key, %origin, "ignoring unsupported Kong property"),
        }
    }

    fn compile(self) -> Result<GatewaySettings, SettingsError> {
        let (proxy_listen, proxy_listen_tls) = listeners("proxy_listen", &self.proxy_listen)?;
        let (admin_listen, admin_listen_tls) = listeners("admin_listen", &self.admin_listen)?;
        let ssl_cert = cert_pairs(&self.ssl_cert, &self.ssl_cert_key, "ssl_cert")?;
        let admin_ssl_cert = cert_pairs(
            &self.admin_ssl_cert,
            &self.admin_ssl_cert_key,
            "admin_ssl_cert",
        )?;
        let (db, origin) = &self.database;
        let database = match db.to_ascii_lowercase().as_str() {
            "sqlite" => Database::Sqlite,
            "off" => Database::Off,
            "postgres" => {
                let port: u16 = self.pg_port.0.parse().map_err(|_| SettingsError::Invalid {
                    origin: self.pg_port.1.clone(),
                    key: "pg_port".into(),
                    message: format!("'{}' is not a valid port", self.pg_port.0),
                })?;
                let mut url = url::Url::parse("postgres://localhost").map_err(|e| {
                    SettingsError::Invalid {
                        origin: origin.clone(),
                        key: "database".into(),
                        message: e.to_string(),
                    }
                })?;
                let bad = |key: &str, value: &str| SettingsError::Invalid {
                    origin: origin.clone(),
                    key: key.into(),
                    message: format!("invalid value '{value}'"),
                };
                url.set_host(Some(&self.pg_host))
                    .map_err(|_| bad("pg_host", &self.pg_host))?;
                url.set_port(Some(port))
                    .map_err(|_| bad("pg_port", &self.pg_port.0))?;
                url.set_username(&self.pg_user)
                    .map_err(|_| bad("pg_user", &self.pg_user))?;
                if let Some(pw) = &self.pg_password {
                    url.set_password(Some(pw))
                        .map_err(|_| bad("pg_password", "***"))?;
                }
                url.set_path(&format!("/{}", self.pg_database));
                Database::Postgres(Secret::new(url.to_string()))
            }
            other => {
                return Err(SettingsError::Invalid {
                    origin: origin.clone(),
                    key: "database".into(),
                    message: format!(
                        "'{other}' is not a valid database; use postgres, sqlite or off"
                    ),
                });
            }
        };
        let (recovery, origin) = &self.passive_recovery;
        let passive_recovery = match recovery.parse::<f64>() {
            Ok(0.0) => None,
            Ok(s) if s > 0.0 && s.is_finite() => Some(std::time::Duration::from_secs_f64(s)),
            _ => {
                return Err(SettingsError::Invalid {
                    origin: origin.clone(),
                    key: "portcullis_passive_recovery_interval".into(),
                    message: format!("'{recovery}' is not a number of seconds"),
                });
            }
        };
        let recursive = match self.real_ip_recursive.0.to_ascii_lowercase().as_str() {
            "on" => true,
            "off" => false,
            other => {
                return Err(SettingsError::Invalid {
                    origin: self.real_ip_recursive.1.clone(),
                    key: "real_ip_recursive".into(),
                    message: format!("'{other}' is not valid; use on or off"),
                });
            }
        };
        let trusted_ips =
            crate::proxy::TrustedIps::parse(&self.trusted_ips.0, &self.real_ip_header.0, recursive)
                .map_err(|message| SettingsError::Invalid {
                    origin: self.trusted_ips.1.clone(),
                    key: "trusted_ips".into(),
                    message,
                })?;
        Ok(GatewaySettings {
            passive_recovery,
            trusted_ips,
            proxy_listen,
            proxy_listen_tls,
            ssl_cert,
            admin_listen,
            admin_listen_tls,
            admin_ssl_cert,
            database,
            admin_token: self.admin_token.map(Secret::new),
            declarative_config: self.declarative_config.map(std::path::PathBuf::from),
        })
    }
}

/// Parses Kong's listen syntax: `off`, or comma-separated `addr:port [flags…]` entries.
/// Returns the plain entries and those flagged `ssl` (with their `http2` flag); other flags
/// (`reuseport`, `backlog=…`) need nothing. Plain listeners speak h2c with or without
/// `http2`.
fn listeners(
    key: &str,
    (value, origin): &(String, String),
) -> Result<(Vec<SocketAddr>, Vec<TlsListen>), SettingsError> {
    let (mut plain, mut tls) = (Vec::new(), Vec::new());
    if value.trim().eq_ignore_ascii_case("off") {
        return Ok((plain, tls));
    }
    for entry in value.split(',') {
        let mut words = entry.split_whitespace();
        let Some(addr) = words.next() else { continue };
        let addr = parse_addr(addr).ok_or_else(|| SettingsError::Invalid {
            origin: origin.clone(),
            key: key.into(),
            message: format!("'{addr}' is not a valid address (expected ip:port)"),
        })?;
        let flags: Vec<&str> = words.collect();
        if flags.contains(&"ssl") {
            tls.push(TlsListen {
                addr,
                http2: flags.contains(&"http2"),
            });
        } else {
            plain.push(addr);
        }
    }
    Ok((plain, tls))
}

/// Pairs Kong's comma-separated `ssl_cert` and `ssl_cert_key` file lists (or another
/// `{name}` and `{name}_key` pair, e.g. `admin_ssl_cert`).
fn cert_pairs(
    (certs, cert_origin): &(String, String),
    (keys, key_origin): &(String, String),
    name: &str,
) -> Result<Vec<(std::path::PathBuf, std::path::PathBuf)>, SettingsError> {
    let split = |v: &str| -> Vec<std::path::PathBuf> {
        v.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from)
            .collect()
    };
    let (certs, keys) = (split(certs), split(keys));
    if certs.len() != keys.len() {
        // Blame the longer list: it is the one that was set.
        let (origin, key) = if certs.len() > keys.len() {
            (cert_origin, name.to_string())
        } else {
            (key_origin, format!("{name}_key"))
        };
        return Err(SettingsError::Invalid {
            origin: origin.clone(),
            key,
            message: format!(
                "{name} lists {} file(s) but {name}_key lists {}; they must pair up",
                certs.len(),
                keys.len()
            ),
        });
    }
    Ok(certs.into_iter().zip(keys).collect())
}

fn parse_addr(s: &str) -> Option<SocketAddr> {
    if let Ok(a) = s.parse() {
        return Some(a);
    }
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let ip = match host {
        "*" | "0.0.0.0" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        other => other.parse().ok()?,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_kongs_with_sqlite() {
        let s = GatewaySettings::load(None, env(&[("HOME", "/x")])).expect("defaults");
        assert_eq!(s.proxy_listen, vec!["0.0.0.0:8000".parse().expect("addr")]);
        assert_eq!(
            s.proxy_listen_tls,
            vec![TlsListen {
                addr: "0.0.0.0:8443".parse().expect("addr"),
                http2: true
            }]
        );
        assert!(s.ssl_cert.is_empty());
        assert_eq!(
            s.admin_listen,
            vec!["127.0.0.1:8001".parse().expect("addr")]
        );
        assert_eq!(
            s.admin_listen_tls,
            vec![TlsListen {
                addr: "127.0.0.1:8444".parse().expect("addr"),
                http2: true
            }]
        );
        assert!(s.admin_ssl_cert.is_empty());
        assert_eq!(s.database, Database::Sqlite);
        assert_eq!(s.admin_token, None);
        assert_eq!(s.declarative_config, None);
        let s = GatewaySettings::load(None, env(&[("KONG_ADMIN_TOKEN", "t0k")])).expect("token");
        assert_eq!(
            s.admin_token.as_ref().map(|t| t.expose().as_str()),
            Some("t0k")
        );
    }

    #[test]
    fn tls_listeners_and_certificate_files() {
        let s = GatewaySettings::load(
            None,
            env(&[
                (
                    "KONG_PROXY_LISTEN",
                    "127.0.0.1:9443 http2 ssl, 127.0.0.1:9000, 127.0.0.1:9444 ssl",
                ),
                ("KONG_SSL_CERT", "/c/a.crt, /c/b.crt"),
                ("KONG_SSL_CERT_KEY", "/c/a.key,/c/b.key"),
                ("KONG_ADMIN_LISTEN", "127.0.0.1:9445 ssl"),
                ("KONG_ADMIN_SSL_CERT", "/c/admin.crt"),
                ("KONG_ADMIN_SSL_CERT_KEY", "/c/admin.key"),
            ]),
        )
        .expect("tls");
        assert!(s.admin_listen.is_empty());
        assert_eq!(
            s.admin_listen_tls,
            vec![TlsListen {
                addr: "127.0.0.1:9445".parse().expect("addr"),
                http2: false
            }]
        );
        assert_eq!(
            s.admin_ssl_cert,
            vec![("/c/admin.crt".into(), "/c/admin.key".into())]
        );
        let err = GatewaySettings::load(None, env(&[("KONG_ADMIN_SSL_CERT_KEY", "/c/k")]))
            .expect_err("unpaired");
        assert!(
            err.to_string()
                .starts_with("environment variable KONG_ADMIN_SSL_CERT_KEY: admin_ssl_cert_key:"),
            "{err}"
        );
        assert_eq!(
            s.proxy_listen,
            vec!["127.0.0.1:9000".parse().expect("addr")]
        );
        assert_eq!(
            s.proxy_listen_tls,
            vec![
                TlsListen {
                    addr: "127.0.0.1:9443".parse().expect("addr"),
                    http2: true
                },
                TlsListen {
                    addr: "127.0.0.1:9444".parse().expect("addr"),
                    http2: false
                }
            ]
        );
        assert_eq!(s.ssl_cert.len(), 2);
        assert_eq!(s.ssl_cert[1].1, std::path::PathBuf::from("/c/b.key"));
        let err = GatewaySettings::load(None, env(&[("KONG_SSL_CERT", "/c/a.crt")]))
            .expect_err("unpaired");
        assert!(
            err.to_string()
                .starts_with("environment variable KONG_SSL_CERT: ssl_cert:"),
            "{err}"
        );
    }

    #[test]
    fn passive_recovery_interval() {
        let s = GatewaySettings::load(None, env(&[])).expect("default");
        assert_eq!(s.passive_recovery, Some(std::time::Duration::from_secs(10)));
        let var = "KONG_PORTCULLIS_PASSIVE_RECOVERY_INTERVAL";
        let s = GatewaySettings::load(None, env(&[(var, "0.5")])).expect("set");
        assert_eq!(
            s.passive_recovery,
            Some(std::time::Duration::from_millis(500))
        );
        let s = GatewaySettings::load(None, env(&[(var, "0")])).expect("off");
        assert_eq!(s.passive_recovery, None);
        assert!(GatewaySettings::load(None, env(&[(var, "soon")])).is_err());
    }

    #[test]
    fn file_then_env() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("kong.conf");
        std::fs::write(
            &path,
            "# comment\nproxy_listen = 127.0.0.1:9000  # inline\ndatabase = postgres\npg_host = db\npg_password = p\\#w\n",
        )
        .expect("write");
        let s = GatewaySettings::load(
            Some(&path),
            env(&[
                ("KONG_PG_USER", "u"),
                ("KONG_ADMIN_LISTEN", "off"),
                ("KONG_DECLARATIVE_CONFIG", "/etc/kong/kong.yml"),
            ]),
        )
        .expect("load");
        assert_eq!(
            s.proxy_listen,
            vec!["127.0.0.1:9000".parse().expect("addr")]
        );
        assert!(s.admin_listen.is_empty());
        assert_eq!(
            s.declarative_config.as_deref(),
            Some(std::path::Path::new("/etc/kong/kong.yml"))
        );
        let Database::Postgres(url) = &s.database else {
            panic!("postgres expected")
        };
        assert_eq!(url.expose(), "postgres://u:p%23w@db:5432/kong");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("kong.conf");
        std::fs::write(&path, "\n\nproxy_listen = nowhere\n").expect("write");
        let err = GatewaySettings::load(Some(&path), env(&[])).expect_err("invalid");
        let msg = err.to_string();
        assert!(msg.contains("kong.conf:3: proxy_listen:"), "{msg}");
        let err = GatewaySettings::load(None, env(&[("KONG_TRUSTED_IPS", "10.0.0.0/8, bogus")]))
            .expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "environment variable KONG_TRUSTED_IPS: trusted_ips: invalid IP address or CIDR block: bogus"
        );
        let err =
            GatewaySettings::load(None, env(&[("KONG_DATABASE", "mysql")])).expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "environment variable KONG_DATABASE: database: 'mysql' is not a valid database; use postgres, sqlite or off"
        );
    }
}
