//! `portcullis up`: the tutorial's architecture in one process.
//!
//! ```text
//! browser → gateway :8000 (TLS :8443) ─ service secure-api, route / → access proxy :8080
//!             access: cookie_session (in process) → hello :8090 /hello, world :8091 /world
//!                     no session + Accept: text/html → 302 to UI :4455/login?return_to=…
//! identity :4433/:4434, UI :4455, mail catcher SMTP :1025, web :4436, API :4437
//! ```
//! Each component receives configuration in its upstream's own format (an `oathkeeper.yml`
//! and a `kratos.yml` generated here as values), so `up` exercises the same code paths as a
//! user's files do.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use portcullis_db::Db;
use portcullis_http::{Shutdown, bind, serve};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::cli::Ports;
use crate::resolver::InProcessSessions;

/// The built-in identity schema (email + password, optional name).
const IDENTITY_SCHEMA: &str = include_str!("../assets/identity.schema.json");

/// Every listener of the stack, bound before anything is built.
pub struct Listeners {
    gateway: TcpListener,
    gateway_admin: TcpListener,
    gateway_tls: TcpListener,
    access: TcpListener,
    access_api: TcpListener,
    identity: TcpListener,
    identity_admin: TcpListener,
    ui: TcpListener,
    smtp: TcpListener,
    mail_web: TcpListener,
    mail_api: TcpListener,
    hello: TcpListener,
    world: TcpListener,
}

/// The addresses the stack listens on.
#[derive(Debug, Clone, Copy)]
pub struct Addrs {
    /// Gateway proxy.
    pub gateway: SocketAddr,
    /// Gateway Admin API.
    pub gateway_admin: SocketAddr,
    /// Gateway proxy over TLS.
    pub gateway_tls: SocketAddr,
    /// Access proxy.
    pub access: SocketAddr,
    /// Access API.
    pub access_api: SocketAddr,
    /// Identity public API.
    pub identity: SocketAddr,
    /// Identity admin API.
    pub identity_admin: SocketAddr,
    /// Login UI.
    pub ui: SocketAddr,
    /// Mail catcher SMTP.
    pub smtp: SocketAddr,
    /// Mail catcher web inbox.
    pub mail_web: SocketAddr,
    /// Mail catcher JSON API.
    pub mail_api: SocketAddr,
    /// Demo hello service.
    pub hello: SocketAddr,
    /// Demo world service.
    pub world: SocketAddr,
}

impl Listeners {
    /// Binds every port on `host`; a port in use is reported by number and purpose.
    pub async fn bind(host: IpAddr, p: &Ports) -> Result<Self, portcullis_http::ServeError> {
        let at = |port| SocketAddr::new(host, port);
        Ok(Self {
            gateway: bind(at(p.gateway_port), "gateway proxy").await?,
            gateway_admin: bind(at(p.gateway_admin_port), "gateway admin API").await?,
            gateway_tls: bind(at(p.gateway_tls_port), "gateway proxy (TLS)").await?,
            access: bind(at(p.access_port), "access proxy").await?,
            access_api: bind(at(p.access_api_port), "access API").await?,
            identity: bind(at(p.identity_port), "identity public API").await?,
            identity_admin: bind(at(p.identity_admin_port), "identity admin API").await?,
            ui: bind(at(p.ui_port), "login UI").await?,
            smtp: bind(at(p.smtp_port), "mail catcher SMTP").await?,
            mail_web: bind(at(p.mail_web_port), "mail catcher web inbox").await?,
            mail_api: bind(at(p.mail_api_port), "mail catcher API").await?,
            hello: bind(at(p.hello_port), "demo hello service").await?,
            world: bind(at(p.world_port), "demo world service").await?,
        })
    }

    /// The bound addresses.
    pub fn addrs(&self) -> std::io::Result<Addrs> {
        Ok(Addrs {
            gateway: self.gateway.local_addr()?,
            gateway_admin: self.gateway_admin.local_addr()?,
            gateway_tls: self.gateway_tls.local_addr()?,
            access: self.access.local_addr()?,
            access_api: self.access_api.local_addr()?,
            identity: self.identity.local_addr()?,
            identity_admin: self.identity_admin.local_addr()?,
            ui: self.ui.local_addr()?,
            smtp: self.smtp.local_addr()?,
            mail_web: self.mail_web.local_addr()?,
            mail_api: self.mail_api.local_addr()?,
            hello: self.hello.local_addr()?,
            world: self.world.local_addr()?,
        })
    }
}

/// What the stack needs besides its listeners.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Database URL (SQLite file, `memory` or PostgreSQL).
    pub database_url: String,
    /// Directory for generated files.
    pub data_dir: PathBuf,
}

/// A running stack.
pub struct Stack {
    /// Where everything listens.
    pub addrs: Addrs,
    shutdown: Shutdown,
    tasks: JoinSet<Result<(), portcullis_http::ServeError>>,
    db: Db,
}

