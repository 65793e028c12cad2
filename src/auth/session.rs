//! What an accepted token resolved to, kept with the token in [`super::verified::VerifiedTokens`]
//! so that its next request costs one cache lookup instead of five (token, tenant handle, user,
//! revocation, and what the API rendered for it: [`Session::attachment`]). Across 10,000 tenants each of those lookups is a handful of
//! cache misses; the profile of the round-robin benchmark put them at a fifth of the CPU.
//!
//! A session is reused only while nothing it was built from has changed:
//! - the tenant handle is the one the registry would hand out ([`ScopeHandle::is_current`]: not
//!   dropped, entry checked within `tenants.recheck_millis`);
//! - the user record is the one the cache holds, within its lifetime
//!   ([`Identities::still_serves`]: free unless some user was written since);
//! - no `jti` was revoked since this one was last found not revoked (else it is looked up).
//!
//! A record that was active, of the token's version, is still so while it is the same record:
//! records are replaced, never changed in place. So a session needs no per-user invalidation.

use std::{
    any::Any,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use super::identity::{Identities, UserSnapshot};
use crate::{store::users::User, tenancy::ScopeHandle};

/// An accepted token's tenant handle and user record.
#[derive(Debug)]
pub struct Session {
    pub handle: Arc<ScopeHandle>,
    user: UserSnapshot,
    /// The revocation epoch at which the token's `jti` was last found not revoked.
    revocations: AtomicU64,
    /// What the layer above keeps with this session, set once (the API: the rendered
    /// `/whoami` and `/me` bodies of this user record and handle). It lives exactly as long as
    /// the session, so it can never outlive what it was made from.
    pub attachment: OnceLock<Arc<dyn Any + Send + Sync>>,
}

impl Session {
    /// `revocations` must have been read before the `jti` was checked.
    pub fn new(handle: Arc<ScopeHandle>, user: UserSnapshot, revocations: u64) -> Self {
        Self {
            handle,
            user,
            revocations: AtomicU64::new(revocations),
            attachment: OnceLock::new(),
        }
    }

    pub fn user(&self) -> &Arc<User> {
        &self.user.user
    }

    /// Whether the token with `jti` may be accepted on this session without resolving again.
    pub fn still_valid(&self, identities: &Identities, jti: &str) -> bool {
        self.handle.is_current()
            && identities.still_serves(&self.handle.scope, &self.user)
            && self.not_revoked(identities, jti)
    }

    fn not_revoked(&self, identities: &Identities, jti: &str) -> bool {
        let epoch = identities.revocation_epoch();
        if self.revocations.load(Ordering::Relaxed) == epoch {
            return true;
        }
        if identities.is_revoked(&self.handle.scope, jti) {
            return false;
        }
        self.revocations.store(epoch, Ordering::Relaxed);
        true
    }
}
