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

use moka::sync::Cache as SyncCache;

use moka::future::Cache;

pub use self::{
    file::{SecurityOverrides, TenantFile},
    keys::{ServerSecret, SigningKey},
};
use crate::{
    config::{SecuritySettings, Settings},
    domain::{Scope, TenantId},
    store::{DatabaseUrl, PoolSettings, Store, StoreError, users::User},
};

/// A scope's security policy: the server's `[security]` keys with the tenant's overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityPolicy {
    pub lockout_threshold: u32,
    /// Seconds.
    pub lockout_window: i64,
    /// Seconds.
    pub lockout_duration: i64,
    pub password_min_length: usize,
    /// 0 = passwords never expire.
    pub password_max_age_days: u32,
}

impl SecurityPolicy {
    pub fn new(server: &SecuritySettings, tenant: &SecurityOverrides) -> Self {
        Self {
            lockout_threshold: tenant
                .lockout_threshold
                .unwrap_or(server.lockout_threshold)
                .max(1),
            lockout_window: 60
                * i64::from(
                    tenant
                        .lockout_window_minutes
                        .unwrap_or(server.lockout_window_minutes)
                        .max(1),
                ),
            lockout_duration: 60
                * i64::from(
                    tenant
                        .lockout_minutes
                        .unwrap_or(server.lockout_minutes)
                        .max(1),
                ),
            password_min_length: tenant
                .password_min_length
                .unwrap_or(server.password_min_length)
                .max(crate::domain::Password::MIN_CHARS),
            password_max_age_days: tenant
                .password_max_age_days
                .unwrap_or(server.password_max_age_days),
        }
    }
}

/// Per-scope memory: user snapshots and revoked token ids, both owned by the tenant handle.
struct ScopeMemory {
    /// User records by id, for `user_cache_millis`; writes invalidate them.
    users: Cache<i64, Arc<User>>,
    /// Bumped by every invalidation, so a load that raced a write is not cached.
    generation: AtomicU64,
    /// `jti`s revoked by logout (kept for the token lifetime).
    revoked: SyncCache<String, ()>,
}

impl ScopeMemory {
    fn new(settings: &Settings) -> Self {
        Self {
            users: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_millis(
                    settings.security.user_cache_millis.max(1),
                ))
                .build(),
            generation: AtomicU64::new(0),
            revoked: SyncCache::builder()
                .max_capacity(1_000_000)
                .time_to_live(
                    settings.token_ttl() + Duration::from_secs(settings.jwt.leeway_seconds),
                )
                .build(),
        }
    }

    async fn load(store: &Store, settings: &Settings) -> Result<Self, StoreError> {
        let memory = Self::new(settings);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for jti in store.live_revocations(now).await? {
            memory.revoked.insert(jti, ());
        }
        Ok(memory)
    }
}

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
    pub policy: SecurityPolicy,
    memory: ScopeMemory,
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

impl Tenant {
    /// The user with `id`, from memory when fresh, else from the database.
    pub async fn user(&self, id: i64) -> Result<Option<Arc<User>>, StoreError> {
        if let Some(user) = self.memory.users.get(&id).await {
            return Ok(Some(user));
        }
        let generation = self.memory.generation.load(Ordering::Acquire);
        let Some(user) = self.store.user_by_id(id).await? else {
            return Ok(None);
        };
        let user = Arc::new(user);
        if self.memory.generation.load(Ordering::Acquire) == generation {
            self.memory.users.insert(id, user.clone()).await;
        }
        Ok(Some(user))
    }

    /// Drops the cached record of `id`; call after every write to a user, so this process
    /// never serves the old record (password, version, active flag) again.
    pub async fn forget_user(&self, id: i64) {
        self.memory.generation.fetch_add(1, Ordering::AcqRel);
        self.memory.users.invalidate(&id).await;
    }

    pub fn is_revoked(&self, jti: &str) -> bool {
        self.memory.revoked.contains_key(jti)
    }

    /// Remembers a revoked `jti` (after storing it).
    pub fn remember_revoked(&self, jti: String) {
        self.memory.revoked.insert(jti, ());
    }
}

pub struct Registry {
    settings: Settings,
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
        let memory = ScopeMemory::load(&store, settings)
            .await
            .map_err(|e| anyhow::anyhow!("reading the legacy database {legacy_url}: {e}"))?;
        let legacy = Arc::new(Tenant {
            key: SigningKey::derive(&secret, &Scope::Legacy),
            scope: Scope::Legacy,
            name: "legacy".into(),
            active: true,
            store,
            policy: SecurityPolicy::new(&settings.security, &SecurityOverrides::default()),
            memory,
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
            settings: settings.clone(),
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
        let memory = ScopeMemory::load(&store, &self.settings)
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
            policy: SecurityPolicy::new(&self.settings.security, &entry.security),
            memory,
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
