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
