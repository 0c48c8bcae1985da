//! The store underneath every component: one [`Db`] handle over either an embedded SQLite file
//! (the zero-configuration default) or PostgreSQL (production, several nodes sharing one
//! database).
//!
//! Key decision: components write their SQL once, against sqlx's `Any` driver, using only
//! types both engines agree on (TEXT ids and JSON, BIGINT millisecond timestamps, BIGINT
//! flags) and `$n` placeholders, which SQLite accepts too. Schema changes are per dialect:
//! each component ships `migrations/{sqlite,postgres}/` and hands them over as a
//! [`MigrationSet`]; all sets share sqlx's migrations table, so each component owns a
//! version range (see `docs/architecture.md`).

pub mod migrate;
pub mod secrets;
pub mod testing;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use migrate::{MigrationInfo, MigrationSet, MigrationStatus};

/// Errors opening or migrating the store.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names neither SQLite nor PostgreSQL.
    #[error("unsupported database URL {0:?}: use sqlite://FILE, memory, or postgres://...")]
    UnsupportedUrl(String),
    /// The SQLite file's directory could not be created.
    #[error("cannot create directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Connecting failed.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL with any password removed.
        url: String,
        /// The cause.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("migrating {component} on {dialect}: {source}")]
    Migrate {
        /// The component whose migration failed.
        component: &'static str,
        /// The dialect.
        dialect: Dialect,
        /// The cause.
        source: sqlx::migrate::MigrateError,
    },
    /// Any other query failure.
    #[error(transparent)]
    Query(#[from] sqlx::Error),
}

/// The SQL engine behind a [`Db`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        })
    }
}

/// A cloneable handle on the connection pool.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    dialect: Dialect,
    url: String,
}

impl Db {
    /// Opens the store at `url`: `postgres://…`/`postgresql://…`, `sqlite://PATH` (created with
    /// its directory when missing), a bare file path ending in `.db`/`.sqlite`, or `memory` for
    /// a private in-memory SQLite database that lives as long as this handle.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let (dialect, url) = normalize_url(url)?;
        let max = match dialect {
            Dialect::Sqlite => 8,
            Dialect::Postgres => 16,
        };
        let opts = AnyConnectOptions::from_str(&url).map_err(|source| DbError::Connect {
            url: redact(&url),
            source,
        })?;
        let mut pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10));
        if dialect == Dialect::Sqlite {
            // An in-memory database disappears with its last connection: keep one open.
            pool = pool.min_connections(1).after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = pool
            .connect_with(opts)
            .await
            .map_err(|source| DbError::Connect {
                url: redact(&url),
                source,
            })?;
        if dialect == Dialect::Sqlite && !url.contains("mode=memory") {
            // WAL lets readers proceed while a writer commits; it is a property of the file.
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        Ok(Self { pool, dialect, url })
    }

    /// The pool, for running queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which engine this is.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The connection URL with any password replaced by `***`, for logs.
    pub fn display_url(&self) -> String {
        redact(&self.url)
    }

    /// Applies every pending migration of each set, in order.
    pub async fn migrate(&self, sets: &[MigrationSet]) -> Result<(), DbError> {
        migrate::run(self, sets).await
    }

    /// Which migrations of `sets` (and the system set) are applied and which are pending.
    pub async fn migration_status(
        &self,
        sets: &[MigrationSet],
    ) -> Result<MigrationStatus, DbError> {
        migrate::status(self, sets).await
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Turns the accepted spellings into a URL sqlx understands, and tells the dialect.
fn normalize_url(url: &str) -> Result<(Dialect, String), DbError> {
    let url = url.trim();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Dialect::Postgres, url.to_string()));
    }
    if url == "memory" || url == "sqlite::memory:" {
        let name = portcullis_core::new_id().simple();
        return Ok((
            Dialect::Sqlite,
            format!("sqlite:file:mem{name}?mode=memory&cache=shared"),
        ));
    }
    let path = if let Some(rest) = url.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        rest
    } else if url.ends_with(".db") || url.ends_with(".sqlite") || url.ends_with(".sqlite3") {
        url
    } else {
        return Err(DbError::UnsupportedUrl(url.to_string()));
    };
    let (file, query) = path.split_once('?').unwrap_or((path, ""));
    if let Some(dir) = Path::new(file)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let query = if query.is_empty() {
        "mode=rwc".to_string()
    } else if query.contains("mode=") {
        query.to_string()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok((Dialect::Sqlite, format!("sqlite://{file}?{query}")))
}

/// Hides the password part of a URL.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_classified() {
        assert_eq!(
            normalize_url("postgres://u:p@h/db").map(|(d, _)| d).ok(),
            Some(Dialect::Postgres)
        );
        assert!(matches!(
            normalize_url("mysql://x"),
            Err(DbError::UnsupportedUrl(_))
        ));
        let (d, u) = normalize_url("memory").expect("memory url");
        assert_eq!(d, Dialect::Sqlite);
        assert!(u.contains("mode=memory"));
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
    }
}