/// The URL a browser uses for `addr` (a wildcard bind is reached through loopback).
fn url_of(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    format!("http://{host}:{}", addr.port())
}

/// The `kratos.yml` `up` runs with, as a value.
pub fn identity_config(a: &Addrs, schema_path: &std::path::Path) -> serde_json::Value {
    let ui = url_of(a.ui);
    json!({
        "dsn": "memory",
        "serve": {
            "public": {"base_url": format!("{}/", url_of(a.identity)), "cors": {"enabled": true}},
            "admin": {"base_url": format!("{}/", url_of(a.identity_admin))}
        },
        "selfservice": {
            "default_browser_return_url": format!("{ui}/"),
            "allowed_return_urls": [format!("{ui}/"), format!("{}/", url_of(a.gateway))],
            // `up` is a local stack that must work offline: no breached-password lookups.
            "methods": {"password": {"enabled": true, "config": {"haveibeenpwned_enabled": false}}},
            "flows": {
                "error": {"ui_url": format!("{ui}/error")},
                "settings": {"ui_url": format!("{ui}/settings"), "privileged_session_max_age": "15m"},
                "recovery": {"enabled": true, "ui_url": format!("{ui}/recovery")},
                "verification": {"enabled": true, "ui_url": format!("{ui}/verification"),
                                  "after": {"default_browser_return_url": format!("{ui}/")}},
                "logout": {"after": {"default_browser_return_url": format!("{ui}/login")}},
                "login": {"ui_url": format!("{ui}/login"), "lifespan": "10m"},
                "registration": {"ui_url": format!("{ui}/registration"), "lifespan": "10m",
                                  "after": {"password": {"hooks": [{"hook": "session"}]}}}
            }
        },
        "identity": {
            "default_schema_id": "default",
            "schemas": [{"id": "default", "url": format!("file://{}", schema_path.display())}]
        },
        "courier": {"smtp": {"connection_uri": format!("smtp://{}/?disable_starttls=true", a.smtp)}}
    })
}

/// The `oathkeeper.yml` `up` runs with, as a value: the tutorial's rules for `/hello` and
/// `/world`, matched on the access proxy's own address as the gateway forwards to it.
pub fn access_config(a: &Addrs) -> serde_json::Value {
    let login = format!("{}/login", url_of(a.ui));
    let rule = |id: &str, path: &str, upstream: SocketAddr| {
        json!({
            "id": id,
            "upstream": {"preserve_host": true, "url": url_of(upstream)},
            "match": {"url": format!("{}{path}", url_of(a.access)), "methods": ["GET"]},
            "authenticators": [{"handler": "cookie_session"}],
            "mutators": [{"handler": "noop"}],
            "authorizer": {"handler": "allow"},
            "errors": [{"handler": "redirect", "config": {"to": login}}]
        })
    };
    let rules = json!([
        rule("api:hello-protected", "/hello", a.hello),
        rule("api:world-protected", "/world", a.world)
    ]);
    let inline = base64::engine::general_purpose::STANDARD.encode(rules.to_string());
    json!({
        "serve": {
            "proxy": {"port": a.access.port()},
            "api": {"port": a.access_api.port()}
        },
        "errors": {
            "fallback": ["json"],
            "handlers": {
                "redirect": {"enabled": true, "config": {
                    "to": login,
                    "return_to_query_param": "return_to",
                    "when": [{"error": ["unauthorized", "forbidden"],
                              "request": {"header": {"accept": ["text/html"]}}}]
                }},
                "json": {"enabled": true, "config": {"verbose": true}}
            }
        },
        "access_rules": {
            "matching_strategy": "glob",
            "repositories": [format!("inline://{inline}")]
        },
        "authenticators": {
            "anonymous": {"enabled": true, "config": {"subject": "guest"}},
            "cookie_session": {"enabled": true, "config": {
                "check_session_url": format!("{}/sessions/whoami", url_of(a.identity)),
                "preserve_path": true,
                "extra_from": "@this",
                "subject_from": "identity.id",
                "only": ["ory_kratos_session"]
            }},
            "noop": {"enabled": true}
        },
        "authorizers": {"allow": {"enabled": true}},
        "mutators": {"noop": {"enabled": true}}
    })
}

