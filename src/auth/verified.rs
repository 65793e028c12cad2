//! Recently verified tokens, so that a token presented again costs one hash lookup (see
//! [`VerifiedTokens`]).

use std::{
    hash::{BuildHasher, BuildHasherDefault, Hasher},
    sync::{Arc, OnceLock},
    time::Duration,
};

use super::{
    session::Session,
    token::{Claims, now},
};
use crate::{
    domain::{Scope, TenantId},
    tenancy::Incarnation,
};

/// Recently verified tokens, so that a token presented again costs one hash lookup instead of
/// base64, JSON and an HMAC. Keyed by a randomly keyed hash of `X-Tenant` and the token's
/// signature segment (unique per token: it is an HMAC over the rest; hashing the whole token
/// cost a quarter of a token check); a hit is confirmed by comparing header and token in full,
/// so a crafted token sharing a signature only misses, and only accepted tokens are ever
/// inserted. `exp` is checked on every use. Revocation is not
/// cached here: the caller still checks the user's token version and the revoked `jti`s.
pub struct VerifiedTokens {
    cache: moka::sync::Cache<u64, Arc<VerifiedToken>, BuildHasherDefault<KeyIsHash>>,
    /// Randomly keyed per process: a client cannot aim two tokens at one key. foldhash, not
    /// SipHash: a collision costs only a cache miss (hits are compared in full), and SipHash
    /// over the signature was 2% of a token check.
    hasher: foldhash::fast::RandomState,
    leeway: u64,
}

/// A token that verified for `scope` when presented with the `X-Tenant` header `header`.
pub struct VerifiedToken {
    header: Option<TenantId>,
    token: Box<str>,
    pub scope: Scope,
    pub claims: Arc<Claims>,
    /// The registration of the tenant whose key verified the claims: a tenant ID registered
    /// again has another key, so the claims must be verified afresh.
    pub incarnation: Option<Incarnation>,
    /// What the token last resolved to, once it was accepted.
    session: OnceLock<Arc<Session>>,
}

impl VerifiedToken {
    /// What the token last resolved to, when it was accepted before.
    pub fn session(&self) -> Option<&Arc<Session>> {
        self.session.get()
    }
}

impl VerifiedTokens {
    pub fn new(capacity: u64, leeway: Duration) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(Duration::from_secs(300))
                .build_with_hasher(BuildHasherDefault::default()),
            hasher: foldhash::fast::RandomState::default(),
            leeway: leeway.as_secs(),
        }
    }

    fn key(&self, header: Option<&TenantId>, token: &str) -> u64 {
        // A byte search: `rsplit('.')` went through the generic pattern searcher.
        let dot = token.bytes().rposition(|b| b == b'.');
        let signature = dot.map_or(token, |dot| &token[dot + 1..]);
        self.hasher.hash_one((header, signature))
    }

    /// The earlier verification of exactly this token and header, if it has not expired.
    pub fn get(&self, header: Option<&TenantId>, token: &str) -> Option<Arc<VerifiedToken>> {
        let hit = self.cache.get(&self.key(header, token))?;
        let same = hit.header.as_ref() == header && &*hit.token == token;
        (same && now() < hit.claims.exp + self.leeway).then_some(hit)
    }

    /// Remembers that `token` (with `header`) verified for `scope` and was accepted on
    /// `session`. `seen` is the entry [`Self::get`] returned, if any: its session is filled in
    /// place when empty, and the entry replaced when it holds a stale one.
    pub fn insert(
        &self,
        seen: Option<&VerifiedToken>,
        header: Option<TenantId>,
        token: &str,
        scope: Scope,
        claims: Arc<Claims>,
        session: Arc<Session>,
    ) {
        let session = match seen {
            Some(seen) => match seen.session.set(session) {
                Ok(()) => return,
                Err(session) => session,
            },
            None => session,
        };
        let key = self.key(header.as_ref(), token);
        let verified = VerifiedToken {
            header,
            token: token.into(),
            scope,
            claims,
            incarnation: session.handle.incarnation,
            session: OnceLock::from(session),
        };
        self.cache.insert(key, Arc::new(verified));
    }
}

/// The cache's keys are already randomly keyed hashes: the cache uses them as they are instead
/// of hashing them again.
#[derive(Default)]
struct KeyIsHash(u64);

impl Hasher for KeyIsHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed (below); any other input still hashes, if poorly.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}
