//! `GatewayStore`: services and routes in the shared database, SQL written once for SQLite
//! and PostgreSQL. Entities are stored whole as Kong JSON next to the columns needed for
//! lookups, uniqueness and pagination.

use portcullis_db::Db;
use sqlx::Row;
use uuid::Uuid;

use crate::entity::{EntityKey, Route, Service};

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another entity already has this unique value.
    #[error("unique violation on {field}={value:?}")]
    Unique {
        /// The unique field.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// An entity with this primary key exists already.
    #[error("primary key violation on id={0}")]
    PrimaryKey(Uuid),
    /// The service is still referenced by routes.
    #[error("service is referenced by routes")]
    Referenced,
    /// The referenced service does not exist.
    #[error("foreign key violation: service {0} does not exist")]
    MissingService(Uuid),
    /// A stored entity could not be decoded.
    #[error("corrupt stored entity {id}: {source}")]
    Corrupt {
        /// The row's id.
        id: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// One page of a listing.
#[derive(Debug)]
pub struct Page<T> {
    /// The entities on this page.
    pub data: Vec<T>,
    /// The id to continue after, when there are more.
    pub next_after: Option<String>,
}

/// Which table an operation concerns.
#[derive(Debug, Clone, Copy)]
enum Table {
    Services,
    Routes,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Services => "gateway_services",
            Table::Routes => "gateway_routes",
        }
    }
}

/// Services and routes, over the shared [`Db`].
#[derive(Clone, Debug)]
pub struct GatewayStore {
    db: Db,
}

