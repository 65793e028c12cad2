//! The tenant registry: maps a [`Scope`] to a [`ScopeHandle`] handle (its signing key, policy, role
//! grants and database). What is known of the scope's users lives on the auth side
//! (`auth::identity`); this module only answers "which keys, policy and pool".
//!
//! - Nothing is read at start-up but the legacy database: a tenant is looked up the first time
//!   it is asked for, so start-up cost does not grow with the number of tenants.
//! - Two bounded moka caches with different costs: tenant *handles* (keys, policy; a few
//!   hundred bytes, `tenants.handle_cache_capacity`) and open *pools* (file descriptors,
//!   connections, a thread per SQLite connection; `tenants.pool_cache_capacity`). A request
//!   served from memory — a token check with a cached user — needs no pool at all, so a
//!   process can serve many more tenants than it can hold databases open. An evicted pool
//!   closes when its last in-flight request drops it; open files stay bounded whatever the
//!   number of tenants.
//! - Unknown IDs are remembered briefly (negative cache), so a burst of random well-formed IDs
//!   costs no disk reads, and a tenant created by the CLI in another process is served within
//!   about a second.
//! - A cached tenant's file is re-checked every `recheck_millis` (one `stat`): an edited entry
//!   (say `active = false`) takes effect without a restart.

pub mod file;
mod handle;
pub mod keys;
mod policy;
mod pools;
pub mod provision;
pub mod source;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use moka::future::Cache;

pub use self::{
    file::{Incarnation, SecurityOverrides, TenantFile},
    handle::ScopeHandle,
    keys::{ServerSecret, SigningKey},
    policy::SecurityPolicy,
    source::{Revision, Source},
};
use self::{handle::Database, pools::Pools};
/// The URL of a tenant's database, as registry entries hold it (secrets masked in logs).
pub use crate::store::DatabaseUrl;

