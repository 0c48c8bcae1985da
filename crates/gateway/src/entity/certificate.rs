//! The Certificate, SNI and CA Certificate entities (Kong 3.x
//! `kong/db/schema/entities/{certificates,snis,ca_certificates}.lua`): PEM material checked
//! when it is written (parses, key matches certificate, the alternative pair is of another
//! key type, a CA certificate is a CA and not expired), so the TLS lookup built from them
//! ([`crate::certificates`]) never meets bad input.

use std::sync::Arc;

use rustls::SignatureAlgorithm;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::schema::{Input, Kind, Violations, is_host};
use super::{ForeignKey, read_foreign};

/// Why PEM material was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// The certificate does not parse.
    #[error("invalid certificate: {0}")]
    Certificate(String),
    /// The key does not parse.
    #[error("invalid key: {0}")]
    Key(String),
    /// The key is not the certificate's.
    #[error("certificate does not match key")]
    Mismatch,
}

/// Parses a PEM certificate chain (leaf first) and checks every certificate is X.509.
pub fn parse_chain(pem: &str) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Certificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(PemError::Certificate("no PEM certificate found".into()));
    }
    for der in &chain {
        x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| PemError::Certificate(e.to_string()))?;
    }
    Ok(chain)
}

/// Loads a PEM certificate chain and its PEM private key into a signing key for rustls
/// (ring provider), refusing a key that is not the leaf certificate's.
pub fn certified_key(cert_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, PemError> {
    let chain = parse_chain(cert_pem)?;
    let signing = signing_key(key_pem)?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(Arc::new(certified)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(PemError::Mismatch)
        }
        Err(e) => Err(PemError::Certificate(e.to_string())),
    }
}

/// Loads a PEM private key (PKCS#8, PKCS#1 or SEC1) with the ring provider.
fn signing_key(key_pem: &str) -> Result<Arc<dyn rustls::sign::SigningKey>, PemError> {
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| PemError::Key(e.to_string()))?;
    rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| PemError::Key(e.to_string()))
}

/// Input fields of a certificate, for form decoding.
pub const CERTIFICATE_FIELDS: &[(&str, Kind)] = &[
    ("id", Kind::String),
    ("cert", Kind::String),
    ("key", Kind::String),
    ("cert_alt", Kind::String),
    ("key_alt", Kind::String),
    ("snis", Kind::Strings),
    ("tags", Kind::Strings),
    ("created_at", Kind::Integer),
    ("updated_at", Kind::Integer),
];

/// A Kong Certificate, serialized as the Admin API returns it. `snis` is the names of its
/// SNI entities, filled in from the `snis` table whenever it is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Certificate {
    /// Primary key.
    pub id: Uuid,
    /// PEM certificate (chain, leaf first).
    pub cert: String,
    /// PEM private key of `cert`.
    pub key: String,
    /// Alternative PEM certificate of the other key type (RSA vs ECDSA).
    pub cert_alt: Option<String>,
    /// PEM private key of `cert_alt`.
    pub key_alt: Option<String>,
    /// Names of the SNIs pointing at this certificate.
    #[serde(default)]
    pub snis: Vec<String>,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Last update time, unix seconds.
    pub updated_at: i64,
}

impl Certificate {
    /// The rustls keys: the main pair and, when set, the alternative one.
    pub fn certified_keys(
        &self,
    ) -> Result<(Arc<CertifiedKey>, Option<Arc<CertifiedKey>>), PemError> {
        let main = certified_key(&self.cert, &self.key)?;
        let alt = match (&self.cert_alt, &self.key_alt) {
            (Some(c), Some(k)) => Some(certified_key(c, k)?),
            _ => None,
        };
        Ok((main, alt))
    }
}

super::stored!(
    Certificate,
    crate::store::Table {
        name: "gateway_certificates",
        entity: "certificates",
        columns: &[],
        unique: &[],
        endpoint_key: None,
        references: &[],
    },
    |_certificate| Vec::new(),
    const NAMED_BY: Option<crate::store::NamedBy> = Some(crate::store::NamedBy {
        table: "gateway_snis",
        column: "name",
        reference: "certificate_id",
    });
);

fn key_type(alg: SignatureAlgorithm) -> &'static str {
    match alg {
        SignatureAlgorithm::RSA => "RSA",
        SignatureAlgorithm::ECDSA => "ECDSA",
        SignatureAlgorithm::ED25519 => "ED25519",
        _ => "other",
    }
}

/// Checks an SNI name with Kong's `wildcard_host` rules: a host name, optionally with one
/// `*` as its whole leftmost or rightmost label, or `*` alone (the catch-all).
pub fn sni_name_error(name: &str) -> Option<String> {
    if name == "*" {
        return None;
    }
    let stars = name.matches('*').count();
    if stars > 1 {
        return Some("only one wildcard must be specified".into());
    }
    let bare = if stars == 1 {
        if let Some(rest) = name.strip_prefix("*.") {
            rest.to_string()
        } else if let Some(rest) = name.strip_suffix(".*") {
            format!("{rest}.wildcard")
        } else {
            return Some("wildcard must be leftmost or rightmost character".into());
        }
    } else {
        name.to_string()
    };
    if bare.parse::<std::net::IpAddr>().is_ok() || !is_host(&bare) || bare.contains('_') {
        return Some(format!("invalid value: {name}"));
    }
    None
}

