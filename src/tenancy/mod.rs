//! The tenant registry: maps a [`Scope`] to a [`Tenant`] handle (its open database and its
//! signing key).
//!
//! - Nothing is read at start-up but the legacy database: a tenant is looked up the first time
//!   it is asked for, so start-up cost does not grow with the number of tenants.
//! - Open tenants sit in a bounded moka cache (capacity and idle time); an evicted tenant's pool
//!   closes when its last in-flight request drops the handle, so open file descriptors and
//!   connections stay bounded whatever the number of tenants.
//! - Unknown IDs are remembered briefly (negative cache), so a burst of random well-formed IDs
//!   costs no disk reads, and a tenant created by the CLI in another process is served within
//!   about a second.
//! - A cached tenant's file is re-checked every `recheck_millis` (one `stat`): an edited entry
//!   (say `active = false`) takes effect without a restart.

pub mod file;
pub mod keys;
pub mod provision;

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use moka::future::Cache;

pub use self::{
    file::{SecurityOverrides, TenantFile},
    keys::{ServerSecret, SigningKey},
};
use crate::{
    config::Settings,
    domain::{Scope, TenantId},
    store::{DatabaseUrl, PoolSettings, Store, StoreError},
};

/// Why a scope could not be served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TenancyError {
    #[error("unknown tenant")]
    Unknown,
    #[error("tenant is inactive")]
    Inactive,
    #[error("tenant database unavailable")]
    Unavailable(#[source] Arc<StoreError>),
    /// The entry exists but cannot be used (malformed file or URL); the message says why.
    #[error("tenant registry entry unusable: {0}")]
    Broken(String),
}

/// One scope's handle: what every request of that scope needs, resolved once and cached.
pub struct Tenant {
    pub scope: Scope,
    /// Display name from the tenant file (`legacy` for the shared database).
    pub name: String,
    pub active: bool,
    pub store: Store,
    /// Derived once from the server secret; the hot path is then one HMAC per token.
    pub key: SigningKey,
    pub security: SecurityOverrides,
    /// The URL the pool was opened with (masked in logs).
    pub database_url: DatabaseUrl,
    /// The tenant file's modification time when loaded; a change means reload.
    modified: Option<SystemTime>,
    /// When the file was last checked, in milliseconds since the registry's epoch.
    checked_at: AtomicU64,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("scope", &self.scope)
            .field("active", &self.active)
            .field("database_url", &self.database_url)
            .finish_non_exhaustive()
    }
}

pub struct Registry {
    dir: PathBuf,
    secret: ServerSecret,
    pools: PoolSettings,
    legacy: Arc<Tenant>,
    open: Cache<TenantId, Arc<Tenant>>,
    absent: Cache<TenantId, ()>,
    recheck: Duration,
    epoch: Instant,
}

impl Registry {
    /// Opens (creating a missing SQLite file, and migrating) the legacy database; tenants are
    /// opened on demand.
    pub async fn new(settings: &Settings, secret: ServerSecret) -> anyhow::Result<Self> {
        let pools = PoolSettings::from(&settings.database);
        let legacy_url = DatabaseUrl::parse(secrecy::ExposeSecret::expose_secret(
            &settings.legacy_database_url(),
        ))?;
        let store = provision::open_or_create(&legacy_url, &pools)
            .await
            .map_err(|e| anyhow::anyhow!("opening the legacy database {legacy_url}: {e}"))?;
        let legacy = Arc::new(Tenant {
            key: SigningKey::derive(&secret, &Scope::Legacy),
            scope: Scope::Legacy,
            name: "legacy".into(),
            active: true,
            store,
            security: SecurityOverrides::default(),
            database_url: legacy_url,
            modified: None,
            checked_at: AtomicU64::new(0),
        });
        let open = Cache::builder()
            .name("tenant-pools")
            .max_capacity(settings.tenants.pool_cache_capacity)
            .time_to_idle(Duration::from_secs(
                settings.tenants.pool_idle_seconds.max(1),
            ))
            .build();
        let absent = Cache::builder()
            .name("unknown-tenants")
            .max_capacity(100_000)
            .time_to_live(Duration::from_millis(
                settings.tenants.negative_cache_millis,
            ))
            .build();
        Ok(Self {
            dir: settings.tenants.dir.clone(),
            secret,
            pools,
            legacy,
            open,
            absent,
            recheck: Duration::from_millis(settings.tenants.recheck_millis),
            epoch: Instant::now(),
        })
    }

