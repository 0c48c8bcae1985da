//! The verification flow with the `code` method: the user names an address, a code is
//! e-mailed to it, and submitting the code marks the address verified. Unknown addresses see
//! exactly the same "code sent" state (and, with `notify_unknown_recipients`, the address gets
//! a notice instead of a code). The e-mailed link (`GET /self-service/verification?flow=&code=`)
//! redeems the code without a form, so it carries no CSRF token: the code is the proof.

use std::sync::Arc;

use axum::Json;
use axum::response::{IntoResponse, Response};

use super::{Flow, FlowType, Kind, NewFlow};
use crate::config::join_url;
use crate::courier::{enqueue_email, template};
use crate::driver::{Registry, see_other, with_cookies};
use crate::error::ApiError;
use crate::identity::View;
use crate::persistence::{FlowStore, IdentityStore, StoreError};
use crate::schema::normalize_identifier;
use crate::selfservice::hook;
use crate::selfservice::strategy::code::{self, CodeStore};
use crate::selfservice::strategy::link::{self, Redeemed};
use crate::text;
use crate::ui::Container;
use crate::x::{self, Ctx};

/// The first form: e-mail address and "Continue" (code), or "Submit" (link).
pub(crate) fn nodes(reg: &Registry, ui: &mut Container, masked_csrf: Option<&str>) {
    if reg.config.verification.use_link {
        link::email_nodes(ui, masked_csrf, None);
    } else {
        code::email_nodes(ui, masked_csrf);
    }
}

fn disabled() -> ApiError {
    ApiError::bad_request("Verification is not allowed because it was disabled.")
        .id("self_service_flow_disabled")
}

/// `GET /self-service/verification/{browser,api}`.
pub(crate) async fn init(reg: Arc<Registry>, ctx: Ctx, flow_type: FlowType) -> Response {
    if !reg.config.verification_enabled {
        return disabled().into_response();
    }
    let (flow, set_csrf) = match create(&reg, &ctx, flow_type, ctx.query("return_to")).await {
        Ok(created) => created,
        Err(e) => return e.into_response(),
    };
    let before = &reg.config.web_hooks.verification_before;
    if let Err(res) = super::run_before(&reg, &ctx, &flow, before).await {
        return res;
    }
    match flow_type {
        FlowType::Browser => super::respond_browser_init(&reg, &ctx, &flow, set_csrf),
        FlowType::Api => Json(flow.to_json()).into_response(),
    }
}

/// Creates a verification flow (browser flows bound to the request's CSRF cookie).
pub(crate) async fn create(
    reg: &Registry,
    ctx: &Ctx,
    flow_type: FlowType,
    return_to: Option<String>,
) -> Result<(Flow, Option<String>), ApiError> {
    let (csrf_cookie, set_csrf) = match flow_type {
        FlowType::Browser => {
            let (v, set) = reg.ensure_csrf(ctx);
            (Some(v), set)
        }
        FlowType::Api => (None, None),
    };
    let flow = super::create(
        reg,
        ctx,
        NewFlow {
            kind: Kind::Verification,
            flow_type,
            csrf_cookie: csrf_cookie.as_deref(),
            return_to,
            identity_id: None,
        },
        nodes,
    )
    .await?;
    Ok((flow, set_csrf))
}

/// `POST /self-service/verification?flow=` (form or JSON), and `GET` with `code` or `token`
/// from the e-mailed link.
pub(crate) async fn submit(reg: Arc<Registry>, ctx: Ctx, body: bytes::Bytes) -> Response {
    if ctx.method == http::Method::GET && ctx.query("token").is_some() {
        return open_link(&reg, &ctx, Kind::Verification).await;
    }
    submit_code_flow(&reg, &ctx, Kind::Verification, body).await
}

