//! A development mail catcher in the spirit of Mailslurper and Mailpit: an SMTP listener that
//! accepts every message, a web inbox and a JSON API over the same in-memory store.
//!
//! Key decision: storage is **memory only and bounded** ([`Mailbox`], oldest dropped): caught
//! mail is test and development data that should vanish with the process, and a runaway sender
//! cannot exhaust memory. Messages are parsed once on arrival with `mail-parser`, so listing and
//! searching never re-parse. The SMTP server is written for hostile input: capped line and
//! message sizes, idle timeouts, 5xx for anything malformed, never a panic. The listeners are
//! separate so the binary can put SMTP, inbox and API on their own ports (`:1025`, `:4436`,
//! `:4437`), or merge the two routers.

pub mod api;
pub mod message;
pub mod smtp;
pub mod store;
pub mod web;

use std::future::Future;
use std::sync::Arc;

use portcullis_http::Shutdown;
use tokio::net::TcpListener;

pub use message::{Envelope, Message};
pub use smtp::SmtpSettings;
pub use store::{Filter, Mailbox};

/// Messages kept when no capacity is configured.
pub const DEFAULT_CAPACITY: usize = 1000;
/// Largest message accepted by default (10 MiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;

/// The mail catcher: one store, served over SMTP, the JSON API and the web inbox.
#[derive(Debug, Clone)]
pub struct MailCatcher {
    mailbox: Arc<Mailbox>,
    smtp: Arc<SmtpSettings>,
}

impl Default for MailCatcher {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl MailCatcher {
    /// A catcher keeping at most `capacity` messages (at least one), accepting messages up to
    /// [`DEFAULT_MAX_MESSAGE_SIZE`], announcing itself as `localhost`.
    pub fn new(capacity: usize) -> Self {
        MailCatcher {
            mailbox: Arc::new(Mailbox::new(capacity)),
            smtp: Arc::new(SmtpSettings {
                hostname: "localhost".to_string(),
                max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            }),
        }
    }

    /// Replaces the SMTP settings (hostname, size limit).
    pub fn with_smtp_settings(mut self, settings: SmtpSettings) -> Self {
        self.smtp = Arc::new(settings);
        self
    }

    /// The store, for in-process readers such as the test harness.
    pub fn mailbox(&self) -> &Arc<Mailbox> {
        &self.mailbox
    }

    /// Serves SMTP on `listener` until `shutdown` fires; open sessions are told `421` and the
    /// future completes once they have ended.
    pub fn smtp_server(
        &self,
        listener: TcpListener,
        shutdown: Shutdown,
    ) -> impl Future<Output = ()> + Send + 'static {
        smtp::serve(listener, shutdown, self.mailbox.clone(), self.smtp.clone())
    }

    /// Serves one SMTP session on an already accepted connection of any kind (for instance a
    /// TLS stream, to test clients that speak implicit TLS) until the client quits or
    /// `shutdown` fires.
    pub fn smtp_session<S>(
        &self,
        stream: S,
        peer: std::net::SocketAddr,
        shutdown: Shutdown,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        smtp::session(
            stream,
            peer,
            shutdown,
            self.mailbox.clone(),
            self.smtp.clone(),
            true,
        )
    }

    /// Like [`MailCatcher::smtp_session`], for a connection whose client already saw the
    /// greeting and has just upgraded it with `STARTTLS`: the session starts by waiting for
    /// `EHLO`, as RFC 3207 asks, instead of greeting again.
    pub fn smtp_session_after_starttls<S>(
        &self,
        stream: S,
        peer: std::net::SocketAddr,
        shutdown: Shutdown,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        smtp::session(
            stream,
            peer,
            shutdown,
            self.mailbox.clone(),
            self.smtp.clone(),
            false,
        )
    }

    /// The JSON API: `GET/DELETE /api/v1/messages`, `GET/DELETE /api/v1/messages/{id}`,
    /// `GET /api/v1/messages/{id}/raw`.
    pub fn api_router(&self) -> axum::Router {
        api::router(self.mailbox.clone())
    }

    /// The web inbox: `/`, `/messages/{id}`, `/messages/{id}/raw` and delete forms.
    pub fn web_router(&self) -> axum::Router {
        web::router(self.mailbox.clone())
    }
}
