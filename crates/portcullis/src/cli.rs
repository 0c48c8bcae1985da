//! Command-line interface. Each component takes its upstream's config file with `-c/--config`,
//! exactly as `kratos serve -c` and `oathkeeper serve -c` do; the gateway reads `kong.conf` and
//! `KONG_*` variables like Kong.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Portcullis: API gateway, access proxy, identity server, login UI and mail catcher in one binary.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about, long_about = None)]
pub struct Cli {
    /// Logging options.
    #[command(flatten)]
    pub log: LogArgs,
    /// Worker threads of the async runtime (default: one per CPU; 1 runs every task on the
    /// main thread, as one nginx worker does).
    #[arg(long, global = true, env = "PORTCULLIS_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Logging flags shared by every subcommand.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Minimum level: error, warn, info, debug, trace (`RUST_LOG` overrides).
    #[arg(
        long,
        global = true,
        default_value = "info",
        env = "PORTCULLIS_LOG_LEVEL"
    )]
    pub log_level: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "PORTCULLIS_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Compact human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole stack in one process: gateway, access proxy, identity server, login UI,
    /// mail catcher and the demo services, wired as in the tutorial.
    Up(UpArgs),
    /// Run the Kong-compatible gateway (proxy and Admin API).
    Gateway(GatewayArgs),
    /// Run the Oathkeeper-compatible access proxy (proxy and API).
    Access(AccessArgs),
    /// Run the Kratos-compatible identity server (public and admin APIs).
    Identity(IdentityArgs),
    /// Run the self-service login UI.
    Ui(UiArgs),
    /// Run the development mail catcher (SMTP, web inbox, JSON API).
    Mail(MailArgs),
    /// Run the demo hello and world services.
    Demo(DemoArgs),
    /// Apply all database migrations and exit.
    Migrate(MigrateArgs),
}

/// Where the store lives.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Database URL: `postgres://user@host/db`, `sqlite://FILE` or `memory`.
    /// Default: an SQLite file under the data directory.
    #[arg(long, env = "PORTCULLIS_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory for the embedded database and generated files.
    #[arg(long, env = "PORTCULLIS_DATA_DIR", default_value = ".portcullis")]
    pub data_dir: PathBuf,
}

impl StoreArgs {
    /// The database URL to open.
    pub fn url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!("sqlite://{}", self.data_dir.join("portcullis.db").display())
        })
    }
}

/// Options of `portcullis up`.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Store options.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address every listener binds to.
    #[arg(long, default_value = "127.0.0.1", env = "PORTCULLIS_HOST")]
    pub host: IpAddr,
    /// Listener ports.
    #[command(flatten)]
    pub ports: Ports,
}

/// Every port of the stack; 0 picks a free one.
#[derive(Debug, Clone, Args)]
pub struct Ports {
    /// Gateway proxy port.
    #[arg(long, default_value_t = 8000)]
    pub gateway_port: u16,
    /// Gateway Admin API port.
    #[arg(long, default_value_t = 8001)]
    pub gateway_admin_port: u16,
    /// Gateway proxy port over TLS (HTTP/1.1 and h2; a self-signed certificate unless
    /// certificates are added through the Admin API).
    #[arg(long, default_value_t = 8443)]
    pub gateway_tls_port: u16,
    /// Access proxy port.
    #[arg(long, default_value_t = 8080)]
    pub access_port: u16,
    /// Access API port.
    #[arg(long, default_value_t = 4456)]
    pub access_api_port: u16,
    /// Identity public API port.
    #[arg(long, default_value_t = 4433)]
    pub identity_port: u16,
    /// Identity admin API port.
    #[arg(long, default_value_t = 4434)]
    pub identity_admin_port: u16,
    /// Login UI port.
    #[arg(long, default_value_t = 4455)]
    pub ui_port: u16,
    /// Mail catcher SMTP port.
    #[arg(long, default_value_t = 1025)]
    pub smtp_port: u16,
    /// Mail catcher web inbox port.
    #[arg(long, default_value_t = 4436)]
    pub mail_web_port: u16,
    /// Mail catcher JSON API port.
    #[arg(long, default_value_t = 4437)]
    pub mail_api_port: u16,
    /// Demo hello service port.
    #[arg(long, default_value_t = 8090)]
    pub hello_port: u16,
    /// Demo world service port.
    #[arg(long, default_value_t = 8091)]
    pub world_port: u16,
}

