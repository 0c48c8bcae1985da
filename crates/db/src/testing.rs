//! Fresh databases for tests: a temporary SQLite file, or a new PostgreSQL database per test.
//!
//! PostgreSQL tests connect with `PORTCULLIS_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When the test script found no server and set
//! `PORTCULLIS_SKIP_POSTGRES=1`, [`TestDb::postgres`] returns `None` and says so; otherwise an
//! unreachable server fails the test, so CI can never skip the suite silently.

use std::ops::Deref;

use sqlx::{Connection, Executor};

use crate::Db;

/// Default administrative URL of the PostgreSQL server used by tests.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists for one test. Derefs to [`Db`].
pub struct TestDb {
    db: Db,
    url: String,
    // Keeps the SQLite file's directory alive for the test's duration.
    _dir: Option<tempfile::TempDir>,
}

impl Deref for TestDb {
    type Target = Db;
    fn deref(&self) -> &Db {
        &self.db
    }
}

impl TestDb {
    /// A migrated-nothing SQLite database in a fresh temporary directory.
    #[allow(clippy::unwrap_used, clippy::expect_used)]
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/test.db", dir.path().display());
        let db = Db::connect(&url).await.expect("open sqlite test db");
        TestDb {
            db,
            url,
            _dir: Some(dir),
        }
    }

    /// A new, empty PostgreSQL database, or `None` when the PostgreSQL suite is skipped.
    #[allow(clippy::expect_used)]
    pub async fn postgres() -> Option<TestDb> {
        let url = Self::postgres_database_url().await?;
        let db = Db::connect(&url).await.expect("open postgres test db");
        Some(TestDb {
            db,
            url,
            _dir: None,
        })
    }

    /// Creates a new PostgreSQL database and returns its URL (for tests that start several
    /// nodes on one database), or `None` when the PostgreSQL suite is skipped.
    #[allow(clippy::expect_used, clippy::panic)]
    pub async fn postgres_database_url() -> Option<String> {
        if std::env::var("PORTCULLIS_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
            eprintln!("PostgreSQL suite SKIPPED (PORTCULLIS_SKIP_POSTGRES=1): no server was found");
            return None;
        }
        let admin = std::env::var("PORTCULLIS_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
        let mut conn = match sqlx::PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) => panic!(
                "PostgreSQL test server unreachable at {admin}: {e}. Start it, set \
                 PORTCULLIS_TEST_POSTGRES_URL, or run the test script, which skips the suite \
                 outside CI."
            ),
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        // Drop leftovers of earlier runs (older than an hour) so databases do not pile up.
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database WHERE datname LIKE 'portcullis_test_%'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
        for name in stale {
            let born = name
                .split('_')
                .nth(2)
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(now);
            if now - born > 3600 {
                let _ = conn
                    .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                    .await;
            }
        }
        let name = format!(
            "portcullis_test_{now}_{}",
            portcullis_core::new_id().simple()
        );
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .expect("create test database");
        let mut url = url::Url::parse(&admin).expect("valid PostgreSQL URL");
        url.set_path(&format!("/{name}"));
        Some(url.to_string())
    }

    /// A short random name, for unique test data (emails, usernames).
    pub fn random_name() -> String {
        portcullis_core::new_id().simple().to_string()[..12].to_string()
    }

    /// The URL this database was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }
}
