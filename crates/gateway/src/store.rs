//! `GatewayStore`: Kong's entities in the shared database, SQL written once for SQLite and
//! PostgreSQL. Entities are stored whole as Kong JSON next to the columns needed for lookups,
//! uniqueness, references and pagination; tags live in their own table, as in Kong, so
//! `?tags=` filters and `/tags` are plain SQL.
//!
//! Every write runs in one transaction that also bumps the configuration version row and,
//! on PostgreSQL, sends `NOTIFY portcullis_gateway_config` (delivered on commit): that is how
//! the other nodes sharing the database learn that their routing table is stale
//! ([`crate::sync`]).

use portcullis_db::{Db, Dialect};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;
use uuid::Uuid;

use crate::entity::{
    CaCertificate, Certificate, Consumer, EntityKey, Plugin, Route, Service, Sni, Target, Upstream,
};

/// The channel every write notifies on PostgreSQL.
pub const NOTIFY_CHANNEL: &str = "portcullis_gateway_config";

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another entity already has this unique value.
    #[error("unique violation on {value:?}")]
    Unique {
        /// The unique field, or `None` for a compound key whose `value` is already
        /// rendered as Kong renders keys (`{name="x",service=null}`).
        field: Option<&'static str>,
        /// The value.
        value: String,
    },
    /// An entity with this primary key exists already.
    #[error("primary key violation on id={0}")]
    PrimaryKey(Uuid),
    /// The entity is still referenced by entities of kind `by` that do not cascade.
    #[error("entity is referenced by {by}")]
    Referenced {
        /// The referencing entity kind (`routes`).
        by: &'static str,
        /// The referenced entity kind (`services`).
        entity: &'static str,
    },
    /// A referenced entity does not exist.
    #[error("foreign key violation: {entity} {id} does not exist")]
    MissingReference {
        /// The referencing field (`service`).
        field: &'static str,
        /// The referenced entity kind (`services`).
        entity: &'static str,
        /// The missing id.
        id: Uuid,
    },
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

/// A foreign-key column and what it references.
#[derive(Debug, Clone, Copy)]
pub struct Reference {
    /// The column (`service_id`).
    pub column: &'static str,
    /// Kong's field name (`service`).
    pub field: &'static str,
    /// The referenced table.
    pub table: &'static str,
    /// Kong's name of the referenced entity (`services`).
    pub entity: &'static str,
    /// Deleting the referenced entity deletes this one too (else it is refused).
    pub cascade: bool,
}

/// How one entity kind is stored.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// The SQL table.
    pub name: &'static str,
    /// Kong's entity name (`services`), as used in `/tags` and error messages.
    pub entity: &'static str,
    /// Extra columns after `id`, in the order [`Stored::columns`] returns their values.
    pub columns: &'static [&'static str],
    /// Unique columns, with Kong's field name for the 409 (`None`: a compound key rendered
    /// into the column).
    pub unique: &'static [(&'static str, Option<&'static str>)],
    /// The column a non-UUID path segment is looked up in.
    pub endpoint_key: Option<&'static str>,
    /// Foreign keys held by this table.
    pub references: &'static [Reference],
}

/// An entity the store can keep.
pub trait Stored: Serialize + DeserializeOwned + Send + Sync {
    /// Its table.
    const TABLE: Table;
    /// Primary key.
    fn id(&self) -> Uuid;
    /// Values of [`Table::columns`], in order.
    fn columns(&self) -> Vec<Option<String>>;
    /// Its tags.
    fn tags(&self) -> &[String];
    /// `(created_at, updated_at)` in seconds.
    fn timestamps(&self) -> (i64, i64);
    /// For an entity without an endpoint key that is named through another one instead
    /// (Kong: a certificate through any of its SNI names).
    const NAMED_BY: Option<NamedBy> = None;
}

/// How a non-UUID key finds an entity through another table: the row of `table` whose
/// `column` is the key names the entity in `reference`.
#[derive(Debug, Clone, Copy)]
pub struct NamedBy {
    /// The naming table (`gateway_snis`).
    pub table: &'static str,
    /// Its key column (`name`).
    pub column: &'static str,
    /// Its column holding the named entity's id (`certificate_id`).
    pub reference: &'static str,
}

