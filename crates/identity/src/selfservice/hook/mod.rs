//! Configurable hooks that call out of the server: `web_hook` (with Jsonnet bodies) before and
//! after flows. The built-in after-hooks (`session`, `show_verification_ui`,
//! `revoke_active_sessions`, `require_verified_address`) are switches in the configuration;
//! these are the hooks that carry their own configuration.
//!
//! After-hooks that may interrupt or change the identity (`can_interrupt`, `response.parse`)
//! run *pre-persist* on registration and settings — before the identity is stored, so an
//! interruption leaves nothing behind ([`pre_persist`]); the others run once the change is
//! stored ([`after`]). Recovery and verification have no pre-persist stage: their hooks run
//! after the flow's effect, and the flow handlers undo what can be undone.

pub mod jsonnet;
pub mod web_hook;

use std::path::Path;

use serde_json::Value;

use crate::driver::Registry;
use crate::error::ApiError;
use crate::identity::{Identity, View};
use crate::selfservice::flow::Flow;
use crate::text;
use crate::x::Ctx;
use web_hook::{HookError, WebHook};

/// The `web_hook`s of every flow and phase, in configuration order.
#[derive(Debug, Clone, Default)]
pub struct WebHooks {
    /// `registration.before.hooks`.
    pub registration_before: Vec<WebHook>,
    /// `registration.after[.password].hooks`.
    pub registration_after: Vec<WebHook>,
    /// `login.before.hooks`.
    pub login_before: Vec<WebHook>,
    /// `login.after[.password].hooks`.
    pub login_after: Vec<WebHook>,
    /// `settings.before.hooks`.
    pub settings_before: Vec<WebHook>,
    /// `settings.after.hooks`, then `settings.after.profile.hooks`.
    pub settings_after_profile: Vec<WebHook>,
    /// `settings.after.hooks`, then `settings.after.password.hooks`.
    pub settings_after_password: Vec<WebHook>,
    /// `recovery.before.hooks`.
    pub recovery_before: Vec<WebHook>,
    /// `recovery.after.hooks`.
    pub recovery_after: Vec<WebHook>,
    /// `verification.before.hooks`.
    pub verification_before: Vec<WebHook>,
    /// `verification.after.hooks`.
    pub verification_after: Vec<WebHook>,
}

impl WebHooks {
    /// Compiles every `web_hook` under `selfservice.flows`; an error names the JSON pointer
    /// of the hook's configuration.
    pub fn compile(doc: &Value, base_dir: &Path) -> Result<Self, (String, web_hook::ConfigError)> {
        let collect = |flow: &str, phase: &str, methods: &[&str]| {
            let mut pointers = vec![format!("/selfservice/flows/{flow}/{phase}/hooks")];
            pointers.extend(
                methods
                    .iter()
                    .map(|m| format!("/selfservice/flows/{flow}/{phase}/{m}/hooks")),
            );
            let mut out = Vec::new();
            for pointer in pointers {
                let Some(list) = doc.pointer(&pointer).and_then(Value::as_array) else {
                    continue;
                };
                for (i, hook) in list.iter().enumerate() {
                    if hook.get("hook").and_then(Value::as_str) != Some("web_hook") {
                        continue;
                    }
                    let config = hook.get("config").cloned().unwrap_or(Value::Null);
                    out.push(
                        WebHook::compile(&config, base_dir)
                            .map_err(|e| (format!("{pointer}/{i}/config"), e))?,
                    );
                }
            }
            Ok::<_, (String, web_hook::ConfigError)>(out)
        };
        Ok(Self {
            registration_before: collect("registration", "before", &[])?,
            registration_after: collect("registration", "after", &["password"])?,
            login_before: collect("login", "before", &[])?,
            login_after: collect("login", "after", &["password"])?,
            settings_before: collect("settings", "before", &[])?,
            settings_after_profile: collect("settings", "after", &["profile"])?,
            settings_after_password: collect("settings", "after", &["password"])?,
            recovery_before: collect("recovery", "before", &[])?,
            recovery_after: collect("recovery", "after", &[])?,
            verification_before: collect("verification", "before", &[])?,
            verification_after: collect("verification", "after", &[])?,
        })
    }