/// The submission logic verification and recovery share, for the code and the link method
/// (`use`); `Kind` picks the texts, the templates and what success does.
pub(crate) async fn submit_code_flow(
    reg: &Registry,
    ctx: &Ctx,
    kind: Kind,
    body: bytes::Bytes,
) -> Response {
    let recovery = kind == Kind::Recovery;
    let use_link = uses_link(reg, kind);
    let mut flow = match super::load(reg, ctx, kind, "flow").await {
        Ok(f) => f,
        Err(e) => return super::unrecoverable(reg, ctx, e).await,
    };
    let link_click = ctx.method == http::Method::GET;
    let body = if link_click {
        serde_json::json!({"method": "code", "code": ctx.query("code").unwrap_or_default()})
    } else {
        match x::parse_body(ctx, &body) {
            Ok(b) => b,
            Err(e) => return super::unrecoverable(reg, ctx, e).await,
        }
    };
    if flow.expires_at <= reg.now() {
        let message = if recovery {
            text::recovery_flow_expired
        } else {
            text::verification_flow_expired
        };
        let nodes = if recovery {
            super::recovery::nodes
        } else {
            nodes
        };
        return super::expired(reg, ctx, &flow, nodes, message).await;
    }
    if !link_click && let Err(e) = super::check_csrf(reg, ctx, &flow, &body) {
        return super::unrecoverable(reg, ctx, e).await;
    }
    flow.ui.reset_messages();
    if flow.state == "passed_challenge" {
        flow.ui.messages.push(text::retry_success(recovery));
        return super::respond_with_errors(reg, ctx, flow).await;
    }
    let (method, enabled) = if use_link {
        ("link", reg.config.link.enabled)
    } else {
        ("code", reg.config.code.enabled)
    };
    if x::body_str(&body, "method") != Some(method) || !enabled {
        flow.ui.messages.push(text::validation_generic(if recovery {
            "Could not find a strategy to recover your account with. Did you fill out the form correctly?"
        } else {
            "Could not find a strategy to verify your account with. Did you fill out the form correctly?"
        }));
        return super::respond_with_errors(reg, ctx, flow).await;
    }
    let submitted_code = x::body_str(&body, "code")
        .map(str::trim)
        .unwrap_or_default();
    if !use_link && !submitted_code.is_empty() {
        return match redeem(reg, &flow, submitted_code).await {
            Ok(Some((identity_id, address))) => {
                if recovery {
                    super::recovery::succeed(reg, ctx, flow, identity_id, &address, "code_recovery")
                        .await
                } else {
                    verified(reg, ctx, flow, identity_id, &address).await
                }
            }
            Ok(None) => {
                flow.ui.messages.push(if recovery {
                    text::recovery_code_invalid()
                } else {
                    text::verification_code_invalid()
                });
                super::respond_with_errors(reg, ctx, flow).await
            }
            Err(e) => ApiError::from(e).into_response(),
        };
    }
    let Some(email) = x::body_str(&body, "email").filter(|e| !e.trim().is_empty()) else {
        flow.ui
            .add_message("email", text::missing_property("email"));
        return super::respond_with_errors(reg, ctx, flow).await;
    };
    if !code::is_email(email) {
        flow.ui.refill(&body);
        flow.ui.add_message("email", text::invalid_email());
        return super::respond_with_errors(reg, ctx, flow).await;
    }
    let address = normalize_identifier(email);
    if let Err(e) = send_code(reg, &flow, &address).await {
        return ApiError::from(e).into_response();
    }
    mark_sent(reg, &mut flow, &address);
    super::respond_with_flow(reg, ctx, flow).await
}

/// Whether flows of `kind` use the link method.
fn uses_link(reg: &Registry, kind: Kind) -> bool {
    if kind == Kind::Recovery {
        reg.config.recovery.use_link
    } else {
        reg.config.verification.use_link
    }
}

/// Moves a flow to `sent_email`: the code form and the "code sent" message, or (link method)
/// the address form again and the "link sent" message.
fn mark_sent(reg: &Registry, flow: &mut Flow, address: &str) {
    let recovery = flow.kind == Kind::Recovery;
    flow.state = "sent_email".into();
    if uses_link(reg, flow.kind) {
        flow.active = Some("link".into());
        link::email_nodes(&mut flow.ui, None, Some(address));
        flow.ui.messages.push(if recovery {
            text::recovery_email_sent()
        } else {
            text::verification_email_sent()
        });
        return;
    }
    flow.active = Some("code".into());
    let label = if recovery {
        text::label_recovery_code()
    } else {
        text::label_verification_code()
    };
    code::code_nodes(&mut flow.ui, address, label);
    flow.ui.messages.push(if recovery {
        text::recovery_email_with_code_sent()
    } else {
        text::verification_email_with_code_sent()
    });
}