impl GatewayStore {
    /// Wraps the database handle; the gateway's migrations must have run.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The underlying database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1")
            .execute(self.db.pool())
            .await
            .is_ok()
    }

    /// A service by id or name.
    pub async fn service(&self, key: &EntityKey) -> Result<Option<Service>, StoreError> {
        self.get(Table::Services, key).await
    }

    /// A route by id or name.
    pub async fn route(&self, key: &EntityKey) -> Result<Option<Route>, StoreError> {
        self.get(Table::Routes, key).await
    }

    /// Services ordered by id, `size` at a time, after the id `after`.
    pub async fn services(
        &self,
        size: i64,
        after: Option<&str>,
    ) -> Result<Page<Service>, StoreError> {
        self.list(Table::Services, None, size, after).await
    }

    /// Routes ordered by id, optionally only those of `service`.
    pub async fn routes(
        &self,
        service: Option<Uuid>,
        size: i64,
        after: Option<&str>,
    ) -> Result<Page<Route>, StoreError> {
        self.list(Table::Routes, service, size, after).await
    }

    /// Every service and route, for building the router table.
    pub async fn snapshot(&self) -> Result<(Vec<Service>, Vec<Route>), StoreError> {
        let services = self.all(Table::Services).await?;
        let routes = self.all(Table::Routes).await?;
        Ok((services, routes))
    }

    /// Inserts a new service.
    pub async fn insert_service(&self, s: &Service) -> Result<(), StoreError> {
        self.check_unique(Table::Services, s.id, s.name.as_deref(), true)
            .await?;
        self.insert(
            Table::Services,
            s.id,
            s.name.as_deref(),
            None,
            s,
            s.created_at,
            s.updated_at,
        )
        .await
    }

    /// Replaces an existing service (same id); returns false when it no longer exists.
    pub async fn update_service(&self, s: &Service) -> Result<bool, StoreError> {
        self.check_unique(Table::Services, s.id, s.name.as_deref(), false)
            .await?;
        self.update(
            Table::Services,
            s.id,
            s.name.as_deref(),
            None,
            s,
            s.updated_at,
        )
        .await
    }

    /// Inserts a new route.
    pub async fn insert_route(&self, r: &Route) -> Result<(), StoreError> {
        self.check_unique(Table::Routes, r.id, r.name.as_deref(), true)
            .await?;
        self.check_service(r).await?;
        let sid = r.service.map(|s| s.id);
        self.insert(
            Table::Routes,
            r.id,
            r.name.as_deref(),
            sid,
            r,
            r.created_at,
            r.updated_at,
        )
        .await
    }

    /// Replaces an existing route (same id); returns false when it no longer exists.
    pub async fn update_route(&self, r: &Route) -> Result<bool, StoreError> {
        self.check_unique(Table::Routes, r.id, r.name.as_deref(), false)
            .await?;
        self.check_service(r).await?;
        let sid = r.service.map(|s| s.id);
        self.update(Table::Routes, r.id, r.name.as_deref(), sid, r, r.updated_at)
            .await
    }

    /// Deletes a service; fails with [`StoreError::Referenced`] while routes point at it.
    pub async fn delete_service(&self, id: Uuid) -> Result<(), StoreError> {
        let refs: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM gateway_routes WHERE service_id = $1")
                .bind(id.to_string())
                .fetch_one(self.db.pool())
                .await?;
        if refs > 0 {
            return Err(StoreError::Referenced);
        }
        sqlx::query("DELETE FROM gateway_services WHERE id = $1")
            .bind(id.to_string())
            .execute(self.db.pool())
            .await
            .map_err(|e| map_constraint(e, || StoreError::Referenced))?;
        Ok(())
    }

    /// Deletes a route (absent is fine).
    pub async fn delete_route(&self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM gateway_routes WHERE id = $1")
            .bind(id.to_string())
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    async fn check_service(&self, r: &Route) -> Result<(), StoreError> {
        if let Some(fk) = r.service
            && self.service(&EntityKey::Id(fk.id)).await?.is_none()
        {
            return Err(StoreError::MissingService(fk.id));
        }
        Ok(())
    }

    async fn check_unique(
        &self,
        table: Table,
        id: Uuid,
        name: Option<&str>,
        new: bool,
    ) -> Result<(), StoreError> {
        if new {
            let sql = format!("SELECT COUNT(*) FROM {} WHERE id = $1", table.name());
            let n: i64 = sqlx::query_scalar(&sql)
                .bind(id.to_string())
                .fetch_one(self.db.pool())
                .await?;
            if n > 0 {
                return Err(StoreError::PrimaryKey(id));
            }
        }
        if let Some(name) = name {
            let sql = format!(
                "SELECT COUNT(*) FROM {} WHERE name = $1 AND id <> $2",
                table.name()
            );
            let n: i64 = sqlx::query_scalar(&sql)
                .bind(name)
                .bind(id.to_string())
                .fetch_one(self.db.pool())
                .await?;
            if n > 0 {
                return Err(unique_name(name));
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert<T: serde::Serialize>(
        &self,
        table: Table,
        id: Uuid,
        name: Option<&str>,
        service_id: Option<Uuid>,
        entity: &T,
        created_at: i64,
        updated_at: i64,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(entity).map_err(|source| StoreError::Corrupt {
            id: id.to_string(),
            source,
        })?;
        let result = match table {
            Table::Services => sqlx::query(
                "INSERT INTO gateway_services (id, name, entity, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id.to_string())
            .bind(name)
            .bind(json)
            .bind(created_at * 1000)
            .bind(updated_at * 1000),
            Table::Routes => sqlx::query(
                "INSERT INTO gateway_routes (id, name, service_id, entity, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id.to_string())
            .bind(name)
            .bind(service_id.map(|s| s.to_string()))
            .bind(json)
            .bind(created_at * 1000)
            .bind(updated_at * 1000),
        }
        .execute(self.db.pool())
        .await;
        result.map_err(|e| map_write_error(e, name, service_id))?;
        Ok(())
    }

    async fn update<T: serde::Serialize>(
        &self,
        table: Table,
        id: Uuid,
        name: Option<&str>,
        service_id: Option<Uuid>,
        entity: &T,
        updated_at: i64,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(entity).map_err(|source| StoreError::Corrupt {
            id: id.to_string(),
            source,
        })?;
        let result = match table {
            Table::Services => sqlx::query(
                "UPDATE gateway_services SET name = $1, entity = $2, updated_at = $3 WHERE id = $4",
            )
            .bind(name)
            .bind(json)
            .bind(updated_at * 1000)
            .bind(id.to_string()),
            Table::Routes => sqlx::query(
                "UPDATE gateway_routes SET name = $1, service_id = $2, entity = $3, updated_at = $4 \
                 WHERE id = $5",
            )
            .bind(name)
            .bind(service_id.map(|s| s.to_string()))
            .bind(json)
            .bind(updated_at * 1000)
            .bind(id.to_string()),
        }
        .execute(self.db.pool())
        .await
        .map_err(|e| map_write_error(e, name, service_id))?;
        Ok(result.rows_affected() > 0)
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        table: Table,
        key: &EntityKey,
    ) -> Result<Option<T>, StoreError> {
        let (column, value) = match key {
            EntityKey::Id(id) => ("id", id.to_string()),
            // PostgreSQL rejects NUL in text; validated names never contain one.
            EntityKey::Name(name) if name.contains('\0') => return Ok(None),
            EntityKey::Name(name) => ("name", name.clone()),
        };
        let sql = format!(
            "SELECT id, entity FROM {} WHERE {column} = $1",
            table.name()
        );
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(self.db.pool())
            .await?;
        row.map(|r| decode(&r)).transpose()
    }

    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        table: Table,
        service: Option<Uuid>,
        size: i64,
        after: Option<&str>,
    ) -> Result<Page<T>, StoreError> {
        let filter = if service.is_some() {
            " AND service_id = $3"
        } else {
            ""
        };
        let sql = format!(
            "SELECT id, entity FROM {} WHERE id > $1{filter} ORDER BY id LIMIT $2",
            table.name()
        );
        let mut q = sqlx::query(&sql).bind(after.unwrap_or("")).bind(size + 1);
        if let Some(s) = service {
            q = q.bind(s.to_string());
        }
        let rows = q.fetch_all(self.db.pool()).await?;
        let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > size;
        let mut data = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in rows.iter().take(usize::try_from(size).unwrap_or(0)) {
            last = Some(row.try_get::<String, _>("id")?);
            data.push(decode(row)?);
        }
        Ok(Page {
            data,
            next_after: if more { last } else { None },
        })
    }

    async fn all<T: serde::de::DeserializeOwned>(
        &self,
        table: Table,
    ) -> Result<Vec<T>, StoreError> {
        let sql = format!("SELECT id, entity FROM {} ORDER BY id", table.name());
        let rows = sqlx::query(&sql).fetch_all(self.db.pool()).await?;
        rows.iter().map(decode).collect()
    }
}

fn decode<T: serde::de::DeserializeOwned>(row: &sqlx::any::AnyRow) -> Result<T, StoreError> {
    let id: String = row.try_get("id")?;
    let entity: String = row.try_get("entity")?;
    serde_json::from_str(&entity).map_err(|source| StoreError::Corrupt { id, source })
}

fn unique_name(name: &str) -> StoreError {
    StoreError::Unique {
        field: "name",
        value: name.to_string(),
    }
}

/// Maps constraint failures that slipped past the pre-checks (a concurrent writer) to the
/// same typed errors.
fn map_write_error(e: sqlx::Error, name: Option<&str>, service: Option<Uuid>) -> StoreError {
    let Some(db) = e.as_database_error() else {
        return StoreError::Db(e);
    };
    if db.is_unique_violation() {
        return match name {
            Some(n) => unique_name(n),
            None => StoreError::Db(e),
        };
    }
    if db.is_foreign_key_violation()
        && let Some(s) = service
    {
        return StoreError::MissingService(s);
    }
    StoreError::Db(e)
}

fn map_constraint(e: sqlx::Error, f: impl FnOnce() -> StoreError) -> StoreError {
    match e.as_database_error() {
        Some(db) if db.is_foreign_key_violation() => f(),
        _ => StoreError::Db(e),
    }
}
