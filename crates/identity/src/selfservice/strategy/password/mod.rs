//! The `password` method: login with identifier + password, registration with traits +
//! password. Failures are written into the flow's UI (field messages on the node, flow-level
//! messages on the form) and the caller answers with the updated flow.

pub mod breach;
pub mod throttle;
pub mod validator;

use portcullis_core::Secret;
use serde_json::{Value, json};

use crate::driver::Registry;
use crate::error::ApiError;
use crate::identity::{Credential, Identity, State};
use crate::persistence::{IdentityStore, StoreError};
use crate::schema::normalize_identifier;
use crate::selfservice::flow::Flow;
use crate::selfservice::hook;
use crate::text;
use crate::x::body_str;

/// Why a submission did not complete.
pub(crate) enum Failure {
    /// The flow's UI now carries the messages; answer with the flow.
    Form,
    /// Something broke; answer with this error.
    Error(ApiError),
    /// Too many failed attempts: the flow's UI carries the lock message; answer with the
    /// flow and `Retry-After` of this many seconds.
    Locked(u64),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Error(e.into())
    }
}

/// Checks identifier and password. Unknown identifiers cost a full hash verification, and
/// both failures give the same message (4000006), so neither timing nor text tells whether
/// an account exists. Failures count towards the brute-force limits of the identifier and
/// of `peer`; a locked identifier or IP is refused before any hash is computed.
pub(crate) async fn login(
    reg: &Registry,
    flow: &mut Flow,
    body: &Value,
    peer: Option<std::net::IpAddr>,
) -> Result<Identity, Failure> {
    let identifier = body_str(body, "identifier")
        .or_else(|| body_str(body, "password_identifier"))
        .unwrap_or_default()
        .to_string();
    let password = body_str(body, "password").unwrap_or_default().to_string();
    flow.ui.reset_messages();
    flow.ui.refill(body);
    if identifier.trim().is_empty() {
        flow.ui
            .add_message("identifier", text::missing_property("identifier"));
    }
    if password.is_empty() {
        flow.ui
            .add_message("password", text::missing_property("password"));
    }
    if identifier.trim().is_empty() || password.is_empty() {
        return Err(Failure::Form);
    }
    let normalized = normalize_identifier(&identifier);
    let guard = throttle::Guard::new(reg, &normalized, peer);
    if let Some(wait) = guard.locked().await? {
        flow.ui.messages.push(text::login_locked(wait));
        return Err(Failure::Locked(wait));
    }
    let found = reg.store.find_credential("password", &normalized).await?;
    let hash = found.as_ref().and_then(|(_, c)| {
        c.config
            .get("hashed_password")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let ok = reg
        .hasher
        .verify(Secret::new(password.clone()), hash.clone())
        .await;
    let identity = match (ok, found) {
        (true, Some((identity_id, _))) => reg.store.get_identity(identity_id, false).await?,
        _ => None,
    };
    let identity = match (identity, hash) {
        (Some(identity), Some(hash)) if reg.hasher.needs_rehash(&hash) => {
            Some(upgrade_hash(reg, identity, password).await)
        }
        (identity, _) => identity,
    };
    let Some(identity) = identity else {
        if let Some(wait) = guard.failed().await? {
            flow.ui.messages.push(text::login_locked(wait));
            return Err(Failure::Locked(wait));
        }
        flow.ui.messages.push(text::invalid_credentials());
        return Err(Failure::Form);
    };
    guard.succeeded().await?;
    if identity.state != State::Active {
        flow.ui.messages.push(text::identity_disabled());
        return Err(Failure::Form);
    }
    Ok(identity)
}

/// Re-hashes an imported (or outdated-format) password with the configured algorithm after a
/// successful login. Failure to store it only logs: the login itself has succeeded.
async fn upgrade_hash(reg: &Registry, identity: Identity, password: String) -> Identity {
    let hashed = match reg.hasher.hash(Secret::new(password)).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "could not re-hash an imported password");
            return identity;
        }
    };
    let mut full = match reg.store.get_identity(identity.id, true).await {
        Ok(Some(full)) => full,
        Ok(None) => return identity,
        Err(e) => {
            tracing::warn!(error = %e, "could not load credentials to re-hash a password");
            return identity;
        }
    };
    let now = reg.now();
    if let Some(cred) = full.credentials.get_mut("password") {
        cred.config = json!({ "hashed_password": hashed });
        cred.updated_at = now;
    }
    if let Err(e) = reg.store.update_identity(&full).await {
        tracing::warn!(error = %e, identity = %identity.id, "could not store a re-hashed password");
    }
    identity
}