/// After registration: a verification flow for `address` with the code already sent (browser
/// flows bound to `csrf_cookie`), as Kratos's implicit verification hook does.
pub(crate) async fn create_sent(
    reg: &Registry,
    ctx: &Ctx,
    flow_type: FlowType,
    csrf_cookie: Option<&str>,
    address: &str,
) -> Result<Flow, ApiError> {
    let mut flow = super::create(
        reg,
        ctx,
        NewFlow {
            kind: Kind::Verification,
            flow_type,
            csrf_cookie,
            return_to: None,
            identity_id: None,
        },
        nodes,
    )
    .await?;
    send_code(reg, &flow, address).await?;
    mark_sent(reg, &mut flow, address);
    flow.updated_at = reg.now();
    reg.store.update_flow(&flow).await?;
    Ok(flow)
}

/// Counts the attempt and redeems the code if it is right and attempts remain.
async fn redeem(
    reg: &Registry,
    flow: &Flow,
    submitted: &str,
) -> Result<Option<(uuid::Uuid, String)>, StoreError> {
    let attempts = reg.store.count_submission(flow.id).await?;
    if attempts > reg.config.code.max_submissions {
        tracing::info!(flow = %flow.id, attempts, "code submissions exhausted");
        return Ok(None);
    }
    reg.store
        .redeem_code(flow.id, &code::hash(reg, flow.id, submitted), reg.now())
        .await
}

/// Sends a code to `address` if an identity owns it (else, if configured, a notice).
async fn send_code(reg: &Registry, flow: &Flow, address: &str) -> Result<(), StoreError> {
    let recovery = flow.kind == Kind::Recovery;
    let owner = reg.store.address_owner(address, recovery).await?;
    let config = if recovery {
        &reg.config.recovery
    } else {
        &reg.config.verification
    };
    let use_link = uses_link(reg, flow.kind);
    match owner {
        Some(identity_id) if use_link => {
            let lifespan = reg.config.link.lifespan;
            let (url, _) =
                link::issue(reg, flow.id, flow.kind, identity_id, address, lifespan).await?;
            let rendered = if recovery {
                template::recovery_valid(url.expose())
            } else {
                template::verification_valid(url.expose())
            };
            enqueue_email(reg, address, rendered, Some(identity_id)).await?;
        }
        None if use_link && config.notify_unknown_recipients => {
            let rendered = if recovery {
                template::recovery_invalid()
            } else {
                template::verification_invalid()
            };
            enqueue_email(reg, address, rendered, None).await?;
        }
        Some(identity_id) => {
            let (code, _) = code::issue(
                reg,
                flow.id,
                flow.kind,
                identity_id,
                address,
                reg.config.code.lifespan,
            )
            .await?;
            let rendered = if recovery {
                template::recovery_code_valid(code.expose())
            } else {
                let link = format!(
                    "{}?flow={}&code={}",
                    join_url(&reg.config.public_base_url, "/self-service/verification"),
                    flow.id,
                    code.expose()
                );
                template::verification_code_valid(code.expose(), &link)
            };
            enqueue_email(reg, address, rendered, Some(identity_id)).await?;
        }
        None if config.notify_unknown_recipients => {
            let rendered = if recovery {
                template::recovery_code_invalid()
            } else {
                template::verification_code_invalid()
            };
            enqueue_email(reg, address, rendered, None).await?;
        }
        None => {
            tracing::debug!(flow = %flow.id, "code requested for an unknown address; nothing sent");
        }
    }
    Ok(())
}

