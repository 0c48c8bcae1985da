//! `portcullis gateway migrations bootstrap|up|finish|list` (and `portcullis migrate …` for
//! every component): Kong's `kong migrations` commands, with its messages and exit codes —
//! `list` exits 3 when the database needs bootstrapping, 5 when new migrations are
//! available and 0 when it is up to date; `up` and `finish` refuse (exit 1) a database that
//! was never bootstrapped. Portcullis has no two-phase migrations, so `finish` never has
//! anything to do.

use std::path::Path;

use portcullis_db::{Db, MigrationSet, MigrationStatus};

use crate::cli::MigrationsCommand;

/// A command that already reported its outcome and ends the process with this status.
#[derive(Debug, thiserror::Error)]
#[error("exit status {0}")]
pub struct Exit(pub u8);

/// Kong's message for a database no migration ever ran on.
pub const NEEDS_BOOTSTRAP: &str = "Database needs bootstrapping or is older than Kong 1.0.\n\n\
To start a new installation from scratch, run 'kong migrations bootstrap' \
(here: 'portcullis gateway migrations bootstrap').";

/// `portcullis gateway migrations …`: the gateway's database from `kong.conf` and `KONG_*`
/// (`pg_*` settings for PostgreSQL, the embedded SQLite file under `data_dir` otherwise).
pub async fn gateway(
    config: Option<&Path>,
    data_dir: &Path,
    command: MigrationsCommand,
) -> anyhow::Result<()> {
    use portcullis_gateway::{Database, GatewaySettings};
    let settings = GatewaySettings::load(config, std::env::vars())?;
    let url = match &settings.database {
        Database::Postgres(url) => url.expose().clone(),
        Database::Sqlite => format!("sqlite://{}", data_dir.join("portcullis.db").display()),
        Database::Off => {
            anyhow::bail!("migrations need a database; `database` is `off` (DB-less mode)")
        }
    };
    run(&url, &[portcullis_gateway::migrations()], command).await
}

/// `portcullis migrate …`: every component's migrations on `url`.
pub async fn all(url: &str, command: MigrationsCommand) -> anyhow::Result<()> {
    run(
        url,
        &[
            portcullis_gateway::migrations(),
            portcullis_identity::migrations(),
        ],
        command,
    )
    .await
}

async fn run(url: &str, sets: &[MigrationSet], command: MigrationsCommand) -> anyhow::Result<()> {
    let db = Db::connect(url).await?;
    let result = execute(&db, sets, command).await;
    db.close().await;
    result
}

async fn execute(db: &Db, sets: &[MigrationSet], command: MigrationsCommand) -> anyhow::Result<()> {
    let status = db.migration_status(sets).await?;
    match command {
        MigrationsCommand::List => {
            if !status.bootstrapped {
                println!("{NEEDS_BOOTSTRAP}");
                return Err(Exit(3).into());
            }
            print_list("Executed migrations:", &status.executed);
            if status.pending.is_empty() {
                println!("Database is up-to-date");
                Ok(())
            } else {
                print_list("New migrations available:", &status.pending);
                println!("\nRun 'kong migrations up' to proceed");
                Err(Exit(5).into())
            }
        }
        MigrationsCommand::Bootstrap => {
            if status.bootstrapped {
                println!("Database already bootstrapped");
                return Ok(());
            }
            println!("Bootstrapping database...");
            apply(db, sets, &status).await
        }
        MigrationsCommand::Up => {
            if !status.bootstrapped {
                eprintln!("Error: {NEEDS_BOOTSTRAP}");
                return Err(Exit(1).into());
            }
            if status.pending.is_empty() {
                println!("Database is already up-to-date");
                return Ok(());
            }
            apply(db, sets, &status).await
        }
        MigrationsCommand::Finish => {
            if !status.bootstrapped {
                eprintln!("Error: {NEEDS_BOOTSTRAP}");
                return Err(Exit(1).into());
            }
            println!("No pending migrations to finish");
            Ok(())
        }
    }
}

async fn apply(db: &Db, sets: &[MigrationSet], before: &MigrationStatus) -> anyhow::Result<()> {
    let mut components: Vec<&str> = before.pending.iter().map(|m| m.component).collect();
    components.dedup();
    for c in &components {
        println!("migrating {c} on database '{}'...", db.display_url());
    }
    db.migrate(sets).await?;
    let after = db.migration_status(sets).await?;
    for m in &before.pending {
        println!(
            "{}: {}_{}",
            m.component,
            m.version,
            m.description.replace(' ', "_")
        );
    }
    let done = before.pending.len() - after.pending.len().min(before.pending.len());
    println!("{} migrations processed", before.pending.len());
    println!("{done} executed");
    if after.is_up_to_date() {
        println!("Database is up-to-date");
    }
    Ok(())
}

fn print_list(title: &str, list: &[portcullis_db::MigrationInfo]) {
    println!("{title}");
    let mut components: Vec<&str> = list.iter().map(|m| m.component).collect();
    components.dedup();
    for c in components {
        let names: Vec<String> = list
            .iter()
            .filter(|m| m.component == c)
            .map(|m| format!("{}_{}", m.version, m.description.replace(' ', "_")))
            .collect();
        println!("  {c}: {}", names.join(", "));
    }
}
