//! `courier.smtp`: the connection URI compiled once, and delivery of one message with lettre
//! over rustls (ring), as Kratos documents the URI: `smtps://` is implicit TLS, `smtp://`
//! requires STARTTLS unless `?disable_starttls=true` allows cleartext, certificates are
//! verified against the Mozilla roots unless `?skip_ssl_verify=true`, and `?server_name=`
//! names the host the certificate must be for. A refused certificate or a server without
//! STARTTLS is a failed attempt: the message stays queued for retries and the dispatch records
//! why.

use std::collections::BTreeMap;
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message as Email, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use portcullis_core::Secret;
use url::Url;

/// How long one SMTP exchange may take before the attempt counts as failed.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// A compiled `courier.smtp` section.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Server host.
    pub host: String,
    /// Server port (25 for `smtp://`, 465 for `smtps://` when the URI names none).
    pub port: u16,
    /// `smtps://` (implicit TLS).
    pub implicit_tls: bool,
    /// `?skip_ssl_verify=true`.
    pub skip_ssl_verify: bool,
    /// `?disable_starttls=true` (`smtp://` only: cleartext allowed).
    pub disable_starttls: bool,
    /// `?server_name=`, else the host: the name the server's certificate must be for.
    pub server_name: String,
    /// The TLS mode and rustls client configuration, built once.
    tls: Tls,
    /// `user:password@` from the URI.
    pub credentials: Option<(String, Secret<String>)>,
    /// `courier.smtp.from_address` (default `no-reply@ory.kratos.sh`).
    pub from_address: String,
    /// `courier.smtp.from_name`.
    pub from_name: Option<String>,
    /// `courier.smtp.headers`, added to every message.
    pub headers: BTreeMap<String, String>,
    /// `courier.smtp.local_name` (the `EHLO` name).
    pub local_name: Option<String>,
}

/// Why a connection URI was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UriError {
    /// Not a URL.
    #[error("invalid SMTP connection URI: {0}")]
    Parse(String),
    /// Neither `smtp` nor `smtps`.
    #[error("unsupported SMTP scheme {0:?}: use smtp:// or smtps://")]
    Scheme(String),
    /// No host.
    #[error("the SMTP connection URI names no host")]
    NoHost,
    /// The TLS client could not be configured.
    #[error("SMTP TLS settings: {0}")]
    Tls(String),
}

/// Why one delivery attempt failed (recorded as the dispatch's error).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The message could not be built (bad address, header).
    #[error("building the message: {0}")]
    Build(String),
    /// The server refused or the connection failed.
    #[error("SMTP: {0}")]
    Smtp(String),
}

fn flag(url: &Url, name: &str) -> bool {
    url.query_pairs()
        .any(|(k, v)| k == name && matches!(v.as_ref(), "true" | "1" | ""))
}

impl SmtpConfig {
    /// Compiles `connection_uri` with the sender settings.
    pub fn parse(
        connection_uri: &str,
        from_address: String,
        from_name: Option<String>,
        headers: BTreeMap<String, String>,
        local_name: Option<String>,
    ) -> Result<Self, UriError> {
        let url = Url::parse(connection_uri).map_err(|e| UriError::Parse(e.to_string()))?;
        let implicit_tls = match url.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => return Err(UriError::Scheme(other.to_string())),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(UriError::NoHost)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port().unwrap_or(if implicit_tls { 465 } else { 25 });
        let skip_ssl_verify = flag(&url, "skip_ssl_verify");
        let disable_starttls = !implicit_tls && flag(&url, "disable_starttls");
        let server_name = url
            .query_pairs()
            .find(|(k, v)| k == "server_name" && !v.is_empty())
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| host.clone());
        let tls = if disable_starttls {
            Tls::None
        } else {
            let params = TlsParameters::builder(server_name.clone())
                .dangerous_accept_invalid_certs(skip_ssl_verify)
                .dangerous_accept_invalid_hostnames(skip_ssl_verify)
                .build_rustls()
                .map_err(|e| UriError::Tls(e.to_string()))?;
            if implicit_tls {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        };
        let credentials = (!url.username().is_empty()).then(|| {
            (
                percent_decode(url.username()),
                Secret::new(url.password().map(percent_decode).unwrap_or_default()),
            )
        });
        Ok(Self {
            host,
            port,
            implicit_tls,
            skip_ssl_verify,
            disable_starttls,
            server_name,
            tls,
            credentials,
            from_address,
            from_name,
            headers,
            local_name,
        })
    }

