//! A caught message: the envelope the SMTP session saw, the raw bytes, and what `mail-parser`
//! made of them, parsed once on arrival.

use std::net::SocketAddr;

use mail_parser::{Address, MessageParser, MimeHeaders, PartType};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What the SMTP session recorded around a message.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Envelope {
    /// The name the client gave in `HELO`/`EHLO`.
    pub helo: String,
    /// `MAIL FROM` reverse path (empty for the null sender `<>`).
    pub mail_from: String,
    /// `RCPT TO` forward paths.
    pub rcpt_to: Vec<String>,
    /// The client's address.
    pub peer: Option<SocketAddr>,
}

/// A mailbox named in a header: `"Name" <address>`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MailAddress {
    /// Display name, if any.
    pub name: Option<String>,
    /// The address (empty when the header had only a name).
    pub address: String,
}

/// One header as it appeared in the message (value unfolded and trimmed).
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    /// Header name.
    pub name: String,
    /// Raw value.
    pub value: String,
}

/// An attachment's description (contents stay in the raw message).
#[derive(Debug, Clone, Serialize)]
pub struct Attachment {
    /// File name, if given.
    pub filename: Option<String>,
    /// MIME type, e.g. `application/pdf`.
    pub content_type: String,
    /// Decoded size in bytes.
    pub size: usize,
}

/// A caught message.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    /// Unique id (UUID v4).
    pub id: String,
    /// When it arrived (RFC 3339, UTC).
    pub received_at: String,
    /// The SMTP envelope.
    pub envelope: Envelope,
    /// `From` header.
    pub from: Vec<MailAddress>,
    /// `To` header.
    pub to: Vec<MailAddress>,
    /// `Cc` header.
    pub cc: Vec<MailAddress>,
    /// `Reply-To` header.
    pub reply_to: Vec<MailAddress>,
    /// `Subject` (decoded).
    pub subject: String,
    /// `Date` header (RFC 3339), if present and valid.
    pub date: Option<String>,
    /// `Message-ID`.
    pub message_id: Option<String>,
    /// All top-level headers in order.
    pub headers: Vec<Header>,
    /// The first `text/plain` body part, decoded.
    pub text: Option<String>,
    /// The first `text/html` body part, decoded.
    pub html: Option<String>,
    /// Attachments.
    pub attachments: Vec<Attachment>,
    /// Size of the raw message in bytes.
    pub size: usize,
    /// The raw message as received (dot-unstuffed).
    #[serde(skip)]
    pub raw: Vec<u8>,
}

impl Message {
    /// Parses `raw` (never fails: unparseable mail keeps its raw bytes and shows them as text).
    pub fn parse(raw: Vec<u8>, envelope: Envelope) -> Self {
        let received_at = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let mut message = Message {
            id: uuid::Uuid::new_v4().to_string(),
            received_at,
            envelope,
            from: Vec::new(),
            to: Vec::new(),
            cc: Vec::new(),
            reply_to: Vec::new(),
            subject: String::new(),
            date: None,
            message_id: None,
            headers: Vec::new(),
            text: None,
            html: None,
            attachments: Vec::new(),
            size: raw.len(),
            raw: Vec::new(),
        };
        match MessageParser::default().parse(&raw[..]) {
            Some(parsed) => {
                message.from = addresses(parsed.from());
                message.to = addresses(parsed.to());
                message.cc = addresses(parsed.cc());
                message.reply_to = addresses(parsed.reply_to());
                message.subject = parsed.subject().unwrap_or_default().to_string();
                message.date = parsed.date().map(|d| d.to_rfc3339());
                message.message_id = parsed.message_id().map(str::to_string);
                message.headers = parsed
                    .headers_raw()
                    .map(|(name, value)| Header {
                        name: name.to_string(),
                        value: unfold(value),
                    })
                    .collect();
                message.text = parsed.text_bodies().find_map(|part| match &part.body {
                    PartType::Text(text) => Some(text.to_string()),
                    _ => None,
                });
                message.html = parsed.html_bodies().find_map(|part| match &part.body {
                    PartType::Html(html) => Some(html.to_string()),
                    _ => None,
                });
                message.attachments = parsed
                    .attachments()
                    .map(|part| Attachment {
                        filename: part.attachment_name().map(str::to_string),
                        content_type: part
                            .content_type()
                            .map(|ct| match ct.subtype() {
                                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                                None => ct.ctype().to_string(),
                            })
                            .unwrap_or_else(|| "application/octet-stream".to_string()),
                        size: part.len(),
                    })
                    .collect();
            }
            None => message.text = Some(String::from_utf8_lossy(&raw).into_owned()),
        }
        message.raw = raw;
        message
    }

