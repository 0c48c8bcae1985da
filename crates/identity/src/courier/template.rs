//! Message templates: the e-mails flows send, rendered to subject, plain-text and HTML body
//! at enqueue time (the outbox stores what is sent). The plain-text wording follows Kratos's
//! built-in templates; the HTML bodies are our own rendering of the same paragraphs.

use std::collections::BTreeMap;
use std::path::Path;

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
    /// Plain-text body (the message's `body`, as Kratos stores it).
    pub body: String,
    /// HTML body, sent beside the plain text as `multipart/alternative`.
    pub html: String,
    /// The template's variables (`RecoveryCode`, `RecoveryURL`, `VerificationCode`,
    /// `VerificationURL`; `To` and `Identity` are added when queued), for overrides.
    pub data: Value,
}

/// One paragraph of a built-in e-mail.
enum Block<'a> {
    /// Running text.
    Text(&'a str),
    /// A code to type in, set apart.
    Code(&'a str),
    /// A link, shown as its URL.
    Link(&'a str),
}

use Block::{Code, Link, Text};

impl Rendered {
    /// A built-in e-mail: both bodies are made from the same paragraphs, so they always say
    /// the same thing.
    fn built_in(
        template_type: TemplateType,
        subject: &str,
        blocks: &[Block<'_>],
        data: Value,
    ) -> Self {
        let mut body = String::new();
        let mut html = format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n</head>\n\
             <body style=\"margin:0;padding:24px;font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;\
             font-size:16px;line-height:1.5;color:#1f2328;background:#ffffff\">\n",
            escape_html(subject)
        );
        for (i, block) in blocks.iter().enumerate() {
            if i > 0 {
                body.push_str("\n\n");
            }
            let (text, paragraph) = match block {
                Text(t) => (*t, format!("<p>{}</p>", escape_html(t))),
                Code(c) => (
                    *c,
                    format!(
                        "<p style=\"font-family:ui-monospace,Menlo,Consolas,monospace;font-size:24px;\
                         letter-spacing:4px;font-weight:bold\">{}</p>",
                        escape_html(c)
                    ),
                ),
                Link(url) => {
                    let url_html = escape_html(url);
                    (
                        *url,
                        format!("<p><a href=\"{url_html}\">{url_html}</a></p>"),
                    )
                }
            };
            body.push_str(text);
            html.push_str(&paragraph);
            html.push('\n');
        }
        body.push('\n');
        html.push_str("</body>\n</html>\n");
        Self {
            template_type,
            subject: subject.into(),
            body,
            html,
            data,
        }
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

const ACCESS_ATTEMPTED: [Block<'static>; 5] = [
    Text("Hi,"),
    Text(
        "you (or someone else) entered this email address when trying to recover access to an \
         account.",
    ),
    Text(
        "However, this email address is not on our database of registered users and therefore \
         the attempt has failed.",
    ),
    Text("If this was you, check if you signed up using a different address."),
    Text("If this was not you, please ignore this email."),
];

const VERIFICATION_ATTEMPTED: [Block<'static>; 4] = [
    Text("Hi,"),
    Text(
        "someone asked to verify this email address, but we were unable to find an account for \
         this address.",
    ),
    Text("If this was you, check if you signed up using a different address."),
    Text("If this was not you, please ignore this email."),
];

/// The recovery code e-mail.
pub fn recovery_code_valid(code: &str) -> Rendered {
    Rendered::built_in(
        TemplateType::RecoveryCodeValid,
        "Recover access to your account",
        &[
            Text("Hi,"),
            Text("please recover access to your account by entering the following code:"),
            Code(code),
        ],
        json!({ "RecoveryCode": code }),
    )
}

/// The answer to a recovery request for an unknown address.
pub fn recovery_code_invalid() -> Rendered {
    Rendered::built_in(
        TemplateType::RecoveryCodeInvalid,
        "Account access attempted",
        &ACCESS_ATTEMPTED,
        json!({}),
    )
}

/// The verification code e-mail, with a link that redeems the code in one click.
pub fn verification_code_valid(code: &str, link: &str) -> Rendered {
    Rendered::built_in(
        TemplateType::VerificationCodeValid,
        "Please verify your email address",
        &[
            Text("Hi,"),
            Text("please verify your account by entering the following code:"),
            Code(code),
            Text("or clicking the following link:"),
            Link(link),
        ],
        json!({ "VerificationCode": code, "VerificationURL": link }),
    )
}

/// The answer to a verification request for an unknown address.
pub fn verification_code_invalid() -> Rendered {
    Rendered::built_in(
        TemplateType::VerificationCodeInvalid,
        "Someone tried to verify this email address",
        &VERIFICATION_ATTEMPTED,
        json!({}),
    )
}

/// The recovery link e-mail (`recovery_valid`).
pub fn recovery_valid(url: &str) -> Rendered {
    Rendered::built_in(
        TemplateType::RecoveryValid,
        "Recover access to your account",
        &[
            Text("Hi,"),
            Text("please recover access to your account by clicking the following link:"),
            Link(url),
        ],
        json!({ "RecoveryURL": url }),
    )
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
    Rendered::built_in(
        TemplateType::VerificationValid,
        "Please verify your email address",
        &[
            Text("Hi,"),
            Text("please verify your account by clicking the following link:"),
            Link(url),
        ],
        json!({ "VerificationURL": url }),
    )
}

/// Verification by link for an unknown address (`verification_invalid`).
pub fn verification_invalid() -> Rendered {
    Rendered {
        template_type: TemplateType::VerificationInvalid,
        ..verification_code_invalid()
    }
}

/// One overridden template: subject, HTML and plain-text body (each optional; as in Kratos,
/// the built-in one is used for a part not overridden).
#[derive(Debug, Clone, Default)]
pub struct Override {
    subject: Option<GoTemplate>,
    html: Option<GoTemplate>,
    plaintext: Option<GoTemplate>,
}

/// `courier.templates` and `courier.template_override_path`, compiled.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    by_type: BTreeMap<&'static str, Override>,
}

impl Overrides {
    /// Compiles the overrides: for each template, `courier.templates.<name>.<valid|invalid>.email`
    /// (`subject`, `body.html`, `body.plaintext` as URLs [`crate::fetcher`] reads) wins over
    /// the files `<template_override_path>/<name>/<valid|invalid>/email.subject.gotmpl`,
    /// `email.body.gotmpl` (HTML) and `email.body.plaintext.gotmpl`. The error names the
    /// configuration key or file.
    pub fn compile(
        templates: &Value,
        override_path: Option<&Path>,
        base_dir: &Path,
    ) -> Result<Self, (String, String)> {
        const PARTS: [(&str, &str); 3] = [
            ("subject", "email.subject.gotmpl"),
            ("body/html", "email.body.gotmpl"),
            ("body/plaintext", "email.body.plaintext.gotmpl"),
        ];
        let mut by_type = BTreeMap::new();
        for t in TemplateType::ALL {
            let (name, valid) = t.config_key();
            let variant = if valid { "valid" } else { "invalid" };
            let email = format!("/{name}/{variant}/email");
            let mut parts: [Option<GoTemplate>; 3] = Default::default();
            for (part, (key, file)) in parts.iter_mut().zip(PARTS) {
                if let Some(uri) = templates
                    .pointer(&format!("{email}/{key}"))
                    .and_then(Value::as_str)
                {
                    *part =
                        Some(read_uri(uri, base_dir).map_err(|e| (format!("{email}/{key}"), e))?);
                } else if let Some(dir) = override_path {
                    *part = read_file(&dir.join(name).join(variant).join(file))?;
                }
            }
            let [subject, html, plaintext] = parts;
            if subject.is_some() || html.is_some() || plaintext.is_some() {
                by_type.insert(
                    t.as_str(),
                    Override {
                        subject,
                        html,
                        plaintext,
                    },
                );
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
            if let Some(t) = &o.html {
                rendered.html = t.render_html(&rendered.data);
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
    let text = crate::fetcher::fetch_text(uri, base_dir).map_err(|e| e.to_string())?;
    GoTemplate::parse(&text)
}
