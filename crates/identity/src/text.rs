//! Kratos's numbered UI messages (`uiText`): clients translate by `id`, so ids and texts match
//! Kratos's `text/id.go` exactly.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// `info`, `error` or `success`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextType {
    /// Informational (labels, hints).
    Info,
    /// A validation or flow error.
    Error,
    /// A completed action.
    Success,
}

/// One message: `{id, text, type, context?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Text {
    /// Kratos's message id.
    pub id: u32,
    /// The English text.
    pub text: String,
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: TextType,
    /// Values interpolated into the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

impl Text {
    fn info(id: u32, text: impl Into<String>, context: Option<Value>) -> Self {
        Self {
            id,
            text: text.into(),
            kind: TextType::Info,
            context,
        }
    }

    fn success(id: u32, text: impl Into<String>, context: Option<Value>) -> Self {
        Self {
            id,
            text: text.into(),
            kind: TextType::Success,
            context,
        }
    }

    fn error(id: u32, text: impl Into<String>, context: Option<Value>) -> Self {
        Self {
            id,
            text: text.into(),
            kind: TextType::Error,
            context,
        }
    }
}

/// 1010001 "Sign in".
pub fn login() -> Text {
    Text::info(1010001, "Sign in", None)
}

/// 1010022 "Sign in with password".
pub fn login_with_password() -> Text {
    Text::info(1010022, "Sign in with password", None)
}

/// 1040001 "Sign up".
pub fn registration() -> Text {
    Text::info(1040001, "Sign up", None)
}

/// 1070001 "Password".
pub fn label_password() -> Text {
    Text::info(1070001, "Password", None)
}

/// 1070002: a label taken from the identity schema's `title`.
pub fn label_generated(title: &str, name: &str) -> Text {
    Text::info(1070002, title, Some(json!({"title": title, "name": name})))
}

/// 1070004 "ID".
pub fn label_id() -> Text {
    Text::info(1070004, "ID", None)
}

/// 4000001: a validation error whose text is the reason.
pub fn validation_generic(reason: impl Into<String>) -> Text {
    let reason = reason.into();
    Text::error(4000001, reason.clone(), Some(json!({"reason": reason})))
}

/// 4000002 "Property {x} is missing."
pub fn missing_property(property: &str) -> Text {
    Text::error(
        4000002,
        format!("Property {property} is missing."),
        Some(json!({"property": property})),
    )
}

/// 4000003 "length must be >= {n}, but got {m}".
pub fn min_length(min: u64, actual: usize) -> Text {
    Text::error(
        4000003,
        format!("length must be >= {min}, but got {actual}"),
        Some(json!({"min_length": min, "actual_length": actual})),
    )
}

/// 4000004 pattern mismatch.
pub fn pattern_mismatch(pattern: &str) -> Text {
    Text::error(
        4000004,
        format!("does not match pattern \"{pattern}\""),
        Some(json!({"pattern": pattern})),
    )
}

/// 4000005 "The password can not be used because {reason}."
pub fn password_policy(reason: &str) -> Text {
    Text::error(
        4000005,
        format!("The password can not be used because {reason}."),
        Some(json!({"reason": reason})),
    )
}

/// 4000006 invalid credentials (identical for unknown identifier and wrong password).
pub fn invalid_credentials() -> Text {
    Text::error(
        4000006,
        "The provided credentials are invalid, check for spelling mistakes in your password or username, email address, or phone number.",
        None,
    )
}

/// 4000007 duplicate identifier.
pub fn duplicate_credentials() -> Text {
    Text::error(
        4000007,
        "An account with the same identifier (email, phone, username, ...) exists already.",
        None,
    )
}

/// 4000031 password too similar to the identifier.
pub fn password_identifier_similar() -> Text {
    Text::error(
        4000031,
        "The password can not be used because it is too similar to the identifier.",
        None,
    )
}

/// 4000032 password too short.
pub fn password_too_short(min: usize, actual: usize) -> Text {
    Text::error(
        4000032,
        format!("The password must be at least {min} characters long, but got {actual}."),
        Some(json!({"min_length": min, "actual_length": actual})),
    )
}

