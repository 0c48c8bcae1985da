//! How the hyper path reaches a service: the TLS side (which certificates an upstream must
//! present and what the gateway presents itself: Kong's `tls_verify`, `tls_verify_depth`,
//! `ca_certificates` and `client_certificate`) and the connections' time limits
//! (`connect_timeout`, `write_timeout`, `read_timeout`).
//!
//! Key decision: a client (with its connection pool) exists per distinct policy, not per
//! service and never per request. Policies are compiled with the routing table; a rebuild
//! reuses the client of every policy that did not change (same flags, same CA certificate
//! digests, same client certificate version, same timeouts), so unrelated Admin API writes
//! keep pools warm. Services with Kong's defaults share the two process-wide clients.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use portcullis_http::{Timeouts, UpstreamClient, UpstreamTls, Verify};
use uuid::Uuid;

use crate::entity::{CaCertificate, Certificate, ForeignKey, Service, Upstream};

/// What decides how a service's upstream connections are made.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Policy {
    /// `tls_verify = true` (unset is Kong's `proxy_ssl_verify off`).
    verify: bool,
    /// `tls_verify_depth`, applied when verifying.
    depth: Option<usize>,
    /// The digests of `ca_certificates` (when verifying); an id that names no CA
    /// certificate is kept as `missing:{id}`, so it trusts nothing.
    cas: Vec<String>,
    /// The service's `client_certificate`, else its upstream's, and its version
    /// (`updated_at`).
    client: Option<(Uuid, i64)>,
    /// The service's timeouts.
    timeouts: Timeouts,
}

/// Per-policy clients, kept across table rebuilds.
#[derive(Debug)]
pub(crate) struct TlsClients {
    /// Verifies against the operating system's roots (`tls_verify = true`, nothing else).
    verified: UpstreamClient,
    /// Verifies nothing (Kong's default).
    unverified: UpstreamClient,
    /// Clients of the other policies in use since the last build.
    custom: Mutex<HashMap<Policy, UpstreamClient>>,
}

impl Default for TlsClients {
    fn default() -> Self {
        Self {
            verified: portcullis_http::upstream_client(),
            unverified: portcullis_http::upstream_client_unverified(),
            custom: Mutex::default(),
        }
    }
}

impl TlsClients {
    /// The client of every service, by id. Policies no service uses any more are dropped.
    pub(crate) fn build(
        &self,
        services: &[Service],
        upstreams: &[Upstream],
        certificates: &[Certificate],
        ca_certificates: &[CaCertificate],
    ) -> HashMap<Uuid, UpstreamClient> {
        let certs: HashMap<Uuid, &Certificate> = certificates.iter().map(|c| (c.id, c)).collect();
        let upstreams: HashMap<&str, &Upstream> =
            upstreams.iter().map(|u| (u.name.as_str(), u)).collect();
        let cas: HashMap<String, &CaCertificate> = ca_certificates
            .iter()
            .map(|c| (c.id.to_string(), c))
            .collect();
        let mut custom = match self.custom.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut kept = HashMap::new();
        let mut out = HashMap::with_capacity(services.len());
        for s in services {
            let policy = policy_of(s, client_certificate(s, &upstreams), &certs, &cas);
            let client = match &policy {
                None => self.unverified.clone(),
                Some(p) if *p == Policy::system() => self.verified.clone(),
                Some(p) => {
                    let client = match custom.remove(p).or_else(|| kept.get(p).cloned()) {
                        Some(c) => c,
                        None => portcullis_http::upstream_client_with(
                            &tls_of(s, p, &certs, &cas),
                            p.timeouts,
                        ),
                    };
                    kept.insert(p.clone(), client.clone());
                    client
                }
            };
            out.insert(s.id, client);
        }
        *custom = kept;
        out
    }
}

impl Policy {
    /// `tls_verify = true` and nothing else: the shared verifying client.
    fn system() -> Self {
        Policy {
            verify: true,
            depth: None,
            cas: Vec::new(),
            client: None,
            timeouts: Timeouts::default(),
        }
    }
}

