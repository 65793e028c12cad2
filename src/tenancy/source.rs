//! Where the registry's entries live: `tenants/*.toml` files (the default), or the legacy
//! database's `tenant_registry` table (`tenants.registry = "database"`), which every replica
//! reads, so a tenant provisioned through one is served by all. Both hold the same
//! [`TenantFile`] entries; callers do not care which.

use std::path::PathBuf;

use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::file::{self, FileError, Incarnation, SecurityOverrides, TenantFile};
use crate::{
    config::{RegistryKind, Settings},
    domain::{RoleDefinitions, TenantId},
    store::{DatabaseUrl, PoolSettings, Store, StoreError, registry::RegistryEntry},
};

/// The registry's backing store.
#[derive(Clone)]
pub enum Source {
    Files(PathBuf),
    Database(Store),
}

/// An entry's version as its source tells it: a change means reload. Each also tells a
/// re-registered entry from its predecessor, whose revision count may have been the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revision {
    /// The file's modification time, inode and size.
    File(file::FileStamp),
    /// The row's `revision` and creation time.
    Row(i64, i64),
}

/// `settings` JSON of a registry row.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RowSettings {
    #[serde(default)]
    security: SecurityOverrides,
    #[serde(default)]
    roles: RoleDefinitions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    incarnation: Option<Incarnation>,
}

/// A row as the entry it stores.
fn entry_of(row: RegistryEntry) -> Result<TenantFile, FileError> {
    let settings: RowSettings =
        serde_json::from_value(row.settings).map_err(|e| FileError::Malformed {
            path: PathBuf::from(format!("tenant_registry/{}", row.id)),
            reason: e.to_string(),
        })?;
    Ok(TenantFile {
        database_url: row.database_url,
        name: row.name,
        active: row.active,
        security: settings.security,
        roles: settings.roles,
        incarnation: settings.incarnation,
    })
}

fn store_error(e: StoreError) -> FileError {
    FileError::Database(e.to_string())
}

impl Source {
    /// The configured source; `legacy` is the open legacy database (the table's home).
    pub fn new(settings: &Settings, legacy: &Store) -> Self {
        match settings.tenants.registry {
            RegistryKind::Files => Self::Files(settings.tenants.dir.clone()),
            RegistryKind::Database => Self::Database(legacy.clone()),
        }
    }

    /// The configured source for a process that has not opened the legacy database (the
    /// CLI): opens (and migrates) it when the registry lives there.
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        match settings.tenants.registry {
            RegistryKind::Files => Ok(Self::Files(settings.tenants.dir.clone())),
            RegistryKind::Database => {
                let url = DatabaseUrl::parse(settings.legacy_database_url().expose_secret())?;
                let store =
                    super::provision::open_or_create(&url, &PoolSettings::from(&settings.database))
                        .await
                        .map_err(|e| anyhow::anyhow!("opening the legacy database {url}: {e}"))?;
                Ok(Self::Database(store))
            }
        }
    }

    /// Reads `id`'s entry.
    pub async fn read(&self, id: &TenantId) -> Result<(TenantFile, Revision), FileError> {
        match self {
            Self::Files(dir) => {
                let (entry, modified) = file::read(dir, id).await?;
                let modified = modified.ok_or(FileError::Missing)?;
                Ok((entry, Revision::File(modified)))
            }
            Self::Database(store) => {
                let row = store
                    .registry_entry(id.as_str())
                    .await
                    .map_err(store_error)?
                    .ok_or(FileError::Missing)?;
                let revision = Revision::Row(row.revision, row.created_at);
                Ok((entry_of(row)?, revision))
            }
        }
    }

    /// `id`'s current revision; `None` once it is gone. One `stat` or one indexed query.
    pub async fn revision(&self, id: &TenantId) -> Result<Option<Revision>, FileError> {
        match self {
            Self::Files(dir) => Ok(file::stamp(&file::path_of(dir, id)).map(Revision::File)),
            Self::Database(store) => Ok(store
                .registry_revision(id.as_str())
                .await
                .map_err(store_error)?
                .map(|(revision, created)| Revision::Row(revision, created))),
        }
    }

    pub async fn exists(&self, id: &TenantId) -> Result<bool, FileError> {
        Ok(self.revision(id).await?.is_some())
    }

    /// Adds a new entry; `Exists` when the ID is taken (never an overwrite).
    pub async fn register(&self, id: &TenantId, entry: &TenantFile) -> Result<(), FileError> {
        match self {
            Self::Files(dir) => file::write_new(dir, id, entry),
            Self::Database(store) => {
                let settings = serde_json::to_value(RowSettings {
                    security: entry.security.clone(),
                    roles: entry.roles.clone(),
                    incarnation: entry.incarnation,
                })
                .expect("BUG: registry settings serialise");
                let row = RegistryEntry {
                    id: id.to_string(),
                    name: entry.name.clone(),
                    database_url: entry.database_url.clone(),
                    active: entry.active,
                    settings,
                    revision: 1,
                    created_at: 0,
                };
                store
                    .insert_registry_entry(&row)
                    .await
                    .map_err(|e| match e {
                        StoreError::Conflict(_) => FileError::Exists(id.clone()),
                        other => store_error(other),
                    })
            }
        }
    }

    /// Activates or deactivates `id`.
    pub async fn set_active(&self, id: &TenantId, active: bool) -> Result<(), FileError> {
        match self {
            Self::Files(dir) => {
                let (mut entry, _) = file::read(dir, id).await?;
                entry.active = active;
                file::replace(dir, id, &entry)
            }
            Self::Database(store) => store
                .set_registry_active(id.as_str(), active)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound => FileError::Missing,
                    other => store_error(other),
                }),
        }
    }

    /// Every entry, by ID; an unreadable one is listed with its error.
    pub async fn list(&self) -> Result<Vec<(TenantId, Result<TenantFile, FileError>)>, FileError> {
        match self {
            Self::Files(dir) => file::list(dir).await,
            Self::Database(store) => {
                let rows = store.registry_entries().await.map_err(store_error)?;
                Ok(rows
                    .into_iter()
                    .filter_map(|row| Some((TenantId::parse(&row.id).ok()?, entry_of(row))))
                    .collect())
            }
        }
    }
}
