//! The TLS certificate lookup the proxy's listener asks during the handshake: compiled from
//! the Certificate and SNI entities with the rest of the configuration and swapped in whole,
//! so a handshake never reads the store.
//!
//! Kong's precedence (`kong/runloop/certificate.lua`): the exact server name, then the
//! name with its first label replaced by `*` (`*.example.com`), then with its last label
//! replaced (`www.example.*`), then the `*` SNI, then the default certificate from the
//! settings. A certificate with an alternative pair (`cert_alt`) serves whichever key the
//! client can verify.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::SignatureScheme;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use uuid::Uuid;

use crate::entity::certificate::PemError;
use crate::entity::{Certificate, Sni};

/// One certificate's keys: the main pair and an optional pair of the other key type.
#[derive(Debug, Clone)]
pub struct CertifiedPair {
    /// The main key.
    pub main: Arc<CertifiedKey>,
    /// The alternative key (`cert_alt`/`key_alt`).
    pub alt: Option<Arc<CertifiedKey>>,
}

impl CertifiedPair {
    /// Loads a PEM certificate chain and key, e.g. Kong's `ssl_cert` and `ssl_cert_key`.
    pub fn from_pem(cert: &str, key: &str) -> Result<Self, PemError> {
        Ok(Self {
            main: crate::entity::certificate::certified_key(cert, key)?,
            alt: None,
        })
    }

    /// Kong's default certificate from `ssl_cert`/`ssl_cert_key` file pairs: the first pair
    /// is the main key and a second one (Kong's RSA + ECDSA setup) the alternative; further
    /// pairs are ignored. `pairs` must not be empty.
    pub fn from_files(
        pairs: &[(std::path::PathBuf, std::path::PathBuf)],
    ) -> Result<Self, DefaultCertificateError> {
        Self::from_setting("ssl_cert", pairs)
    }

    /// As [`CertifiedPair::from_files`], for the pairs of the setting named `setting` (e.g.
    /// `admin_ssl_cert`), which errors name.
    pub fn from_setting(
        setting: &'static str,
        pairs: &[(std::path::PathBuf, std::path::PathBuf)],
    ) -> Result<Self, DefaultCertificateError> {
        let load = |(cert, key): &(std::path::PathBuf, std::path::PathBuf)| {
            let read = |path: &std::path::Path| {
                std::fs::read_to_string(path).map_err(|error| DefaultCertificateError::Read {
                    setting,
                    path: path.display().to_string(),
                    error,
                })
            };
            crate::entity::certificate::certified_key(&read(cert)?, &read(key)?).map_err(|error| {
                DefaultCertificateError::Pem {
                    setting,
                    path: cert.display().to_string(),
                    error,
                }
            })
        };
        let mut loaded = pairs.iter().take(2).map(load);
        let main = loaded
            .next()
            .ok_or(DefaultCertificateError::Missing { setting })??;
        let alt = loaded.next().transpose()?;
        if pairs.len() > 2 {
            tracing::warn!(setting, "only the first two certificate/key pairs are used");
        }
        Ok(Self { main, alt })
    }

    /// A self-signed ECDSA P-256 certificate for `localhost`, generated now: what Kong serves
    /// when `ssl_cert` is not configured.
    pub fn self_signed() -> Result<Self, DefaultCertificateError> {
        let key = rcgen::KeyPair::generate().map_err(DefaultCertificateError::Generate)?;
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .map_err(DefaultCertificateError::Generate)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let cert = params
            .self_signed(&key)
            .map_err(DefaultCertificateError::Generate)?;
        Self::from_pem(&cert.pem(), &key.serialize_pem()).map_err(|error| {
            DefaultCertificateError::Pem {
                setting: "ssl_cert",
                path: "(generated)".into(),
                error,
            }
        })
    }

    /// The key to present to a client offering `schemes` (empty: any): the main one when
    /// it can sign with one of them, else the alternative one, else the main one.
    pub fn choose(&self, schemes: &[SignatureScheme]) -> Arc<CertifiedKey> {
        if schemes.is_empty() || self.main.key.choose_scheme(schemes).is_some() {
            return Arc::clone(&self.main);
        }
        match &self.alt {
            Some(alt) if alt.key.choose_scheme(schemes).is_some() => Arc::clone(alt),
            _ => Arc::clone(&self.main),
        }
    }
}

/// A fixed certificate (e.g. the TLS Admin API's), presenting whichever of its keys the
/// client's signature schemes accept.
impl ResolvesServerCert for CertifiedPair {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.choose(hello.signature_schemes()))
    }
}

