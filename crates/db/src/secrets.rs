//! Secrets generated once and kept in the store, so every node and every restart agree.

use portcullis_core::Secret;

use crate::{Db, DbError};

/// Returns the secret called `name`, generating and storing it with `generate` on first use.
/// Concurrent first starts agree: the first insert wins and everyone reads it back.
pub async fn ensure(
    db: &Db,
    name: &str,
    generate: impl FnOnce() -> String,
) -> Result<Secret<String>, DbError> {
    let now = portcullis_core::timefmt::unix_millis(time::OffsetDateTime::now_utc());
    sqlx::query(
        "INSERT INTO portcullis_secrets (name, value, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(generate())
    .bind(now)
    .execute(db.pool())
    .await?;
    let value: String = sqlx::query_scalar("SELECT value FROM portcullis_secrets WHERE name = $1")
        .bind(name)
        .fetch_one(db.pool())
        .await?;
    Ok(Secret::new(value))
}

#[cfg(test)]
mod tests {
    use crate::testing::TestDb;

    async fn generated_once_then_kept(db: &crate::Db) {
        db.migrate(&[]).await.expect("migrate");
        let a = super::ensure(db, "cookie", || "first".into())
            .await
            .expect("a");
        let b = super::ensure(db, "cookie", || "second".into())
            .await
            .expect("b");
        assert_eq!(a.expose(), "first");
        assert_eq!(b.expose(), "first");
    }

    #[tokio::test]
    async fn secrets_persist_sqlite() {
        let db = TestDb::sqlite().await;
        generated_once_then_kept(&db).await;
    }

    #[tokio::test]
    async fn secrets_persist_postgres() {
        let Some(db) = TestDb::postgres().await else {
            return;
        };
        generated_once_then_kept(&db).await;
    }
}