    /// The settings after-hooks for a change by `method` (`profile` or `password`).
    pub fn settings_after(&self, method: &str) -> &[WebHook] {
        if method == "password" {
            &self.settings_after_password
        } else {
            &self.settings_after_profile
        }
    }
}

/// Runs `hooks` in order for `flow` (with the flow's `identity` and `session` where it has
/// them); the first failure stops the rest. Identity changes (`response.parse`) are not
/// applied here: such hooks belong in [`pre_persist`].
pub(crate) async fn after<'a>(
    reg: &Registry,
    ctx: &Ctx,
    flow: &Flow,
    hooks: impl IntoIterator<Item = &'a WebHook>,
    identity: Option<Value>,
    session: Option<Value>,
) -> Result<(), HookError> {
    let mut template_ctx = None;
    for hook in hooks {
        let c = template_ctx.get_or_insert_with(|| {
            web_hook::context(
                ctx,
                &reg.config.public_base_url,
                &flow.to_json(),
                identity.clone(),
                session.clone(),
            )
        });
        hook.execute(&reg.http, c).await?;
    }
    Ok(())
}

/// Runs `hooks` after a flow completed; a failure (the flow's result stands) is answered
/// with an error instead of the flow's usual answer.
pub(crate) async fn after_completed(
    reg: &Registry,
    ctx: &Ctx,
    flow: &Flow,
    hooks: impl IntoIterator<Item = &WebHook>,
    identity: Option<Value>,
    session: Option<Value>,
) -> Result<(), ApiError> {
    after(reg, ctx, flow, hooks, identity, session)
        .await
        .map_err(failed)
}

/// The error for a hook that failed where its flow cannot show messages.
pub(crate) fn failed(error: HookError) -> ApiError {
    let reason = match error {
        HookError::Interrupted(_) => {
            "A web hook interrupted the flow after it had completed.".into()
        }
        HookError::Failed(reason) => reason,
    };
    ApiError::new(http::StatusCode::INTERNAL_SERVER_ERROR).reason(reason)
}

/// Runs a flow's `before` hooks: an interruption or failure is an error for the client.
pub(crate) async fn before(
    reg: &Registry,
    ctx: &Ctx,
    flow: &Flow,
    hooks: &[WebHook],
) -> Result<(), ApiError> {
    match after(reg, ctx, flow, hooks, None, None).await {
        Ok(()) => Ok(()),
        Err(HookError::Interrupted(groups)) => {
            let texts: Vec<String> = groups
                .into_iter()
                .flat_map(|(_, messages)| messages.into_iter().map(|m| m.text))
                .collect();
            Err(ApiError::bad_request(if texts.is_empty() {
                "A web hook interrupted the flow.".to_string()
            } else {
                texts.join(" ")
            }))
        }
        Err(HookError::Failed(reason)) => {
            Err(ApiError::new(http::StatusCode::INTERNAL_SERVER_ERROR).reason(reason))
        }
    }
}

/// Why [`pre_persist`] stopped a flow.
pub(crate) enum Refused {
    /// The form carries the reasons (the hook's messages, or what is wrong with the traits
    /// a hook set): the flow answers 400 / 303 back to the UI.
    Form,
    /// A failure the form cannot show (an unreachable hook, a bad template or answer).
    Error(ApiError),
}