impl Stack {
    /// Opens and migrates the store, builds every component from generated configs, seeds the
    /// gateway with the tutorial's `secure-api` service and starts serving every listener.
    pub async fn start(listeners: Listeners, opts: &StackOptions) -> anyhow::Result<Stack> {
        let addrs = listeners.addrs().context("reading bound addresses")?;
        std::fs::create_dir_all(&opts.data_dir)
            .with_context(|| format!("creating {}", opts.data_dir.display()))?;

        let db = Db::connect(&opts.database_url).await?;
        db.migrate(&[
            portcullis_gateway::migrations(),
            portcullis_identity::migrations(),
        ])
        .await?;
        tracing::info!(database = %db.display_url(), "store ready");

        // Identity, from a generated kratos.yml whose schema is written next to the database
        // so a user can read (and copy) it.
        let schema_path = opts.data_dir.join("identity.schema.json");
        std::fs::write(&schema_path, IDENTITY_SCHEMA)
            .with_context(|| format!("writing {}", schema_path.display()))?;
        let schema_path = schema_path.canonicalize().unwrap_or(schema_path);
        let identity_config = portcullis_identity::IdentityConfig::from_value(
            identity_config(&addrs, &schema_path),
            "portcullis up (generated kratos.yml)",
            &opts.data_dir,
            true,
        )?;
        let identity = portcullis_identity::Identity::new(db.clone(), identity_config).await?;

        // Access proxy, with cookie_session answered in process by the identity server.
        let check_url = format!("{}/sessions/whoami", url_of(addrs.identity));
        let access_config = portcullis_access::AccessConfig::from_value(
            access_config(&addrs),
            "portcullis up (generated oathkeeper.yml)",
        )?;
        let access = portcullis_access::Access::new(access_config)
            .await?
            .with_session_resolver(
                &check_url,
                Arc::new(InProcessSessions::new(identity.clone())),
            )?;

        // Gateway, seeded as the tutorial's kong.config.sh does; its TLS listener presents a
        // self-signed certificate for `localhost` (Kong's default without `ssl_cert`) until
        // certificates are added through the Admin API.
        let gateway = portcullis_gateway::Gateway::open(
            db.clone(),
            portcullis_gateway::GatewayOptions {
                default_certificate: Some(
                    portcullis_gateway::certificates::CertifiedPair::self_signed()?,
                ),
                ..portcullis_gateway::GatewayOptions::default()
            },
        )
        .await?;
        gateway
            .seed("secure-api", &url_of(addrs.access), "hello", &["/"])
            .await?;

        let ui = portcullis_ui::router(portcullis_ui::UiConfig::new(
            url_of(addrs.identity).parse()?,
            url_of(addrs.identity).parse()?,
        ));
        let mail = portcullis_mail::MailCatcher::new(1000);

        let shutdown = Shutdown::new();
        let mut tasks = JoinSet::new();
        // The courier sends queued recovery/verification mail to the mail catcher.
        let courier = identity.spawn_courier(shutdown.clone());
        tasks.spawn(async move {
            if let Err(e) = courier.await {
                tracing::error!("courier stopped: {e}");
            }
            Ok(())
        });
        let Listeners {
            gateway: l_gateway,
            gateway_admin: l_gateway_admin,
            gateway_tls: l_gateway_tls,
            access: l_access,
            access_api: l_access_api,
            identity: l_identity,
            identity_admin: l_identity_admin,
            ui: l_ui,
            smtp: l_smtp,
            mail_web: l_mail_web,
            mail_api: l_mail_api,
            hello: l_hello,
            world: l_world,
        } = listeners;
        let servers = [
            (l_gateway_admin, gateway.admin_router(), "gateway admin API"),
            (l_access, access.proxy_router(), "access proxy"),
            (l_access_api, access.api_router(), "access API"),
            (l_identity, identity.public_router(), "identity public API"),
            (
                l_identity_admin,
                identity.admin_router(),
                "identity admin API",
            ),
            (l_ui, ui, "login UI"),
            (l_mail_web, mail.web_router(), "mail catcher web inbox"),
            (l_mail_api, mail.api_router(), "mail catcher API"),
            (l_hello, portcullis_demo::hello_router(), "demo hello"),
            (l_world, portcullis_demo::world_router(), "demo world"),
        ];
        tasks.spawn(gateway.serve_proxy(l_gateway, shutdown.clone()));
        tasks.spawn(gateway.serve_proxy_tls(l_gateway_tls, true, shutdown.clone()));
        for (listener, app, what) in servers {
            tasks.spawn(serve(listener, app, what, shutdown.clone()));
        }
        let smtp = mail.smtp_server(l_smtp, shutdown.clone());
        tasks.spawn(async move {
            smtp.await;
            Ok(())
        });
        Ok(Stack {
            addrs,
            shutdown,
            tasks,
            db,
        })
    }

    /// A token that stops the stack when cancelled.
    pub fn shutdown_token(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Waits until every server has stopped (after the shutdown token fires), then closes
    /// the store. The first server error is returned.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        while let Some(res) = self.tasks.join_next().await {
            let err = match res {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(anyhow::Error::from(e)),
                Err(e) => Some(anyhow::Error::from(e)),
            };
            if let Some(e) = err {
                tracing::error!("{e:#}");
                self.shutdown.cancel();
                first_error.get_or_insert(e);
            }
        }
        self.db.close().await;
        first_error.map_or(Ok(()), Err)
    }

    /// Stops every server and waits for them to drain.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }
}
