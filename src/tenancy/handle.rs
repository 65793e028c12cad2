//! One scope's handle ([`ScopeHandle`]): what every request of that scope needs — its signing key,
//! security policy, role grants and where its database is — resolved once and cached by the
//! registry.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use super::{Incarnation, Revision, SecurityPolicy, SigningKey, pools::Pools};
use crate::{
    domain::{RoleGrants, Scope},
    store::{DatabaseUrl, Store, StoreError},
};

/// Where a scope's database comes from.
pub(super) enum Database {
    /// The legacy database: always open.
    Fixed(Store),
    /// A tenant's: from the shared pool cache, opened on demand.
    Pooled,
}

/// One scope's handle: what every request of that scope needs, resolved once and cached.
pub struct ScopeHandle {
    pub scope: Scope,
    pub active: bool,
    /// Derived once from the server secret; the hot path is then one HMAC per token.
    pub key: SigningKey,
    pub policy: SecurityPolicy,
    /// What each role may do here.
    pub roles: RoleGrants,
    pub(super) database: Database,
    pub(super) pools: Arc<Pools>,
    /// Set when the registry drops this handle: whoever still holds it must resolve again.
    pub(super) retired: AtomicBool,
    /// The tenant's database (masked in logs).
    pub database_url: DatabaseUrl,
    /// The registration this handle was loaded from (`None`: legacy, or an entry written
    /// before registrations had one).
    pub incarnation: Option<Incarnation>,
    /// The entry's revision when loaded (`None`: legacy); a change means reload.
    pub(super) revision: Option<Revision>,
    /// When the file was last checked, in milliseconds since the registry's epoch.
    pub(super) checked_at: AtomicU64,
}

impl std::fmt::Debug for ScopeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopeHandle")
            .field("scope", &self.scope)
            .field("active", &self.active)
            .field("database_url", &self.database_url)
            .finish_non_exhaustive()
    }
}

impl ScopeHandle {
    /// The scope's database, opened if it is not.
    pub async fn store(&self) -> Result<Store, StoreError> {
        match &self.database {
            Database::Fixed(store) => Ok(store.clone()),
            Database::Pooled => self.pools.pool(&self.database_url, self.incarnation).await,
        }
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
    pub(super) fn fresh(&self) -> bool {
        let checked = self.checked_at.load(Ordering::Relaxed);
        self.pools.now_millis().saturating_sub(checked) < self.pools.recheck
    }

    pub(super) fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
    }
}