/// Runs the after-hooks that may interrupt or change the identity (`can_interrupt`,
/// `response.parse`) on `identity` before it is stored. Each hook sees the identity as the
/// hooks before it left it. Changed traits are validated against the identity's schema
/// (problems go to the form) and its addresses and password identifiers follow them; changed
/// metadata is taken as is.
pub(crate) async fn pre_persist<'a>(
    reg: &Registry,
    ctx: &Ctx,
    flow: &mut Flow,
    hooks: impl IntoIterator<Item = &'a WebHook>,
    identity: &mut Identity,
    session: Option<Value>,
) -> Result<(), Refused> {
    let base = &reg.config.public_base_url;
    let mut template_ctx = None;
    let mut traits_changed = false;
    for hook in hooks {
        if !hook.interrupts() {
            continue;
        }
        let c = template_ctx.get_or_insert_with(|| {
            web_hook::context(
                ctx,
                base,
                &flow.to_json(),
                Some(identity.to_json(base, View::Admin)),
                session.clone(),
            )
        });
        let answer = match hook.execute(&reg.http, c).await {
            Ok(Some(answer)) => answer,
            Ok(None) => continue,
            Err(e) => {
                return Err(match apply(flow, e) {
                    Ok(()) => Refused::Form,
                    Err(e) => Refused::Error(e),
                });
            }
        };
        let changes = match web_hook::identity_changes(&answer) {
            Ok(Some(changes)) => changes,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(hook = ?hook.id, error = %e, "web hook answer not understood");
                return Err(Refused::Error(
                    ApiError::new(http::StatusCode::INTERNAL_SERVER_ERROR)
                        .reason(format!("web hook answer: {e}")),
                ));
            }
        };
        tracing::info!(hook = ?hook.id, identity = %identity.id, "web hook changed the identity");
        if let Some(traits) = changes.traits {
            traits_changed |= traits != identity.traits;
            identity.traits = traits;
        }
        if let Some(m) = changes.metadata_public {
            identity.metadata_public = Some(m).filter(|m| !m.is_null());
        }
        if let Some(m) = changes.metadata_admin {
            identity.metadata_admin = Some(m).filter(|m| !m.is_null());
        }
        // Later hooks see the changed identity.
        template_ctx = None;
    }
    if !traits_changed {
        return Ok(());
    }
    let Some(schema) = reg.config.schemas().get(&identity.schema_id) else {
        return Err(Refused::Error(ApiError::internal(
            &"the identity's schema is not configured",
        )));
    };
    let problems = schema.validate_traits(&identity.traits);
    if !problems.is_empty() {
        tracing::info!(identity = %identity.id, "traits set by a web hook are invalid");
        flow.ui.reset_messages();
        for (name, message) in problems {
            flow.ui.add_message(&name, message);
        }
        return Err(Refused::Form);
    }
    let identifiers = schema.password_identifiers(&identity.traits);
    if let Some(cred) = identity.credentials.get_mut("password") {
        if identifiers.is_empty() {
            flow.ui.reset_messages();
            flow.ui.messages.push(text::validation_generic(
                "No login identifiers (e.g. email, phone number, username) were set. Contact an administrator, the identity schema is misconfigured.",
            ));
            return Err(Refused::Form);
        }
        cred.identifiers = identifiers;
    }
    let verifiable = schema.verifiable_addresses(&identity.traits);
    let recovery = schema.recovery_addresses(&identity.traits);
    identity.replace_addresses(verifiable, recovery, reg.now());
    Ok(())
}

/// Applies a hook failure to a flow's form: an interruption's messages go to their nodes (or
/// the form); `Err` is a failure the flow cannot show (an unreachable hook, a bad template).
pub(crate) fn apply(flow: &mut Flow, error: HookError) -> Result<(), ApiError> {
    match error {
        HookError::Interrupted(groups) => {
            flow.ui.reset_messages();
            for (name, messages) in groups {
                for message in messages {
                    if name.is_empty() || !flow.ui.nodes.iter().any(|n| n.name() == name) {
                        flow.ui.messages.push(message);
                    } else {
                        flow.ui.add_message(&name, message);
                    }
                }
            }
            if flow.ui.messages.is_empty() && flow.ui.nodes.iter().all(|n| n.messages.is_empty()) {
                flow.ui
                    .messages
                    .push(text::validation_generic("A web hook interrupted the flow."));
            }
            Ok(())
        }
        HookError::Failed(reason) => {
            Err(ApiError::new(http::StatusCode::INTERNAL_SERVER_ERROR).reason(reason))
        }
    }
}
