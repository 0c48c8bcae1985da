//! One function per subcommand. Each binds its listeners first (so a port in use is reported
//! by number), then serves until SIGINT/SIGTERM and drains.

use std::net::SocketAddr;

use anyhow::Context;
use portcullis_db::Db;
use portcullis_http::{Shutdown, bind, serve, shutdown_on_signals};
use tokio::task::JoinSet;

use crate::cli::{
    AccessArgs, Command, DemoArgs, GatewayAction, GatewayArgs, IdentityArgs, MailArgs, MigrateArgs,
    UiArgs, UpArgs,
};
use crate::stack::{Listeners, Stack, StackOptions};

/// Runs a subcommand to completion.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Up(args) => up(args).await,
        Command::Gateway(GatewayArgs {
            config,
            data_dir,
            action: Some(GatewayAction::Migrations { command }),
        }) => crate::migrations::gateway(config.as_deref(), &data_dir, command).await,
        Command::Gateway(args) => gateway(args).await,
        Command::Access(args) => access(args).await,
        Command::Identity(args) => identity(args).await,
        Command::Ui(args) => ui(args).await,
        Command::Mail(args) => mail(args).await,
        Command::Demo(args) => demo(args).await,
        Command::Migrate(MigrateArgs {
            store,
            command: Some(command),
        }) => crate::migrations::all(&store.url(), command).await,
        Command::Migrate(args) => migrate(args).await,
    }
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let listeners = Listeners::bind(args.host, &args.ports).await?;
    let opts = StackOptions {
        database_url: args.store.url(),
        data_dir: args.store.data_dir.clone(),
    };
    let stack = Stack::start(listeners, &opts).await?;
    let a = stack.addrs;
    tracing::info!(
        gateway = %a.gateway, gateway_tls = %a.gateway_tls, gateway_admin = %a.gateway_admin,
        access = %a.access,
        access_api = %a.access_api, identity = %a.identity, identity_admin = %a.identity_admin,
        ui = %a.ui, smtp = %a.smtp, mail_web = %a.mail_web, mail_api = %a.mail_api,
        hello = %a.hello, world = %a.world, "portcullis is up"
    );
    println!(
        "Portcullis is up. Open http://{}/hello (or https://{}/hello, self-signed; login UI http://{}, mail http://{}). Ctrl-C stops.",
        a.gateway, a.gateway_tls, a.ui, a.mail_web
    );
    let signals = shutdown_on_signals();
    let token = stack.shutdown_token();
    tokio::spawn(async move {
        signals.cancelled().await;
        token.cancel();
    });
    stack.wait().await
}

/// Serves several routers until a signal, returning the first failure.
async fn serve_all(
    servers: Vec<(tokio::net::TcpListener, axum::Router, &'static str)>,
) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signals();
    let mut tasks = JoinSet::new();
    for (listener, app, what) in servers {
        tasks.spawn(serve(listener, app, what, shutdown.clone()));
    }
    wait_all(tasks, &shutdown).await
}

