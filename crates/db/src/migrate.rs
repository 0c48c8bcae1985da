//! Per-component, per-dialect migrations on one shared migrations table.

use sqlx::migrate::Migrator;

use crate::{Db, DbError, Dialect};

/// The migrations one component owns, for each dialect. Versions must stay inside the
/// component's range (documented in `docs/architecture.md`) so sets never collide.
pub struct MigrationSet {
    /// Component name, for errors and logs.
    pub component: &'static str,
    /// Migrations for SQLite.
    pub sqlite: Migrator,
    /// Migrations for PostgreSQL.
    pub postgres: Migrator,
}

/// The store's own tables (persisted secrets).
pub fn system_migrations() -> MigrationSet {
    MigrationSet {
        component: "system",
        sqlite: sqlx::migrate!("migrations/sqlite"),
        postgres: sqlx::migrate!("migrations/postgres"),
    }
}

pub(crate) async fn run(db: &Db, sets: &[MigrationSet]) -> Result<(), DbError> {
    for set in std::iter::once(&system_migrations()).chain(sets) {
        let mut migrator = match db.dialect() {
            Dialect::Sqlite => clone_migrator(&set.sqlite),
            Dialect::Postgres => clone_migrator(&set.postgres),
        };
        // Other components' versions live in the same table: they are not "missing".
        migrator.set_ignore_missing(true);
        migrator
            .run(db.pool())
            .await
            .map_err(|source| DbError::Migrate {
                component: set.component,
                dialect: db.dialect(),
                source,
            })?;
        tracing::debug!(component = set.component, dialect = %db.dialect(), "migrations applied");
    }
    Ok(())
}

fn clone_migrator(m: &Migrator) -> Migrator {
    Migrator {
        migrations: m.migrations.clone(),
        ignore_missing: m.ignore_missing,
        locking: m.locking,
        no_tx: m.no_tx,
    }
}

/// One migration, as `migrations list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationInfo {
    /// The component owning it.
    pub component: &'static str,
    /// Its version.
    pub version: i64,
    /// Its description (the file name after the version).
    pub description: String,
}

/// Where a database stands against a list of migration sets (plus the system set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Whether any migration was ever applied (Kong: the database is bootstrapped).
    pub bootstrapped: bool,
    /// Migrations already applied, in order.
    pub executed: Vec<MigrationInfo>,
    /// Migrations not applied yet, in order.
    pub pending: Vec<MigrationInfo>,
}

impl MigrationStatus {
    /// Nothing left to apply.
    pub fn is_up_to_date(&self) -> bool {
        self.bootstrapped && self.pending.is_empty()
    }
}

pub(crate) async fn status(db: &Db, sets: &[MigrationSet]) -> Result<MigrationStatus, DbError> {
    let exists_sql = match db.dialect() {
        Dialect::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
        }
        Dialect::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_name = '_sqlx_migrations' AND table_schema = current_schema()"
        }
    };
    let exists: i64 = sqlx::query_scalar(exists_sql).fetch_one(db.pool()).await?;
    let applied: Vec<i64> = if exists > 0 {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(db.pool())
            .await?
    } else {
        Vec::new()
    };
    let mut out = MigrationStatus {
        bootstrapped: !applied.is_empty(),
        executed: Vec::new(),
        pending: Vec::new(),
    };
    for set in std::iter::once(&system_migrations()).chain(sets) {
        let migrator = match db.dialect() {
            Dialect::Sqlite => &set.sqlite,
            Dialect::Postgres => &set.postgres,
        };
        for m in migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
        {
            let info = MigrationInfo {
                component: set.component,
                version: m.version,
                description: m.description.to_string(),
            };
            if applied.contains(&m.version) {
                out.executed.push(info);
            } else {
                out.pending.push(info);
            }
        }
    }
    Ok(out)
}
