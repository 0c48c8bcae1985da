//! Storage, one trait per capability ([`IdentityStore`], [`SessionStore`], [`FlowStore`],
//! [`ErrorStore`]) and one SQL implementation over [`portcullis_db::Db`], written once for
//! SQLite and PostgreSQL (TEXT ids and JSON, BIGINT millisecond timestamps and 0/1 flags).
//! Uniqueness (identifiers, addresses, external ids) is enforced by the database, so two
//! concurrent registrations of one e-mail cannot both succeed.

use std::collections::BTreeMap;

use async_trait::async_trait;
use portcullis_core::timefmt::{from_unix_millis, unix_millis};
use portcullis_db::Db;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::identity::{Credential, Identity, RecoveryAddress, State, VerifiableAddress};
use crate::selfservice::flow::{Flow, FlowType, Kind};
use crate::session::{Device, Session};

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique identifier, address or external id is taken.
    #[error("conflicts with an existing record")]
    Conflict,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// A stored value could not be read back.
    #[error("corrupt stored {0}")]
    Corrupt(&'static str),
}

type Result<T> = std::result::Result<T, StoreError>;

/// Identities with their credentials and addresses.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Inserts an identity with its credentials and addresses, atomically.
    async fn create_identity(&self, identity: &Identity) -> Result<()>;
    /// Loads an identity; credentials only when asked for.
    async fn get_identity(&self, id: Uuid, with_credentials: bool) -> Result<Option<Identity>>;
    /// A page of identities, oldest first.
    async fn list_identities(&self, limit: i64, offset: i64) -> Result<Vec<Identity>>;
    /// Replaces an identity's traits, state, metadata, credentials and addresses (the
    /// identity must have been loaded with its credentials, or they are dropped).
    async fn update_identity(&self, identity: &Identity) -> Result<()>;
    /// Deletes an identity (and, by cascade, its credentials and sessions).
    async fn delete_identity(&self, id: Uuid) -> Result<bool>;
    /// The identity id and credential holding login `identifier` for credential `kind`.
    async fn find_credential(
        &self,
        kind: &str,
        identifier: &str,
    ) -> Result<Option<(Uuid, Credential)>>;
}

/// Sessions, found by token digest.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a session with the digests of its session and logout tokens.
    async fn create_session(
        &self,
        session: &Session,
        token_hash: &str,
        logout_hash: &str,
    ) -> Result<()>;
    /// The session whose token digest is `token_hash`, with its identity.
    async fn session_by_token(&self, token_hash: &str) -> Result<Option<Session>>;
    /// The session whose logout token digest is `logout_hash`.
    async fn session_by_logout_token(&self, logout_hash: &str) -> Result<Option<Session>>;
    /// Records a fresh authentication on a session (login with `refresh=true`).
    async fn refresh_session(&self, session: &Session) -> Result<()>;
    /// Marks a session revoked.
    async fn revoke_session(&self, id: Uuid) -> Result<()>;
    /// A session by id, with its identity.
    async fn get_session(&self, id: Uuid) -> Result<Option<Session>>;
    /// The sessions of an identity, newest first; only unrevoked, unexpired ones when
    /// `active_only`.
    async fn sessions_of(&self, identity_id: Uuid, active_only: bool) -> Result<Vec<Session>>;
    /// Revokes every active session of an identity except `keep`; returns how many.
    async fn revoke_sessions_of(&self, identity_id: Uuid, keep: Option<Uuid>) -> Result<u64>;
}

/// Self-service flows.
#[async_trait]
pub trait FlowStore: Send + Sync {
    /// Inserts a flow.
    async fn create_flow(&self, flow: &Flow) -> Result<()>;
    /// Loads a flow of `kind`.
    async fn get_flow(&self, kind: Kind, id: Uuid) -> Result<Option<Flow>>;
    /// Saves a flow's mutable parts (ui, state, active method, csrf token, expiry).
    async fn update_flow(&self, flow: &Flow) -> Result<()>;
}

