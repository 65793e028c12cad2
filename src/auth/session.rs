//! What an accepted token resolved to, kept with the token in [`super::token::VerifiedTokens`]
//! so that its next request costs one cache lookup instead of five (token, tenant handle, user,
//! revocation, rendered bodies). Across 10,000 tenants each of those lookups is a handful of
//! cache misses; the profile of the round-robin benchmark put them at a fifth of the CPU.
//!
//! A session is reused only while nothing it was built from has changed:
//! - the tenant handle is the one the registry would hand out ([`Tenant::is_current`]: not
//!   dropped, entry checked within `tenants.recheck_millis`);
//! - the user record is the one the cache holds, within its lifetime
//!   ([`Tenant::still_serves`]: free unless some user was written since);
//! - no `jti` was revoked since this one was last found not revoked (else it is looked up).
//!
//! A record that was active, of the token's version, is still so while it is the same record:
//! records are replaced, never changed in place. So a session needs no per-user invalidation.

use std::{
    sync::{
        Arc, OnceLock, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;

use crate::{
    domain::Scope,
    store::users::User,
    tenancy::{Tenant, UserSnapshot},
};

/// An accepted token's tenant handle and user record.
#[derive(Debug)]
pub struct Session {
    pub tenant: Arc<Tenant>,
    user: UserSnapshot,
    /// The revocation epoch at which the token's `jti` was last found not revoked.
    revocations: AtomicU64,
    /// The identity reads' bodies for this user record and handle, shared by its sessions.
    pub bodies: Arc<Bodies>,
}

impl Session {
    /// `revocations` must have been read before the `jti` was checked.
    pub fn new(
        tenant: Arc<Tenant>,
        user: UserSnapshot,
        revocations: u64,
        bodies: &BodyCache,
    ) -> Self {
        let bodies = bodies.of(&tenant, &user.user);
        Self {
            tenant,
            user,
            revocations: AtomicU64::new(revocations),
            bodies,
        }
    }

    pub fn user(&self) -> &Arc<User> {
        &self.user.user
    }

    /// Whether the token with `jti` may be accepted on this session without resolving again.
    pub fn still_valid(&self, jti: &str) -> bool {
        self.tenant.is_current() && self.tenant.still_serves(&self.user) && self.not_revoked(jti)
    }

    fn not_revoked(&self, jti: &str) -> bool {
        let epoch = self.tenant.revocation_epoch();
        if self.revocations.load(Ordering::Relaxed) == epoch {
            return true;
        }
        if self.tenant.is_revoked(jti) {
            return false;
        }
        self.revocations.store(epoch, Ordering::Relaxed);
        true
    }
}

/// The bodies of `/whoami` and `/me` (the reads every module makes on every page), rendered
/// by the API layer on first use and then served as bytes.
#[derive(Debug, Default)]
pub struct Bodies {
    pub whoami: OnceLock<Bytes>,
    pub me: OnceLock<Bytes>,
}

/// What one user's bodies were rendered from.
struct Rendered {
    user: Weak<User>,
    tenant: Weak<Tenant>,
    bodies: Arc<Bodies>,
}

/// [`Bodies`] by scope and user, so that a user's many tokens share one rendering. Consulted
/// when a session is made, not per request.
///
/// Bodies are reused only while the user record and tenant handle are the very objects they
/// were rendered from (pointer identity, held weakly so nothing stays alive for it; a `Weak`
/// keeps its allocation, so an address here is never reused by another record). Every write
/// to a user replaces its cached record and a changed tenant file replaces the handle, so a
/// stale body cannot be served.
pub struct BodyCache {
    rendered: moka::sync::Cache<(Scope, i64), Arc<Rendered>>,
}

impl BodyCache {
    /// Entries idle for `idle` are dropped; at most `capacity` are kept.
    pub fn new(capacity: u64, idle: Duration) -> Self {
        Self {
            rendered: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(idle)
                .build(),
        }
    }

    fn of(&self, tenant: &Arc<Tenant>, user: &Arc<User>) -> Arc<Bodies> {
        let key = (tenant.scope.clone(), user.id);
        if let Some(hit) = self.rendered.get(&key)
            && Weak::as_ptr(&hit.user) == Arc::as_ptr(user)
            && Weak::as_ptr(&hit.tenant) == Arc::as_ptr(tenant)
        {
            return hit.bodies.clone();
        }
        let bodies = Arc::new(Bodies::default());
        let rendered = Rendered {
            user: Arc::downgrade(user),
            tenant: Arc::downgrade(tenant),
            bodies: bodies.clone(),
        };
        self.rendered.insert(key, Arc::new(rendered));
        bodies
    }
}