    /// Sends one message: plain text, or `multipart/alternative` with the HTML body beside it.
    pub async fn send(
        &self,
        recipient: &str,
        subject: &str,
        body: &str,
        html: Option<&str>,
    ) -> Result<(), SendError> {
        let from = Mailbox::new(
            self.from_name.clone(),
            self.from_address
                .parse()
                .map_err(|e| SendError::Build(format!("from address: {e}")))?,
        );
        let to: Mailbox = recipient
            .parse()
            .map_err(|e| SendError::Build(format!("recipient: {e}")))?;
        let mut builder = Email::builder().from(from).to(to).subject(subject);
        for (name, value) in &self.headers {
            let name = HeaderName::new_from_ascii(name.clone())
                .map_err(|e| SendError::Build(format!("header {name}: {e}")))?;
            builder = builder.raw_header(HeaderValue::new(name, value.clone()));
        }
        let email = match html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                body.to_string(),
                html.to_string(),
            )),
            None => builder.body(body.to_string()),
        }
        .map_err(|e| SendError::Build(e.to_string()))?;
        let mut transport =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.as_str())
                .port(self.port)
                .tls(self.tls.clone())
                .timeout(Some(SMTP_TIMEOUT));
        if let Some(name) = &self.local_name {
            transport = transport.hello_name(ClientId::Domain(name.clone()));
        }
        if let Some((user, password)) = &self.credentials {
            transport =
                transport.credentials(Credentials::new(user.clone(), password.expose().clone()));
        }
        transport
            .build()
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| SendError::Smtp(describe(&e)))
    }
}

/// lettre's error with its causes (the TLS reason, such as an unknown issuer, is a cause).
fn describe(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Decodes `%XX` escapes in URI user info.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(hex), 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(uri: &str) -> Result<SmtpConfig, UriError> {
        SmtpConfig::parse(uri, "a@b.c".into(), None, BTreeMap::new(), None)
    }

    #[test]
    fn connection_uris() {
        let c = parse("smtps://test:te%40st@mailslurper:1025/?skip_ssl_verify=true").expect("ok");
        assert!(c.implicit_tls && c.skip_ssl_verify && !c.disable_starttls);
        assert_eq!((c.host.as_str(), c.port), ("mailslurper", 1025));
        let (user, pass) = c.credentials.expect("credentials");
        assert_eq!((user.as_str(), pass.expose().as_str()), ("test", "te@st"));
        assert!(matches!(c.tls, Tls::Wrapper(_)));
        assert_eq!(c.server_name, "mailslurper");
        let c = parse("smtp://127.0.0.1/?disable_starttls=true").expect("ok");
        assert!(!c.implicit_tls && c.disable_starttls && c.credentials.is_none());
        assert!(matches!(c.tls, Tls::None));
        assert_eq!(c.port, 25);
        let c = parse("smtp://mail.example.com:587/?server_name=example.com").expect("ok");
        assert!(matches!(c.tls, Tls::Required(_)));
        assert_eq!(c.server_name, "example.com");
        // `disable_starttls` means nothing for implicit TLS.
        let c = parse("smtps://mail.example.com/?disable_starttls=true").expect("ok");
        assert!(matches!(c.tls, Tls::Wrapper(_)) && !c.disable_starttls);
        assert!(matches!(parse("http://x"), Err(UriError::Scheme(_))));
        assert!(matches!(parse("not a uri"), Err(UriError::Parse(_))));
    }
}
