//! The identity model (Kratos's `identity`): traits validated by a schema, credentials keyed by
//! type, verifiable and recovery addresses, and its JSON in the public and admin views.

use std::collections::BTreeMap;

use portcullis_core::timefmt::rfc3339;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

/// `active` or `inactive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// May log in.
    Active,
    /// Disabled: cannot log in, sessions count as inactive.
    Inactive,
}

impl State {
    /// Kratos's string.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Inactive => "inactive",
        }
    }

    /// Parses Kratos's string.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(State::Active),
            "inactive" => Some(State::Inactive),
            _ => None,
        }
    }
}

/// A credential of one type (`password`, ...).
#[derive(Debug, Clone)]
pub struct Credential {
    /// Row id.
    pub id: Uuid,
    /// `password`, ...
    pub kind: String,
    /// Login identifiers (normalised).
    pub identifiers: Vec<String>,
    /// Method configuration; for passwords `{"hashed_password": "$argon2id$..."}`. Never
    /// returned to clients.
    pub config: Value,
    /// Config format version.
    pub version: i64,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Updated.
    pub updated_at: OffsetDateTime,
}

/// An address that can be verified.
#[derive(Debug, Clone)]
pub struct VerifiableAddress {
    /// Row id.
    pub id: Uuid,
    /// The address.
    pub value: String,
    /// Whether it was verified.
    pub verified: bool,
    /// `email` or `sms`.
    pub via: String,
    /// `pending`, `sent` or `completed`.
    pub status: String,
    /// When it was verified.
    pub verified_at: Option<OffsetDateTime>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Updated.
    pub updated_at: OffsetDateTime,
}

/// An address usable for account recovery.
#[derive(Debug, Clone)]
pub struct RecoveryAddress {
    /// Row id.
    pub id: Uuid,
    /// The address.
    pub value: String,
    /// `email` or `sms`.
    pub via: String,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Updated.
    pub updated_at: OffsetDateTime,
}

/// An identity.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Its id.
    pub id: Uuid,
    /// The identity schema it follows.
    pub schema_id: String,
    /// Active or not.
    pub state: State,
    /// When the state last changed.
    pub state_changed_at: Option<OffsetDateTime>,
    /// Traits (validated against the schema).
    pub traits: Value,
    /// Metadata readable by the identity itself.
    pub metadata_public: Option<Value>,
    /// Metadata for administrators only.
    pub metadata_admin: Option<Value>,
    /// An id in an external system, unique.
    pub external_id: Option<String>,
    /// Credentials by type.
    pub credentials: BTreeMap<String, Credential>,
    /// Verifiable addresses.
    pub verifiable_addresses: Vec<VerifiableAddress>,
    /// Recovery addresses.
    pub recovery_addresses: Vec<RecoveryAddress>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Updated.
    pub updated_at: OffsetDateTime,
}

/// Which JSON view of an identity to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// What the identity itself sees (whoami, flows): no credentials, no admin metadata.
    Public,
    /// The admin API: credentials (without secrets) and admin metadata.
    Admin,
}