/// The certificate a service presents: its own `client_certificate`, else (Kong 2.2) for an
/// `https` service the one of the upstream its host names.
fn client_certificate(s: &Service, upstreams: &HashMap<&str, &Upstream>) -> Option<ForeignKey> {
    s.client_certificate.or_else(|| {
        if s.protocol != "https" {
            return None;
        }
        upstreams.get(s.host.as_str())?.client_certificate
    })
}

/// The service's policy, given the certificate it presents; `None` for Kong's defaults (no
/// verification, no client certificate, 60 s timeouts).
fn policy_of(
    s: &Service,
    client: Option<ForeignKey>,
    certs: &HashMap<Uuid, &Certificate>,
    cas: &HashMap<String, &CaCertificate>,
) -> Option<Policy> {
    let verify = s.tls_verify == Some(true);
    let client = client.map(|fk| (fk.id, certs.get(&fk.id).map_or(0, |c| c.updated_at)));
    let timeouts = s.timeouts();
    if !verify && client.is_none() && timeouts == Timeouts::default() {
        return None;
    }
    let (depth, cas) = if verify {
        let depth = s.tls_verify_depth.and_then(|d| usize::try_from(d).ok());
        let cas = s
            .ca_certificates
            .iter()
            .flatten()
            .map(|id| match cas.get(id) {
                Some(ca) => ca.cert_digest.clone(),
                None => format!("missing:{id}"),
            })
            .collect();
        (depth, cas)
    } else {
        (None, Vec::new())
    };
    Some(Policy {
        verify,
        depth,
        cas,
        client,
        timeouts,
    })
}

/// The client settings of a policy. A CA certificate or client certificate that is missing
/// or no longer loads is logged; verification then trusts nothing, and no client
/// certificate is presented.
fn tls_of(
    s: &Service,
    p: &Policy,
    certs: &HashMap<Uuid, &Certificate>,
    cas: &HashMap<String, &CaCertificate>,
) -> UpstreamTls {
    let verify = p.verify.then(|| {
        let roots = (!p.cas.is_empty()).then(|| {
            let mut roots = rustls::RootCertStore::empty();
            for id in s.ca_certificates.iter().flatten() {
                let Some(ca) = cas.get(id) else {
                    tracing::error!(service = %s.id, ca_certificate = %id,
                        "service names a CA certificate that does not exist");
                    continue;
                };
                let loaded = crate::entity::certificate::parse_chain(&ca.cert)
                    .map_err(|e| e.to_string())
                    .and_then(|chain| {
                        let (added, _) = roots.add_parsable_certificates(chain);
                        if added == 0 {
                            Err("not usable as a trust anchor".to_string())
                        } else {
                            Ok(())
                        }
                    });
                if let Err(e) = loaded {
                    tracing::error!(service = %s.id, ca_certificate = %id, error = %e,
                        "CA certificate skipped");
                }
            }
            Arc::new(roots)
        });
        Verify {
            roots,
            max_depth: p.depth,
        }
    });
    let client_certificate = p
        .client
        .and_then(|(id, _)| client_keys(certs, id, "service", s.id));
    UpstreamTls {
        verify,
        client_certificate,
    }
}

/// The rustls keys of certificate `id`, presented as a client certificate by `owner` (an
/// entity kind, for the log) `owner_id`. One that is missing or no longer loads is logged,
/// and none is presented.
pub(crate) fn client_keys(
    certs: &HashMap<Uuid, &Certificate>,
    id: Uuid,
    owner: &str,
    owner_id: Uuid,
) -> Option<Arc<rustls::sign::CertifiedKey>> {
    let Some(cert) = certs.get(&id) else {
        tracing::error!(owner, id = %owner_id, certificate = %id,
            "client certificate does not exist");
        return None;
    };
    match cert.certified_keys() {
        Ok((main, _)) => Some(main),
        Err(e) => {
            tracing::error!(owner, id = %owner_id, certificate = %id, error = %e,
                "client certificate skipped");
            None
        }
    }
}
