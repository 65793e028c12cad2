//! What this process remembers of identities, across every scope: user records and logout
//! revocations, with the counters that let a verified token's next request reuse what its
//! last one resolved to without a lookup, and the fan-out of changes to the other replicas.
//!
//! - User records are cached for `security.user_cache_millis`; every write to a user drops
//!   its record here and on the other replicas (Redis, when configured).
//! - Two counters say when either cache last changed in any scope ([`UserSnapshot`],
//!   [`Identities::revocation_epoch`]): a session built on a record and a revocation check
//!   stays valid, at no lookup, until one of them moves.
//! - A scope's stored revocations are read into memory the first time a token of that scope
//!   (registration) has checked out, so no unauthenticated request opens a tenant's database.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering, fence},
    },
    time::{Duration, Instant},
};

use moka::sync::Cache;

use crate::{
    cluster::{Event, Redis, scope_name},
    config::Settings,
    domain::{Scope, TenantId},
    store::{StoreError, users::User},
    tenancy::{Incarnation, ScopeHandle},
};

/// A cached user record, the registration it was read from, and when it was read
/// (milliseconds of [`Identities::now_millis`]).
#[derive(Clone)]
struct CachedUser {
    user: Arc<User>,
    /// A record of an earlier registration of the same tenant ID is never served.
    incarnation: Option<Incarnation>,
    read_at: u64,
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

/// The identity caches of this process (one per process, shared by every scope).
pub struct Identities {
    /// User records by scope and id, for `user_ttl`; writes invalidate them.
    users: Cache<(Scope, i64), CachedUser>,
    user_ttl: u64,
    /// Bumped around every user invalidation, in any scope (see [`Identities::drop_user`]).
    user_generation: AtomicU64,
    /// `jti`s revoked by logout (kept for the token lifetime).
    revoked: Cache<(Scope, String), ()>,
    /// Bumped after every revocation is remembered, in any scope.
    revocations: AtomicU64,
    /// The registrations whose stored revocations are in memory.
    loaded: moka::future::Cache<(Scope, Option<Incarnation>), ()>,
    /// Where to tell the other replicas of a change (`redis.url`).
    redis: Option<Redis>,
    /// The clock of `read_at`.
    epoch: Instant,
}

impl Identities {
    pub fn new(settings: &Settings, redis: Option<Redis>) -> Self {
        let user_ttl = settings.security.user_cache_millis.max(1);
        Self {
            users: Cache::builder()
                .name("users")
                .max_capacity(1_000_000)
                .time_to_live(Duration::from_millis(user_ttl))
                .build(),
            user_ttl,
            user_generation: AtomicU64::new(0),
            revoked: Cache::builder()
                .max_capacity(10_000_000)
                .time_to_live(
                    settings.token_ttl() + Duration::from_secs(settings.jwt.leeway_seconds),
                )
                .build(),
            revocations: AtomicU64::new(0),
            loaded: moka::future::Cache::builder()
                .name("revocations-loaded")
                .max_capacity(1_000_000)
                .build(),
            redis,
            epoch: Instant::now(),
        }
    }

    /// Milliseconds since these caches were made.
    fn now_millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Loads `tenant`'s stored logout revocations into memory, once per registration; call
    /// before [`Self::is_revoked`]. Opens the tenant's database the first time.
    pub async fn load_revocations(&self, tenant: &ScopeHandle) -> Result<(), StoreError> {
        let key = (tenant.scope.clone(), tenant.incarnation);
        if self.loaded.contains_key(&key) {
            return Ok(());
        }
        self.loaded
            .try_get_with(key, async {
                let store = tenant.store().await?;
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                // Housekeeping while the database is opened anyway: names whose failed-login
                // window and lock have both passed count nothing any more.
                store
                    .prune_name_failures(now, tenant.policy.lockout_window)
                    .await?;
                for jti in store.live_revocations(now).await? {
                    self.revoked.insert((tenant.scope.clone(), jti), ());
                }
                fence(Ordering::SeqCst);
                self.revocations.fetch_add(1, Ordering::SeqCst);
                Ok::<_, StoreError>(())
            })
            .await
            .map_err(|e| (*e).clone())
    }

    /// The user `id` of `tenant`, from memory when fresh, else from the database, with what
    /// it takes to reuse the answer ([`Self::still_serves`]).
    pub async fn user_snapshot(
        &self,
        tenant: &ScopeHandle,
        id: i64,
    ) -> Result<Option<UserSnapshot>, StoreError> {
        // Read before the record: a write after this moves it.
        let generation = self.user_generation.load(Ordering::SeqCst);
        let key = (tenant.scope.clone(), id);
        let cached = match self.users.get(&key) {
            Some(cached) if cached.incarnation == tenant.incarnation => cached,
            // Absent, or read from an earlier registration of this ID. Boxed: the hot path's
            // future stays small (see `Registry::resolve`).
            _ => match Box::pin(self.read_user(tenant, key, generation)).await? {
                Some(cached) => cached,
                None => return Ok(None),
            },
        };
        Ok(Some(UserSnapshot {
            user: cached.user,
            generation: AtomicU64::new(generation),
            expires_at: cached.read_at.saturating_add(self.user_ttl),
        }))
    }