/// `GET /self-service/<kind>?flow=&token=`: the e-mailed (or admin-made) link. A valid token
/// completes the flow; an unknown, used or expired one, or an expired flow, starts a new flow
/// that says so.
pub(crate) async fn open_link(reg: &Registry, ctx: &Ctx, kind: Kind) -> Response {
    let recovery = kind == Kind::Recovery;
    let mut flow = match super::load(reg, ctx, kind, "flow").await {
        Ok(f) => f,
        Err(e) => return super::unrecoverable(reg, ctx, e).await,
    };
    let now = reg.now();
    let expired = |at: time::OffsetDateTime| {
        let minutes = (now - at).as_seconds_f64() / 60.0;
        let at = portcullis_core::timefmt::rfc3339(at);
        if recovery {
            text::recovery_flow_expired(minutes, &at)
        } else {
            text::verification_flow_expired(minutes, &at)
        }
    };
    if flow.expires_at <= now {
        let message = expired(flow.expires_at);
        return retry_with_message(reg, ctx, &flow, message).await;
    }
    let token = ctx.query("token").unwrap_or_default();
    match link::redeem(reg, flow.id, &token).await {
        Ok(Redeemed::Valid(identity_id, address)) => {
            flow.ui.reset_messages();
            if recovery {
                super::recovery::succeed(reg, ctx, flow, identity_id, &address, "link_recovery")
                    .await
            } else {
                verified(reg, ctx, flow, identity_id, &address).await
            }
        }
        Ok(Redeemed::Expired(at)) => retry_with_message(reg, ctx, &flow, expired(at)).await,
        Ok(Redeemed::Invalid) => {
            let message = if recovery {
                text::recovery_token_invalid()
            } else {
                text::verification_token_invalid()
            };
            retry_with_message(reg, ctx, &flow, message).await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// A new flow of the old one's kind and type carrying `message`: browsers are sent to its UI,
/// native apps to its JSON (`/self-service/<kind>/flows?id=`), both with 303 as Kratos does.
async fn retry_with_message(
    reg: &Registry,
    ctx: &Ctx,
    old: &Flow,
    message: text::Text,
) -> Response {
    let browser = old.flow_type == FlowType::Browser;
    let (csrf_cookie, set_csrf) = if browser {
        let (v, set) = reg.ensure_csrf(ctx);
        (Some(v), set)
    } else {
        (None, None)
    };
    let nodes = if old.kind == Kind::Recovery {
        super::recovery::nodes
    } else {
        nodes
    };
    let mut flow = match super::create(
        reg,
        ctx,
        NewFlow {
            kind: old.kind,
            flow_type: old.flow_type,
            csrf_cookie: csrf_cookie.as_deref(),
            return_to: old.return_to.clone(),
            identity_id: None,
        },
        nodes,
    )
    .await
    {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    flow.ui.messages.push(message);
    if let Err(e) = reg.store.update_flow(&flow).await {
        return ApiError::from(e).into_response();
    }
    let location = if browser {
        flow.ui_location(reg)
    } else {
        format!(
            "{}?id={}",
            join_url(
                &reg.config.public_base_url,
                &format!("/self-service/{}/flows", flow.kind.as_str())
            ),
            flow.id
        )
    };
    with_cookies(see_other(&location), set_csrf)
}

async fn verified(
    reg: &Registry,
    ctx: &Ctx,
    mut flow: Flow,
    identity_id: uuid::Uuid,
    address: &str,
) -> Response {
    if let Err(e) = reg
        .store
        .mark_verified(identity_id, address, reg.now())
        .await
    {
        return ApiError::from(e).into_response();
    }
    tracing::info!(identity = %identity_id, "address verified");
    flow.state = "passed_challenge".into();
    let csrf = flow
        .ui
        .nodes
        .iter()
        .find(|n| n.name() == "csrf_token")
        .cloned();
    flow.ui.nodes.clear();
    flow.ui.nodes.extend(csrf);
    let hooks = &reg.config.web_hooks.verification_after;
    if !hooks.is_empty() {
        let identity = match reg.store.get_identity(identity_id, false).await {
            Ok(i) => i.map(|i| i.to_json(&reg.config.public_base_url, View::Admin)),
            Err(e) => return ApiError::from(e).into_response(),
        };
        if let Err(e) = hook::after(reg, ctx, &flow, hooks, identity, None).await {
            // Verification has no pre-persist stage: the address stays verified (the code or
            // link proved it) and the flow is passed; it shows the hook's messages instead of
            // the success message.
            tracing::info!(identity = %identity_id, "a web hook refused the verification");
            return super::respond_to_refusal(reg, ctx, flow, e).await;
        }
    }
    flow.ui.messages.push(text::verification_success());
    if flow.active.as_deref() == Some("link") && flow.flow_type == FlowType::Browser {
        // An opened link: the browser goes to `return_to`, else `after.default_browser_return_url`,
        // else the verification UI, which shows the passed state.
        flow.updated_at = reg.now();
        if let Err(e) = reg.store.update_flow(&flow).await {
            return ApiError::from(e).into_response();
        }
        let to = flow
            .return_to
            .clone()
            .or_else(|| {
                reg.config
                    .verification
                    .after_return_url
                    .as_ref()
                    .map(|u| u.to_string())
            })
            .unwrap_or_else(|| flow.ui_location(reg));
        return see_other(&to);
    }
    super::respond_with_flow(reg, ctx, flow).await
}