/// Errors shown to browsers through `/self-service/errors?id=`.
#[async_trait]
pub trait ErrorStore: Send + Sync {
    /// Stores an error object and returns its id.
    async fn create_error(&self, error: &Value, csrf_token: &str) -> Result<Uuid>;
    /// Loads `(error, created_at)`.
    async fn get_error(&self, id: Uuid) -> Result<Option<(Value, OffsetDateTime)>>;
}

/// The SQL implementation of every store trait.
#[derive(Clone, Debug)]
pub struct SqlStore {
    db: Db,
}

impl SqlStore {
    /// Wraps a migrated database.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The connection pool (for stores in other modules).
    pub(crate) fn pool(&self) -> &sqlx::AnyPool {
        self.db.pool()
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1")
            .execute(self.db.pool())
            .await
            .is_ok()
    }
}

fn conflict_or(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Db(e),
    }
}

fn ms(t: OffsetDateTime) -> i64 {
    unix_millis(t)
}

fn uuid(row: &AnyRow, col: &str) -> Result<Uuid> {
    let s: String = row.try_get(col)?;
    Uuid::parse_str(&s).map_err(|_| StoreError::Corrupt("uuid"))
}

fn json_col(row: &AnyRow, col: &str) -> Result<Value> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(|_| StoreError::Corrupt("json"))
}

fn opt_json_col(row: &AnyRow, col: &str) -> Result<Option<Value>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| serde_json::from_str(&s).map_err(|_| StoreError::Corrupt("json")))
        .transpose()
}

fn time_col(row: &AnyRow, col: &str) -> Result<OffsetDateTime> {
    Ok(from_unix_millis(row.try_get::<i64, _>(col)?))
}

fn opt_time_col(row: &AnyRow, col: &str) -> Result<Option<OffsetDateTime>> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(from_unix_millis))
}

const IDENTITY_COLUMNS: &str = "id, schema_id, state, traits, metadata_public, metadata_admin, \
    external_id, state_changed_at, created_at, updated_at";

impl SqlStore {
    fn identity_from_row(row: &AnyRow) -> Result<Identity> {
        let state: String = row.try_get("state")?;
        Ok(Identity {
            id: uuid(row, "id")?,
            schema_id: row.try_get("schema_id")?,
            state: State::parse(&state).ok_or(StoreError::Corrupt("identity state"))?,
            state_changed_at: opt_time_col(row, "state_changed_at")?,
            traits: json_col(row, "traits")?,
            metadata_public: opt_json_col(row, "metadata_public")?,
            metadata_admin: opt_json_col(row, "metadata_admin")?,
            external_id: row.try_get("external_id")?,
            credentials: BTreeMap::new(),
            verifiable_addresses: Vec::new(),
            recovery_addresses: Vec::new(),
            created_at: time_col(row, "created_at")?,
            updated_at: time_col(row, "updated_at")?,
        })
    }