impl super::Entity for Certificate {
    const FIELDS: &'static [(&'static str, Kind)] = CERTIFICATE_FIELDS;

    /// Certificates are named by their SNIs, which are lower case.
    fn normalize_key(key: &str) -> String {
        key.to_ascii_lowercase()
    }

    fn from_input(
        map: Map<String, Value>,
        id: Uuid,
        created_at: i64,
        updated_at: i64,
    ) -> Result<Self, Violations> {
        let mut input = Input::entity(map);
        let pem = |input: &mut Input, field: &str, required: bool| {
            let v = input.string(field);
            if v.is_none() && required && !input.violations.has(field) {
                input.violations.field(field, "required field missing");
            }
            v
        };
        let cert = pem(&mut input, "cert", true);
        let key = pem(&mut input, "key", true);
        let cert_alt = pem(&mut input, "cert_alt", false);
        let key_alt = pem(&mut input, "key_alt", false);
        let snis = read_sni_list(&mut input);
        let tags = super::read_tags(&mut input);
        if cert_alt.is_some() != key_alt.is_some() {
            input
                .violations
                .entity("all or none of these fields must be set: 'cert_alt', 'key_alt'");
        }
        let mut main_type = None;
        if let (Some(c), Some(k)) = (&cert, &key) {
            match check_pair(c, k) {
                Ok(t) => main_type = Some(t),
                Err(PemError::Certificate(m)) => {
                    input
                        .violations
                        .field("cert", format!("invalid certificate: {m}"));
                    if let Err(e) = signing_key(k) {
                        input.violations.field("key", e.to_string());
                    }
                }
                Err(PemError::Key(m)) => input.violations.field("key", format!("invalid key: {m}")),
                Err(PemError::Mismatch) => {
                    input.violations.entity("certificate does not match key")
                }
            }
        }
        if let (Some(c), Some(k)) = (&cert_alt, &key_alt) {
            match check_pair(c, k) {
                Ok(t) if Some(t) == main_type => input.violations.entity(
                    "certificate and alternative certificate need to have different type (e.g. RSA and ECDSA), the provided certificates were both of the same type",
                ),
                Ok(_) => {}
                Err(PemError::Certificate(m)) => {
                    input
                        .violations
                        .field("cert_alt", format!("invalid certificate: {m}"));
                    if let Err(e) = signing_key(k) {
                        input.violations.field("key_alt", e.to_string());
                    }
                }
                Err(PemError::Key(m)) => {
                    input.violations.field("key_alt", format!("invalid key: {m}"))
                }
                Err(PemError::Mismatch) => input
                    .violations
                    .entity("alternative certificate does not match key"),
            }
        }
        let violations = input.finish();
        match (cert, key) {
            (Some(cert), Some(key)) if violations.is_empty() => Ok(Certificate {
                id,
                cert,
                key,
                cert_alt,
                key_alt,
                snis: snis.unwrap_or_default(),
                tags,
                created_at,
                updated_at,
            }),
            _ => Err(violations),
        }
    }
}

/// Validates a pair and names its key type.
fn check_pair(cert: &str, key: &str) -> Result<&'static str, PemError> {
    certified_key(cert, key).map(|k| key_type(k.key.algorithm()))
}

/// Reads the transient `snis` list of a certificate: wildcard host names, no duplicates.
fn read_sni_list(input: &mut Input) -> Option<Vec<String>> {
    let names = input.strings("snis", false)?;
    let len = names.len();
    let mut ok = true;
    for (i, name) in names.iter().enumerate() {
        if let Some(msg) = sni_name_error(name) {
            input.violations.item("snis", i, len, msg);
            ok = false;
        } else if names[..i].contains(name) {
            input
                .violations
                .item("snis", i, len, format!("duplicate SNI in request: {name}"));
            ok = false;
        }
    }
    ok.then_some(names)
}

/// Input fields of an SNI, for form decoding.
pub const SNI_FIELDS: &[(&str, Kind)] = &[
    ("id", Kind::String),
    ("name", Kind::String),
    ("certificate", Kind::Record),
    ("tags", Kind::Strings),
    ("created_at", Kind::Integer),
    ("updated_at", Kind::Integer),
];

/// A Kong SNI: a server name (exact or wildcard) served with a certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sni {
    /// Primary key.
    pub id: Uuid,
    /// Unique server name, lower case; `*.example.com`, `example.*` or `*` allowed.
    pub name: String,
    /// The certificate served for it.
    pub certificate: ForeignKey,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Last update time, unix seconds.
    pub updated_at: i64,
}

super::stored!(
    Sni,
    crate::store::Table {
        name: "gateway_snis",
        entity: "snis",
        columns: &["name", "certificate_id"],
        unique: &[("name", Some("name"))],
        endpoint_key: Some("name"),
        references: &[crate::store::Reference {
            column: "certificate_id",
            field: "certificate",
            table: "gateway_certificates",
            entity: "certificates",
            cascade: true,
        }],
    },
    |e| vec![Some(e.name.clone()), Some(e.certificate.id.to_string())]
);