/// Every table, children after parents (the order a full reload and a wipe respect).
pub const TABLES: &[Table] = &[
    Service::TABLE,
    Route::TABLE,
    Consumer::TABLE,
    Plugin::TABLE,
    Upstream::TABLE,
    Target::TABLE,
    Certificate::TABLE,
    Sni::TABLE,
    CaCertificate::TABLE,
];

/// A `?tags=` filter: `a,b` needs every tag, `a/b` any of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagFilter {
    /// Every tag (`a,b`).
    All(Vec<String>),
    /// Any tag (`a/b`).
    Any(Vec<String>),
}

/// A listing request.
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    /// Only rows whose `column` equals the value.
    pub filter: Option<(&'static str, String)>,
    /// Tag filter.
    pub tags: Option<&'a TagFilter>,
    /// Page size.
    pub size: i64,
    /// Continue after this id.
    pub after: Option<&'a str>,
}

/// A `/tags` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagRow {
    /// Entity kind.
    pub entity_name: String,
    /// Entity id.
    pub entity_id: String,
    /// The tag.
    pub tag: String,
}

/// Kong's entities over the shared [`Db`].
#[derive(Clone, Debug)]
pub struct GatewayStore {
    db: Db,
}

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

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

    /// The configuration version, bumped by every write.
    pub async fn version(&self) -> Result<i64, StoreError> {
        let v: i64 =
            sqlx::query_scalar("SELECT version FROM gateway_config_version WHERE id = 'router'")
                .fetch_one(self.db.pool())
                .await?;
        Ok(v)
    }

    /// A service by id or name.
    pub async fn service(&self, key: &EntityKey) -> Result<Option<Service>, StoreError> {
        self.get(key).await
    }

    /// A route by id or name.
    pub async fn route(&self, key: &EntityKey) -> Result<Option<Route>, StoreError> {
        self.get(key).await
    }

    /// Every service and route, for building the router table.
    pub async fn snapshot(&self) -> Result<(Vec<Service>, Vec<Route>), StoreError> {
        let services = self.all().await?;
        let routes = self.all().await?;
        Ok((services, routes))
    }

    /// Inserts a new service.
    pub async fn insert_service(&self, s: &Service) -> Result<(), StoreError> {
        self.insert(s).await
    }

    /// Replaces an existing service (same id); returns false when it no longer exists.
    pub async fn update_service(&self, s: &Service) -> Result<bool, StoreError> {
        self.update(s).await
    }

    /// Inserts a new route.
    pub async fn insert_route(&self, r: &Route) -> Result<(), StoreError> {
        self.insert(r).await
    }

    /// Replaces an existing route (same id); returns false when it no longer exists.
    pub async fn update_route(&self, r: &Route) -> Result<bool, StoreError> {
        self.update(r).await
    }

    /// An entity by id or endpoint key.
    pub async fn get<T: Stored>(&self, key: &EntityKey) -> Result<Option<T>, StoreError> {
        self.find(key, None).await
    }

    /// The id of the `table` row whose `column` equals `value` (resolving a reference given
    /// by name).
    pub async fn resolve(
        &self,
        table: &Table,
        column: &str,
        value: &str,
    ) -> Result<Option<Uuid>, StoreError> {
        if value.contains('\0') {
            return Ok(None);
        }
        let sql = format!("SELECT id FROM {} WHERE {column} = $1", table.name);
        let id: Option<String> = sqlx::query_scalar(&sql)
            .bind(value)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(id.and_then(|id| Uuid::parse_str(&id).ok()))
    }

    /// An entity by id or endpoint key, only if `scope`'s column has the given value (a
    /// child under its parent: a target's address is unique only within its upstream).
    pub async fn find<T: Stored>(
        &self,
        key: &EntityKey,
        scope: Option<(&str, &str)>,
    ) -> Result<Option<T>, StoreError> {
        let table = T::TABLE;
        let (condition, value) = match key {
            EntityKey::Id(id) => ("id = $1".to_string(), id.to_string()),
            // PostgreSQL rejects NUL in text; validated keys never contain one.
            EntityKey::Name(name) if name.contains('\0') => return Ok(None),
            EntityKey::Name(name) => match (table.endpoint_key, T::NAMED_BY) {
                (Some(col), _) => (format!("{col} = $1"), name.clone()),
                (None, Some(by)) => (
                    format!(
                        "id = (SELECT {} FROM {} WHERE {} = $1)",
                        by.reference, by.table, by.column
                    ),
                    name.clone(),
                ),
                (None, None) => return Ok(None),
            },
        };
        let mut sql = format!("SELECT id, entity FROM {} WHERE {condition}", table.name);
        if let Some((col, _)) = scope {
            sql.push_str(&format!(" AND {col} = $2"));
        }
        let mut q = sqlx::query(&sql).bind(value);
        if let Some((_, v)) = scope {
            q = q.bind(v.to_string());
        }
        let row = q.fetch_optional(self.db.pool()).await?;
        row.map(|r| decode(&r)).transpose()
    }

    /// A page of entities ordered by id.
    pub async fn list<T: Stored>(&self, q: &Query<'_>) -> Result<Page<T>, StoreError> {
        let table = T::TABLE;
        let mut sql = format!("SELECT id, entity FROM {} WHERE id > $1", table.name);
        let mut binds: Vec<String> = vec![q.after.unwrap_or("").to_string()];
        if let Some((col, value)) = &q.filter {
            binds.push(value.clone());
            sql.push_str(&format!(" AND {col} = ${}", binds.len()));
        }
        if let Some(tags) = q.tags {
            sql.push_str(&tag_condition(tags, &mut binds));
        }
        sql.push_str(&format!(" ORDER BY id LIMIT {}", q.size + 1));
        let mut query = sqlx::query(&sql);
        for b in &binds {
            query = query.bind(b.as_str());
        }
        let rows = query.fetch_all(self.db.pool()).await?;
        let size = usize::try_from(q.size).unwrap_or(0);
        let more = rows.len() > size;
        let mut data = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in rows.iter().take(size) {
            last = Some(row.try_get::<String, _>("id")?);
            data.push(decode(row)?);
        }
        Ok(Page {
            data,
            next_after: if more { last } else { None },
        })
    }

    /// Every entity of a kind, ordered by id.
    pub async fn all<T: Stored>(&self) -> Result<Vec<T>, StoreError> {
        let sql = format!("SELECT id, entity FROM {} ORDER BY id", T::TABLE.name);
        let rows = sqlx::query(&sql).fetch_all(self.db.pool()).await?;
        rows.iter().map(decode).collect()
    }

    /// Inserts a new entity.
    pub async fn insert<T: Stored>(&self, e: &T) -> Result<(), StoreError> {
        self.check_unique(e, true).await?;
        self.check_references(e).await?;
        let mut tx = self.db.pool().begin().await?;
        insert_in(&mut tx, e).await?;
        self.commit(tx).await
    }

    /// Replaces every entity with `config`'s, in one transaction: readers and other nodes
    /// see the old configuration or the new one, never a mix. Constraint failures (a
    /// duplicate name, a dangling reference) roll everything back.
    pub async fn replace_all(&self, config: &crate::declarative::Config) -> Result<(), StoreError> {
        let mut tx = self.db.pool().begin().await?;
        sqlx::query("DELETE FROM gateway_tags")
            .execute(&mut *tx)
            .await?;
        for table in TABLES.iter().rev() {
            sqlx::query(&format!("DELETE FROM {}", table.name))
                .execute(&mut *tx)
                .await?;
        }
        for e in &config.services {
            insert_in(&mut tx, e).await?;
        }
        for e in &config.routes {
            insert_in(&mut tx, e).await?;
        }
        for e in &config.consumers {
            insert_in(&mut tx, e).await?;
        }
        for e in &config.plugins {
            insert_in(&mut tx, e).await?;
        }
        for e in &config.upstreams {
            insert_in(&mut tx, e).await?;
        }
        for e in &config.targets {
            insert_in(&mut tx, e).await?;
        }
        for e in &config.certificates {
            insert_in(&mut tx, e).await?;
        }
        for e in &config.snis {
            insert_in(&mut tx, e).await?;
        }
        for e in &config.ca_certificates {
            insert_in(&mut tx, e).await?;
        }
        self.commit(tx).await
    }

    /// Replaces an existing entity (same id); returns false when it no longer exists.
    pub async fn update<T: Stored>(&self, e: &T) -> Result<bool, StoreError> {
        self.check_unique(e, false).await?;
        self.check_references(e).await?;
        let mut tx = self.db.pool().begin().await?;
        if !update_in(&mut tx, e).await? {
            return Ok(false);
        }
        self.commit(tx).await?;
        Ok(true)
    }

    /// The SNIs of a certificate, by name.
    pub async fn snis_of(&self, certificate: Uuid) -> Result<Vec<Sni>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, entity FROM gateway_snis WHERE certificate_id = $1 ORDER BY name",
        )
        .bind(certificate.to_string())
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Writes a certificate (inserted when `new`, else replaced) together with changes to
    /// its SNIs, in one transaction: `add` are inserted, `remove` deleted. Returns false
    /// when a replaced certificate no longer exists.
    pub async fn write_certificate(
        &self,
        certificate: &Certificate,
        new: bool,
        add: &[Sni],
        remove: &[Uuid],
    ) -> Result<bool, StoreError> {
        self.check_unique(certificate, new).await?;
        for sni in add {
            self.check_unique(sni, true).await?;
        }
        let mut tx = self.db.pool().begin().await?;
        if new {
            insert_in(&mut tx, certificate).await?;
        } else if !update_in(&mut tx, certificate).await? {
            return Ok(false);
        }
        for id in remove {
            for sql in [
                "DELETE FROM gateway_tags WHERE entity_id = $1",
                "DELETE FROM gateway_snis WHERE id = $1",
            ] {
                sqlx::query(sql)
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for sni in add {
            insert_in(&mut tx, sni).await?;
        }
        self.commit(tx).await?;
        Ok(true)
    }

    /// Deletes an entity (absent is fine) with the entities that cascade from it; refused
    /// with [`StoreError::Referenced`] while non-cascading references remain.
    pub async fn delete<T: Stored>(&self, id: Uuid) -> Result<(), StoreError> {
        let table = T::TABLE;
        let children: Vec<(&Table, &Reference)> = all_tables()
            .iter()
            .flat_map(|t| {
                t.references
                    .iter()
                    .filter(|r| r.table == table.name)
                    .map(move |r| (t, r))
            })
            .collect();
        for (child, r) in &children {
            if r.cascade {
                continue;
            }
            let sql = format!(
                "SELECT COUNT(*) FROM {} WHERE {} = $1",
                child.name, r.column
            );
            let n: i64 = sqlx::query_scalar(&sql)
                .bind(id.to_string())
                .fetch_one(self.db.pool())
                .await?;
            if n > 0 {
                return Err(StoreError::Referenced {
                    by: child.entity,
                    entity: table.entity,
                });
            }
        }
        let mut tx = self.db.pool().begin().await?;
        for (child, r) in &children {
            if r.cascade {
                let sql = format!(
                    "DELETE FROM gateway_tags WHERE entity_id IN (SELECT id FROM {} WHERE {} = $1)",
                    child.name, r.column
                );
                sqlx::query(&sql)
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
                let sql = format!("DELETE FROM {} WHERE {} = $1", child.name, r.column);
                sqlx::query(&sql)
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query("DELETE FROM gateway_tags WHERE entity_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let sql = format!("DELETE FROM {} WHERE id = $1", table.name);
        let result = sqlx::query(&sql)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| match e.as_database_error() {
                Some(db) if db.is_foreign_key_violation() => StoreError::Referenced {
                    by: "others",
                    entity: table.entity,
                },
                _ => StoreError::Db(e),
            })?;
        if result.rows_affected() == 0 {
            return Ok(());
        }
        self.commit(tx).await
    }

    /// A page of `/tags` rows, optionally for one tag, ordered by (tag, entity id).
    pub async fn tags(
        &self,
        tag: Option<&str>,
        size: i64,
        after: Option<&str>,
    ) -> Result<Page<TagRow>, StoreError> {
        // The keyset is "tag entity_id" joined by a space, which neither part contains.
        let (after_tag, after_id) = after
            .and_then(|a| a.split_once(' '))
            .map_or((String::new(), String::new()), |(t, i)| {
                (t.to_string(), i.to_string())
            });
        let mut sql = "SELECT entity_name, entity_id, tag FROM gateway_tags \
                       WHERE (tag > $1 OR (tag = $1 AND entity_id > $2))"
            .to_string();
        if tag.is_some() {
            sql.push_str(" AND tag = $3");
        }
        sql.push_str(&format!(" ORDER BY tag, entity_id LIMIT {}", size + 1));
        let mut q = sqlx::query(&sql).bind(after_tag).bind(after_id);
        if let Some(t) = tag {
            q = q.bind(t.to_string());
        }
        let rows = q.fetch_all(self.db.pool()).await?;
        let size = usize::try_from(size).unwrap_or(0);
        let more = rows.len() > size;
        let mut data = Vec::new();
        for row in rows.iter().take(size) {
            data.push(TagRow {
                entity_name: row.try_get("entity_name")?,
                entity_id: row.try_get("entity_id")?,
                tag: row.try_get("tag")?,
            });
        }
        let next_after = match (more, data.last()) {
            (true, Some(last)) => Some(format!("{} {}", last.tag, last.entity_id)),
            _ => None,
        };
        Ok(Page { data, next_after })
    }

    async fn commit(&self, mut tx: Tx<'_>) -> Result<(), StoreError> {
        sqlx::query("UPDATE gateway_config_version SET version = version + 1 WHERE id = 'router'")
            .execute(&mut *tx)
            .await?;
        if self.db.dialect() == Dialect::Postgres {
            sqlx::query(&format!("NOTIFY {NOTIFY_CHANNEL}"))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn check_references<T: Stored>(&self, e: &T) -> Result<(), StoreError> {
        let table = T::TABLE;
        let values = e.columns();
        for r in table.references {
            let Some(i) = table.columns.iter().position(|c| *c == r.column) else {
                continue;
            };
            let Some(Some(value)) = values.get(i) else {
                continue;
            };
            let sql = format!("SELECT COUNT(*) FROM {} WHERE id = $1", r.table);
            let n: i64 = sqlx::query_scalar(&sql)
                .bind(value.as_str())
                .fetch_one(self.db.pool())
                .await?;
            if n == 0 {
                return Err(StoreError::MissingReference {
                    field: r.field,
                    entity: r.entity,
                    id: Uuid::parse_str(value).unwrap_or_default(),
                });
            }
        }
        Ok(())
    }

    async fn check_unique<T: Stored>(&self, e: &T, new: bool) -> Result<(), StoreError> {
        let table = T::TABLE;
        let id = e.id();
        if new {
            let sql = format!("SELECT COUNT(*) FROM {} WHERE id = $1", table.name);
            let n: i64 = sqlx::query_scalar(&sql)
                .bind(id.to_string())
                .fetch_one(self.db.pool())
                .await?;
            if n > 0 {
                return Err(StoreError::PrimaryKey(id));
            }
        }
        let values = e.columns();
        for (column, field) in table.unique {
            let Some(i) = table.columns.iter().position(|c| c == column) else {
                continue;
            };
            let Some(Some(value)) = values.get(i) else {
                continue;
            };
            let sql = format!(
                "SELECT COUNT(*) FROM {} WHERE {column} = $1 AND id <> $2",
                table.name
            );
            let n: i64 = sqlx::query_scalar(&sql)
                .bind(value.as_str())
                .bind(id.to_string())
                .fetch_one(self.db.pool())
                .await?;
            if n > 0 {
                return Err(StoreError::Unique {
                    field: *field,
                    value: value.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Every table the store knows (the gateway's own entity list).
fn all_tables() -> &'static [Table] {
    TABLES
}

/// The table named `name`.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

fn tag_condition(tags: &TagFilter, binds: &mut Vec<String>) -> String {
    let (list, all) = match tags {
        TagFilter::All(t) => (t, true),
        TagFilter::Any(t) => (t, false),
    };
    let mut placeholders = Vec::with_capacity(list.len());
    for t in list {
        binds.push(t.clone());
        placeholders.push(format!("${}", binds.len()));
    }
    let inner = format!(
        "SELECT entity_id FROM gateway_tags WHERE tag IN ({})",
        placeholders.join(", ")
    );
    if all {
        format!(
            " AND id IN ({inner} GROUP BY entity_id HAVING COUNT(*) = {})",
            list.len()
        )
    } else {
        format!(" AND id IN ({inner})")
    }
}

async fn insert_in<T: Stored>(tx: &mut Tx<'_>, e: &T) -> Result<(), StoreError> {
    let table = T::TABLE;
    let json = to_json(e)?;
    let (created, updated) = e.timestamps();
    let mut cols = vec!["id"];
    cols.extend(table.columns);
    cols.extend(["entity", "created_at", "updated_at"]);
    let placeholders: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        table.name,
        cols.join(", "),
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(e.id().to_string());
    for v in e.columns() {
        query = query.bind(v);
    }
    query
        .bind(json)
        .bind(created * 1000)
        .bind(updated * 1000)
        .execute(&mut **tx)
        .await
        .map_err(|err| map_write_error(err, e))?;
    write_tags(tx, table.entity, e.id(), e.tags()).await
}

/// Replaces an entity's row in `tx`; false when there is none.
async fn update_in<T: Stored>(tx: &mut Tx<'_>, e: &T) -> Result<bool, StoreError> {
    let table = T::TABLE;
    let json = to_json(e)?;
    let (_, updated) = e.timestamps();
    let n = table.columns.len();
    let mut sets: Vec<String> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect();
    sets.push(format!("entity = ${}", n + 1));
    sets.push(format!("updated_at = ${}", n + 2));
    let sql = format!(
        "UPDATE {} SET {} WHERE id = ${}",
        table.name,
        sets.join(", "),
        n + 3
    );
    let mut query = sqlx::query(&sql);
    for v in e.columns() {
        query = query.bind(v);
    }
    let result = query
        .bind(json)
        .bind(updated * 1000)
        .bind(e.id().to_string())
        .execute(&mut **tx)
        .await
        .map_err(|err| map_write_error(err, e))?;
    if result.rows_affected() == 0 {
        return Ok(false);
    }
    write_tags(tx, table.entity, e.id(), e.tags()).await?;
    Ok(true)
}

async fn write_tags(
    tx: &mut Tx<'_>,
    entity: &str,
    id: Uuid,
    tags: &[String],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM gateway_tags WHERE entity_id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
    for tag in tags {
        sqlx::query("INSERT INTO gateway_tags (entity_name, entity_id, tag) VALUES ($1, $2, $3)")
            .bind(entity)
            .bind(id.to_string())
            .bind(tag.as_str())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn to_json<T: Stored>(e: &T) -> Result<String, StoreError> {
    serde_json::to_string(e).map_err(|source| StoreError::Corrupt {
        id: e.id().to_string(),
        source,
    })
}

fn decode<T: DeserializeOwned>(row: &sqlx::any::AnyRow) -> Result<T, StoreError> {
    let id: String = row.try_get("id")?;
    let entity: String = row.try_get("entity")?;
    serde_json::from_str(&entity).map_err(|source| StoreError::Corrupt { id, source })
}

/// Maps constraint failures that slipped past the pre-checks (a concurrent writer) to the
/// same typed errors.
fn map_write_error<T: Stored>(e: sqlx::Error, entity: &T) -> StoreError {
    let Some(db) = e.as_database_error() else {
        return StoreError::Db(e);
    };
    let table = T::TABLE;
    let values = entity.columns();
    let value_of = |column: &str| {
        table
            .columns
            .iter()
            .position(|c| *c == column)
            .and_then(|i| values.get(i).cloned().flatten())
    };
    if db.is_unique_violation() {
        for (column, field) in table.unique {
            if let Some(value) = value_of(column) {
                return StoreError::Unique {
                    field: *field,
                    value,
                };
            }
        }
        return StoreError::PrimaryKey(entity.id());
    }
    if db.is_foreign_key_violation() {
        for r in table.references {
            if let Some(value) = value_of(r.column) {
                return StoreError::MissingReference {
                    field: r.field,
                    entity: r.entity,
                    id: Uuid::parse_str(&value).unwrap_or_default(),
                };
            }
        }
    }
    StoreError::Db(e)
}