    /// Loads addresses (and optionally credentials) into `identity`.
    async fn load_details(&self, identity: &mut Identity, with_credentials: bool) -> Result<()> {
        let id = identity.id.to_string();
        let rows = sqlx::query(
            "SELECT id, via, value, verified, verified_at, status, created_at, updated_at \
             FROM identity_verifiable_addresses WHERE identity_id = $1 ORDER BY created_at, value",
        )
        .bind(&id)
        .fetch_all(self.db.pool())
        .await?;
        identity.verifiable_addresses = rows
            .iter()
            .map(|r| {
                Ok(VerifiableAddress {
                    id: uuid(r, "id")?,
                    value: r.try_get("value")?,
                    verified: r.try_get::<i64, _>("verified")? != 0,
                    via: r.try_get("via")?,
                    status: r.try_get("status")?,
                    verified_at: opt_time_col(r, "verified_at")?,
                    created_at: time_col(r, "created_at")?,
                    updated_at: time_col(r, "updated_at")?,
                })
            })
            .collect::<Result<_>>()?;
        let rows = sqlx::query(
            "SELECT id, via, value, created_at, updated_at FROM identity_recovery_addresses \
             WHERE identity_id = $1 ORDER BY created_at, value",
        )
        .bind(&id)
        .fetch_all(self.db.pool())
        .await?;
        identity.recovery_addresses = rows
            .iter()
            .map(|r| {
                Ok(RecoveryAddress {
                    id: uuid(r, "id")?,
                    value: r.try_get("value")?,
                    via: r.try_get("via")?,
                    created_at: time_col(r, "created_at")?,
                    updated_at: time_col(r, "updated_at")?,
                })
            })
            .collect::<Result<_>>()?;
        if with_credentials {
            let rows = sqlx::query(
                "SELECT id, type, config, version, created_at, updated_at \
                 FROM identity_credentials WHERE identity_id = $1",
            )
            .bind(&id)
            .fetch_all(self.db.pool())
            .await?;
            for r in &rows {
                let mut cred = Self::credential_from_row(r)?;
                cred.identifiers = self.identifiers(cred.id).await?;
                identity.credentials.insert(cred.kind.clone(), cred);
            }
        }
        Ok(())
    }

    fn credential_from_row(r: &AnyRow) -> Result<Credential> {
        Ok(Credential {
            id: uuid(r, "id")?,
            kind: r.try_get("type")?,
            identifiers: Vec::new(),
            config: json_col(r, "config")?,
            version: r.try_get("version")?,
            created_at: time_col(r, "created_at")?,
            updated_at: time_col(r, "updated_at")?,
        })
    }

    async fn identifiers(&self, credential_id: Uuid) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT identifier FROM identity_credential_identifiers WHERE credential_id = $1 \
             ORDER BY identifier",
        )
        .bind(credential_id.to_string())
        .fetch_all(self.db.pool())
        .await?)
    }
}

fn opt_json_text(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(Value::to_string)
}