impl super::Entity for Sni {
    const FIELDS: &'static [(&'static str, Kind)] = SNI_FIELDS;

    fn normalize_key(key: &str) -> String {
        key.to_ascii_lowercase()
    }

    fn from_input(
        map: Map<String, Value>,
        id: Uuid,
        created_at: i64,
        updated_at: i64,
    ) -> Result<Self, Violations> {
        let mut input = Input::entity(map);
        let name = input.string("name").map(|n| n.to_ascii_lowercase());
        match &name {
            None if !input.violations.has("name") => {
                input.violations.field("name", "required field missing");
            }
            Some(n) => {
                if let Some(msg) = sni_name_error(n) {
                    input.violations.field("name", msg);
                }
            }
            None => {}
        }
        let certificate = read_foreign(&mut input, "certificate");
        if certificate.is_none() && !input.violations.has("certificate") {
            input
                .violations
                .field("certificate", "required field missing");
        }
        let tags = super::read_tags(&mut input);
        let violations = input.finish();
        match (name, certificate) {
            (Some(name), Some(certificate)) if violations.is_empty() => Ok(Sni {
                id,
                name,
                certificate,
                tags,
                created_at,
                updated_at,
            }),
            _ => Err(violations),
        }
    }
}

/// Input fields of a CA certificate, for form decoding.
pub const CA_CERTIFICATE_FIELDS: &[(&str, Kind)] = &[
    ("id", Kind::String),
    ("cert", Kind::String),
    ("cert_digest", Kind::String),
    ("tags", Kind::Strings),
    ("created_at", Kind::Integer),
    ("updated_at", Kind::Integer),
];

/// A Kong CA Certificate: a trusted CA for verifying clients or upstreams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaCertificate {
    /// Primary key.
    pub id: Uuid,
    /// One PEM CA certificate.
    pub cert: String,
    /// Lower-case hex SHA-256 of the certificate's DER, unique.
    pub cert_digest: String,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Last update time, unix seconds.
    pub updated_at: i64,
}

super::stored!(
    CaCertificate,
    crate::store::Table {
        name: "gateway_ca_certificates",
        entity: "ca_certificates",
        columns: &["cert_digest"],
        unique: &[("cert_digest", Some("cert_digest"))],
        endpoint_key: None,
        references: &[],
    },
    |e| vec![Some(e.cert_digest.clone())]
);

/// Checks a CA certificate and returns its digest, or Kong's message.
fn ca_digest(pem: &str) -> Result<String, String> {
    let chain = parse_chain(pem).map_err(|e| e.to_string())?;
    let [der] = chain.as_slice() else {
        return Err("please submit only one certificate at a time".into());
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("invalid certificate: {e}"))?;
    if !parsed.is_ca() {
        return Err(
            "certificate does not appear to be a CA because it is missing the \"CA\" basic constraint"
                .into(),
        );
    }
    if parsed.validity().not_after < x509_parser::time::ASN1Time::now() {
        return Err("certificate expired, \"Not After\" time is in the past".into());
    }
    Ok(hex::encode(Sha256::digest(der.as_ref())))
}

impl super::Entity for CaCertificate {
    const FIELDS: &'static [(&'static str, Kind)] = CA_CERTIFICATE_FIELDS;

    fn from_input(
        map: Map<String, Value>,
        id: Uuid,
        created_at: i64,
        updated_at: i64,
    ) -> Result<Self, Violations> {
        let mut input = Input::entity(map);
        // The digest is always computed from `cert`; a given one is accepted and replaced.
        input.raw("cert_digest");
        let cert = input.string("cert");
        let mut digest = None;
        match &cert {
            None if !input.violations.has("cert") => {
                input.violations.field("cert", "required field missing");
            }
            Some(pem) => match ca_digest(pem) {
                Ok(d) => digest = Some(d),
                Err(msg) => input.violations.field("cert", msg),
            },
            None => {}
        }
        let tags = super::read_tags(&mut input);
        let violations = input.finish();
        match (cert, digest) {
            (Some(cert), Some(cert_digest)) if violations.is_empty() => Ok(CaCertificate {
                id,
                cert,
                cert_digest,
                tags,
                created_at,
                updated_at,
            }),
            _ => Err(violations),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sni_name_error;

    #[test]
    fn wildcard_rules() {
        assert_eq!(sni_name_error("example.com"), None);
        assert_eq!(sni_name_error("*.example.com"), None);
        assert_eq!(sni_name_error("example.*"), None);
        assert_eq!(sni_name_error("*"), None);
        assert_eq!(
            sni_name_error("*.example.*").as_deref(),
            Some("only one wildcard must be specified")
        );
        assert_eq!(
            sni_name_error("foo.*.com").as_deref(),
            Some("wildcard must be leftmost or rightmost character")
        );
        assert!(sni_name_error("10.0.0.1").is_some());
        assert!(sni_name_error("bad host").is_some());
    }
}
