//! The self-service pages a person sees: sign in, sign up, recovery, verification, settings,
//! sessions (list and revoke your own), welcome, error and logout, served by the binary on
//! `:4455`.
//!
//! Key decision: the UI speaks **only the identity server's public HTTP API**, exactly as
//! Ory's kratos-selfservice-ui-node does, so it works unchanged against Portcullis' identity
//! component or real Kratos. Pages are rendered on the server from templates compiled into the
//! binary (minijinja, HTML auto-escaped, no JavaScript build, no CDN); forms post straight to
//! the identity server (`ui.action`), and every page renders a flow's `ui.nodes` generically
//! ([`node`]), so a new authentication method needs no new page. Server-side calls forward
//! the browser's `Cookie` header (browser flows are bound to their CSRF cookie) and relay the
//! identity server's `Set-Cookie` headers back. Pages speak the browser's language where a
//! translation exists ([`i18n`]: English and German), Kratos messages translated by id.

pub mod config;
pub mod flow;
pub mod i18n;
pub mod kratos;
pub mod node;
mod pages;
mod render;

pub use config::{ConfigError, UiConfig};
pub use pages::router;
