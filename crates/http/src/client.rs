//! The pooled keep-alive client used to forward requests upstream, over plain HTTP or TLS.
//!
//! TLS is rustls with the `ring` provider. The trusted roots are the operating system's
//! (via `rustls-native-certs`, which honours `SSL_CERT_FILE` and `SSL_CERT_DIR` the way
//! OpenSSL and Go do: when set, they replace the system store), plus any extra PEM
//! certificates a caller passes to [`upstream_client_trusting`]. The roots are read once per
//! process.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::timed::{TimedConnector, Timeouts};

/// A pooled HTTP/1.1 client (`http://` and `https://`) that streams [`Body`] both ways, with
/// its connections' time limits ([`Timeouts`]).
pub type UpstreamClient = Client<TimedConnector<HttpsConnector<HttpConnector>>, Body>;

/// Errors building a client with extra trusted certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The PEM text held no certificate, or one that could not be parsed.
    #[error("invalid PEM certificates: {0}")]
    Pem(String),
    /// A certificate was not accepted as a trust anchor.
    #[error("certificate not usable as a trust anchor: {0}")]
    Anchor(rustls::Error),
}

/// Builds the upstream client trusting the operating system's roots: keep-alive pool,
/// `TCP_NODELAY`, Kong's default time limits (60 s to connect, per waiting write, and for an
/// answer).
pub fn upstream_client() -> UpstreamClient {
    build(Arc::clone(system_roots()))
}

/// Like [`upstream_client`], additionally trusting every certificate in `pem` (e.g. a private
/// CA).
pub fn upstream_client_trusting(pem: &[u8]) -> Result<UpstreamClient, TlsError> {
    let mut roots = RootCertStore::clone(system_roots());
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Pem("no CERTIFICATE block found".into()));
    }
    for cert in certs {
        roots.add(cert).map_err(TlsError::Anchor)?;
    }
    Ok(build(Arc::new(roots)))
}

/// Builds an upstream client that does NOT verify the upstream's certificate chain or name
/// (Kong's default for services: `tls_verify` unset means nginx's `proxy_ssl_verify off`).
/// The handshake signature is still checked, so the peer must hold the presented key.
pub fn upstream_client_unverified() -> UpstreamClient {
    from_config(
        tls_client_config(&UpstreamTls::default()),
        Timeouts::default(),
    )
}

/// How a TLS client checks the server it connects to, and what it presents itself.
#[derive(Debug, Clone, Default)]
pub struct UpstreamTls {
    /// `None`: the chain and name are not verified (handshake signatures still are).
    pub verify: Option<Verify>,
    /// A certificate chain and key presented when the server asks for one (mutual TLS).
    pub client_certificate: Option<Arc<rustls::sign::CertifiedKey>>,
}

/// Certificate verification settings.
#[derive(Debug, Clone, Default)]
pub struct Verify {
    /// The trust anchors; `None`: the operating system's.
    pub roots: Option<Arc<RootCertStore>>,
    /// At most this many intermediate certificates between the server's certificate and a
    /// trust anchor (OpenSSL's verify depth); `None`: no limit.
    pub max_depth: Option<usize>,
}

/// The rustls client configuration (ring provider, TLS 1.2 and 1.3) for `tls`.
pub fn tls_client_config(tls: &UpstreamTls) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3");
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = match &tls.verify {
        None => Arc::new(Blanket {
            accept: true,
            algorithms,
        }),
        Some(v) => {
            let roots = v
                .roots
                .clone()
                .unwrap_or_else(|| Arc::clone(system_roots()));
            match rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::clone(&roots),
                provider,
            )
            .build()
            {
                Ok(webpki) => Arc::new(DepthLimited {
                    webpki,
                    roots,
                    max_depth: v.max_depth,
                    algorithms,
                }),
                // Only an empty root store fails here: trust nothing.
                Err(_) => Arc::new(Blanket {
                    accept: false,
                    algorithms,
                }),
            }
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match &tls.client_certificate {
        Some(key) => builder.with_client_cert_resolver(Arc::new(
            rustls::sign::SingleCertAndKey::from(Arc::clone(key)),
        )),
        None => builder.with_no_client_auth(),
    }
}

/// An upstream client (as [`upstream_client`]) with its own TLS settings and time limits.
pub fn upstream_client_with(tls: &UpstreamTls, timeouts: Timeouts) -> UpstreamClient {
    from_config(tls_client_config(tls), timeouts)
}

/// The TLS server name for a connection to `uri`: the URI's user-info when it carries one
/// (`https://{server name}@{address}/`: the gateway's way to send the upstream Host's name
/// as SNI while connecting to a target's address; the user-info never goes on the wire,
/// since requests are sent in origin form), else its host.
fn server_name(
    uri: &http::Uri,
) -> Result<rustls::pki_types::ServerName<'static>, rustls::pki_types::InvalidDnsNameError> {
    let authority = uri.authority().map_or("", |a| a.as_str());
    let name = match authority.rsplit_once('@') {
        Some((name, _)) => name,
        None => {
            let host = uri.host().unwrap_or_default();
            host.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host)
        }
    };
    rustls::pki_types::ServerName::try_from(name.to_string())
}

/// Verifies as webpki does, then limits the number of intermediates on the path found.
#[derive(Debug)]
struct DepthLimited {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    roots: Arc<RootCertStore>,
    max_depth: Option<usize>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for DepthLimited {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verified = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let Some(max) = self.max_depth else {
            return Ok(verified);
        };
        let too_deep = || {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
                Arc::new(DepthExceeded(max)),
            )))
        };
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| too_deep())?;
        let short_enough = |path: &webpki::VerifiedPath<'_>| {
            if path.intermediate_certificates().count() <= max {
                Ok(())
            } else {
                Err(webpki::Error::MaximumPathDepthExceeded)
            }
        };
        cert.verify_for_usage(
            self.algorithms.all,
            &self.roots.roots,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            Some(&short_enough),
        )
        .map(|_| verified)
        .map_err(|_| too_deep())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The certificate chain is longer than the verify depth allows.
#[derive(Debug, thiserror::Error)]
#[error("certificate chain exceeds the verify depth of {0} intermediate(s)")]
struct DepthExceeded(usize);

/// Decides on every certificate chain and name without looking at them (accepting all:
/// Kong's unverified upstreams; refusing all: verification asked for with no trust anchor);
/// handshake signatures are still verified either way.
#[derive(Debug)]
struct Blanket {
    accept: bool,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for Blanket {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if self.accept {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The operating system's trusted roots, read once; unreadable entries are logged and skipped.
fn system_roots() -> &'static Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "reading the system's trusted certificates");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        if ignored > 0 {
            tracing::warn!(
                ignored,
                "system certificates that are not valid trust anchors"
            );
        }
        tracing::debug!(added, "trusted root certificates loaded");
        Arc::new(roots)
    })
}

fn build(roots: Arc<RootCertStore>) -> UpstreamClient {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    from_config(tls, Timeouts::default())
}

fn from_config(tls: rustls::ClientConfig, timeouts: Timeouts) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .with_server_name_resolver(server_name)
        .enable_http1()
        .wrap_connector(connector);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build(TimedConnector::new(https, timeouts))
}