async fn wait_all(
    mut tasks: JoinSet<Result<(), portcullis_http::ServeError>>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let mut first = None;
    while let Some(res) = tasks.join_next().await {
        let err = match res {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(anyhow::Error::from(e)),
            Err(e) => Some(anyhow::Error::from(e)),
        };
        if let Some(e) = err {
            shutdown.cancel();
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

async fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    use portcullis_gateway::certificates::CertifiedPair;
    use portcullis_gateway::{Database, Gateway, GatewayOptions};
    /// What a bound listener serves.
    enum Serves {
        Proxy,
        ProxyTls { http2: bool },
        Admin,
        AdminTls { http2: bool, cert: CertifiedPair },
    }
    let settings =
        portcullis_gateway::GatewaySettings::load(args.config.as_deref(), std::env::vars())?;
    // Like Kong: without `ssl_cert` (`admin_ssl_cert`), a self-signed certificate is
    // generated at start-up.
    let load = |setting, files: &[_]| {
        if files.is_empty() {
            CertifiedPair::self_signed()
        } else {
            CertifiedPair::from_setting(setting, files)
        }
    };
    let mut options = GatewayOptions::from_settings(&settings);
    if !settings.proxy_listen_tls.is_empty() {
        options.default_certificate = Some(load("ssl_cert", &settings.ssl_cert)?);
    }
    let mut servers = Vec::new();
    for addr in &settings.proxy_listen {
        servers.push((bind(*addr, "gateway proxy").await?, Serves::Proxy));
    }
    for l in &settings.proxy_listen_tls {
        let listener = bind(l.addr, "gateway proxy (TLS)").await?;
        servers.push((listener, Serves::ProxyTls { http2: l.http2 }));
    }
    for addr in &settings.admin_listen {
        servers.push((bind(*addr, "gateway admin API").await?, Serves::Admin));
    }
    if !settings.admin_listen_tls.is_empty() {
        let cert = load("admin_ssl_cert", &settings.admin_ssl_cert)?;
        for l in &settings.admin_listen_tls {
            let listener = bind(l.addr, "gateway admin API (TLS)").await?;
            let http2 = l.http2;
            let cert = cert.clone();
            servers.push((listener, Serves::AdminTls { http2, cert }));
        }
    }
    let gw = match &settings.database {
        // DB-less: the declarative kong.yml is the whole configuration.
        Database::Off => {
            Gateway::from_declarative(settings.declarative_config.as_deref(), options).await?
        }
        db => {
            let url = match db {
                Database::Postgres(url) => url.expose().clone(),
                _ => format!("sqlite://{}", args.data_dir.join("portcullis.db").display()),
            };
            let db = Db::connect(&url).await?;
            db.migrate(&[portcullis_gateway::migrations()]).await?;
            Gateway::open(db, options).await?
        }
    };
    let shutdown = shutdown_on_signals();
    let mut tasks = JoinSet::new();
    for (listener, serves) in servers {
        let stop = shutdown.clone();
        match serves {
            Serves::Proxy => tasks.spawn(gw.serve_proxy(listener, stop)),
            Serves::ProxyTls { http2 } => tasks.spawn(gw.serve_proxy_tls(listener, http2, stop)),
            Serves::Admin => tasks.spawn(serve(
                listener,
                gw.admin_router(),
                "gateway admin API",
                stop,
            )),
            Serves::AdminTls { http2, cert } => {
                tasks.spawn(gw.serve_admin_tls(listener, cert, http2, stop))
            }
        };
    }
    wait_all(tasks, &shutdown).await
}

async fn access(args: AccessArgs) -> anyhow::Result<()> {
    let config = portcullis_access::AccessConfig::load(&args.config)?;
    let proxy_addr = args.proxy_port.map_or_else(
        || config.proxy_addr(8080),
        |p| SocketAddr::new(args.host, p),
    );
    let api_addr = args
        .api_port
        .map_or_else(|| config.api_addr(4456), |p| SocketAddr::new(args.host, p));
    let proxy = bind(proxy_addr, "access proxy").await?;
    let api = bind(api_addr, "access API").await?;
    let access = portcullis_access::Access::new(config).await?;
    access.watch_config(&args.config)?;
    serve_all(vec![
        (proxy, access.proxy_router(), "access proxy"),
        (api, access.api_router(), "access API"),
    ])
    .await
}

async fn identity(args: IdentityArgs) -> anyhow::Result<()> {
    let config = portcullis_identity::IdentityConfig::load(&args.config, args.dev)?;
    let public = bind(
        SocketAddr::new(args.host, args.public_port.unwrap_or(config.public_port())),
        "identity public API",
    )
    .await?;
    let admin = bind(
        SocketAddr::new(args.host, args.admin_port.unwrap_or(config.admin_port())),
        "identity admin API",
    )
    .await?;
    let default_db = format!("sqlite://{}", args.data_dir.join("identity.db").display());
    let db = Db::connect(&config.dsn().unwrap_or(default_db)).await?;
    db.migrate(&[portcullis_identity::migrations()]).await?;
    let identity = portcullis_identity::Identity::new(db, config).await?;
    let shutdown = shutdown_on_signals();
    let mut tasks = JoinSet::new();
    // As `kratos serve --watch-courier`: queued mail is sent by this process.
    let courier = identity.spawn_courier(shutdown.clone());
    tasks.spawn(async move {
        if let Err(e) = courier.await {
            tracing::error!("courier stopped: {e}");
        }
        Ok(())
    });
    tasks.spawn(serve(
        public,
        identity.public_router(),
        "identity public API",
        shutdown.clone(),
    ));
    tasks.spawn(serve(
        admin,
        identity.admin_router(),
        "identity admin API",
        shutdown.clone(),
    ));
    wait_all(tasks, &shutdown).await
}

async fn ui(args: UiArgs) -> anyhow::Result<()> {
    let config = portcullis_ui::UiConfig::from_env(std::env::vars())?;
    let listener = bind(SocketAddr::new(args.host, args.port), "login UI").await?;
    serve_all(vec![(listener, portcullis_ui::router(config), "login UI")]).await
}

async fn mail(args: MailArgs) -> anyhow::Result<()> {
    let smtp = bind(
        SocketAddr::new(args.host, args.smtp_port),
        "mail catcher SMTP",
    )
    .await?;
    let web = bind(
        SocketAddr::new(args.host, args.web_port),
        "mail catcher web inbox",
    )
    .await?;
    let api = bind(
        SocketAddr::new(args.host, args.api_port),
        "mail catcher API",
    )
    .await?;
    let catcher = portcullis_mail::MailCatcher::new(args.capacity);
    let shutdown = shutdown_on_signals();
    let mut tasks = JoinSet::new();
    tasks.spawn(serve(
        web,
        catcher.web_router(),
        "mail catcher web inbox",
        shutdown.clone(),
    ));
    tasks.spawn(serve(
        api,
        catcher.api_router(),
        "mail catcher API",
        shutdown.clone(),
    ));
    let smtp = catcher.smtp_server(smtp, shutdown.clone());
    tasks.spawn(async move {
        smtp.await;
        Ok(())
    });
    wait_all(tasks, &shutdown).await
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let hello = bind(SocketAddr::new(args.host, args.hello_port), "demo hello").await?;
    let world = bind(SocketAddr::new(args.host, args.world_port), "demo world").await?;
    serve_all(vec![
        (hello, portcullis_demo::hello_router(), "demo hello"),
        (world, portcullis_demo::world_router(), "demo world"),
    ])
    .await
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let url = args.store.url();
    let db = Db::connect(&url)
        .await
        .with_context(|| format!("opening {url}"))?;
    db.migrate(&[
        portcullis_gateway::migrations(),
        portcullis_identity::migrations(),
    ])
    .await?;
    println!("migrations applied to {}", db.display_url());
    db.close().await;
    Ok(())
}
