//! Message templates: the e-mails flows send, rendered to subject and plain-text body at
//! enqueue time (the outbox stores what is sent, as Kratos does). Texts follow Kratos's
//! built-in templates.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::gotmpl::GoTemplate;

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
    /// The configuration's name for the template and whether it is the `valid` variant:
    /// `courier.templates.<name>.<valid|invalid>`.
    pub fn config_key(self) -> (&'static str, bool) {
        match self {
            TemplateType::RecoveryCodeValid => ("recovery_code", true),
            TemplateType::RecoveryCodeInvalid => ("recovery_code", false),
            TemplateType::VerificationCodeValid => ("verification_code", true),
            TemplateType::VerificationCodeInvalid => ("verification_code", false),
            TemplateType::RecoveryValid => ("recovery", true),
            TemplateType::RecoveryInvalid => ("recovery", false),
            TemplateType::VerificationValid => ("verification", true),
            TemplateType::VerificationInvalid => ("verification", false),
        }
    }

    const ALL: [TemplateType; 8] = [
        TemplateType::RecoveryCodeValid,
        TemplateType::RecoveryCodeInvalid,
        TemplateType::VerificationCodeValid,
        TemplateType::VerificationCodeInvalid,
        TemplateType::RecoveryValid,
        TemplateType::RecoveryInvalid,
        TemplateType::VerificationValid,
        TemplateType::VerificationInvalid,
    ];

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
    /// The template's variables (`RecoveryCode`, `RecoveryURL`, `VerificationCode`,
    /// `VerificationURL`; `To` and `Identity` are added when queued), for overrides.
    pub data: Value,
}

/// The recovery code e-mail.
pub fn recovery_code_valid(code: &str) -> Rendered {
    Rendered {
        template_type: TemplateType::RecoveryCodeValid,
        subject: "Recover access to your account".into(),
        body: format!(
            "Hi,\n\nplease recover access to your account by entering the following code:\n\n{code}\n"
        ),
        data: json!({ "RecoveryCode": code }),
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
        data: json!({}),
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
        data: json!({ "VerificationCode": code, "VerificationURL": link }),
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
        data: json!({}),
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
        data: json!({ "RecoveryURL": url }),
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
        data: json!({ "VerificationURL": url }),
    }
}

/// Verification by link for an unknown address (`verification_invalid`).
pub fn verification_invalid() -> Rendered {
    Rendered {
        template_type: TemplateType::VerificationInvalid,
        ..verification_code_invalid()
    }
}

/// One overridden template: subject and plain-text body (each optional; the built-in one is
/// used for a part not overridden).
#[derive(Debug, Clone, Default)]
pub struct Override {
    subject: Option<GoTemplate>,
    plaintext: Option<GoTemplate>,
}

/// `courier.templates` and `courier.template_override_path`, compiled.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    by_type: BTreeMap<&'static str, Override>,
}

impl Overrides {
    /// Compiles the overrides: for each template, `courier.templates.<name>.<valid|invalid>.email`
    /// (`subject`, `body.plaintext` as `file://` or `base64://` URLs) wins over the files
    /// `<template_override_path>/<name>/<valid|invalid>/email.subject.gotmpl` and
    /// `email.body.plaintext.gotmpl`. The error names the configuration key or file.
    pub fn compile(
        templates: &Value,
        override_path: Option<&Path>,
        base_dir: &Path,
    ) -> Result<Self, (String, String)> {
        let mut by_type = BTreeMap::new();
        for t in TemplateType::ALL {
            let (name, valid) = t.config_key();
            let variant = if valid { "valid" } else { "invalid" };
            let mut o = Override::default();
            if let Some(dir) = override_path {
                let dir = dir.join(name).join(variant);
                o.subject = read_file(&dir.join("email.subject.gotmpl"))?;
                o.plaintext = read_file(&dir.join("email.body.plaintext.gotmpl"))?;
            }
            let email = format!("/{name}/{variant}/email");
            if let Some(uri) = templates
                .pointer(&format!("{email}/subject"))
                .and_then(Value::as_str)
            {
                o.subject =
                    Some(read_uri(uri, base_dir).map_err(|e| (format!("{email}/subject"), e))?);
            }
            if let Some(uri) = templates
                .pointer(&format!("{email}/body/plaintext"))
                .and_then(Value::as_str)
            {
                o.plaintext = Some(
                    read_uri(uri, base_dir).map_err(|e| (format!("{email}/body/plaintext"), e))?,
                );
            }
            if o.subject.is_some() || o.plaintext.is_some() {
                by_type.insert(t.as_str(), o);
            }
        }
        Ok(Self { by_type })
    }

    /// Whether `t` is overridden (so its data needs the identity).
    pub fn has(&self, t: TemplateType) -> bool {
        self.by_type.contains_key(t.as_str())
    }

    /// Applies the override of `rendered`'s template, if any, with its data.
    pub fn apply(&self, mut rendered: Rendered) -> Rendered {
        if let Some(o) = self.by_type.get(rendered.template_type.as_str()) {
            if let Some(t) = &o.subject {
                rendered.subject = t.render(&rendered.data).trim().to_string();
            }
            if let Some(t) = &o.plaintext {
                rendered.body = t.render(&rendered.data);
            }
        }
        rendered
    }
}

fn read_file(path: &Path) -> Result<Option<GoTemplate>, (String, String)> {
    match std::fs::read_to_string(path) {
        Ok(text) => GoTemplate::parse(&text)
            .map(Some)
            .map_err(|e| (path.display().to_string(), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err((path.display().to_string(), e.to_string())),
    }
}

fn read_uri(uri: &str, base_dir: &Path) -> Result<GoTemplate, String> {
    let text = if let Some(encoded) = uri.strip_prefix("base64://") {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| format!("invalid base64: {e}"))?;
        String::from_utf8(bytes).map_err(|e| e.to_string())?
    } else if let Some(path) = uri.strip_prefix("file://") {
        let path = Path::new(path);
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            base_dir.join(path)
        };
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        return Err(format!(
            "unsupported template URL {uri:?}: use file:// or base64://"
        ));
    };
    GoTemplate::parse(&text)
}
