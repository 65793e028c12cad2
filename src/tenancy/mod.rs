//! The tenant registry: maps a [`Scope`] to a [`Tenant`] handle (its signing key, policy and
//! database), and holds the caches every request needs.
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
//! - User snapshots and logout revocations are cached process-wide, keyed by scope. Two
//!   counters say when either last changed, so a token's next request can reuse what its last
//!   one resolved to ([`UserSnapshot`], [`Tenant::revocation_epoch`]) without a lookup.
//! - Unknown IDs are remembered briefly (negative cache), so a burst of random well-formed IDs
//!   costs no disk reads, and a tenant created by the CLI in another process is served within
//!   about a second.
//! - A cached tenant's file is re-checked every `recheck_millis` (one `stat`): an edited entry
//!   (say `active = false`) takes effect without a restart.

pub mod file;
pub mod keys;
pub mod provision;
pub mod source;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering, fence},
    },
    time::{Duration, Instant},
};

use moka::sync::Cache as SyncCache;

use moka::future::Cache;

pub use self::{
    file::{Incarnation, SecurityOverrides, TenantFile},
    keys::{ServerSecret, SigningKey},
    source::{Revision, Source},
};
use futures_util::future::BoxFuture;

use crate::{
    cluster::{Event, Redis, scope_name},
    config::{SecuritySettings, Settings},
    domain::{RoleGrants, Scope, TenantId},
    store::{
        DatabaseUrl, PoolSettings, Store, StoreError,
        audit::{AuditType, NewAuditEvent},
        users::User,
    },
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

/// A cached user record, the registration it was read from, and when it was read
/// (milliseconds of [`Shared::now_millis`]).
#[derive(Clone)]
struct CachedUser {
    user: Arc<User>,
    /// A record of an earlier registration of the same tenant ID is never served.
    incarnation: Option<Incarnation>,
    read_at: u64,
}

/// What every scope's handle shares: open pools, user snapshots, revoked token ids.
struct Shared {
    pool_settings: PoolSettings,
    /// Open databases by URL and registration (a tenant registered again never gets its
    /// predecessor's pool, which may hold a removed file open): bounded by
    /// `pool_cache_capacity`, idle ones dropped.
    pools: Cache<String, Store>,
    /// URLs this process has migrated, so reopening an evicted pool skips the check.
    migrated: SyncCache<String, ()>,
    /// User records by scope and id, for `user_ttl`; writes invalidate them.
    users: SyncCache<(Scope, i64), CachedUser>,
    user_ttl: u64,
    /// Bumped around every user invalidation, in any scope (see [`Shared::forget_user`]).
    user_generation: AtomicU64,
    /// `jti`s revoked by logout (kept for the token lifetime).
    revoked: SyncCache<(Scope, String), ()>,
    /// Bumped after every revocation is remembered, in any scope.
    revocations: AtomicU64,
    /// Where to tell the other replicas of a change (`redis.url`).
    redis: Option<Redis>,
    /// The clock of `checked_at` and `read_at`.
    epoch: Instant,
    /// How long a tenant handle is used before its file is checked again, in milliseconds.
    recheck: u64,
}

impl Shared {
    fn new(settings: &Settings, pool_settings: PoolSettings, redis: Option<Redis>) -> Self {
        let user_ttl = settings.security.user_cache_millis.max(1);
        Self {
            redis,
            epoch: Instant::now(),
            recheck: settings.tenants.recheck_millis,
            user_ttl,
            user_generation: AtomicU64::new(0),
            revocations: AtomicU64::new(0),
            pool_settings,
            pools: Cache::builder()
                .name("tenant-pools")
                .max_capacity(settings.tenants.pool_cache_capacity)
                .time_to_idle(Duration::from_secs(
                    settings.tenants.pool_idle_seconds.max(1),
                ))
                .build(),
            migrated: SyncCache::builder().max_capacity(1_000_000).build(),
            users: SyncCache::builder()
                .name("users")
                .max_capacity(1_000_000)
                .time_to_live(Duration::from_millis(user_ttl))
                .build(),
            revoked: SyncCache::builder()
                .max_capacity(10_000_000)
                .time_to_live(
                    settings.token_ttl() + Duration::from_secs(settings.jwt.leeway_seconds),
                )
                .build(),
        }
    }

    /// The open pool of `url` (registered as `incarnation`), opening (and, once per process,
    /// migrating) it when needed.
    async fn pool(
        &self,
        url: &DatabaseUrl,
        incarnation: Option<Incarnation>,
    ) -> Result<Store, StoreError> {
        let key = match incarnation {
            Some(incarnation) => format!("{incarnation}#{}", url.expose()),
            None => url.expose().to_owned(),
        };
        let entry = self
            .pools
            .entry(key.clone())
            .or_try_insert_with(async {
                let store = if self.migrated.contains_key(&key) {
                    Store::connect(url, &self.pool_settings).await?
                } else {
                    Store::open(url, &self.pool_settings).await?
                };
                self.migrated.insert(key.clone(), ());
                Ok::<_, StoreError>(store)
            })
            .await
            .map_err(|e| (*e).clone())?;
        if entry.is_fresh() {
            // Evict over-capacity pools now rather than at the cache's next maintenance, so
            // open files stay within the bound.
            self.pools.run_pending_tasks().await;
        }
        Ok(entry.into_value())
    }

    /// Tells the other replicas (when there are: `redis.url`) of a change this one made. A
    /// failure is logged, not returned: the write is done, and the caches' TTLs bound how long
    /// another replica may serve the old state.
    async fn publish(&self, event: Event) {
        if let Some(redis) = &self.redis
            && let Err(e) = redis.publish(&event).await
        {
            tracing::warn!(error = %e, ?event, "could not tell the other replicas of a change");
        }
    }

    /// Loads `scope`'s live revocations; `policy` is the scope's, for housekeeping.
    async fn load_revocations(
        &self,
        scope: &Scope,
        store: &Store,
        policy: &SecurityPolicy,
    ) -> Result<(), StoreError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        // Housekeeping while the database is opened anyway: names whose failed-login window
        // and lock have both passed count nothing any more.
        store
            .prune_name_failures(now, policy.lockout_window)
            .await?;
        for jti in store.live_revocations(now).await? {
            self.revoked.insert((scope.clone(), jti), ());
        }
        fence(Ordering::SeqCst);
        self.revocations.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Remembers a revoked `jti`; the epoch is bumped after, so whoever sees the new epoch
    /// finds the entry.
    fn revoke(&self, scope: Scope, jti: String) {
        self.revoked.insert((scope, jti), ());
        fence(Ordering::SeqCst);
        self.revocations.fetch_add(1, Ordering::SeqCst);
    }

    /// Drops a cached user record. The generation is bumped before and after: a load that
    /// raced the write sees the first bump and drops what it cached ([`Tenant::read_user`]);
    /// a snapshot that still saw the old record sees the second ([`Tenant::still_serves`]).
    fn forget_user(&self, key: &(Scope, i64)) {
        self.user_generation.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.users.invalidate(key);
        fence(Ordering::SeqCst);
        self.user_generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Milliseconds since this process's registry was made.
    fn now_millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A user record as a scope served it, and what it takes to reuse it without a lookup: kept
/// with a verified token (see `auth::session`), it stays valid until any user write in the
/// process moves the generation *and* the cache no longer holds this very record, or until
/// the record's cache lifetime ends.
#[derive(Debug)]
pub struct UserSnapshot {
    pub user: Arc<User>,
    generation: AtomicU64,
    expires_at: u64,
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

/// Where a scope's database comes from.
enum Database {
    /// The legacy database: always open.
    Fixed(Store),
    /// A tenant's: from the shared pool cache, opened on demand.
    Pooled,
}

/// One scope's handle: what every request of that scope needs, resolved once and cached.
pub struct Tenant {
    pub scope: Scope,
    pub active: bool,
    /// Derived once from the server secret; the hot path is then one HMAC per token.
    pub key: SigningKey,
    pub policy: SecurityPolicy,
    /// What each role may do here.
    pub roles: RoleGrants,
    database: Database,
    shared: Arc<Shared>,
    /// Set when the registry drops this handle: whoever still holds it must resolve again.
    retired: AtomicBool,
    /// The tenant's database (masked in logs).
    pub database_url: DatabaseUrl,
    /// The registration this handle was loaded from (`None`: legacy, or an entry written
    /// before registrations had one).
    pub incarnation: Option<Incarnation>,
    /// Set once the scope's stored logout revocations are in memory: on the first request
    /// that needs them, after its token's signature checked out, so that no unauthenticated
    /// request opens a tenant's database.
    revocations_loaded: tokio::sync::OnceCell<()>,
    /// The entry's revision when loaded (`None`: legacy); a change means reload.
    revision: Option<Revision>,
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
    /// The scope's database, opened if it is not.
    pub async fn store(&self) -> Result<Store, StoreError> {
        match &self.database {
            Database::Fixed(store) => Ok(store.clone()),
            Database::Pooled => self.shared.pool(&self.database_url, self.incarnation).await,
        }
    }

    /// Loads the scope's stored logout revocations into memory, once per handle; call before
    /// [`Self::is_revoked`]. Opens the tenant's database the first time.
    pub async fn load_revocations(&self) -> Result<(), StoreError> {
        self.revocations_loaded
            .get_or_try_init(|| async {
                let store = self.store().await?;
                self.shared
                    .load_revocations(&self.scope, &store, &self.policy)
                    .await
            })
            .await
            .map(drop)
    }

    /// The user with `id`, from memory when fresh, else from the database.
    pub async fn user(&self, id: i64) -> Result<Option<Arc<User>>, StoreError> {
        Ok(self.user_snapshot(id).await?.map(|s| s.user))
    }

    /// [`Self::user`], with what it takes to reuse the answer ([`Self::still_serves`]).
    pub async fn user_snapshot(&self, id: i64) -> Result<Option<UserSnapshot>, StoreError> {
        // Read before the record: a write after this moves it.
        let generation = self.shared.user_generation.load(Ordering::SeqCst);
        let key = (self.scope.clone(), id);
        let cached = match self.shared.users.get(&key) {
            Some(cached) if cached.incarnation == self.incarnation => cached,
            // Absent, or read from an earlier registration of this ID. Boxed: the hot path's
            // future stays small (see `Registry::tenant`).
            _ => match Box::pin(self.read_user(key, generation)).await? {
                Some(cached) => cached,
                None => return Ok(None),
            },
        };
        Ok(Some(UserSnapshot {
            user: cached.user,
            generation: AtomicU64::new(generation),
            expires_at: cached.read_at.saturating_add(self.shared.user_ttl),
        }))
    }

    /// Reads a user and caches the record, unless a write to some user raced the read.
    async fn read_user(
        &self,
        key: (Scope, i64),
        generation: u64,
    ) -> Result<Option<CachedUser>, StoreError> {
        let read_at = self.shared.now_millis();
        let Some(user) = self.store().await?.user_by_id(key.1).await? else {
            return Ok(None);
        };
        let cached = CachedUser {
            user: Arc::new(user),
            incarnation: self.incarnation,
            read_at,
        };
        if self.shared.user_generation.load(Ordering::SeqCst) == generation {
            self.shared.users.insert(key.clone(), cached.clone());
            fence(Ordering::SeqCst);
            // A write that began meanwhile may have invalidated before this insert: drop it
            // the way a write does, so a snapshot that saw it in between is not reused.
            if self.shared.user_generation.load(Ordering::SeqCst) != generation {
                self.shared.forget_user(&key);
            }
        }
        Ok(Some(cached))
    }

    /// Whether `snapshot`, taken from this handle, still holds what [`Self::user`] would
    /// answer. Costs no lookup unless some user changed since it was last confirmed.
    pub fn still_serves(&self, snapshot: &UserSnapshot) -> bool {
        if self.shared.now_millis() >= snapshot.expires_at {
            return false;
        }
        let generation = self.shared.user_generation.load(Ordering::SeqCst);
        if snapshot.generation.load(Ordering::Relaxed) == generation {
            return true;
        }
        let key = (self.scope.clone(), snapshot.user.id);
        let same = self
            .shared
            .users
            .get(&key)
            .is_some_and(|cached| Arc::ptr_eq(&cached.user, &snapshot.user));
        if same {
            snapshot.generation.store(generation, Ordering::Relaxed);
        }
        same
    }

    /// Whether the registry would still hand out this handle: not dropped, and its entry
    /// checked within `tenants.recheck_millis` (the legacy scope has no entry to check).
    pub fn is_current(&self) -> bool {
        match self.scope {
            Scope::Legacy => true,
            Scope::Tenant(_) => !self.retired.load(Ordering::SeqCst) && self.fresh(),
        }
    }

    /// Whether the handle was checked against its source within `recheck`.
    fn fresh(&self) -> bool {
        let checked = self.checked_at.load(Ordering::Relaxed);
        self.shared.now_millis().saturating_sub(checked) < self.shared.recheck
    }

    fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
    }

    /// Drops the cached record of `id`; call after every write to a user, so this process
    /// never serves the old record (password, version, active flag) again.
    pub async fn forget_user(&self, id: i64) {
        self.shared.forget_user(&(self.scope.clone(), id));
        self.shared
            .publish(Event::User {
                scope: scope_name(&self.scope),
                id,
            })
            .await;
    }

    /// The replicas' shared state, when configured (`redis.url`).
    pub fn redis(&self) -> Option<&Redis> {
        self.shared.redis.as_ref()
    }

    pub fn is_revoked(&self, jti: &str) -> bool {
        self.shared
            .revoked
            .contains_key(&(self.scope.clone(), jti.to_owned()))
    }

    /// Moves whenever a `jti` is revoked in any scope: a token found not revoked at one
    /// epoch is still not revoked while the epoch stays. Read it before [`Self::is_revoked`].
    pub fn revocation_epoch(&self) -> u64 {
        self.shared.revocations.load(Ordering::SeqCst)
    }

    /// Remembers a revoked `jti` (after storing it), here and on the other replicas.
    pub async fn remember_revoked(&self, jti: String) {
        self.shared.revoke(self.scope.clone(), jti.clone());
        self.shared
            .publish(Event::Revoked {
                scope: scope_name(&self.scope),
                jti,
            })
            .await;
    }
}

/// Removes `id`'s handle from the registry's cache and retires it at once, not whenever the
/// cache's eviction listener gets to it.
async fn drop_handle(open: &Cache<TenantId, Arc<Tenant>>, id: &TenantId) {
    if let Some(handle) = open.remove(id).await {
        handle.retire();
    }
}

pub struct Registry {
    settings: Settings,
    source: Source,
    secret: ServerSecret,
    shared: Arc<Shared>,
    legacy: Arc<Tenant>,
    /// Tenant handles (no open files), bounded by `handle_cache_capacity`.
    open: Cache<TenantId, Arc<Tenant>>,
    absent: Cache<TenantId, ()>,
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
        let redis = Redis::connect(&settings.redis).await?;
        let shared = Arc::new(Shared::new(settings, pools, redis));
        let legacy_policy = SecurityPolicy::new(&settings.security, &SecurityOverrides::default());
        shared
            .load_revocations(&Scope::Legacy, &store, &legacy_policy)
            .await
            .map_err(|e| anyhow::anyhow!("reading the legacy database {legacy_url}: {e}"))?;
        let legacy = Arc::new(Tenant {
            key: SigningKey::derive(&secret, &Scope::Legacy, None),
            scope: Scope::Legacy,
            active: true,
            database: Database::Fixed(store.clone()),
            shared: shared.clone(),
            retired: AtomicBool::new(false),
            policy: legacy_policy,
            roles: RoleGrants::default(),
            database_url: legacy_url,
            incarnation: None,
            revocations_loaded: tokio::sync::OnceCell::new_with(Some(())),
            revision: None,
            checked_at: AtomicU64::new(0),
        });
        let open = Cache::builder()
            .name("tenants")
            .max_capacity(settings.tenants.handle_cache_capacity)
            .time_to_idle(Duration::from_secs(3600))
            // However it leaves (evicted, expired, invalidated), a handle is retired, so no
            // token keeps using it without resolving again (see also `drop_handle`).
            .eviction_listener(|_, tenant: Arc<Tenant>, _| tenant.retire())
            .build();
        let absent = Cache::builder()
            .name("unknown-tenants")
            .max_capacity(100_000)
            .time_to_live(Duration::from_millis(
                settings.tenants.negative_cache_millis,
            ))
            .build();
        let registry = Self {
            settings: settings.clone(),
            source: Source::new(settings, &store),
            secret,
            shared,
            legacy,
            open,
            absent,
        };
        if let Some(redis) = registry.redis() {
            redis
                .subscribe(registry.on_event())
                .await
                .map_err(|e| anyhow::anyhow!("subscribing to replica events in Redis: {e}"))?;
        }
        Ok(registry)
    }

    pub fn legacy(&self) -> &Arc<Tenant> {
        &self.legacy
    }

    /// Where the registry's entries live.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Pool settings and the Postgres connection budgets this process shares (provisioning
    /// through the API draws on the same budgets as serving).
    pub fn pool_settings(&self) -> &PoolSettings {
        &self.shared.pool_settings
    }

    /// Forgets what this process (and every other replica) knows of `id` — its handle, or
    /// that it was unknown — so the next request reads its entry afresh.
    pub async fn forget(&self, id: &TenantId) {
        drop_handle(&self.open, id).await;
        self.absent.invalidate(id).await;
        self.shared
            .publish(Event::Tenant { id: id.to_string() })
            .await;
    }

    /// The shared state of the replicas, when configured.
    pub fn redis(&self) -> Option<&Redis> {
        self.shared.redis.as_ref()
    }

    /// Applies another replica's change to this process's caches.
    fn on_event(&self) -> impl Fn(Event) -> BoxFuture<'static, ()> + Send + Sync + 'static {
        let shared = self.shared.clone();
        let open = self.open.clone();
        let absent = self.absent.clone();
        move |event| {
            let shared = shared.clone();
            let open = open.clone();
            let absent = absent.clone();
            Box::pin(async move {
                let scope_of = |name: Option<String>| match name {
                    None => Some(Scope::Legacy),
                    Some(id) => TenantId::parse(&id).ok().map(Scope::Tenant),
                };
                match event {
                    Event::User { scope, id } => {
                        if let Some(scope) = scope_of(scope) {
                            shared.forget_user(&(scope, id));
                        }
                    }
                    Event::Revoked { scope, jti } => {
                        if let Some(scope) = scope_of(scope) {
                            shared.revoke(scope, jti);
                        }
                    }
                    Event::Tenant { id } => {
                        if let Ok(id) = TenantId::parse(&id) {
                            drop_handle(&open, &id).await;
                            absent.invalidate(&id).await;
                        }
                    }
                }
            })
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
                .shared
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
        self.shared.pools.entry_count()
    }

    /// Closes every open pool, the legacy database's last (at shutdown, after draining).
    pub async fn close(&self) {
        for (_, store) in self.shared.pools.iter() {
            store.close().await;
        }
        if let Database::Fixed(store) = &self.legacy.database {
            store.close().await;
        }
    }

    /// The handle of `scope` (its keys, policy and where its database is; the database is
    /// opened only when a request first needs it). Refuses inactive tenants.
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
    async fn reload(&self, id: &TenantId) -> Result<Arc<Tenant>, TenancyError> {
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
    async fn still_current(&self, tenant: &Tenant) -> bool {
        if tenant.fresh() {
            return true;
        }
        let now = self.shared.now_millis();
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

    async fn load(&self, id: &TenantId) -> Result<Arc<Tenant>, TenancyError> {
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
        Ok(Arc::new(Tenant {
            key: SigningKey::derive(&self.secret, &scope, entry.incarnation),
            scope,
            active: entry.active,
            database: Database::Pooled,
            shared: self.shared.clone(),
            retired: AtomicBool::new(false),
            policy: SecurityPolicy::new(&self.settings.security, &entry.security),
            roles,
            database_url,
            incarnation: entry.incarnation,
            revocations_loaded: tokio::sync::OnceCell::new(),
            revision: Some(revision),
            checked_at: AtomicU64::new(self.shared.now_millis()),
        }))
    }
}
