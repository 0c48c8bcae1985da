//! What every self-service flow shares: the flow record (id, type, state, expiry, CSRF
//! binding, UI), and the browser/API behaviour around it — init (303 to the UI or 200 JSON),
//! fetch by id (CSRF-bound for browser flows, 410 when expired), answering a failed submission
//! (400 + flow, or 303 back to the UI), expiry (410 with `use_flow_id`), and unrecoverable
//! errors (303 to the error UI for browsers). Each flow kind adds only its nodes and submit.

pub mod login;
pub mod logout;
pub mod recovery;
pub mod registration;
pub mod settings;
pub mod verification;

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis_core::timefmt::rfc3339;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::join_url;
use crate::csrf;
use crate::driver::{Registry, see_other, with_cookies};
use crate::error::ApiError;
use crate::persistence::{ErrorStore, FlowStore};
use crate::selfservice::hook::{self, web_hook::WebHook};
use crate::text::Text;
use crate::ui::Container;
use crate::x::{self, Ctx};

/// The flow kinds served so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Login.
    Login,
    /// Registration.
    Registration,
    /// Address verification.
    Verification,
    /// Account recovery.
    Recovery,
    /// Profile and credential changes.
    Settings,
}

impl Kind {
    /// The path segment and stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Login => "login",
            Kind::Registration => "registration",
            Kind::Verification => "verification",
            Kind::Recovery => "recovery",
            Kind::Settings => "settings",
        }
    }
}

/// `browser` or `api`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowType {
    /// Cookies and CSRF, redirects to the UI.
    Browser,
    /// Native apps: session tokens, JSON only.
    Api,
}

impl FlowType {
    /// Kratos's string.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowType::Browser => "browser",
            FlowType::Api => "api",
        }
    }

    /// Parses Kratos's string.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "browser" => Some(FlowType::Browser),
            "api" => Some(FlowType::Api),
            _ => None,
        }
    }
}

/// A self-service flow.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Its id.
    pub id: Uuid,
    /// Login, registration, ...
    pub kind: Kind,
    /// Browser or API.
    pub flow_type: FlowType,
    /// `choose_method`, `passed_challenge`.
    pub state: String,
    /// The CSRF cookie value the flow is bound to (browser flows; empty for API flows).
    pub csrf_token: String,
    /// The URL that created it.
    pub request_url: String,
    /// Validated `return_to`.
    pub return_to: Option<String>,
    /// The method used, once one was.
    pub active: Option<String>,
    /// Requested identity schema.
    pub identity_schema: Option<String>,
    /// Login `refresh`.
    pub refresh: bool,
    /// The identity a settings flow belongs to.
    pub identity_id: Option<Uuid>,
    /// A settings flow's identity JSON, filled in by the handlers (not stored).
    pub identity: Option<Value>,
    /// The form.
    pub ui: Container,
    /// Issued.
    pub issued_at: OffsetDateTime,
    /// Expires.
    pub expires_at: OffsetDateTime,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Updated.
    pub updated_at: OffsetDateTime,
}

