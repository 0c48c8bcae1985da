//! The built binary's `gateway migrations` and `migrate` commands against fresh databases:
//! Kong's messages and exit codes for a database that needs bootstrapping, one with new
//! migrations, and one that is up to date.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;

use portcullis_db::Db;
use portcullis_db::testing::TestDb;

/// Runs the binary; returns (exit code, stdout, stderr).
fn portcullis(args: &[&str], env: &[(&str, String)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("KONG_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run portcullis");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn gateway_migrations_on_postgres() {
    let Some(url) = TestDb::postgres_database_url().await else {
        return;
    };
    let parsed = url::Url::parse(&url).unwrap();
    let env = vec![
        ("KONG_DATABASE", "postgres".to_string()),
        ("KONG_PG_HOST", parsed.host_str().unwrap().to_string()),
        ("KONG_PG_PORT", parsed.port().unwrap_or(5432).to_string()),
        ("KONG_PG_USER", parsed.username().to_string()),
        (
            "KONG_PG_DATABASE",
            parsed.path().trim_start_matches('/').to_string(),
        ),
    ];
    let run = |args: &[&str]| {
        let mut all = vec!["gateway", "migrations"];
        all.extend_from_slice(args);
        portcullis(&all, &env)
    };

    let (code, out, _) = run(&["list"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("Database needs bootstrapping or is older than Kong 1.0"));
    let (code, _, err) = run(&["up"]);
    assert_eq!(code, 1);
    assert!(err.contains("Database needs bootstrapping"), "{err}");
    let (code, _, err) = run(&["finish"]);
    assert_eq!(code, 1);
    assert!(err.contains("Database needs bootstrapping"), "{err}");

    let (code, out, err) = run(&["bootstrap"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Bootstrapping database..."), "{out}");
    assert!(out.contains("Database is up-to-date"), "{out}");
    let (code, out, _) = run(&["bootstrap"]);
    assert_eq!((code, out.trim()), (0, "Database already bootstrapped"));

    let (code, out, _) = run(&["list"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Executed migrations:"), "{out}");
    assert!(
        out.contains("2003_gateway_certificates_snis_ca_certificates"),
        "{out}"
    );
    let (code, out, _) = run(&["up"]);
    assert_eq!((code, out.trim()), (0, "Database is already up-to-date"));
    let (code, out, _) = run(&["finish"]);
    assert_eq!((code, out.trim()), (0, "No pending migrations to finish"));

    // A database one migration behind: `list` says so (5), `up` applies it.
    let db = Db::connect(&url).await.unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 2003")
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query("DROP TABLE gateway_snis")
        .execute(db.pool())
        .await
        .unwrap();
    let (code, out, _) = run(&["list"]);
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("New migrations available:"), "{out}");
    let (code, out, _) = run(&["up"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 executed"), "{out}");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM gateway_snis")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(n, 0, "the table is back");
    assert_eq!(run(&["list"]).0, 0);
    db.close().await;
}

#[test]
fn migrate_subcommands_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let run = |cmd: &str| portcullis(&["migrate", "--database-url", &url, cmd], &[]);
    assert_eq!(run("list").0, 3);
    let (code, out, err) = run("bootstrap");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("migrating identity"), "{out}");
    let (code, out, _) = run("list");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("  gateway: 2000_"), "{out}");
    // Without a subcommand `migrate` still applies everything.
    let (code, out, _) = portcullis(&["migrate", "--database-url", &url], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("migrations applied"), "{out}");
}