/// 4000033 password too long (bcrypt's 72-byte limit).
pub fn password_too_long(max: usize, actual: usize) -> Text {
    Text::error(
        4000033,
        format!("The password must be at most {max} characters long, but got {actual}."),
        Some(json!({"max_length": max, "actual_length": actual})),
    )
}

/// 4010001 login flow expired.
pub fn login_flow_expired(minutes_ago: f64, expired_at: &str) -> Text {
    Text::error(
        4010001,
        format!("The login flow expired {minutes_ago:.2} minutes ago, please try again."),
        Some(json!({"expired_at": expired_at})),
    )
}

/// 4010011 the identity is disabled.
pub fn identity_disabled() -> Text {
    Text::error(
        4010011,
        "You cannot sign in because your account is disabled.",
        None,
    )
}

/// 4040001 registration flow expired.
pub fn registration_flow_expired(minutes_ago: f64, expired_at: &str) -> Text {
    Text::error(
        4040001,
        format!("The registration flow expired {minutes_ago:.2} minutes ago, please try again."),
        Some(json!({"expired_at": expired_at})),
    )
}

/// 4010002: no login method matched the submission.
pub fn no_strategy_login() -> Text {
    Text::error(
        4010002,
        "Could not find a strategy to log you in with. Did you fill out the form correctly?",
        None,
    )
}

/// A registration submission no method is responsible for (generic 4000001).
pub fn no_strategy_registration() -> Text {
    validation_generic(
        "Could not find a strategy to sign you up with. Did you fill out the form correctly?",
    )
}

/// 1070007 "Email".
pub fn label_email() -> Text {
    Text::info(1070007, "Email", None)
}

/// 1070008 "Resend code".
pub fn resend_code() -> Text {
    Text::info(1070008, "Resend code", None)
}

/// 1070009 "Continue".
pub fn continue_() -> Text {
    Text::info(1070009, "Continue", None)
}

/// 1070010 "Recovery code".
pub fn label_recovery_code() -> Text {
    Text::info(1070010, "Recovery code", None)
}

/// 1070011 "Verification code".
pub fn label_verification_code() -> Text {
    Text::info(1070011, "Verification code", None)
}

/// 1060003: a recovery code was sent.
pub fn recovery_email_with_code_sent() -> Text {
    Text::info(
        1060003,
        "An email containing a recovery code has been sent to the email address you provided. If you have not received an email, check the spelling of the address and make sure to use the address you registered with.",
        None,
    )
}

/// 1060001: recovered; the settings flow stays privileged until `expires_at`.
pub fn recovery_successful(
    privileged_until: time::OffsetDateTime,
    now: time::OffsetDateTime,
) -> Text {
    let minutes = ((privileged_until - now).whole_seconds().max(0) + 59) / 60;
    Text::success(
        1060001,
        format!(
            "You successfully recovered your account. Please change your password or set up an alternative login method (e.g. social sign in) within the next {minutes} minutes."
        ),
        Some(json!({"privileged_session_expires_at_unix": privileged_until.unix_timestamp()})),
    )
}

/// 1080003: a verification code was sent.
pub fn verification_email_with_code_sent() -> Text {
    Text::info(
        1080003,
        "An email containing a verification code has been sent to the email address you provided. If you have not received an email, check the spelling of the address and make sure to use the address you registered with.",
        None,
    )
}

/// 1080002: the address is verified.
pub fn verification_success() -> Text {
    Text::success(
        1080002,
        "You successfully verified your email address.",
        None,
    )
}

/// 1050001: settings saved.
pub fn settings_saved() -> Text {
    Text::success(1050001, "Your changes have been saved!", None)
}

/// 4000010: login refused until an address is verified.
pub fn address_not_verified() -> Text {
    Text::error(
        4000010,
        "Account not active yet. Did you forget to verify your email address?",
        None,
    )
}