impl Flow {
    /// The flow's JSON (`loginFlow`, `registrationFlow`).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "type": self.flow_type.as_str(),
            "expires_at": rfc3339(self.expires_at),
            "issued_at": rfc3339(self.issued_at),
            "request_url": self.request_url,
            "ui": self.ui,
            "state": self.state,
        });
        if let Some(map) = v.as_object_mut() {
            if let Some(r) = &self.return_to {
                map.insert("return_to".into(), json!(r));
            }
            if let Some(a) = &self.active {
                map.insert("active".into(), json!(a));
            }
            if let Some(i) = &self.identity {
                map.insert("identity".into(), i.clone());
            }
            if let Some(s) = &self.identity_schema {
                map.insert("identity_schema".into(), json!(s));
            }
            if self.kind == Kind::Login {
                map.insert("refresh".into(), json!(self.refresh));
                map.insert("requested_aal".into(), json!("aal1"));
                map.insert("created_at".into(), json!(rfc3339(self.created_at)));
                map.insert("updated_at".into(), json!(rfc3339(self.updated_at)));
            }
        }
        v
    }

    /// The UI URL with `?flow=<id>`.
    pub(crate) fn ui_location(&self, reg: &Registry) -> String {
        let mut url = match self.kind {
            Kind::Login => reg.config.login.ui_url.clone(),
            Kind::Registration => reg.config.registration.ui_url.clone(),
            Kind::Verification => reg.config.verification.ui_url.clone(),
            Kind::Recovery => reg.config.recovery.ui_url.clone(),
            Kind::Settings => reg.config.settings.ui_url.clone(),
        };
        url.query_pairs_mut()
            .append_pair("flow", &self.id.to_string());
        url.to_string()
    }
}

/// What a new flow is: its kind and type, the CSRF cookie a browser flow is bound to, the
/// requested `return_to`, and the identity a settings flow belongs to.
pub(crate) struct NewFlow<'a> {
    pub kind: Kind,
    pub flow_type: FlowType,
    pub csrf_cookie: Option<&'a str>,
    pub return_to: Option<String>,
    pub identity_id: Option<Uuid>,
}

/// Builds and stores a new flow of `kind` for this request: validates `return_to`, binds
/// browser flows to the CSRF cookie, and lets `nodes` fill the form.
pub(crate) async fn create(
    reg: &Registry,
    ctx: &Ctx,
    new: NewFlow<'_>,
    nodes: impl FnOnce(&Registry, &mut Container, Option<&str>),
) -> Result<Flow, ApiError> {
    let NewFlow {
        kind,
        flow_type,
        csrf_cookie,
        return_to,
        identity_id,
    } = new;
    let return_to = match return_to.filter(|r| !r.trim().is_empty()) {
        Some(r) => Some(
            x::secure_redirect(
                Some(&r),
                &reg.config.default_return_url,
                &reg.config.allowed_return_urls,
                &reg.config.public_base_url,
            )?
            .to_string(),
        ),
        None => None,
    };
    let now = reg.now();
    let id = portcullis_core::new_id();
    let lifespan = match kind {
        Kind::Login => reg.config.login.lifespan,
        Kind::Registration => reg.config.registration.lifespan,
        Kind::Verification => reg.config.verification.lifespan,
        Kind::Recovery => reg.config.recovery.lifespan,
        Kind::Settings => reg.config.settings.lifespan,
    };
    let action = format!(
        "{}?flow={id}",
        join_url(
            &reg.config.public_base_url,
            &format!("/self-service/{}", kind.as_str())
        )
    );
    let mut ui = Container::new(action);
    let masked = csrf_cookie.map(csrf::mask);
    nodes(reg, &mut ui, masked.as_deref());
    let flow = Flow {
        id,
        kind,
        flow_type,
        state: if kind == Kind::Settings {
            "show_form".into()
        } else {
            "choose_method".into()
        },
        csrf_token: csrf_cookie.unwrap_or_default().to_string(),
        request_url: ctx.request_url(&reg.config.public_base_url),
        return_to,
        active: None,
        identity_schema: None,
        refresh: ctx.query("refresh").is_some_and(|r| r == "true"),
        identity_id,
        identity: None,
        ui,
        issued_at: now,
        expires_at: now + lifespan,
        created_at: now,
        updated_at: now,
    };
    reg.store.create_flow(&flow).await?;
    Ok(flow)
}

