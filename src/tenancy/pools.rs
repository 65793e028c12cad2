//! The open databases of every tenant handle: a bounded cache of pools, opened (and once per
//! process migrated) on demand, and the clock by which a handle knows when to check its entry
//! again.

use std::time::{Duration, Instant};

use moka::{future::Cache, sync::Cache as SyncCache};

use super::Incarnation;
use crate::{
    config::Settings,
    store::{DatabaseUrl, PoolSettings, Store, StoreError},
};

/// What every handle of the registry shares: the open pools, and the clock by which a handle
/// knows when to check its entry again.
pub(super) struct Pools {
    pub(super) settings: PoolSettings,
    /// Open databases by URL and registration (a tenant registered again never gets its
    /// predecessor's pool, which may hold a removed file open): bounded by
    /// `pool_cache_capacity`, idle ones dropped.
    pub(super) open: Cache<String, Store>,
    /// URLs this process has migrated, so reopening an evicted pool skips the check.
    migrated: SyncCache<String, ()>,
    /// The clock of `checked_at`.
    epoch: Instant,
    /// How long a tenant handle is used before its file is checked again, in milliseconds.
    pub(super) recheck: u64,
}

impl Pools {
    pub(super) fn new(settings: &Settings, pool_settings: PoolSettings) -> Self {
        Self {
            epoch: Instant::now(),
            recheck: settings.tenants.recheck_millis,
            settings: pool_settings,
            open: Cache::builder()
                .name("tenant-pools")
                .max_capacity(settings.tenants.pool_cache_capacity)
                .time_to_idle(Duration::from_secs(
                    settings.tenants.pool_idle_seconds.max(1),
                ))
                .build(),
            migrated: SyncCache::builder().max_capacity(1_000_000).build(),
        }
    }

    /// The open pool of `url` (registered as `incarnation`), opening (and, once per process,
    /// migrating) it when needed.
    pub(super) async fn pool(
        &self,
        url: &DatabaseUrl,
        incarnation: Option<Incarnation>,
    ) -> Result<Store, StoreError> {
        let key = match incarnation {
            Some(incarnation) => format!("{incarnation}#{}", url.expose()),
            None => url.expose().to_owned(),
        };
        let entry = self
            .open
            .entry(key.clone())
            .or_try_insert_with(async {
                let store = if self.migrated.contains_key(&key) {
                    Store::connect(url, &self.settings).await?
                } else {
                    Store::open(url, &self.settings).await?
                };
                self.migrated.insert(key.clone(), ());
                Ok::<_, StoreError>(store)
            })
            .await
            .map_err(|e| (*e).clone())?;
        if entry.is_fresh() {
            // Evict over-capacity pools now rather than at the cache's next maintenance, so
            // open files stay within the bound.
            self.open.run_pending_tasks().await;
        }
        Ok(entry.into_value())
    }

    /// Milliseconds since this process's registry was made.
    pub(super) fn now_millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}
