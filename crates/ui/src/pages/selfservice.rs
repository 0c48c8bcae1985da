//! `/login`, `/registration`, `/recovery`, `/verification`, `/settings`: one handler for every
//! flow kind, because the page only renders the flow's nodes.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::Serialize;

use super::{Params, Ui, cookie_header, page_link, relay_cookies};
use crate::flow::{Flow, FlowKind};
use crate::i18n;
use crate::kratos::{KratosError, endpoint};
use crate::node::{self, FormView, MessageView};
use crate::render::{self, ErrorPage};

/// Kratos' message id for "Account not active yet. Did you forget to verify your email address?".
const ACCOUNT_NOT_ACTIVE: i64 = 4000010;

#[derive(Serialize)]
struct Link {
    /// Shown as the page's main button rather than a text link.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    button: bool,
    prefix: &'static str,
    href: String,
    text: &'static str,
}

#[derive(Serialize)]
struct FlowPage {
    title: &'static str,
    subtitle: Option<&'static str>,
    kind: &'static str,
    flow_id: String,
    messages: Vec<MessageView>,
    forms: Vec<FormView>,
    links: Vec<Link>,
}

/// Without `?flow=`, starts a browser flow at the identity server; with it, fetches the flow
/// (forwarding the browser's cookies) and renders it. A flow that is gone, expired or bound to
/// other cookies starts over, keeping `return_to`.
pub(super) async fn show(
    ui: Ui,
    kind: FlowKind,
    query: Option<String>,
    headers: HeaderMap,
) -> Response {
    let params = Params::parse(query);
    let Some(flow_id) = params.get("flow") else {
        return render::see_other(init_url(&ui, kind, &params).as_str());
    };
    let cookie = cookie_header(&headers);
    match ui.kratos.get_flow(kind, flow_id, cookie.as_deref()).await {
        Ok(reply) => relay_cookies(page(kind, &reply.body, &params), reply.set_cookies),
        Err(KratosError::Api {
            status,
            error,
            redirect_browser_to,
            ..
        }) if matches!(status.as_u16(), 401 | 403 | 404 | 410) => {
            if status == StatusCode::UNAUTHORIZED {
                return render::see_other(init_url(&ui, FlowKind::Login, &params).as_str());
            }
            if let (Some("session_aal2_required"), Some(target)) =
                (error.id.as_deref(), redirect_browser_to)
            {
                return render::see_other(&target);
            }
            tracing::debug!(kind = kind.as_str(), %status, "flow unusable; starting a new one");
            render::see_other(init_url(&ui, kind, &params).as_str())
        }
        // 400: the id is not even well-formed (a mangled or truncated link).
        Err(KratosError::Api { status, .. }) if status == StatusCode::BAD_REQUEST => {
            let mut page = ErrorPage::new(
                StatusCode::BAD_REQUEST,
                "This link does not work",
                "The address you followed is incomplete or broken. Start again to get a fresh form.",
            );
            page.retry = Some(page_link(kind.as_str(), params.get("return_to")));
            page.into_response()
        }
        Err(error) => ErrorPage::from_kratos(
            &error,
            Some(page_link(kind.as_str(), params.get("return_to"))),
        )
        .into_response(),
    }
}

/// `<browser url>/self-service/<kind>/browser` with the page's parameters that the
/// initializer accepts.
fn init_url(ui: &Ui, kind: FlowKind, params: &Params) -> url::Url {
    let query: Vec<(&str, &str)> = kind
        .init_params()
        .iter()
        .filter_map(|key| params.get(key).map(|value| (*key, value)))
        .collect();
    endpoint(
        &ui.config.kratos_browser_url,
        &format!("self-service/{}/browser", kind.as_str()),
        &query,
    )
}

fn page(kind: FlowKind, flow: &Flow, params: &Params) -> Response {
    let locale = i18n::current();
    let return_to = Some(flow.return_to.as_str())
        .filter(|r| !r.is_empty())
        .or_else(|| params.get("return_to"));
    let (title, subtitle) = match kind {
        FlowKind::Login if flow.refresh => (
            "Confirm it's you",
            Some("Please sign in again to continue."),
        ),
        FlowKind::Login if flow.requested_aal == "aal2" => (
            "Second factor",
            Some("Complete the second authentication challenge."),
        ),
        FlowKind::Login => ("Sign in", None),
        FlowKind::Registration => ("Create an account", None),
        // Once the code is sent, the flow's own message explains the next step.
        FlowKind::Recovery if flow.state == "sent_email" => ("Recover your account", None),
        FlowKind::Recovery => (
            "Recover your account",
            Some("Enter the email address of your account to receive a recovery code."),
        ),
        FlowKind::Verification => ("Verify your email address", None),
        FlowKind::Settings => ("Account settings", None),
    };
    let mut links = match kind {
        FlowKind::Login if flow.refresh || flow.requested_aal == "aal2" => vec![Link {
            button: false,
            prefix: "Something is not working?",
            href: "/logout".to_string(),
            text: "Log out",
        }],
        FlowKind::Login => vec![
            Link {
                button: false,
                prefix: "Don't have an account?",
                href: page_link("registration", return_to),
                text: "Sign up",
            },
            Link {
                button: false,
                prefix: "",
                href: page_link("recovery", return_to),
                text: "Forgot your password?",
            },
        ],
        FlowKind::Registration => vec![Link {
            button: false,
            prefix: "Already have an account?",
            href: page_link("login", return_to),
            text: "Sign in",
        }],
        FlowKind::Recovery | FlowKind::Verification => vec![Link {
            button: false,
            prefix: "Remember your credentials?",
            href: page_link("login", return_to),
            text: "Sign in",
        }],
        FlowKind::Settings => vec![Link {
            button: false,
            prefix: "",
            href: "/".to_string(),
            text: "Back to the start page",
        }],
    };
    // A passed verification challenge ends the flow; Kratos offers a "Continue" anchor node,
    // and where the flow has none the page offers the way on itself.
    if kind == FlowKind::Verification
        && flow.state == "passed_challenge"
        && !flow.ui.nodes.iter().any(|n| n.node_type == "a")
    {
        links = vec![Link {
            button: true,
            prefix: "",
            // Only the identity server's validated `return_to`, never the query's.
            href: Some(flow.return_to.as_str())
                .filter(|r| !r.is_empty())
                .unwrap_or("/")
                .to_string(),
            text: "Continue",
        }];
    }
    // 4000010 "Account not active yet": offer the way out, as kratos-selfservice-ui-node does.
    if flow.ui.messages.iter().any(|m| m.id == ACCOUNT_NOT_ACTIVE) {
        links.insert(
            0,
            Link {
                button: false,
                prefix: "Haven't verified your email address yet?",
                href: page_link("verification", return_to),
                text: "Verify it now",
            },
        );
    }
    let context = FlowPage {
        title,
        subtitle,
        kind: kind.as_str(),
        flow_id: flow.id.clone(),
        messages: node::messages(&flow.ui.messages, "flow", locale),
        forms: node::forms(&flow.ui, kind == FlowKind::Settings, locale),
        links,
    };
    render::html(StatusCode::OK, "flow.html", context)
}