/// 4060001 / 4070002: the flow already succeeded.
pub fn retry_success(recovery: bool) -> Text {
    Text::error(
        if recovery { 4060001 } else { 4070002 },
        "The request was already completed successfully and can not be retried.",
        None,
    )
}

/// 4060005 recovery flow expired.
pub fn recovery_flow_expired(minutes_ago: f64, expired_at: &str) -> Text {
    Text::error(
        4060005,
        format!("The recovery flow expired {minutes_ago:.2} minutes ago, please try again."),
        Some(json!({"expired_at": expired_at})),
    )
}

/// 4070005 verification flow expired.
pub fn verification_flow_expired(minutes_ago: f64, expired_at: &str) -> Text {
    Text::error(
        4070005,
        format!("The verification flow expired {minutes_ago:.2} minutes ago, please try again."),
        Some(json!({"expired_at": expired_at})),
    )
}

/// 4060006 wrong, used or expired recovery code.
pub fn recovery_code_invalid() -> Text {
    Text::error(
        4060006,
        "The recovery code is invalid or has already been used. Please try again.",
        None,
    )
}

/// 4070006 wrong, used or expired verification code.
pub fn verification_code_invalid() -> Text {
    Text::error(
        4070006,
        "The verification code is invalid or has already been used. Please try again.",
        None,
    )
}

/// 4000040 "Enter a valid email address".
pub fn invalid_email() -> Text {
    Text::error(4000040, "Enter a valid email address", None)
}

/// 1070003 "Save".
pub fn save() -> Text {
    Text::info(1070003, "Save", None)
}

/// 1010003: a refresh login asks the user to confirm it is them.
pub fn login_re_auth() -> Text {
    Text::info(
        1010003,
        "Please confirm this action by verifying that it is you.",
        None,
    )
}

/// 4050001 settings flow expired.
pub fn settings_flow_expired(minutes_ago: f64, expired_at: &str) -> Text {
    Text::error(
        4050001,
        format!("The settings flow expired {minutes_ago:.2} minutes ago, please try again."),
        Some(json!({"expired_at": expired_at})),
    )
}

/// 1040008 "Back".
pub fn back() -> Text {
    Text::info(1040008, "Back", None)
}

/// 4000034 the password appears in data breaches (`breaches`: how often, when known).
pub fn password_breached(breaches: Option<u64>) -> Text {
    Text::error(
        4000034,
        "The password has been found in data breaches and must no longer be used.",
        breaches.map(|b| json!({"breaches": b})),
    )
}

/// 4000900 (a Portcullis id, unused by Kratos): login refused after too many failed attempts,
/// identical whether or not the account exists.
pub fn login_locked(retry_after_seconds: u64) -> Text {
    Text::error(
        LOGIN_LOCKED,
        format!(
            "Too many failed login attempts. Please try again in {retry_after_seconds} seconds."
        ),
        Some(json!({"retry_after_seconds": retry_after_seconds})),
    )
}

/// The message id of [`login_locked`].
pub const LOGIN_LOCKED: u32 = 4000900;
/// 1070005 "Submit" (the link method's button).
pub fn submit() -> Text {
    Text::info(1070005, "Submit", None)
}

/// 1060002: a recovery link was sent.
pub fn recovery_email_sent() -> Text {
    Text::info(
        1060002,
        "An email containing a recovery link has been sent to the email address you provided. If you have not received an email, check the spelling of the address and make sure to use the address you registered with.",
        None,
    )
}

/// 1080001: a verification link was sent.
pub fn verification_email_sent() -> Text {
    Text::info(
        1080001,
        "An email containing a verification link has been sent to the email address you provided. If you have not received an email, check the spelling of the address and make sure to use the address you registered with.",
        None,
    )
}

/// 4060004 unknown or used recovery link token.
pub fn recovery_token_invalid() -> Text {
    Text::error(
        4060004,
        "The recovery token is invalid or has already been used. Please retry the flow.",
        None,
    )
}

/// 4070001 unknown or used verification link token.
pub fn verification_token_invalid() -> Text {
    Text::error(
        4070001,
        "The verification token is invalid or has already been used. Please retry the flow.",
        None,
    )
}