/// The common end of `GET /self-service/<kind>/{browser,api}`: a browser flow is bound to the
/// (possibly new) CSRF cookie, the flow is stored with the form `nodes` fill, the flow's
/// `before` web hooks run (an interruption or failure is an error for the client), and the
/// answer is a 303 to the UI or the flow's JSON.
pub(crate) async fn init_flow(
    reg: &Registry,
    ctx: &Ctx,
    kind: Kind,
    flow_type: FlowType,
    before: &[WebHook],
    nodes: impl FnOnce(&Registry, &mut Container, Option<&str>),
) -> Response {
    let (csrf_cookie, set_csrf) = match flow_type {
        FlowType::Browser => {
            let (v, set) = reg.ensure_csrf(ctx);
            (Some(v), set)
        }
        FlowType::Api => (None, None),
    };
    let flow = match create(
        reg,
        ctx,
        NewFlow {
            kind,
            flow_type,
            csrf_cookie: csrf_cookie.as_deref(),
            return_to: ctx.query("return_to"),
            identity_id: None,
        },
        nodes,
    )
    .await
    {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    if let Err(res) = run_before(reg, ctx, &flow, before).await {
        return res;
    }
    match flow_type {
        FlowType::Browser => respond_browser_init(reg, ctx, &flow, set_csrf),
        FlowType::Api => Json(flow.to_json()).into_response(),
    }
}

/// Runs a new flow's `before` web hooks; `Err` is the answer for a hook that interrupted or
/// failed: as Kratos, API flows get the error as JSON, browsers go to the error UI.
pub(crate) async fn run_before(
    reg: &Registry,
    ctx: &Ctx,
    flow: &Flow,
    before: &[WebHook],
) -> Result<(), Response> {
    if before.is_empty() {
        return Ok(());
    }
    match hook::before(reg, ctx, flow, before).await {
        Ok(()) => Ok(()),
        Err(e) => Err(match flow.flow_type {
            FlowType::Browser => unrecoverable(reg, ctx, e).await,
            FlowType::Api => e.into_response(),
        }),
    }
}

/// Answers a browser init: 303 to the UI, or 200 JSON when negotiated; sets the CSRF cookie.
pub(crate) fn respond_browser_init(
    reg: &Registry,
    ctx: &Ctx,
    flow: &Flow,
    set_csrf: Option<String>,
) -> Response {
    let res = if ctx.is_json() {
        Json(flow.to_json()).into_response()
    } else {
        see_other(&flow.ui_location(reg))
    };
    with_cookies(res, set_csrf)
}

/// `GET /self-service/<kind>/flows?id=`.
pub(crate) async fn get(reg: &Arc<Registry>, ctx: Ctx, kind: Kind) -> Response {
    let flow = match load(reg, &ctx, kind, "id").await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    if flow.flow_type == FlowType::Browser {
        let bound = reg.csrf_cookie_of(&ctx).is_some_and(|c| {
            portcullis_core::constant_time_eq(c.as_bytes(), flow.csrf_token.as_bytes())
        });
        if !bound {
            return ApiError::csrf("The HTTP Cookie Header was set and a CSRF token was sent but they do not match. We recommend deleting all cookies for this domain and retrying the flow.").into_response();
        }
    }
    if flow.expires_at <= reg.now() {
        return ApiError::new(StatusCode::GONE)
            .id("self_service_flow_expired")
            .reason(format!(
                "The {kind} flow has expired. Initialize a new one at {}.",
                join_url(
                    &reg.config.public_base_url,
                    &format!(
                        "/self-service/{}/{}",
                        kind.as_str(),
                        flow.flow_type.as_str()
                    ),
                ),
                kind = kind.as_str(),
            ))
            .into_response();
    }
    Json(flow.to_json()).into_response()
}

/// Loads the flow named by query parameter `param`.
pub(crate) async fn load(
    reg: &Registry,
    ctx: &Ctx,
    kind: Kind,
    param: &str,
) -> Result<Flow, ApiError> {
    let raw = ctx.query(param).unwrap_or_default();
    let id = Uuid::parse_str(raw.trim()).map_err(|_| {
        ApiError::bad_request(format!(
            "The flow query parameter is missing or malformed: {param}"
        ))
    })?;
    reg.store.get_flow(kind, id).await?.ok_or_else(|| {
        ApiError::not_found(format!("The {} flow could not be found.", kind.as_str()))
    })
}

/// An error during a submission: browser form posts see the error UI (303 to
/// `flows.error.ui_url?id=`), everyone else gets the error JSON.
pub(crate) async fn unrecoverable(reg: &Registry, ctx: &Ctx, err: ApiError) -> Response {
    if ctx.is_json() || ctx.header("x-session-token").is_some() {
        return err.into_response();
    }
    let csrf = reg.csrf_cookie_of(ctx).unwrap_or_default();
    match reg.store.create_error(&err.error_object(), &csrf).await {
        Ok(id) => {
            let mut url = reg.config.error_ui_url.clone();
            url.query_pairs_mut().append_pair("id", &id.to_string());
            see_other(url.as_str())
        }
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// Answers a flow whose after-hooks refused a change already made (recovery, verification):
/// an interruption's messages go on the form ([`respond_with_errors`]); any other failure
/// saves the flow as it stands and answers the error.
pub(crate) async fn respond_to_refusal(
    reg: &Registry,
    ctx: &Ctx,
    mut flow: Flow,
    error: hook::web_hook::HookError,
) -> Response {
    match hook::apply(&mut flow, error) {
        Ok(()) => respond_with_errors(reg, ctx, flow).await,
        Err(e) => {
            flow.updated_at = reg.now();
            if let Err(e) = reg.store.update_flow(&flow).await {
                return ApiError::from(e).into_response();
            }
            unrecoverable(reg, ctx, e).await
        }
    }
}

/// Saves the flow with its new messages and answers: 400 + flow for API and JSON requests,
/// 303 back to the UI for browser form posts.
pub(crate) async fn respond_with_errors(reg: &Registry, ctx: &Ctx, mut flow: Flow) -> Response {
    flow.updated_at = reg.now();
    if let Err(e) = reg.store.update_flow(&flow).await {
        return ApiError::internal(&e).into_response();
    }
    if flow.flow_type == FlowType::Api || ctx.is_json() {
        (StatusCode::BAD_REQUEST, Json(flow.to_json())).into_response()
    } else {
        see_other(&flow.ui_location(reg))
    }
}

/// Saves the flow and answers a submission that moved it on: 200 + flow for API and JSON
/// requests, 303 to the UI (which shows the new state) for browser form posts.
pub(crate) async fn respond_with_flow(reg: &Registry, ctx: &Ctx, mut flow: Flow) -> Response {
    flow.updated_at = reg.now();
    if let Err(e) = reg.store.update_flow(&flow).await {
        return ApiError::internal(&e).into_response();
    }
    if flow.flow_type == FlowType::Api || ctx.is_json() {
        Json(flow.to_json()).into_response()
    } else {
        see_other(&flow.ui_location(reg))
    }
}

/// A submission to an expired flow: a fresh flow of the same kind and type is created with
/// `message`; browsers are sent to it, others get 410 with `use_flow_id`.
pub(crate) async fn expired(
    reg: &Registry,
    ctx: &Ctx,
    old: &Flow,
    nodes: impl FnOnce(&Registry, &mut Container, Option<&str>),
    message: impl FnOnce(f64, &str) -> Text,
) -> Response {
    let csrf = if old.flow_type == FlowType::Browser {
        reg.csrf_cookie_of(ctx)
    } else {
        None
    };
    let mut flow = match create(
        reg,
        ctx,
        NewFlow {
            kind: old.kind,
            flow_type: old.flow_type,
            csrf_cookie: csrf.as_deref(),
            return_to: old.return_to.clone(),
            identity_id: old.identity_id,
        },
        nodes,
    )
    .await
    {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let now = reg.now();
    let minutes = (now - old.expires_at).as_seconds_f64() / 60.0;
    flow.ui
        .messages
        .push(message(minutes, &rfc3339(old.expires_at)));
    if let Err(e) = reg.store.update_flow(&flow).await {
        return ApiError::internal(&e).into_response();
    }
    if old.flow_type == FlowType::Browser && !ctx.is_json() {
        return see_other(&flow.ui_location(reg));
    }
    ApiError::new(StatusCode::GONE)
        .id("self_service_flow_expired")
        .reason(format!(
            "The {} flow has expired. Please use the new flow in use_flow_id.",
            old.kind.as_str()
        ))
        .with("use_flow_id", json!(flow.id))
        .with("expired_at", json!(rfc3339(old.expires_at)))
        .with(
            "since",
            json!(i64::try_from((now - old.expires_at).whole_nanoseconds()).unwrap_or(i64::MAX)),
        )
        .into_response()
}

/// Checks a submission's CSRF protection: a browser flow must have been issued to this CSRF
/// cookie and the form's masked token must unmask to it; an API flow must not come from a
/// browser.
pub(crate) fn check_csrf(
    reg: &Registry,
    ctx: &Ctx,
    flow: &Flow,
    body: &Value,
) -> Result<(), ApiError> {
    if flow.flow_type == FlowType::Api {
        return ensure_no_browser(ctx);
    }
    let Some(cookie) = reg.csrf_cookie_of(ctx) else {
        return Err(ApiError::csrf(
            "The HTTP Cookie Header was set but did not include the anti-CSRF cookie. We recommend deleting all cookies for this domain and retrying the flow.",
        ));
    };
    let submitted = x::body_str(body, "csrf_token")
        .map(str::to_string)
        .or_else(|| ctx.header("x-csrf-token").map(str::to_string));
    let Some(submitted) = submitted.filter(|s| !s.is_empty()) else {
        return Err(ApiError::csrf(
            "The anti-CSRF cookie was found but the CSRF token was not included in the HTTP request body (csrf_token) nor in the HTTP Header (X-CSRF-Token).",
        ));
    };
    let bound = portcullis_core::constant_time_eq(cookie.as_bytes(), flow.csrf_token.as_bytes());
    if !bound || !csrf::verify(&cookie, &submitted) {
        return Err(ApiError::csrf(
            "The HTTP Cookie Header was set and a CSRF token was sent but they do not match. We recommend deleting all cookies for this domain and retrying the flow.",
        ));
    }
    Ok(())
}

/// API flows carry no CSRF token, so, as Kratos does, they refuse requests that look like a
/// browser's (an `Origin` header, or cookies other than Cloudflare's).
fn ensure_no_browser(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.header("origin").is_some_and(|o| !o.is_empty()) {
        return Err(ApiError::bad_request(
            "The HTTP Request Header included the \"Origin\" key, indicating that this request was made as part of an AJAX request in a Browser. The flow however was initiated as an API request. To prevent potential misuse and mitigate several attack vectors including CSRF, the request has been blocked. Please consult the documentation.",
        ));
    }
    let browser_cookie = ctx
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.split_once('=').map(|(k, _)| k.trim()))
        .any(|name| !name.is_empty() && !name.starts_with("__cf") && !name.starts_with("cf_"));
    if browser_cookie {
        return Err(ApiError::bad_request(
            "The HTTP Request Header included the \"Cookie\" key, indicating that this request was made by a Browser. The flow however was initiated as an API request. To prevent potential misuse and mitigate several attack vectors including CSRF, the request has been blocked. Please consult the documentation.",
        ));
    }
    Ok(())
}

/// Where a browser goes after a successful flow: the flow's `return_to`, else `after`, else
/// the global default.
pub(crate) fn return_url(reg: &Registry, flow: &Flow, after: Option<&url::Url>) -> String {
    flow.return_to
        .clone()
        .or_else(|| after.map(|u| u.to_string()))
        .unwrap_or_else(|| reg.config.default_return_url.to_string())
}
