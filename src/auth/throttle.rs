//! In-memory attempt counting, for what has no database row: login attempts per client
//! address (a fixed one-minute window), and failed logins against names that belong to no
//! account (mirroring the per-account lockout, so a lock says nothing about whether an account
//! exists). Bounded moka caches; entries expire with their window or lock.

use std::{
    hash::Hash,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use moka::sync::Cache;

use crate::domain::Scope;

/// Unix seconds now.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[derive(Debug, Default)]
struct Window {
    /// Unix seconds the window opened.
    started: i64,
    count: i64,
    /// Unix seconds the lock ends (lockout mirror only).
    locked_until: Option<i64>,
}

/// Counters keyed by `K`, each in its own window.
struct Windows<K> {
    cache: Cache<K, Arc<Mutex<Window>>>,
}

impl<K: Hash + Eq + Send + Sync + 'static> Windows<K> {
    fn new(capacity: u64, idle: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(idle)
                .build(),
        }
    }

    fn with<T>(&self, key: K, f: impl FnOnce(&mut Window) -> T) -> T {
        let entry = self.cache.get_with(key, Default::default);
        let mut window = entry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut window)
    }
}

/// Per-client-address login rate limit.
pub struct AddressLimiter {
    windows: Windows<IpAddr>,
    per_minute: i64,
}

impl AddressLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            windows: Windows::new(1_000_000, Duration::from_secs(120)),
            per_minute: i64::from(per_minute.max(1)),
        }
    }

    /// Attempts allowed per address and minute.
    pub fn per_minute(&self) -> i64 {
        self.per_minute
    }

    /// Counts one attempt from `addr`; `Err(seconds)` to wait when over the limit.
    pub fn hit(&self, addr: IpAddr, now: i64) -> Result<(), i64> {
        self.windows.with(addr, |w| {
            if now >= w.started + 60 {
                *w = Window {
                    started: now,
                    ..Window::default()
                };
            }
            w.count += 1;
            if w.count > self.per_minute {
                Err((w.started + 60 - now).max(1))
            } else {
                Ok(())
            }
        })
    }
}

/// The lockout rules of [`crate::store::Store::reserve_login_attempt`], for names that match
/// no account.
pub struct PhantomLockouts {
    windows: Windows<(Scope, String)>,
}

impl PhantomLockouts {
    pub fn new() -> Self {
        Self {
            windows: Windows::new(1_000_000, Duration::from_secs(24 * 3600)),
        }
    }

    /// Reserves an attempt: its number within the window, or `None` while locked.
    pub fn reserve(&self, key: (Scope, String), now: i64, window_seconds: i64) -> Option<i64> {
        self.windows.with(key, |w| {
            match w.locked_until {
                Some(until) if until > now => return None,
                Some(_) => {
                    *w = Window {
                        started: now,
                        ..Window::default()
                    }
                }
                None if now >= w.started + window_seconds => {
                    *w = Window {
                        started: now,
                        ..Window::default()
                    }
                }
                None => {}
            }
            w.count += 1;
            Some(w.count)
        })
    }

    pub fn locked_until(&self, key: (Scope, String)) -> Option<i64> {
        self.windows.with(key, |w| w.locked_until)
    }

    pub fn lock(&self, key: (Scope, String), until: i64) {
        self.windows.with(key, |w| w.locked_until = Some(until));
    }
}

impl Default for PhantomLockouts {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_their_quota_per_minute() {
        let limiter = AddressLimiter::new(3);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let other: IpAddr = "192.0.2.2".parse().expect("ip");
        for _ in 0..3 {
            assert_eq!(limiter.hit(ip, 1000), Ok(()));
        }
        assert_eq!(limiter.hit(ip, 1010), Err(50));
        assert_eq!(limiter.hit(other, 1010), Ok(()));
        assert_eq!(limiter.hit(ip, 1060), Ok(()), "a new minute, a new quota");
    }

    #[test]
    fn phantom_accounts_lock_like_real_ones() {
        let lockouts = PhantomLockouts::new();
        let key = || (Scope::Legacy, "ghost".to_owned());
        assert_eq!(lockouts.reserve(key(), 100, 900), Some(1));
        assert_eq!(lockouts.reserve(key(), 101, 900), Some(2));
        lockouts.lock(key(), 200);
        assert_eq!(lockouts.reserve(key(), 150, 900), None);
        assert_eq!(lockouts.locked_until(key()), Some(200));
        assert_eq!(
            lockouts.reserve(key(), 200, 900),
            Some(1),
            "the lock ends by itself"
        );
        assert_eq!(
            lockouts.reserve(key(), 1200, 900),
            Some(1),
            "so does the window"
        );
    }
}
