//! Self-service flow kinds and the part of a flow object the pages read.

use serde::{Deserialize, Deserializer};

use crate::node::UiContainer;

/// The self-service flows that have a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowKind {
    /// `/login`
    Login,
    /// `/registration`
    Registration,
    /// `/recovery`
    Recovery,
    /// `/verification`
    Verification,
    /// `/settings`
    Settings,
}

impl FlowKind {
    /// Every kind, in menu order.
    pub const ALL: [FlowKind; 5] = [
        FlowKind::Login,
        FlowKind::Registration,
        FlowKind::Recovery,
        FlowKind::Verification,
        FlowKind::Settings,
    ];

    /// The name Kratos uses in paths (`/self-service/<name>/...`), also the page's path.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowKind::Login => "login",
            FlowKind::Registration => "registration",
            FlowKind::Recovery => "recovery",
            FlowKind::Verification => "verification",
            FlowKind::Settings => "settings",
        }
    }

    /// Query parameters of the page that are passed on to `/self-service/<kind>/browser`
    /// (the ones Kratos' browser-flow initializers accept).
    pub fn init_params(self) -> &'static [&'static str] {
        match self {
            FlowKind::Login => &[
                "return_to",
                "refresh",
                "aal",
                "login_challenge",
                "organization",
                "via",
                "identity_schema",
            ],
            FlowKind::Registration => &[
                "return_to",
                "login_challenge",
                "after_verification_return_to",
                "organization",
                "identity_schema",
            ],
            FlowKind::Recovery => &["return_to"],
            FlowKind::Verification => &["return_to"],
            FlowKind::Settings => &["return_to"],
        }
    }
}

/// The fields every flow kind shares that the pages use.
#[derive(Debug, Clone, Deserialize)]
pub struct Flow {
    /// Flow id.
    pub id: String,
    /// Where the person goes once the flow completes.
    #[serde(default, deserialize_with = "null_as_default")]
    pub return_to: String,
    /// Login: re-authentication of an existing session.
    #[serde(default, deserialize_with = "null_as_default")]
    pub refresh: bool,
    /// Login: `aal1` or `aal2` (step-up).
    #[serde(default, deserialize_with = "null_as_default")]
    pub requested_aal: String,
    /// Flow state, e.g. `choose_method`, `sent_email`, `show_form`, `success`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub state: String,
    /// The form to render.
    pub ui: UiContainer,
}

/// Treats an explicit JSON `null` like a missing field.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