    /// Reads a user and caches the record, unless a write to some user raced the read.
    async fn read_user(
        &self,
        tenant: &ScopeHandle,
        key: (Scope, i64),
        generation: u64,
    ) -> Result<Option<CachedUser>, StoreError> {
        let read_at = self.now_millis();
        let Some(user) = tenant.store().await?.user_by_id(key.1).await? else {
            return Ok(None);
        };
        let cached = CachedUser {
            user: Arc::new(user),
            incarnation: tenant.incarnation,
            read_at,
        };
        if self.user_generation.load(Ordering::SeqCst) == generation {
            self.users.insert(key.clone(), cached.clone());
            fence(Ordering::SeqCst);
            // A write that began meanwhile may have invalidated before this insert: drop it
            // the way a write does, so a snapshot that saw it in between is not reused.
            if self.user_generation.load(Ordering::SeqCst) != generation {
                self.drop_user(&key);
            }
        }
        Ok(Some(cached))
    }

    /// Whether `snapshot`, taken in `scope`, still holds what [`Self::user_snapshot`] would answer.
    /// Costs no lookup unless some user changed since it was last confirmed.
    pub fn still_serves(&self, scope: &Scope, snapshot: &UserSnapshot) -> bool {
        if self.now_millis() >= snapshot.expires_at {
            return false;
        }
        let generation = self.user_generation.load(Ordering::SeqCst);
        if snapshot.generation.load(Ordering::Relaxed) == generation {
            return true;
        }
        let key = (scope.clone(), snapshot.user.id);
        let same = self
            .users
            .get(&key)
            .is_some_and(|cached| Arc::ptr_eq(&cached.user, &snapshot.user));
        if same {
            snapshot.generation.store(generation, Ordering::Relaxed);
        }
        same
    }

    /// Drops the cached record of `id` in `scope`; call after every write to a user, so no
    /// replica serves the old record (password, version, active flag) again.
    pub async fn forget_user(&self, scope: &Scope, id: i64) {
        self.drop_user(&(scope.clone(), id));
        self.publish(Event::User {
            scope: scope_name(scope),
            id,
        })
        .await;
    }

    /// Drops a cached user record. The generation is bumped before and after: a load that
    /// raced the write sees the first bump and drops what it cached ([`Self::read_user`]); a
    /// snapshot that still saw the old record sees the second ([`Self::still_serves`]).
    fn drop_user(&self, key: &(Scope, i64)) {
        self.user_generation.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.users.invalidate(key);
        fence(Ordering::SeqCst);
        self.user_generation.fetch_add(1, Ordering::SeqCst);
    }

    pub fn is_revoked(&self, scope: &Scope, jti: &str) -> bool {
        self.revoked.contains_key(&(scope.clone(), jti.to_owned()))
    }

    /// Moves whenever a `jti` is revoked in any scope: a token found not revoked at one
    /// epoch is still not revoked while the epoch stays. Read it before [`Self::is_revoked`].
    pub fn revocation_epoch(&self) -> u64 {
        self.revocations.load(Ordering::SeqCst)
    }

    /// Remembers a revoked `jti` of `scope` (after storing it), here and on the other
    /// replicas.
    pub async fn remember_revoked(&self, scope: &Scope, jti: String) {
        self.revoke(scope.clone(), jti.clone());
        self.publish(Event::Revoked {
            scope: scope_name(scope),
            jti,
        })
        .await;
    }

    /// Remembers a revoked `jti`; the epoch is bumped after, so whoever sees the new epoch
    /// finds the entry.
    fn revoke(&self, scope: Scope, jti: String) {
        self.revoked.insert((scope, jti), ());
        fence(Ordering::SeqCst);
        self.revocations.fetch_add(1, Ordering::SeqCst);
    }

    /// Applies another replica's change of a user or a revocation (other events are not
    /// about identities and are ignored).
    pub fn apply(&self, event: &Event) {
        let scope_of = |name: &Option<String>| match name {
            None => Some(Scope::Legacy),
            Some(id) => TenantId::parse(id).ok().map(Scope::Tenant),
        };
        match event {
            Event::User { scope, id } => {
                if let Some(scope) = scope_of(scope) {
                    self.drop_user(&(scope, *id));
                }
            }
            Event::Revoked { scope, jti } => {
                if let Some(scope) = scope_of(scope) {
                    self.revoke(scope, jti.clone());
                }
            }
            Event::Tenant { .. } => {}
        }
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
}
