//! Configurable hooks that call out of the server: `web_hook` (with Jsonnet bodies) before and
//! after flows. The built-in after-hooks (`session`, `show_verification_ui`,
//! `revoke_active_sessions`, `require_verified_address`) are switches in the configuration;
//! these are the hooks that carry their own configuration.

pub mod jsonnet;
pub mod web_hook;

use std::path::Path;

use serde_json::Value;

use crate::driver::Registry;
use crate::error::ApiError;
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
    /// `settings.after[.password|.profile].hooks`.
    pub settings_after: Vec<WebHook>,
    /// `recovery.after.hooks`.
    pub recovery_after: Vec<WebHook>,
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
            settings_after: collect("settings", "after", &["password", "profile"])?,
            recovery_after: collect("recovery", "after", &[])?,
            verification_after: collect("verification", "after", &[])?,
        })
    }
}

/// Runs `hooks` in order for `flow` (with the flow's `identity` and `session` where it has
/// them); the first failure stops the rest.
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
        hook.execute(c).await?;
    }
    Ok(())
}

/// Runs `hooks` after a flow completed; a failure (the flow's result stands) is answered
/// with an error instead of the flow's usual answer.
pub(crate) async fn after_completed(
    reg: &Registry,
    ctx: &Ctx,
    flow: &Flow,
    hooks: &[WebHook],
    identity: Option<Value>,
    session: Option<Value>,
) -> Result<(), ApiError> {
    match after(reg, ctx, flow, hooks, identity, session).await {
        Ok(()) => Ok(()),
        Err(HookError::Interrupted(_)) => {
            Err(ApiError::new(http::StatusCode::INTERNAL_SERVER_ERROR)
                .reason("A web hook interrupted the flow after it had completed."))
        }
        Err(HookError::Failed(reason)) => {
            Err(ApiError::new(http::StatusCode::INTERNAL_SERVER_ERROR).reason(reason))
        }
    }
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
