//! The `tenant_registry` table (the legacy database's, with `tenants.registry = "database"`):
//! the same entries as the `tenants/*.toml` files, shared by every replica. `revision` goes up
//! with every change, so a replica holding a tenant's handle can ask cheaply whether to reload.

use serde_json::Value;
use sqlx::{FromRow, types::Json};

use super::{Store, StoreError, audit::now_ms, with_conn};

/// One registered tenant, as stored; `settings` holds the entry's `[security]` and `[roles]`
/// (the registry's business, opaque here).
#[derive(Debug, Clone)]
pub struct RegistryEntry {
    pub id: String,
    pub name: String,
    pub database_url: String,
    pub active: bool,
    pub settings: Value,
    pub revision: i64,
    /// Unix ms; with `revision`, tells a re-registered entry from its predecessor.
    pub created_at: i64,
}

#[derive(FromRow)]
struct EntryRow {
    id: String,
    name: String,
    database_url: String,
    active: bool,
    settings: Json<Value>,
    revision: i64,
    created_at: i64,
}

impl From<EntryRow> for RegistryEntry {
    fn from(row: EntryRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            database_url: row.database_url,
            active: row.active,
            settings: row.settings.0,
            revision: row.revision,
            created_at: row.created_at,
        }
    }
}

const BY_ID: &str = "SELECT id, name, database_url, active, settings, revision, created_at \
     FROM tenant_registry WHERE id = $1";
const ALL: &str = "SELECT id, name, database_url, active, settings, revision, created_at \
     FROM tenant_registry ORDER BY id";
const REVISION: &str = "SELECT revision, created_at FROM tenant_registry WHERE id = $1";
const INSERT: &str = "INSERT INTO tenant_registry (id, name, database_url, active, settings, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $6)";
const SET_ACTIVE: &str = "UPDATE tenant_registry SET active = $1, updated_at = $2, revision = revision + 1 WHERE id = $3";

impl Store {
    /// The entry of tenant `id`.
    pub async fn registry_entry(&self, id: &str) -> Result<Option<RegistryEntry>, StoreError> {
        let row = with_conn!(self, conn => sqlx::query_as::<_, EntryRow>(BY_ID)
            .bind(id)
            .fetch_optional(conn)
            .await?);
        Ok(row.map(RegistryEntry::from))
    }

    /// Every entry, by ID.
    pub async fn registry_entries(&self) -> Result<Vec<RegistryEntry>, StoreError> {
        let rows = with_conn!(self, conn => sqlx::query_as::<_, EntryRow>(ALL)
            .fetch_all(conn)
            .await?);
        Ok(rows.into_iter().map(RegistryEntry::from).collect())
    }

    /// The current revision and creation time of tenant `id`'s entry; `None` when it is gone.
    pub async fn registry_revision(&self, id: &str) -> Result<Option<(i64, i64)>, StoreError> {
        let revision = with_conn!(self, conn => sqlx::query_as(REVISION)
            .bind(id)
            .fetch_optional(conn)
            .await?);
        Ok(revision)
    }

    /// Registers a new tenant (`entry.revision` and `created_at` are ignored); `Conflict` when
    /// the ID is taken.
    pub async fn insert_registry_entry(&self, entry: &RegistryEntry) -> Result<(), StoreError> {
        let settings = Json(&entry.settings);
        with_conn!(self, conn => sqlx::query(INSERT)
            .bind(&entry.id)
            .bind(&entry.name)
            .bind(&entry.database_url)
            .bind(entry.active)
            .bind(settings)
            .bind(now_ms())
            .execute(conn)
            .await
            .map(drop)?);
        Ok(())
    }

    /// Activates or deactivates tenant `id`; `NotFound` when it is not registered.
    pub async fn set_registry_active(&self, id: &str, active: bool) -> Result<(), StoreError> {
        let affected = with_conn!(self, conn => sqlx::query(SET_ACTIVE)
            .bind(active)
            .bind(now_ms())
            .bind(id)
            .execute(conn)
            .await?
            .rows_affected());
        if affected == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
