//! Message templates: the e-mails flows send, rendered to subject and plain-text body at
//! enqueue time (the outbox stores what is sent, as Kratos does). Texts follow Kratos's
//! built-in templates.

use serde::{Deserialize, Serialize};

/// Kratos's `template_type` values this server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateType {
    /// A recovery code for a known address.
    RecoveryCodeValid,
    /// Someone asked to recover an address no account has.
    RecoveryCodeInvalid,
    /// A verification code for a known address.
    VerificationCodeValid,
    /// Someone asked to verify an address no account has.
    VerificationCodeInvalid,
    /// A recovery link for a known address (the `link` method).
    RecoveryValid,
    /// Recovery by link asked for an address no account has.
    RecoveryInvalid,
    /// A verification link for a known address (the `link` method).
    VerificationValid,
    /// Verification by link asked for an address no account has.
    VerificationInvalid,
}

impl TemplateType {
    /// Kratos's string.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateType::RecoveryCodeValid => "recovery_code_valid",
            TemplateType::RecoveryCodeInvalid => "recovery_code_invalid",
            TemplateType::VerificationCodeValid => "verification_code_valid",
            TemplateType::VerificationCodeInvalid => "verification_code_invalid",
            TemplateType::RecoveryValid => "recovery_valid",
            TemplateType::RecoveryInvalid => "recovery_invalid",
            TemplateType::VerificationValid => "verification_valid",
            TemplateType::VerificationInvalid => "verification_invalid",
        }
    }
}

/// A rendered e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Kratos's template type.
    pub template_type: TemplateType,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// The recovery code e-mail.
pub fn recovery_code_valid(code: &str) -> Rendered {
    Rendered {
        template_type: TemplateType::RecoveryCodeValid,
        subject: "Recover access to your account".into(),
        body: format!(
            "Hi,\n\nplease recover access to your account by entering the following code:\n\n{code}\n"
        ),
    }
}

/// The answer to a recovery request for an unknown address.
pub fn recovery_code_invalid() -> Rendered {
    Rendered {
        template_type: TemplateType::RecoveryCodeInvalid,
        subject: "Account access attempted".into(),
        body: "Hi,\n\nyou (or someone else) entered this email address when trying to recover \
               access to an account.\n\nHowever, this email address is not on our database of \
               registered users and therefore the attempt has failed.\n\nIf this was you, check \
               if you signed up using a different address.\n\nIf this was not you, please ignore \
               this email.\n"
            .into(),
    }
}

/// The verification code e-mail, with a link that redeems the code in one click.
pub fn verification_code_valid(code: &str, link: &str) -> Rendered {
    Rendered {
        template_type: TemplateType::VerificationCodeValid,
        subject: "Please verify your email address".into(),
        body: format!(
            "Hi,\n\nplease verify your account by entering the following code:\n\n{code}\n\nor clicking the following link:\n\n{link}\n"
        ),
    }
}

/// The answer to a verification request for an unknown address.
pub fn verification_code_invalid() -> Rendered {
    Rendered {
        template_type: TemplateType::VerificationCodeInvalid,
        subject: "Someone tried to verify this email address".into(),
        body: "Hi,\n\nsomeone asked to verify this email address, but we were unable to find an \
               account for this address.\n\nIf this was you, check if you signed up using a \
               different address.\n\nIf this was not you, please ignore this email.\n"
            .into(),
    }
}

/// The recovery link e-mail (`recovery_valid`).
pub fn recovery_valid(url: &str) -> Rendered {
    Rendered {
        template_type: TemplateType::RecoveryValid,
        subject: "Recover access to your account".into(),
        body: format!(
            "Hi,\n\nplease recover access to your account by clicking the following link:\n\n{url}\n"
        ),
    }
}

/// Recovery by link for an unknown address (`recovery_invalid`): the same notice as the
/// code method's.
pub fn recovery_invalid() -> Rendered {
    Rendered {
        template_type: TemplateType::RecoveryInvalid,
        ..recovery_code_invalid()
    }
}

/// The verification link e-mail (`verification_valid`).
pub fn verification_valid(url: &str) -> Rendered {
    Rendered {
        template_type: TemplateType::VerificationValid,
        subject: "Please verify your email address".into(),
        body: format!(
            "Hi,\n\nplease verify your account by clicking the following link:\n\n{url}\n"
        ),
    }
}

/// Verification by link for an unknown address (`verification_invalid`).
pub fn verification_invalid() -> Rendered {
    Rendered {
        template_type: TemplateType::VerificationInvalid,
        ..verification_code_invalid()
    }
}