/// A TLS acceptor (ring provider, TLS 1.2 and 1.3) presenting what `certificates` resolves;
/// ALPN offers `h2` and `http/1.1` when `http2` is set (Kong's `http2` listen flag), else
/// only `http/1.1`.
pub fn tls_acceptor(
    certificates: Arc<dyn ResolvesServerCert>,
    http2: bool,
) -> Result<tokio_rustls::TlsAcceptor, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certificates);
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Errors loading or generating the default certificate.
#[derive(Debug, thiserror::Error)]
pub enum DefaultCertificateError {
    /// No certificate/key pair was given.
    #[error("{setting}: no certificate/key pair configured")]
    Missing {
        /// The setting (`ssl_cert`, `admin_ssl_cert`).
        setting: &'static str,
    },
    /// A file could not be read.
    #[error("{setting}: {path}: {error}")]
    Read {
        /// The setting (`ssl_cert`, `admin_ssl_cert`).
        setting: &'static str,
        /// The file.
        path: String,
        /// The cause (kept out of the error chain: the message already says it).
        error: std::io::Error,
    },
    /// A certificate or key file does not load.
    #[error("{setting}: {path}: {error}")]
    Pem {
        /// The setting (`ssl_cert`, `admin_ssl_cert`).
        setting: &'static str,
        /// The certificate file.
        path: String,
        /// The cause (kept out of the error chain: the message already says it).
        error: PemError,
    },
    /// The self-signed certificate could not be generated.
    #[error("generating the self-signed default certificate: {0}")]
    Generate(rcgen::Error),
}

/// The immutable server-name → certificate table.
#[derive(Debug, Clone, Default)]
pub struct CertificateTable {
    exact: HashMap<String, CertifiedPair>,
    /// Keyed by the name without its `*.` (`example.com` for `*.example.com`).
    prefix: HashMap<String, CertifiedPair>,
    /// Keyed by the name without its `.*` (`www.example` for `www.example.*`).
    suffix: HashMap<String, CertifiedPair>,
    catch_all: Option<CertifiedPair>,
    default: Option<CertifiedPair>,
}

impl CertificateTable {
    /// Compiles certificates and their SNIs; `default` answers when no SNI matches.
    /// A certificate whose PEM no longer loads is left out (it was checked when written).
    pub fn build(
        certificates: &[Certificate],
        snis: &[Sni],
        default: Option<CertifiedPair>,
    ) -> Self {
        let mut pairs: HashMap<Uuid, CertifiedPair> = HashMap::new();
        for c in certificates {
            match c.certified_keys() {
                Ok((main, alt)) => {
                    pairs.insert(c.id, CertifiedPair { main, alt });
                }
                Err(e) => {
                    tracing::error!(certificate = %c.id, error = %e, "certificate skipped");
                }
            }
        }
        let mut table = CertificateTable {
            default,
            ..Self::default()
        };
        for sni in snis {
            let Some(pair) = pairs.get(&sni.certificate.id) else {
                continue;
            };
            let name = sni.name.to_ascii_lowercase();
            if name == "*" {
                table.catch_all = Some(pair.clone());
            } else if let Some(rest) = name.strip_prefix("*.") {
                table.prefix.insert(rest.to_string(), pair.clone());
            } else if let Some(rest) = name.strip_suffix(".*") {
                table.suffix.insert(rest.to_string(), pair.clone());
            } else {
                table.exact.insert(name, pair.clone());
            }
        }
        table
    }

    /// The certificate pair for a server name, by Kong's precedence.
    pub fn lookup(&self, sni: Option<&str>) -> Option<&CertifiedPair> {
        if let Some(raw) = sni {
            let name = raw.trim_end_matches('.').to_ascii_lowercase();
            if let Some(p) = self.exact.get(&name) {
                return Some(p);
            }
            if let Some((_, rest)) = name.split_once('.')
                && let Some(p) = self.prefix.get(rest)
            {
                return Some(p);
            }
            if let Some((rest, _)) = name.rsplit_once('.')
                && let Some(p) = self.suffix.get(rest)
            {
                return Some(p);
            }
        }
        self.catch_all.as_ref().or(self.default.as_ref())
    }

    /// The key to present for a server name (the main key of the matching certificate).
    pub fn resolve(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.lookup(sni).map(|p| p.choose(&[]))
    }

    /// The key to present for a server name to a client offering `schemes`.
    pub fn resolve_for(
        &self,
        sni: Option<&str>,
        schemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.lookup(sni).map(|p| p.choose(schemes))
    }

    /// How many server names (exact and wildcard) the table knows.
    pub fn len(&self) -> usize {
        self.exact.len()
            + self.prefix.len()
            + self.suffix.len()
            + usize::from(self.catch_all.is_some())
    }

    /// Whether no server name is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A rustls certificate resolver that always reads the node's current table: hand it to
/// `rustls::ServerConfig::builder().with_no_client_auth().with_cert_resolver(...)`.
#[derive(Debug, Clone)]
pub struct CertificateResolver {
    table: Arc<ArcSwap<CertificateTable>>,
}

impl CertificateResolver {
    /// Follows `table`.
    pub fn new(table: Arc<ArcSwap<CertificateTable>>) -> Self {
        Self { table }
    }
}

impl ResolvesServerCert for CertificateResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.table
            .load()
            .resolve_for(hello.server_name(), hello.signature_schemes())
    }
}