impl Ports {
    /// All zeros: every listener on a free port (tests).
    pub fn ephemeral() -> Self {
        Ports {
            gateway_port: 0,
            gateway_admin_port: 0,
            gateway_tls_port: 0,
            access_port: 0,
            access_api_port: 0,
            identity_port: 0,
            identity_admin_port: 0,
            ui_port: 0,
            smtp_port: 0,
            mail_web_port: 0,
            mail_api_port: 0,
            hello_port: 0,
            world_port: 0,
        }
    }
}

/// Options of `portcullis gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// A `kong.conf` file; `KONG_*` environment variables override it.
    #[arg(short, long, global = true)]
    pub config: Option<PathBuf>,
    /// Directory for the embedded database when `KONG_DATABASE` is not postgres.
    #[arg(
        long,
        env = "PORTCULLIS_DATA_DIR",
        default_value = ".portcullis",
        global = true
    )]
    pub data_dir: PathBuf,
    /// A gateway maintenance command instead of running the gateway.
    #[command(subcommand)]
    pub action: Option<GatewayAction>,
}

/// `portcullis gateway <action>`.
#[derive(Debug, Subcommand)]
pub enum GatewayAction {
    /// Manage the gateway's database schema, as `kong migrations` does.
    Migrations {
        /// What to do.
        #[command(subcommand)]
        command: MigrationsCommand,
    },
}

/// Kong's `migrations` commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum MigrationsCommand {
    /// Bootstrap a fresh database: apply every migration.
    Bootstrap,
    /// Apply new migrations to a bootstrapped database.
    Up,
    /// Finish pending migrations (Portcullis has no two-phase migrations: nothing to do).
    Finish,
    /// List executed and pending migrations; exit 3 when the database needs bootstrapping,
    /// 5 when new migrations are available, 0 when up to date.
    List,
}

/// Options of `portcullis access`.
#[derive(Debug, Args)]
pub struct AccessArgs {
    /// The `oathkeeper.yml` file.
    #[arg(short, long)]
    pub config: PathBuf,
    /// Address to bind when a port flag is given.
    #[arg(long, default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// Proxy port (default: `serve.proxy.port`, else 8080).
    #[arg(long)]
    pub proxy_port: Option<u16>,
    /// API port (default: `serve.api.port`, else 4456).
    #[arg(long)]
    pub api_port: Option<u16>,
}

/// Options of `portcullis identity`.
#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// The `kratos.yml` file.
    #[arg(short, long)]
    pub config: PathBuf,
    /// Development mode (as `kratos serve --dev`): cookies without the Secure flag.
    #[arg(long)]
    pub dev: bool,
    /// Address to bind.
    #[arg(long, default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// Public API port (overrides `serve.public.port`).
    #[arg(long)]
    pub public_port: Option<u16>,
    /// Admin API port (overrides `serve.admin.port`).
    #[arg(long)]
    pub admin_port: Option<u16>,
    /// Directory for the embedded database when the DSN is not set.
    #[arg(long, env = "PORTCULLIS_DATA_DIR", default_value = ".portcullis")]
    pub data_dir: PathBuf,
}

/// Options of `portcullis ui`.
#[derive(Debug, Args)]
pub struct UiArgs {
    /// Address to bind.
    #[arg(long, default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// Port (also `PORT`, as kratos-selfservice-ui-node).
    #[arg(long, env = "PORT", default_value_t = 4455)]
    pub port: u16,
}

/// Options of `portcullis mail`.
#[derive(Debug, Args)]
pub struct MailArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// SMTP port.
    #[arg(long, default_value_t = 1025)]
    pub smtp_port: u16,
    /// Web inbox port.
    #[arg(long, default_value_t = 4436)]
    pub web_port: u16,
    /// JSON API port.
    #[arg(long, default_value_t = 4437)]
    pub api_port: u16,
    /// Messages kept before the oldest are dropped.
    #[arg(long, default_value_t = 1000)]
    pub capacity: usize,
}

/// Options of `portcullis demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Hello service port.
    #[arg(long, default_value_t = 8090)]
    pub hello_port: u16,
    /// World service port.
    #[arg(long, default_value_t = 8091)]
    pub world_port: u16,
}

/// Options of `portcullis migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Store options.
    #[command(flatten)]
    pub store: StoreArgs,
    /// A Kong-style migrations command (default: apply every pending migration).
    #[command(subcommand)]
    pub command: Option<MigrationsCommand>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
