//! The `link` method for verification and recovery: a one-time link is e-mailed, and opening
//! it (`GET /self-service/<flow>?flow=<id>&token=<token>`) completes the flow. Tokens are 32
//! random characters kept only as HMACs bound to their flow, are single-use and expire after
//! `methods.link.config.lifespan` (or the administrator's `expires_in`). A bad, used or expired
//! link starts a fresh flow that says why, as Kratos does.

use async_trait::async_trait;
use portcullis_core::Secret;
use portcullis_core::timefmt::unix_millis;
use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::join_url;
use crate::driver::Registry;
use crate::persistence::{SqlStore, StoreError};
use crate::selfservice::flow::Kind;
use crate::selfservice::strategy::code;
use crate::text;
use crate::ui::{Container, Group, Node};

/// A link token as stored.
#[derive(Debug, Clone)]
pub struct StoredToken {
    /// Row id.
    pub id: Uuid,
    /// The flow it completes.
    pub flow_id: Uuid,
    /// `verification` or `recovery`.
    pub kind: Kind,
    /// HMAC of the token.
    pub token_hash: String,
    /// Whose.
    pub identity_id: Uuid,
    /// The address it was sent to (empty for links made by an administrator).
    pub address: String,
    /// Valid until.
    pub expires_at: OffsetDateTime,
}

/// What opening a link found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// A valid token, now used: `(identity_id, address)`.
    Valid(Uuid, String),
    /// A real but expired token, expired at this time.
    Expired(OffsetDateTime),
    /// No such token for the flow, or already used.
    Invalid,
}

/// Link token storage.
#[async_trait]
pub trait LinkStore: Send + Sync {
    /// Stores a token (its HMAC).
    async fn create_link_token(&self, token: &StoredToken) -> Result<(), StoreError>;
    /// Uses the token of `flow_id` whose HMAC is `token_hash`, at most once.
    async fn use_link_token(
        &self,
        flow_id: Uuid,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Redeemed, StoreError>;
}

#[async_trait]
impl LinkStore for SqlStore {
    async fn create_link_token(&self, t: &StoredToken) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO selfservice_link_tokens (id, flow_id, kind, token_hash, identity_id, \
             address, expires_at, used_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8)",
        )
        .bind(t.id.to_string())
        .bind(t.flow_id.to_string())
        .bind(t.kind.as_str())
        .bind(&t.token_hash)
        .bind(t.identity_id.to_string())
        .bind(&t.address)
        .bind(unix_millis(t.expires_at))
        .bind(unix_millis(OffsetDateTime::now_utc()))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn use_link_token(
        &self,
        flow_id: Uuid,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Redeemed, StoreError> {
        let row = sqlx::query(
            "SELECT id, identity_id, address, expires_at FROM selfservice_link_tokens \
             WHERE flow_id = $1 AND token_hash = $2 AND used_at IS NULL",
        )
        .bind(flow_id.to_string())
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(Redeemed::Invalid);
        };
        let expires_at =
            portcullis_core::timefmt::from_unix_millis(row.try_get::<i64, _>("expires_at")?);
        if expires_at <= now {
            return Ok(Redeemed::Expired(expires_at));
        }
        let id: String = row.try_get("id")?;
        // The conditional update makes a link single-use even when opened twice at once.
        let done = sqlx::query(
            "UPDATE selfservice_link_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL",
        )
        .bind(unix_millis(now))
        .bind(&id)
        .execute(self.pool())
        .await?;
        if done.rows_affected() != 1 {
            return Ok(Redeemed::Invalid);
        }
        let identity: String = row.try_get("identity_id")?;
        let identity = Uuid::parse_str(&identity).map_err(|_| StoreError::Corrupt("uuid"))?;
        Ok(Redeemed::Valid(identity, row.try_get("address")?))
    }
}

/// Creates and stores a token for `identity_id` in flow `flow_id`; returns the link to send
/// and when it expires.
pub(crate) async fn issue(
    reg: &Registry,
    flow_id: Uuid,
    kind: Kind,
    identity_id: Uuid,
    address: &str,
    lifespan: time::Duration,
) -> Result<(Secret<String>, OffsetDateTime), StoreError> {
    let token = portcullis_core::random_alphanumeric(32);
    let expires_at = reg.now() + lifespan;
    reg.store
        .create_link_token(&StoredToken {
            id: portcullis_core::new_id(),
            flow_id,
            kind,
            token_hash: code::hash(reg, flow_id, &token),
            identity_id,
            address: address.to_string(),
            expires_at,
        })
        .await?;
    let base = reg
        .config
        .link
        .base_url
        .as_ref()
        .unwrap_or(&reg.config.public_base_url);
    let mut url =
        match url::Url::parse(&join_url(base, &format!("/self-service/{}", kind.as_str()))) {
            Ok(u) => u,
            Err(_) => return Err(StoreError::Corrupt("link base URL")),
        };
    url.query_pairs_mut()
        .append_pair("flow", &flow_id.to_string())
        .append_pair("token", &token);
    Ok((Secret::new(url.to_string()), expires_at))
}

/// Uses `token` of `flow_id`.
pub(crate) async fn redeem(
    reg: &Registry,
    flow_id: Uuid,
    token: &str,
) -> Result<Redeemed, StoreError> {
    if token.trim().is_empty() {
        return Ok(Redeemed::Invalid);
    }
    reg.store
        .use_link_token(flow_id, &code::hash(reg, flow_id, token), reg.now())
        .await
}

/// The link method's form: e-mail address and "Submit" (`method=link`); `address` refills
/// the field after a link was sent.
pub(crate) fn email_nodes(ui: &mut Container, masked_csrf: Option<&str>, address: Option<&str>) {
    let csrf = match masked_csrf {
        Some(token) => Some(Node::csrf(token)),
        None => ui.nodes.iter().find(|n| n.name() == "csrf_token").cloned(),
    };
    ui.nodes.clear();
    ui.nodes.extend(csrf);
    let mut email = Node::input(Group::Link, "email", "email")
        .required()
        .autocomplete("email")
        .label(text::label_email());
    if let Some(a) = address {
        email = email.value_str(a);
    }
    ui.nodes.push(email);
    ui.nodes
        .push(Node::submit(Group::Link, "link", text::submit()));
}