    pub fn legacy(&self) -> &Arc<Tenant> {
        &self.legacy
    }

    /// The handle of `scope`, opening the tenant's database on first use. Refuses inactive
    /// tenants.
    pub async fn resolve(&self, scope: &Scope) -> Result<Arc<Tenant>, TenancyError> {
        let tenant = match scope {
            Scope::Legacy => self.legacy.clone(),
            Scope::Tenant(id) => self.tenant(id).await?,
        };
        if !tenant.active {
            return Err(TenancyError::Inactive);
        }
        Ok(tenant)
    }

    async fn tenant(&self, id: &TenantId) -> Result<Arc<Tenant>, TenancyError> {
        if self.absent.contains_key(id) {
            return Err(TenancyError::Unknown);
        }
        if let Some(tenant) = self.open.get(id).await {
            if self.still_current(&tenant) {
                return Ok(tenant);
            }
            self.open.invalidate(id).await;
        }
        let loaded = self
            .open
            .try_get_with_by_ref(id, self.load(id))
            .await
            .map_err(|e| (*e).clone());
        match &loaded {
            Err(TenancyError::Unknown) => self.absent.insert(id.clone(), ()).await,
            // A pool was (probably) added: let the cache evict over-capacity pools now rather
            // than at its next batch of maintenance, so open files stay within the bound.
            Ok(_) => self.open.run_pending_tasks().await,
            Err(_) => {}
        }
        loaded
    }

    /// Whether a cached handle may still be used: at most every `recheck` it costs one `stat`
    /// of the tenant file; a removed or modified file means reload.
    fn still_current(&self, tenant: &Tenant) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let checked = tenant.checked_at.load(Ordering::Relaxed);
        if now.saturating_sub(checked) < u64::try_from(self.recheck.as_millis()).unwrap_or(u64::MAX)
        {
            return true;
        }
        let Scope::Tenant(id) = &tenant.scope else {
            return true;
        };
        let current = file::modified(&file::path_of(&self.dir, id));
        if current.is_some() && current == tenant.modified {
            tenant.checked_at.store(now, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    async fn load(&self, id: &TenantId) -> Result<Arc<Tenant>, TenancyError> {
        let (entry, modified) = match file::read(&self.dir, id).await {
            Ok(found) => found,
            Err(file::FileError::Missing) => return Err(TenancyError::Unknown),
            Err(e) => return Err(TenancyError::Broken(e.to_string())),
        };
        let database_url = DatabaseUrl::parse(&entry.database_url)
            .map_err(|e| TenancyError::Broken(format!("tenant {id}: {e}")))?;
        let store = Store::open(&database_url, &self.pools)
            .await
            .map_err(|e| TenancyError::Unavailable(Arc::new(e)))?;
        tracing::info!(tenant = %id, database = %database_url, "opened tenant database");
        let scope = Scope::Tenant(id.clone());
        Ok(Arc::new(Tenant {
            key: SigningKey::derive(&self.secret, &scope),
            scope,
            name: entry.name,
            active: entry.active,
            store,
            security: entry.security,
            database_url,
            modified,
            checked_at: AtomicU64::new(
                u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX),
            ),
        }))
    }

    /// Forgets what this process cached about `id` (after provisioning it here).
    pub async fn forget(&self, id: &TenantId) {
        self.absent.invalidate(id).await;
        self.open.invalidate(id).await;
    }

    /// How many tenant databases are open now.
    pub fn open_tenants(&self) -> u64 {
        self.open.entry_count()
    }
}