impl Identity {
    /// A new active identity with fresh addresses derived by the caller.
    pub fn new(schema_id: &str, traits: Value, now: OffsetDateTime) -> Self {
        Self {
            id: portcullis_core::new_id(),
            schema_id: schema_id.to_string(),
            state: State::Active,
            state_changed_at: Some(now),
            traits,
            metadata_public: None,
            metadata_admin: None,
            external_id: None,
            credentials: BTreeMap::new(),
            verifiable_addresses: Vec::new(),
            recovery_addresses: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    /// Sets the addresses from `(via, value)` pairs found by the schema.
    pub fn set_addresses(
        &mut self,
        verifiable: Vec<(String, String)>,
        recovery: Vec<(String, String)>,
        now: OffsetDateTime,
    ) {
        self.verifiable_addresses = verifiable
            .into_iter()
            .map(|(via, value)| VerifiableAddress {
                id: portcullis_core::new_id(),
                value,
                verified: false,
                via,
                status: "pending".into(),
                verified_at: None,
                created_at: now,
                updated_at: now,
            })
            .collect();
        self.recovery_addresses = recovery
            .into_iter()
            .map(|(via, value)| RecoveryAddress {
                id: portcullis_core::new_id(),
                value,
                via,
                created_at: now,
                updated_at: now,
            })
            .collect();
    }

    /// Like [`Identity::set_addresses`], but addresses the identity already has (same `via`
    /// and value) keep their ids and verification state.
    pub fn replace_addresses(
        &mut self,
        verifiable: Vec<(String, String)>,
        recovery: Vec<(String, String)>,
        now: OffsetDateTime,
    ) {
        let old_verifiable = std::mem::take(&mut self.verifiable_addresses);
        let old_recovery = std::mem::take(&mut self.recovery_addresses);
        self.set_addresses(verifiable, recovery, now);
        for a in &mut self.verifiable_addresses {
            if let Some(old) = old_verifiable
                .iter()
                .find(|o| o.via == a.via && o.value == a.value)
            {
                *a = old.clone();
            }
        }
        for a in &mut self.recovery_addresses {
            if let Some(old) = old_recovery
                .iter()
                .find(|o| o.via == a.via && o.value == a.value)
            {
                *a = old.clone();
            }
        }
    }

    /// The identity as Kratos's `identity` JSON; `public_base` builds `schema_url`.
    pub fn to_json(&self, public_base: &url::Url, view: View) -> Value {
        let mut o = Map::new();
        o.insert("id".into(), json!(self.id));
        o.insert("schema_id".into(), json!(self.schema_id));
        o.insert(
            "schema_url".into(),
            json!(schema_url(public_base, &self.schema_id)),
        );
        o.insert("state".into(), json!(self.state.as_str()));
        if let Some(t) = self.state_changed_at {
            o.insert("state_changed_at".into(), json!(rfc3339(t)));
        }
        o.insert("traits".into(), self.traits.clone());
        o.insert(
            "verifiable_addresses".into(),
            Value::Array(
                self.verifiable_addresses
                    .iter()
                    .map(|a| {
                        let mut v = json!({
                            "id": a.id, "value": a.value, "verified": a.verified, "via": a.via,
                            "status": a.status, "created_at": rfc3339(a.created_at),
                            "updated_at": rfc3339(a.updated_at),
                        });
                        if let (Some(t), Some(obj)) = (a.verified_at, v.as_object_mut()) {
                            obj.insert("verified_at".into(), json!(rfc3339(t)));
                        }
                        v
                    })
                    .collect(),
            ),
        );
        o.insert(
            "recovery_addresses".into(),
            Value::Array(
                self.recovery_addresses
                    .iter()
                    .map(|a| {
                        json!({"id": a.id, "value": a.value, "via": a.via,
                            "created_at": rfc3339(a.created_at), "updated_at": rfc3339(a.updated_at)})
                    })
                    .collect(),
            ),
        );
        o.insert(
            "metadata_public".into(),
            self.metadata_public.clone().unwrap_or(Value::Null),
        );
        if view == View::Admin {
            o.insert(
                "metadata_admin".into(),
                self.metadata_admin.clone().unwrap_or(Value::Null),
            );
            let creds: Map<String, Value> = self
                .credentials
                .iter()
                .map(|(kind, c)| {
                    (
                        kind.clone(),
                        json!({"type": c.kind, "identifiers": c.identifiers, "version": c.version,
                            "created_at": rfc3339(c.created_at), "updated_at": rfc3339(c.updated_at)}),
                    )
                })
                .collect();
            o.insert("credentials".into(), Value::Object(creds));
        }
        if let Some(e) = &self.external_id {
            o.insert("external_id".into(), json!(e));
        }
        o.insert("organization_id".into(), Value::Null);
        o.insert("created_at".into(), json!(rfc3339(self.created_at)));
        o.insert("updated_at".into(), json!(rfc3339(self.updated_at)));
        Value::Object(o)
    }
}

/// `<public>/schemas/<base64url(id)>`, as Kratos links schemas.
pub fn schema_url(public_base: &url::Url, schema_id: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(schema_id);
    crate::config::join_url(public_base, &format!("/schemas/{encoded}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_view_hides_credentials_and_links_schema() {
        let now = OffsetDateTime::now_utc();
        let mut id = Identity::new("default", json!({"email": "a@b.c"}), now);
        id.set_addresses(
            vec![("email".into(), "a@b.c".into())],
            vec![("email".into(), "a@b.c".into())],
            now,
        );
        let base = url::Url::parse("http://127.0.0.1:4433/").expect("url");
        let public = id.to_json(&base, View::Public);
        assert!(public.get("credentials").is_none());
        assert_eq!(
            public["schema_url"],
            "http://127.0.0.1:4433/schemas/ZGVmYXVsdA"
        );
        assert_eq!(public["verifiable_addresses"][0]["status"], "pending");
        assert!(id.to_json(&base, View::Admin).get("credentials").is_some());
    }
}
