//! Sessions: issued after login or registration, found by an opaque bearer token
//! (`ory_st_…`) sent as the `ory_kratos_session` cookie (signed with the cookie secret),
//! `X-Session-Token` or `Authorization: Bearer`. Only SHA-256 digests of tokens are stored, so
//! a leaked database does not leak live sessions.

pub mod tokenizer;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use portcullis_core::timefmt::rfc3339;
use portcullis_core::{Secret, random_alphanumeric};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::identity::{self, Identity};

/// One completed authentication step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthenticationMethod {
    /// `password`, ...
    pub method: String,
    /// The assurance level it grants.
    pub aal: String,
    /// When it completed (RFC 3339).
    pub completed_at: String,
}

/// A device a session was used from.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Row id.
    pub id: Uuid,
    /// Peer address.
    pub ip_address: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
}

/// A session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its id.
    pub id: Uuid,
    /// Whose.
    pub identity_id: Uuid,
    /// False once revoked.
    pub active: bool,
    /// `aal1`, ...
    pub aal: String,
    /// Steps that authenticated it.
    pub authentication_methods: Vec<AuthenticationMethod>,
    /// Issued.
    pub issued_at: OffsetDateTime,
    /// Last authenticated.
    pub authenticated_at: OffsetDateTime,
    /// Expires.
    pub expires_at: OffsetDateTime,
    /// Devices.
    pub devices: Vec<Device>,
    /// The identity, when loaded.
    pub identity: Option<Identity>,
}

/// A freshly issued session with its secrets, which exist only here and in the response.
#[derive(Debug)]
pub struct Issued {
    /// The session.
    pub session: Session,
    /// `ory_st_…`.
    pub token: Secret<String>,
}

impl Session {
    /// Issues a session for `identity` authenticated by `method` now, living `lifespan`.
    pub fn issue(
        identity: Identity,
        method: &str,
        lifespan: time::Duration,
        device: Device,
        now: OffsetDateTime,
    ) -> Issued {
        let session = Session {
            id: portcullis_core::new_id(),
            identity_id: identity.id,
            active: true,
            aal: "aal1".into(),
            authentication_methods: vec![AuthenticationMethod {
                method: method.into(),
                aal: "aal1".into(),
                completed_at: rfc3339(now),
            }],
            issued_at: now,
            authenticated_at: now,
            expires_at: now + lifespan,
            devices: vec![device],
            identity: Some(identity),
        };
        Issued {
            session,
            token: Secret::new(format!("ory_st_{}", random_alphanumeric(32))),
        }
    }

    /// Active, unexpired, and its identity exists and is active.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.active
            && self.expires_at > now
            && self
                .identity
                .as_ref()
                .is_some_and(|i| i.state == identity::State::Active)
    }

    /// Kratos's `session` JSON; the identity in the public view.
    pub fn to_json(&self, public_base: &url::Url, now: OffsetDateTime) -> Value {
        let mut v = json!({
            "id": self.id,
            "active": self.is_active(now),
            "expires_at": rfc3339(self.expires_at),
            "authenticated_at": rfc3339(self.authenticated_at),
            "authenticator_assurance_level": self.aal,
            "authentication_methods": self.authentication_methods,
            "issued_at": rfc3339(self.issued_at),
            "devices": self.devices.iter().map(|d| {
                let mut o = json!({"id": d.id});
                if let Some(map) = o.as_object_mut() {
                    if let Some(ip) = &d.ip_address { map.insert("ip_address".into(), json!(ip)); }
                    if let Some(ua) = &d.user_agent { map.insert("user_agent".into(), json!(ua)); }
                    map.insert("location".into(), json!(""));
                }
                o
            }).collect::<Vec<_>>(),
        });
        if let (Some(identity), Some(map)) = (&self.identity, v.as_object_mut()) {
            map.insert(
                "identity".into(),
                identity.to_json(public_base, identity::View::Public),
            );
        }
        v
    }
}

/// The stored digest of a session or logout token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The logout token of a session (`ory_lo_` + 32 hex digits): an HMAC of the session id, so
/// it can be handed out again for the same session without being stored in clear.
pub fn logout_token(secrets: &[Secret<String>], session_id: Uuid) -> Secret<String> {
    let digest = secrets
        .first()
        .map(|s| raw_mac(s, &format!("logout:{session_id}")))
        .unwrap_or_default();
    let hexed = hex::encode(digest);
    Secret::new(format!("ory_lo_{}", &hexed[..hexed.len().min(32)]))
}

/// The cookie value for `token`: `token.signature`, HMAC-SHA256 with the first cookie secret.
pub fn sign_cookie(secrets: &[Secret<String>], token: &str) -> String {
    let sig = secrets.first().map(|s| mac(s, token)).unwrap_or_default();
    format!("{token}.{sig}")
}

/// The token inside a cookie value, if any configured secret signed it (rotation: the first
/// signs, all verify).
pub fn verify_cookie(secrets: &[Secret<String>], value: &str) -> Option<String> {
    let (token, sig) = value.rsplit_once('.')?;
    secrets
        .iter()
        .any(|s| portcullis_core::constant_time_eq(mac(s, token).as_bytes(), sig.as_bytes()))
        .then(|| token.to_string())
}

fn mac(secret: &Secret<String>, token: &str) -> String {
    URL_SAFE_NO_PAD.encode(raw_mac(secret, token))
}

fn raw_mac(secret: &Secret<String>, data: &str) -> Vec<u8> {
    match Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) {
        Ok(mut m) => {
            m.update(data.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_verify_with_any_secret_and_reject_forgeries() {
        let old = Secret::new("old-secret-0123456789".to_string());
        let new = Secret::new("new-secret-0123456789".to_string());
        let value = sign_cookie(std::slice::from_ref(&old), "ory_st_abc");
        assert_eq!(
            verify_cookie(&[new.clone(), old], &value),
            Some("ory_st_abc".into())
        );
        assert_eq!(verify_cookie(&[new], &value), None);
        assert_eq!(verify_cookie(&[], "ory_st_abc.x"), None);
        assert_eq!(token_hash("a").len(), 64);
    }
}