use crate::{
    cluster::{Event, Redis},
    config::Settings,
    domain::{RoleGrants, Scope, TenantId},
    store::{
        PoolSettings, StoreError,
        audit::{AuditType, NewAuditEvent},
    },
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

/// Removes `id`'s handle from the registry's cache and retires it at once, not whenever the
/// cache's eviction listener gets to it.
async fn drop_handle(open: &Cache<TenantId, Arc<ScopeHandle>>, id: &TenantId) {
    if let Some(handle) = open.remove(id).await {
        handle.retire();
    }
}

pub struct Registry {
    settings: Settings,
    source: Source,
    secret: ServerSecret,
    pools: Arc<Pools>,
    /// Where to tell the other replicas that a tenant's entry changed (`redis.url`).
    redis: Option<Redis>,
    legacy: Arc<ScopeHandle>,
    /// Tenant handles (no open files), bounded by `handle_cache_capacity`.
    open: Cache<TenantId, Arc<ScopeHandle>>,
    absent: Cache<TenantId, ()>,
}

impl Registry {
    /// Opens (creating a missing SQLite file, and migrating) the legacy database; tenants are
    /// opened on demand. Changes are told to the other replicas through `redis`; the caller
    /// hands their changes to [`Self::apply`].
    pub async fn new(
        settings: &Settings,
        secret: ServerSecret,
        redis: Option<Redis>,
    ) -> anyhow::Result<Self> {
        let pools = PoolSettings::from(&settings.database);
        let legacy_url = DatabaseUrl::parse(secrecy::ExposeSecret::expose_secret(
            &settings.legacy_database_url(),
        ))?;
        let store = provision::open_or_create(&legacy_url, &pools)
            .await
            .map_err(|e| anyhow::anyhow!("opening the legacy database {legacy_url}: {e}"))?;
        let pools = Arc::new(Pools::new(settings, pools));
        let legacy_policy = SecurityPolicy::new(&settings.security, &SecurityOverrides::default());
        let legacy = Arc::new(ScopeHandle {
            key: SigningKey::derive(&secret, &Scope::Legacy, None),
            scope: Scope::Legacy,
            active: true,
            database: Database::Fixed(store.clone()),
            pools: pools.clone(),
            retired: AtomicBool::new(false),
            policy: legacy_policy,
            roles: RoleGrants::default(),
            database_url: legacy_url,
            incarnation: None,
            revision: None,
            checked_at: AtomicU64::new(0),
        });
        let open = Cache::builder()
            .name("tenants")
            .max_capacity(settings.tenants.handle_cache_capacity)
            .time_to_idle(Duration::from_secs(3600))
            // However it leaves (evicted, expired, invalidated), a handle is retired, so no
            // token keeps using it without resolving again (see also `drop_handle`).
            .eviction_listener(|_, tenant: Arc<ScopeHandle>, _| tenant.retire())
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
            source: Source::new(settings, &store),
            secret,
            pools,
            redis,
            legacy,
            open,
            absent,
        })
    }

    pub fn legacy(&self) -> &Arc<ScopeHandle> {
        &self.legacy
    }

    /// Where the registry's entries live.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Pool settings and the Postgres connection budgets this process shares (provisioning
    /// through the API draws on the same budgets as serving).
    pub fn pool_settings(&self) -> &PoolSettings {
        &self.pools.settings
    }

    /// Forgets what this process (and every other replica) knows of `id` — its handle, or
    /// that it was unknown — so the next request reads its entry afresh.
    pub async fn forget(&self, id: &TenantId) {
        drop_handle(&self.open, id).await;
        self.absent.invalidate(id).await;
        if let Some(redis) = &self.redis
            && let Err(e) = redis.publish(&Event::Tenant { id: id.to_string() }).await
        {
            tracing::warn!(error = %e, tenant = %id, "could not tell the other replicas of a change");
        }
    }

    /// Applies another replica's change of a tenant entry to this process's caches (other
    /// events are not about tenants and are ignored).
    pub async fn apply(&self, event: &Event) {
        if let Event::Tenant { id } = event
            && let Ok(id) = TenantId::parse(id)
        {
            drop_handle(&self.open, &id).await;
            self.absent.invalidate(&id).await;
        }
    }

    /// Activates or deactivates tenant `id`, recording it in the tenant's own audit trail
    /// first. Other processes notice within `tenants.recheck_millis`.
    pub async fn set_active(
        &self,
        id: &TenantId,
        active: bool,
        via: &'static str,
    ) -> Result<TenantFile, TenancyError> {
        let broken = |e: file::FileError| match e {
            file::FileError::Missing => TenancyError::Unknown,
            other => TenancyError::Broken(other.to_string()),
        };
        let (entry, _) = self.source.read(id).await.map_err(broken)?;
        if entry.active != active {
            let url = DatabaseUrl::parse(&entry.database_url)
                .map_err(|e| TenancyError::Broken(format!("tenant {id}: {e}")))?;
            let unavailable = |e| TenancyError::Unavailable(Arc::new(e));
            let store = self
                .pools
                .pool(&url, entry.incarnation)
                .await
                .map_err(unavailable)?;
            let kind = if active {
                AuditType::TenantActivated
            } else {
                AuditType::TenantDeactivated
            };
            store
                .record_audit(&NewAuditEvent::by_operator(kind, via))
                .await
                .map_err(unavailable)?;
            self.source.set_active(id, active).await.map_err(broken)?;
        }
        self.forget(id).await;
        Ok(TenantFile { active, ..entry })
    }

    /// Tenant database pools open now (approximately: evictions are applied lazily).
    pub fn open_pools(&self) -> u64 {
        self.pools.open.entry_count()
    }

    /// Closes every open pool, the legacy database's last (at shutdown, after draining).
    pub async fn close(&self) {
        for (_, store) in self.pools.open.iter() {
            store.close().await;
        }
        if let Database::Fixed(store) = &self.legacy.database {
            store.close().await;
        }
    }

    /// The handle of `scope` (its keys, policy and where its database is; the database is
    /// opened only when a request first needs it). Refuses inactive tenants.
    pub async fn resolve(&self, scope: &Scope) -> Result<Arc<ScopeHandle>, TenancyError> {
        let tenant = match scope {
            Scope::Legacy => self.legacy.clone(),
            Scope::Tenant(id) => self.tenant(id).await?,
        };
        if !tenant.active {
            return Err(TenancyError::Inactive);
        }
        Ok(tenant)
    }

    async fn tenant(&self, id: &TenantId) -> Result<Arc<ScopeHandle>, TenancyError> {
        if let Some(tenant) = self.open.get(id).await
            && tenant.fresh()
        {
            return Ok(tenant);
        }
        // The cold paths are boxed so that the hot path's future (moved into a box by the
        // router on every request) stays small.
        Box::pin(self.reload(id)).await
    }

    /// [`Self::tenant`] when the cached handle is missing or due for a re-check.
    async fn reload(&self, id: &TenantId) -> Result<Arc<ScopeHandle>, TenancyError> {
        if self.absent.contains_key(id) {
            return Err(TenancyError::Unknown);
        }
        if let Some(tenant) = self.open.get(id).await {
            if self.still_current(&tenant).await {
                return Ok(tenant);
            }
            drop_handle(&self.open, id).await;
        }
        let loaded = self
            .open
            .try_get_with_by_ref(id, self.load(id))
            .await
            .map_err(|e| (*e).clone());
        if matches!(loaded, Err(TenancyError::Unknown)) {
            self.absent.insert(id.clone(), ()).await;
        }
        loaded
    }

    /// Whether a cached handle may still be used: at most every `recheck` it costs one `stat`
    /// of the tenant file (or one indexed query of its row); a removed or changed entry means
    /// reload.
    async fn still_current(&self, tenant: &ScopeHandle) -> bool {
        if tenant.fresh() {
            return true;
        }
        let now = self.pools.now_millis();
        let Scope::Tenant(id) = &tenant.scope else {
            return true;
        };
        let current = self.source.revision(id).await.ok().flatten();
        if current.is_some() && current == tenant.revision {
            tenant.checked_at.store(now, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    async fn load(&self, id: &TenantId) -> Result<Arc<ScopeHandle>, TenancyError> {
        let (entry, revision) = match self.source.read(id).await {
            Ok(found) => found,
            Err(file::FileError::Missing) => return Err(TenancyError::Unknown),
            Err(e) => return Err(TenancyError::Broken(e.to_string())),
        };
        let database_url = DatabaseUrl::parse(&entry.database_url)
            .map_err(|e| TenancyError::Broken(format!("tenant {id}: {e}")))?;
        let roles = RoleGrants::with_definitions(&entry.roles)
            .map_err(|e| TenancyError::Broken(format!("tenant {id}: {e}")))?;
        let scope = Scope::Tenant(id.clone());
        if entry.incarnation.is_none() {
            tracing::warn!(
                tenant = %id,
                "tenant entry has no incarnation (written before registrations had one, or by \
                 hand): its key is the same for any registration of this ID, so a tenant \
                 registered again under it would accept its predecessor's tokens"
            );
        }
        tracing::debug!(tenant = %id, database = %database_url, "loaded tenant");
        Ok(Arc::new(ScopeHandle {
            key: SigningKey::derive(&self.secret, &scope, entry.incarnation),
            scope,
            active: entry.active,
            database: Database::Pooled,
            pools: self.pools.clone(),
            retired: AtomicBool::new(false),
            policy: SecurityPolicy::new(&self.settings.security, &entry.security),
            roles,
            database_url,
            incarnation: entry.incarnation,
            revision: Some(revision),
            checked_at: AtomicU64::new(self.pools.now_millis()),
        }))
    }
}