    /// The first line or so of the text body, for lists.
    pub fn snippet(&self) -> String {
        let text = self.text.as_deref().unwrap_or_default();
        let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        collapsed.chars().take(160).collect()
    }

    /// Whether `needle` (lower-case) is one of the recipients, in the envelope or the headers.
    pub fn is_addressed_to(&self, needle: &str) -> bool {
        self.envelope
            .rcpt_to
            .iter()
            .chain(self.to.iter().chain(&self.cc).map(|a| &a.address))
            .any(|address| address.to_lowercase().contains(needle))
    }

    /// Whether `needle` (lower-case) occurs in the subject, the addresses or the bodies.
    pub fn contains_text(&self, needle: &str) -> bool {
        let addresses = self.from.iter().chain(&self.to).chain(&self.cc);
        self.subject.to_lowercase().contains(needle)
            || addresses.into_iter().any(|a| {
                a.address.to_lowercase().contains(needle)
                    || a.name
                        .as_deref()
                        .is_some_and(|n| n.to_lowercase().contains(needle))
            })
            || self.envelope.mail_from.to_lowercase().contains(needle)
            || self.is_addressed_to(needle)
            || [&self.text, &self.html]
                .into_iter()
                .flatten()
                .any(|body| body.to_lowercase().contains(needle))
    }
}

fn addresses(address: Option<&Address<'_>>) -> Vec<MailAddress> {
    address
        .map(|list| {
            list.iter()
                .map(|addr| MailAddress {
                    name: addr.name().map(str::to_string),
                    address: addr.address().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Joins folded header lines and trims the value.
fn unfold(value: &str) -> String {
    value
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_multipart_alternative_with_attachment() {
        let raw = concat!(
            "From: \"Ory\" <no-reply@example.com>\r\n",
            "To: ada@example.com, Bob <bob@example.com>\r\n",
            "Subject: =?UTF-8?Q?Recover_your_account_=E2=9C=93?=\r\n",
            "Date: Sat, 28 Nov 2026 12:00:00 +0000\r\n",
            "Message-ID: <m1@example.com>\r\n",
            "X-Long: first\r\n second\r\n",
            "MIME-Version: 1.0\r\n",
            "Content-Type: multipart/mixed; boundary=\"outer\"\r\n",
            "\r\n",
            "--outer\r\n",
            "Content-Type: multipart/alternative; boundary=\"inner\"\r\n",
            "\r\n",
            "--inner\r\n",
            "Content-Type: text/plain; charset=utf-8\r\n",
            "\r\n",
            "Your code is 123456.\r\n",
            "--inner\r\n",
            "Content-Type: text/html; charset=utf-8\r\n",
            "\r\n",
            "<p>Your code is <b>123456</b>.</p>\r\n",
            "--inner--\r\n",
            "--outer\r\n",
            "Content-Type: application/pdf\r\n",
            "Content-Disposition: attachment; filename=\"a.pdf\"\r\n",
            "Content-Transfer-Encoding: base64\r\n",
            "\r\n",
            "JVBERi0=\r\n",
            "--outer--\r\n",
        );
        let message = Message::parse(raw.as_bytes().to_vec(), Envelope::default());
        assert_eq!(message.subject, "Recover your account ✓");
        assert_eq!(message.from[0].name.as_deref(), Some("Ory"));
        assert_eq!(message.to.len(), 2);
        assert_eq!(message.to[1].address, "bob@example.com");
        assert_eq!(message.date.as_deref(), Some("2026-11-28T12:00:00Z"));
        assert_eq!(message.message_id.as_deref(), Some("m1@example.com"));
        assert!(
            message
                .text
                .as_deref()
                .is_some_and(|t| t.contains("123456"))
        );
        assert!(
            message
                .html
                .as_deref()
                .is_some_and(|t| t.contains("<b>123456</b>"))
        );
        assert_eq!(message.attachments.len(), 1);
        assert_eq!(message.attachments[0].filename.as_deref(), Some("a.pdf"));
        assert_eq!(message.attachments[0].content_type, "application/pdf");
        let long = message
            .headers
            .iter()
            .find(|h| h.name == "X-Long")
            .expect("header");
        assert_eq!(long.value, "first second");
        assert!(message.is_addressed_to("bob@"));
        assert!(message.contains_text("123456"));
    }

    #[test]
    fn text_only_mail_has_no_html_and_garbage_survives() {
        let message = Message::parse(b"Subject: hi\r\n\r\nplain".to_vec(), Envelope::default());
        assert_eq!(message.text.as_deref(), Some("plain"));
        assert_eq!(message.html, None);
        let message = Message::parse(vec![0xff, 0xfe, 0x00, b'\n'], Envelope::default());
        assert_eq!(message.size, 4);
    }
}