/// Validates traits against the identity schema and the password against the policy, then
/// creates the identity with its password credential and addresses.
pub(crate) async fn register(
    reg: &Registry,
    ctx: &crate::x::Ctx,
    flow: &mut Flow,
    body: &Value,
) -> Result<Identity, Failure> {
    let Some(schema) = reg.config.schemas().default_schema() else {
        return Err(Failure::Error(ApiError::internal(
            &"no default identity schema",
        )));
    };
    let mut traits = body.get("traits").cloned().unwrap_or_else(|| json!({}));
    schema.coerce_form_traits(&mut traits);
    let password = body_str(body, "password").unwrap_or_default().to_string();
    flow.ui.reset_messages();
    flow.ui.refill(body);
    let mut failed = false;
    for (name, message) in schema.validate_traits(&traits) {
        flow.ui.add_message(&name, message);
        failed = true;
    }
    if password.is_empty() {
        flow.ui
            .add_message("password", text::missing_property("password"));
        failed = true;
    }
    if failed {
        return Err(Failure::Form);
    }
    let identifiers = schema.password_identifiers(&traits);
    if identifiers.is_empty() {
        flow.ui.messages.push(text::validation_generic(
            "No login identifiers (e.g. email, phone number, username) were set. Contact an administrator, the identity schema is misconfigured.",
        ));
        return Err(Failure::Form);
    }
    if let Err(message) = check_new_password(reg, &identifiers, &password).await {
        flow.ui.add_message("password", message);
        return Err(Failure::Form);
    }
    let hashed = reg
        .hasher
        .hash(Secret::new(password))
        .await
        .map_err(|e| Failure::Error(e.into()))?;
    let mut identity = new_identity(reg, schema.id(), traits, identifiers, hashed);
    // Web hooks that may interrupt or change the identity see it before it is stored.
    let hooks = &reg.config.web_hooks.registration_after;
    if let Err(refused) = hook::pre_persist(reg, ctx, flow, hooks, &mut identity, None).await {
        return Err(match refused {
            hook::Refused::Form => Failure::Form,
            hook::Refused::Error(e) => Failure::Error(e),
        });
    }
    match reg.store.create_identity(&identity).await {
        Ok(()) => Ok(identity),
        Err(StoreError::Conflict) => {
            flow.ui.messages.push(text::duplicate_credentials());
            Err(Failure::Form)
        }
        Err(e) => Err(e.into()),
    }
}

/// The policy for a new password: length, similarity to each identifier, then the
/// breached-password lookups (offline list, Have I Been Pwned).
pub(crate) async fn check_new_password(
    reg: &Registry,
    identifiers: &[String],
    password: &str,
) -> Result<(), crate::text::Text> {
    if identifiers.is_empty() {
        reg.config.password_policy.check("", password)?;
    }
    for identifier in identifiers {
        reg.config.password_policy.check(identifier, password)?;
    }
    reg.breaches.check(password).await
}

/// An identity with a password credential and the addresses its schema declares.
pub(crate) fn new_identity(
    reg: &Registry,
    schema_id: &str,
    traits: Value,
    identifiers: Vec<String>,
    hashed_password: String,
) -> Identity {
    let now = reg.now();
    let mut identity = Identity::new(schema_id, traits, now);
    if let Some(schema) = reg.config.schemas().get(schema_id) {
        identity.set_addresses(
            schema.verifiable_addresses(&identity.traits),
            schema.recovery_addresses(&identity.traits),
            now,
        );
    }
    identity.credentials.insert(
        "password".into(),
        Credential {
            id: portcullis_core::new_id(),
            kind: "password".into(),
            identifiers,
            config: json!({ "hashed_password": hashed_password }),
            version: 0,
            created_at: now,
            updated_at: now,
        },
    );
    identity
}
