//! The `code` method for verification and recovery: six-digit one-time codes sent by e-mail.
//! Codes are kept only as HMACs bound to their flow (a code from one flow is worthless in
//! another), are single-use, expire after `methods.code.config.lifespan`, and a flow accepts at
//! most `max_submissions` attempts, so guessing one is hopeless. Unknown addresses get the same
//! answer as known ones: the UI never tells whether an account exists.

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use portcullis_core::Secret;
use portcullis_core::timefmt::unix_millis;
use serde_json::Value;
use sha2::Sha256;
use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::driver::Registry;
use crate::persistence::{SqlStore, StoreError};
use crate::selfservice::flow::Kind;
use crate::text::{self, Text};
use crate::ui::{Container, Group, Node};

/// Code and address storage the code method needs.
#[async_trait]
pub trait CodeStore: Send + Sync {
    /// Stores a code (its HMAC) for `flow_id`, replacing the flow's earlier codes.
    async fn create_code(&self, code: &StoredCode) -> Result<(), StoreError>;
    /// Redeems the unused, unexpired code of `flow_id` whose HMAC is `code_hash`:
    /// `(identity_id, address)`.
    async fn redeem_code(
        &self,
        flow_id: Uuid,
        code_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(Uuid, String)>, StoreError>;
    /// Counts one more code submission on the flow and returns the new count.
    async fn count_submission(&self, flow_id: Uuid) -> Result<i64, StoreError>;
    /// The identity owning verifiable (or, with `recovery`, recovery) e-mail `address`.
    async fn address_owner(
        &self,
        address: &str,
        recovery: bool,
    ) -> Result<Option<Uuid>, StoreError>;
    /// Marks an identity's verifiable address verified (`status: completed`).
    async fn mark_verified(
        &self,
        identity_id: Uuid,
        address: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
}

/// A code as stored.
#[derive(Debug, Clone)]
pub struct StoredCode {
    /// Row id.
    pub id: Uuid,
    /// The flow it unlocks.
    pub flow_id: Uuid,
    /// `verification` or `recovery`.
    pub kind: Kind,
    /// HMAC of the code.
    pub code_hash: String,
    /// Whose.
    pub identity_id: Uuid,
    /// The address it was sent to (empty for codes made by an administrator).
    pub address: String,
    /// Valid until.
    pub expires_at: OffsetDateTime,
}

#[async_trait]
impl CodeStore for SqlStore {
    async fn create_code(&self, c: &StoredCode) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM selfservice_codes WHERE flow_id = $1")
            .bind(c.flow_id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO selfservice_codes (id, flow_id, kind, code_hash, identity_id, address, \
             expires_at, used_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8)",
        )
        .bind(c.id.to_string())
        .bind(c.flow_id.to_string())
        .bind(c.kind.as_str())
        .bind(&c.code_hash)
        .bind(c.identity_id.to_string())
        .bind(&c.address)
        .bind(unix_millis(c.expires_at))
        .bind(unix_millis(OffsetDateTime::now_utc()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn redeem_code(
        &self,
        flow_id: Uuid,
        code_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(Uuid, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT id, identity_id, address FROM selfservice_codes \
             WHERE flow_id = $1 AND code_hash = $2 AND used_at IS NULL AND expires_at > $3",
        )
        .bind(flow_id.to_string())
        .bind(code_hash)
        .bind(unix_millis(now))
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get("id")?;
        // The conditional update makes redemption single-use even under concurrent submits.
        let done = sqlx::query(
            "UPDATE selfservice_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL",
        )
        .bind(unix_millis(now))
        .bind(&id)
        .execute(self.pool())
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let identity: String = row.try_get("identity_id")?;
        let identity = Uuid::parse_str(&identity).map_err(|_| StoreError::Corrupt("uuid"))?;
        Ok(Some((identity, row.try_get("address")?)))
    }

    async fn count_submission(&self, flow_id: Uuid) -> Result<i64, StoreError> {
        sqlx::query("UPDATE selfservice_flows SET submit_count = submit_count + 1 WHERE id = $1")
            .bind(flow_id.to_string())
            .execute(self.pool())
            .await?;
        Ok(
            sqlx::query_scalar("SELECT submit_count FROM selfservice_flows WHERE id = $1")
                .bind(flow_id.to_string())
                .fetch_optional(self.pool())
                .await?
                .unwrap_or(0),
        )
    }

    async fn address_owner(
        &self,
        address: &str,
        recovery: bool,
    ) -> Result<Option<Uuid>, StoreError> {
        let table = if recovery {
            "identity_recovery_addresses"
        } else {
            "identity_verifiable_addresses"
        };
        let id: Option<String> = sqlx::query_scalar(&format!(
            "SELECT identity_id FROM {table} WHERE via = 'email' AND value = $1"
        ))
        .bind(address)
        .fetch_optional(self.pool())
        .await?;
        id.map(|i| Uuid::parse_str(&i).map_err(|_| StoreError::Corrupt("uuid")))
            .transpose()
    }

    async fn mark_verified(
        &self,
        identity_id: Uuid,
        address: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE identity_verifiable_addresses SET verified = 1, verified_at = $1, \
             status = 'completed', updated_at = $1 \
             WHERE identity_id = $2 AND via = 'email' AND value = $3",
        )
        .bind(unix_millis(now))
        .bind(identity_id.to_string())
        .bind(address)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// Six random digits.
pub(crate) fn generate() -> Secret<String> {
    let bytes = portcullis_core::random_bytes(8);
    let mut n = 0u64;
    for b in bytes {
        n = (n << 8) | u64::from(b);
    }
    Secret::new(format!("{:06}", n % 1_000_000))
}

/// The stored form of `code` for `flow_id`: HMAC-SHA256 under the first cookie secret.
pub(crate) fn hash(reg: &Registry, flow_id: Uuid, code: &str) -> String {
    let key = reg
        .config
        .cookie_secrets
        .first()
        .map(|s| s.expose().as_bytes().to_vec())
        .unwrap_or_default();
    let mut mac = match Hmac::<Sha256>::new_from_slice(&key) {
        Ok(m) => m,
        // HMAC accepts keys of any length; this arm is unreachable in practice.
        Err(_) => return String::new(),
    };
    mac.update(flow_id.as_bytes());
    mac.update(code.trim().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Creates and stores a code for `identity_id` in flow `flow_id`; returns the code to send.
pub(crate) async fn issue(
    reg: &Registry,
    flow_id: Uuid,
    kind: Kind,
    identity_id: Uuid,
    address: &str,
    lifespan: time::Duration,
) -> Result<(Secret<String>, OffsetDateTime), StoreError> {
    let code = generate();
    let expires_at = reg.now() + lifespan;
    reg.store
        .create_code(&StoredCode {
            id: portcullis_core::new_id(),
            flow_id,
            kind,
            code_hash: hash(reg, flow_id, code.expose()),
            identity_id,
            address: address.to_string(),
            expires_at,
        })
        .await?;
    Ok((code, expires_at))
}

/// The first form of a verification or recovery flow: e-mail address and "Continue".
pub(crate) fn email_nodes(ui: &mut Container, masked_csrf: Option<&str>) {
    ui.nodes.clear();
    if let Some(token) = masked_csrf {
        ui.nodes.push(Node::csrf(token));
    }
    ui.nodes.push(
        Node::input(Group::Code, "email", "email")
            .required()
            .autocomplete("email")
            .label(text::label_email()),
    );
    ui.nodes
        .push(Node::submit(Group::Code, "code", text::continue_()));
}

/// The second form, after a code was sent to `address`: code input, submit, and a resend
/// button carrying the address.
pub(crate) fn code_nodes(ui: &mut Container, address: &str, label: Text) {
    let csrf = ui.nodes.iter().find(|n| n.name() == "csrf_token").cloned();
    ui.nodes.clear();
    ui.nodes.extend(csrf);
    ui.nodes.push(
        Node::input(Group::Code, "code", "text")
            .required()
            .autocomplete("one-time-code")
            .pattern("[0-9]+")
            .label(label),
    );
    ui.nodes
        .push(Node::input(Group::Code, "method", "hidden").value_str("code"));
    ui.nodes
        .push(Node::submit(Group::Code, "code", text::continue_()));
    ui.nodes.push(Node::button(
        Group::Code,
        "email",
        Value::String(address.into()),
        text::resend_code(),
    ));
}

/// Whether `s` looks like an e-mail address (one `@`, something on both sides, no spaces).
pub(crate) fn is_email(s: &str) -> bool {
    let s = s.trim();
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_emails_are_checked() {
        for _ in 0..50 {
            let c = generate();
            assert_eq!(c.expose().len(), 6);
            assert!(c.expose().chars().all(|ch| ch.is_ascii_digit()));
        }
        assert!(is_email("a@b.c"));
        assert!(!is_email("a@"));
        assert!(!is_email("a b@c"));
        assert!(!is_email("nope"));
    }
}