impl SqlStore {
    /// Inserts an identity's credentials (with identifiers) and addresses.
    async fn insert_parts(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        identity: &Identity,
    ) -> Result<()> {
        let id = identity.id.to_string();
        for cred in identity.credentials.values() {
            sqlx::query(
                "INSERT INTO identity_credentials (id, identity_id, type, config, version, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(cred.id.to_string())
            .bind(&id)
            .bind(&cred.kind)
            .bind(cred.config.to_string())
            .bind(cred.version)
            .bind(ms(cred.created_at))
            .bind(ms(cred.updated_at))
            .execute(&mut **tx)
            .await
            .map_err(conflict_or)?;
            for identifier in &cred.identifiers {
                sqlx::query(
                    "INSERT INTO identity_credential_identifiers (id, credential_id, identity_id, \
                     type, identifier, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(portcullis_core::new_id().to_string())
                .bind(cred.id.to_string())
                .bind(&id)
                .bind(&cred.kind)
                .bind(identifier)
                .bind(ms(cred.created_at))
                .execute(&mut **tx)
                .await
                .map_err(conflict_or)?;
            }
        }
        for a in &identity.verifiable_addresses {
            sqlx::query(
                "INSERT INTO identity_verifiable_addresses (id, identity_id, via, value, verified, \
                 verified_at, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(a.id.to_string())
            .bind(&id)
            .bind(&a.via)
            .bind(&a.value)
            .bind(i64::from(a.verified))
            .bind(a.verified_at.map(ms))
            .bind(&a.status)
            .bind(ms(a.created_at))
            .bind(ms(a.updated_at))
            .execute(&mut **tx)
            .await
            .map_err(conflict_or)?;
        }
        for a in &identity.recovery_addresses {
            sqlx::query(
                "INSERT INTO identity_recovery_addresses (id, identity_id, via, value, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(a.id.to_string())
            .bind(&id)
            .bind(&a.via)
            .bind(&a.value)
            .bind(ms(a.created_at))
            .bind(ms(a.updated_at))
            .execute(&mut **tx)
            .await
            .map_err(conflict_or)?;
        }
        Ok(())
    }
}

#[async_trait]
impl IdentityStore for SqlStore {
    async fn create_identity(&self, identity: &Identity) -> Result<()> {
        let mut tx = self.db.pool().begin().await?;
        let id = identity.id.to_string();
        sqlx::query(
            "INSERT INTO identities (id, schema_id, state, traits, metadata_public, metadata_admin, \
             external_id, state_changed_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&id)
        .bind(&identity.schema_id)
        .bind(identity.state.as_str())
        .bind(identity.traits.to_string())
        .bind(opt_json_text(&identity.metadata_public))
        .bind(opt_json_text(&identity.metadata_admin))
        .bind(identity.external_id.clone())
        .bind(identity.state_changed_at.map(ms))
        .bind(ms(identity.created_at))
        .bind(ms(identity.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(conflict_or)?;
        Self::insert_parts(&mut tx, identity).await?;
        tx.commit().await.map_err(conflict_or)?;
        Ok(())
    }

    async fn get_identity(&self, id: Uuid, with_credentials: bool) -> Result<Option<Identity>> {
        let row = sqlx::query(&format!(
            "SELECT {IDENTITY_COLUMNS} FROM identities WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut identity = Self::identity_from_row(&row)?;
        self.load_details(&mut identity, with_credentials).await?;
        Ok(Some(identity))
    }

    async fn list_identities(&self, limit: i64, offset: i64) -> Result<Vec<Identity>> {
        let rows = sqlx::query(&format!(
            "SELECT {IDENTITY_COLUMNS} FROM identities ORDER BY created_at, id LIMIT $1 OFFSET $2"
        ))
        .bind(limit)
        .bind(offset)
        .fetch_all(self.db.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut identity = Self::identity_from_row(row)?;
            self.load_details(&mut identity, true).await?;
            out.push(identity);
        }
        Ok(out)
    }

    async fn update_identity(&self, identity: &Identity) -> Result<()> {
        let mut tx = self.db.pool().begin().await?;
        let id = identity.id.to_string();
        sqlx::query(
            "UPDATE identities SET schema_id = $1, state = $2, traits = $3, metadata_public = $4, \
             metadata_admin = $5, external_id = $6, state_changed_at = $7, updated_at = $8 \
             WHERE id = $9",
        )
        .bind(&identity.schema_id)
        .bind(identity.state.as_str())
        .bind(identity.traits.to_string())
        .bind(opt_json_text(&identity.metadata_public))
        .bind(opt_json_text(&identity.metadata_admin))
        .bind(identity.external_id.clone())
        .bind(identity.state_changed_at.map(ms))
        .bind(ms(identity.updated_at))
        .bind(&id)
        .execute(&mut *tx)
        .await
        .map_err(conflict_or)?;
        for table in [
            "identity_credential_identifiers",
            "identity_credentials",
            "identity_verifiable_addresses",
            "identity_recovery_addresses",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE identity_id = $1"))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        Self::insert_parts(&mut tx, identity).await?;
        tx.commit().await.map_err(conflict_or)?;
        Ok(())
    }

    async fn delete_identity(&self, id: Uuid) -> Result<bool> {
        let done = sqlx::query("DELETE FROM identities WHERE id = $1")
            .bind(id.to_string())
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn find_credential(
        &self,
        kind: &str,
        identifier: &str,
    ) -> Result<Option<(Uuid, Credential)>> {
        let row = sqlx::query(
            "SELECT c.id, c.identity_id, c.type, c.config, c.version, c.created_at, c.updated_at \
             FROM identity_credential_identifiers i \
             JOIN identity_credentials c ON c.id = i.credential_id \
             WHERE i.type = $1 AND i.identifier = $2",
        )
        .bind(kind)
        .bind(identifier)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut cred = Self::credential_from_row(&row)?;
        cred.identifiers = self.identifiers(cred.id).await?;
        Ok(Some((uuid(&row, "identity_id")?, cred)))
    }
}

const SESSION_COLUMNS: &str = "id, identity_id, active, aal, authentication_methods, issued_at, \
    authenticated_at, expires_at";

impl SqlStore {
    async fn session_where(&self, column: &str, value: &str) -> Result<Option<Session>> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE {column} = $1"
        ))
        .bind(value)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id = uuid(&row, "id")?;
        let identity_id = uuid(&row, "identity_id")?;
        let methods = serde_json::from_value(json_col(&row, "authentication_methods")?)
            .map_err(|_| StoreError::Corrupt("authentication methods"))?;
        let devices = sqlx::query(
            "SELECT id, ip_address, user_agent FROM session_devices WHERE session_id = $1 \
             ORDER BY created_at",
        )
        .bind(id.to_string())
        .fetch_all(self.db.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(Device {
                id: uuid(r, "id")?,
                ip_address: r.try_get("ip_address")?,
                user_agent: r.try_get("user_agent")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let identity = self.get_identity(identity_id, false).await?;
        Ok(Some(Session {
            id,
            identity_id,
            active: row.try_get::<i64, _>("active")? != 0,
            aal: row.try_get("aal")?,
            authentication_methods: methods,
            issued_at: time_col(&row, "issued_at")?,
            authenticated_at: time_col(&row, "authenticated_at")?,
            expires_at: time_col(&row, "expires_at")?,
            devices,
            identity,
        }))
    }
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn create_session(
        &self,
        session: &Session,
        token_hash: &str,
        logout_hash: &str,
    ) -> Result<()> {
        let mut tx = self.db.pool().begin().await?;
        let now = ms(session.issued_at);
        let methods = serde_json::to_string(&session.authentication_methods)
            .map_err(|_| StoreError::Corrupt("authentication methods"))?;
        sqlx::query(
            "INSERT INTO sessions (id, identity_id, token_hash, logout_token_hash, active, aal, \
             authentication_methods, issued_at, authenticated_at, expires_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(session.id.to_string())
        .bind(session.identity_id.to_string())
        .bind(token_hash)
        .bind(logout_hash)
        .bind(i64::from(session.active))
        .bind(&session.aal)
        .bind(methods)
        .bind(now)
        .bind(ms(session.authenticated_at))
        .bind(ms(session.expires_at))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(conflict_or)?;
        for d in &session.devices {
            sqlx::query(
                "INSERT INTO session_devices (id, session_id, ip_address, user_agent, location, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(d.id.to_string())
            .bind(session.id.to_string())
            .bind(d.ip_address.clone())
            .bind(d.user_agent.clone())
            .bind(Option::<String>::None)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn session_by_token(&self, token_hash: &str) -> Result<Option<Session>> {
        self.session_where("token_hash", token_hash).await
    }

    async fn session_by_logout_token(&self, logout_hash: &str) -> Result<Option<Session>> {
        self.session_where("logout_token_hash", logout_hash).await
    }

    async fn refresh_session(&self, session: &Session) -> Result<()> {
        let methods = serde_json::to_string(&session.authentication_methods)
            .map_err(|_| StoreError::Corrupt("authentication methods"))?;
        sqlx::query(
            "UPDATE sessions SET authenticated_at = $1, authentication_methods = $2, \
             expires_at = $3, updated_at = $1 WHERE id = $4",
        )
        .bind(ms(session.authenticated_at))
        .bind(methods)
        .bind(ms(session.expires_at))
        .bind(session.id.to_string())
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    async fn revoke_session(&self, id: Uuid) -> Result<()> {
        sqlx::query("UPDATE sessions SET active = 0, updated_at = $1 WHERE id = $2")
            .bind(ms(OffsetDateTime::now_utc()))
            .bind(id.to_string())
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    async fn get_session(&self, id: Uuid) -> Result<Option<Session>> {
        self.session_where("id", &id.to_string()).await
    }

    async fn sessions_of(&self, identity_id: Uuid, active_only: bool) -> Result<Vec<Session>> {
        let now = ms(OffsetDateTime::now_utc());
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM sessions WHERE identity_id = $1 \
             AND ($2 = 0 OR (active = 1 AND expires_at > $3)) ORDER BY issued_at DESC, id",
        )
        .bind(identity_id.to_string())
        .bind(i64::from(active_only))
        .bind(now)
        .fetch_all(self.db.pool())
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(s) = self.session_where("id", &id).await? {
                out.push(s);
            }
        }
        Ok(out)
    }

    async fn revoke_sessions_of(&self, identity_id: Uuid, keep: Option<Uuid>) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE sessions SET active = 0, updated_at = $1 \
             WHERE identity_id = $2 AND active = 1 AND id <> $3",
        )
        .bind(ms(OffsetDateTime::now_utc()))
        .bind(identity_id.to_string())
        .bind(keep.map(|k| k.to_string()).unwrap_or_default())
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl FlowStore for SqlStore {
    async fn create_flow(&self, flow: &Flow) -> Result<()> {
        let ui = serde_json::to_string(&flow.ui).map_err(|_| StoreError::Corrupt("flow ui"))?;
        sqlx::query(
            "INSERT INTO selfservice_flows (id, kind, type, state, csrf_token, request_url, \
             return_to, active_method, identity_schema, refresh, ui, issued_at, expires_at, \
             created_at, updated_at, identity_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(flow.id.to_string())
        .bind(flow.kind.as_str())
        .bind(flow.flow_type.as_str())
        .bind(&flow.state)
        .bind(&flow.csrf_token)
        .bind(&flow.request_url)
        .bind(flow.return_to.clone())
        .bind(flow.active.clone())
        .bind(flow.identity_schema.clone())
        .bind(i64::from(flow.refresh))
        .bind(ui)
        .bind(ms(flow.issued_at))
        .bind(ms(flow.expires_at))
        .bind(ms(flow.created_at))
        .bind(ms(flow.updated_at))
        .bind(flow.identity_id.map(|i| i.to_string()))
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    async fn get_flow(&self, kind: Kind, id: Uuid) -> Result<Option<Flow>> {
        let row = sqlx::query(
            "SELECT id, type, state, csrf_token, request_url, return_to, active_method, \
             identity_schema, refresh, ui, issued_at, expires_at, created_at, updated_at, \
             identity_id FROM selfservice_flows WHERE id = $1 AND kind = $2",
        )
        .bind(id.to_string())
        .bind(kind.as_str())
        .fetch_optional(self.db.pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let flow_type: String = r.try_get("type")?;
        Ok(Some(Flow {
            id: uuid(&r, "id")?,
            kind,
            flow_type: FlowType::parse(&flow_type).ok_or(StoreError::Corrupt("flow type"))?,
            state: r.try_get("state")?,
            csrf_token: r.try_get("csrf_token")?,
            request_url: r.try_get("request_url")?,
            return_to: r.try_get("return_to")?,
            active: r.try_get("active_method")?,
            identity_schema: r.try_get("identity_schema")?,
            refresh: r.try_get::<i64, _>("refresh")? != 0,
            identity_id: r
                .try_get::<Option<String>, _>("identity_id")?
                .map(|i| Uuid::parse_str(&i).map_err(|_| StoreError::Corrupt("uuid")))
                .transpose()?,
            identity: None,
            ui: serde_json::from_value(json_col(&r, "ui")?)
                .map_err(|_| StoreError::Corrupt("flow ui"))?,
            issued_at: time_col(&r, "issued_at")?,
            expires_at: time_col(&r, "expires_at")?,
            created_at: time_col(&r, "created_at")?,
            updated_at: time_col(&r, "updated_at")?,
        }))
    }

    async fn update_flow(&self, flow: &Flow) -> Result<()> {
        let ui = serde_json::to_string(&flow.ui).map_err(|_| StoreError::Corrupt("flow ui"))?;
        sqlx::query(
            "UPDATE selfservice_flows SET state = $1, csrf_token = $2, active_method = $3, \
             ui = $4, updated_at = $5, expires_at = $6 WHERE id = $7",
        )
        .bind(&flow.state)
        .bind(&flow.csrf_token)
        .bind(flow.active.clone())
        .bind(ui)
        .bind(ms(flow.updated_at))
        .bind(ms(flow.expires_at))
        .bind(flow.id.to_string())
        .execute(self.db.pool())
        .await?;
        Ok(())
    }
}

#[async_trait]
impl ErrorStore for SqlStore {
    async fn create_error(&self, error: &Value, csrf_token: &str) -> Result<Uuid> {
        let id = portcullis_core::new_id();
        let now = ms(OffsetDateTime::now_utc());
        sqlx::query(
            "INSERT INTO selfservice_errors (id, error, csrf_token, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.to_string())
        .bind(error.to_string())
        .bind(csrf_token)
        .bind(now)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok(id)
    }

    async fn get_error(&self, id: Uuid) -> Result<Option<(Value, OffsetDateTime)>> {
        let row = sqlx::query("SELECT error, created_at FROM selfservice_errors WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.db.pool())
            .await?;
        row.map(|r| Ok((json_col(&r, "error")?, time_col(&r, "created_at")?)))
            .transpose()
    }
}

/// The admin identity listing's filters and page.
#[derive(Debug, Default, Clone)]
pub struct IdentityQuery {
    /// Only these identities (`ids`).
    pub ids: Option<Vec<Uuid>>,
    /// Only identities with a credential identifier equal to this (`credentials_identifier`).
    pub credentials_identifier: Option<String>,
    /// Only identities with a credential identifier containing this, case-insensitively
    /// (`preview_credentials_identifier_similar`).
    pub identifier_similar: Option<String>,
    /// Keyset pagination: identities with an id after this one, ordered by id.
    pub after: Option<Uuid>,
    /// Legacy offset pagination (ordered by creation); used when `after` is `None`.
    pub offset: i64,
    /// At most this many.
    pub limit: i64,
}

impl SqlStore {
    /// Lists identities (with credentials and addresses) matching `q`.
    pub async fn query_identities(&self, q: &IdentityQuery) -> Result<Vec<Identity>> {
        let mut conditions = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        fn next(binds: &mut Vec<String>, v: String) -> String {
            binds.push(v);
            format!("${}", binds.len())
        }
        if let Some(ids) = &q.ids {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let marks: Vec<String> = ids
                .iter()
                .map(|id| next(&mut binds, id.to_string()))
                .collect();
            conditions.push(format!("id IN ({})", marks.join(", ")));
        }
        if let Some(identifier) = &q.credentials_identifier {
            let m = next(&mut binds, identifier.clone());
            conditions.push(format!(
                "id IN (SELECT identity_id FROM identity_credential_identifiers WHERE identifier = {m})"
            ));
        }
        if let Some(part) = &q.identifier_similar {
            let escaped = part
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            let m = next(&mut binds, format!("%{escaped}%"));
            conditions.push(format!(
                "id IN (SELECT identity_id FROM identity_credential_identifiers \
                 WHERE LOWER(identifier) LIKE {m} ESCAPE '\\')"
            ));
        }
        let order = match q.after {
            Some(after) => {
                let m = next(&mut binds, after.to_string());
                conditions.push(format!("id > {m}"));
                "ORDER BY id"
            }
            None => "ORDER BY created_at, id",
        };
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {IDENTITY_COLUMNS} FROM identities {filter} {order} LIMIT {} OFFSET {}",
            q.limit.max(0),
            if q.after.is_some() {
                0
            } else {
                q.offset.max(0)
            }
        );
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = query.bind(b);
        }
        let rows = query.fetch_all(self.db.pool()).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut identity = Self::identity_from_row(row)?;
            self.load_details(&mut identity, true).await?;
            out.push(identity);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Credential;
    use portcullis_db::testing::TestDb;
    use serde_json::json;

    fn person(email: &str) -> Identity {
        let now = OffsetDateTime::now_utc();
        let mut identity = Identity::new("default", json!({"email": email}), now);
        identity.set_addresses(
            vec![("email".into(), email.into())],
            vec![("email".into(), email.into())],
            now,
        );
        identity.credentials.insert(
            "password".into(),
            Credential {
                id: portcullis_core::new_id(),
                kind: "password".into(),
                identifiers: vec![email.into()],
                config: json!({"hashed_password": "$argon2id$x"}),
                version: 0,
                created_at: now,
                updated_at: now,
            },
        );
        identity
    }

    async fn identities_sessions_and_flows(db: &Db) {
        db.migrate(&[crate::migrations()]).await.expect("migrate");
        let store = SqlStore::new(db.clone());
        let a = person("a@example.com");
        store.create_identity(&a).await.expect("create");
        assert!(matches!(
            store.create_identity(&person("a@example.com")).await,
            Err(StoreError::Conflict)
        ));
        let (id, cred) = store
            .find_credential("password", "a@example.com")
            .await
            .expect("query")
            .expect("found");
        assert_eq!(id, a.id);
        assert_eq!(cred.config["hashed_password"], "$argon2id$x");
        let loaded = store
            .get_identity(a.id, true)
            .await
            .expect("get")
            .expect("some");
        assert_eq!(loaded.verifiable_addresses.len(), 1);
        assert_eq!(
            loaded.credentials["password"].identifiers,
            ["a@example.com"]
        );
        assert_eq!(store.list_identities(10, 0).await.expect("list").len(), 1);

        let issued = Session::issue(
            loaded,
            "password",
            time::Duration::hours(1),
            Device {
                id: portcullis_core::new_id(),
                ip_address: Some("127.0.0.1".into()),
                user_agent: None,
            },
            OffsetDateTime::now_utc(),
        );
        store
            .create_session(&issued.session, "tok", "logout")
            .await
            .expect("session");
        let s = store.session_by_token("tok").await.expect("q").expect("s");
        assert!(s.is_active(OffsetDateTime::now_utc()));
        assert_eq!(s.devices[0].ip_address.as_deref(), Some("127.0.0.1"));
        store.revoke_session(s.id).await.expect("revoke");
        let s = store
            .session_by_logout_token("logout")
            .await
            .expect("q")
            .expect("s");
        assert!(!s.is_active(OffsetDateTime::now_utc()));

        // Deleting the identity takes its credentials and sessions with it.
        assert!(store.delete_identity(a.id).await.expect("delete"));
        assert!(!store.delete_identity(a.id).await.expect("delete again"));
        assert!(store.session_by_token("tok").await.expect("q").is_none());
        assert!(
            store
                .find_credential("password", "a@example.com")
                .await
                .expect("q")
                .is_none()
        );
        assert!(
            store
                .get_error(portcullis_core::new_id())
                .await
                .expect("q")
                .is_none()
        );
        let eid = store
            .create_error(&json!({"code": 500}), "")
            .await
            .expect("err");
        assert_eq!(
            store.get_error(eid).await.expect("q").expect("e").0["code"],
            500
        );
    }

    #[tokio::test]
    async fn store_on_sqlite() {
        let db = TestDb::sqlite().await;
        identities_sessions_and_flows(&db).await;
    }

    #[tokio::test]
    async fn store_on_postgres() {
        let Some(db) = TestDb::postgres().await else {
            return;
        };
        identities_sessions_and_flows(&db).await;
    }
}
