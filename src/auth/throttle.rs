//! Login attempts per client address ([`Throttle`]: a fixed one-minute window, in this process
//! or shared in Redis). Addresses are counted by
//! [`limit_key`]: an IPv6 client by its /64, since one host usually holds a whole /64 and could
//! otherwise take a new address per attempt. A bounded moka cache; entries expire with their
//! window. (Failed logins against names that match no account are counted in the tenant's
//! database, like an account's: `store::name_lockouts`.)

use std::{
    hash::Hash,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use moka::sync::Cache;

use crate::{cluster::Redis, metrics::Metrics};

/// Unix seconds now.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[derive(Debug, Default)]
struct Window {
    /// Unix seconds the window opened.
    started: i64,
    count: i64,
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

/// What the per-address limit counts `addr` as: an IPv4 address as itself (also when written
/// as an IPv4-mapped IPv6 address), an IPv6 address as its /64 network.
pub fn limit_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from_bits(
                v6.to_bits() & !u128::from(u64::MAX),
            )),
        },
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

    /// Counts one attempt from `addr` (as [`limit_key`] counts it); `Err(seconds)` to wait
    /// when over the limit.
    pub fn hit(&self, addr: IpAddr, now: i64) -> Result<(), i64> {
        self.windows.with(limit_key(addr), |w| {
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

/// The per-address login limit: counted in this process, or (with `redis.url`) in Redis so
/// that replicas share one count — falling back to this process's count while Redis is
/// unreachable (a weaker limit, still a limit: Redis is shared state, not a condition of
/// logging in).
#[allow(clippy::large_enum_variant, reason = "one per process, never moved")]
pub enum Throttle {
    Local(AddressLimiter),
    Redis {
        redis: Redis,
        fallback: AddressLimiter,
        metrics: Arc<Metrics>,
    },
}

impl Throttle {
    pub fn new(per_minute: u32, redis: Option<Redis>, metrics: Arc<Metrics>) -> Self {
        let limiter = AddressLimiter::new(per_minute);
        match redis {
            None => Self::Local(limiter),
            Some(redis) => Self::Redis {
                redis,
                fallback: limiter,
                metrics,
            },
        }
    }

    /// Counts a login attempt from `addr` (an IPv6 client by its /64); `Err(wait)` in
    /// seconds when over the limit.
    pub async fn hit(&self, addr: IpAddr, now: i64) -> Result<(), i64> {
        match self {
            Self::Local(limiter) => limiter.hit(addr, now),
            Self::Redis {
                redis,
                fallback,
                metrics,
            } => {
                let key = limit_key(addr).to_string();
                match redis.hit_address(&key, now.div_euclid(60)).await {
                    Ok(count) if count > fallback.per_minute() => {
                        Err((60 - now.rem_euclid(60)).max(1))
                    }
                    Ok(_) => Ok(()),
                    Err(_) => {
                        metrics.shared_state_fallback();
                        fallback.hit(addr, now)
                    }
                }
            }
        }
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
    fn an_ipv6_client_is_counted_by_its_64_and_a_mapped_ipv4_as_ipv4() {
        let key = |s: &str| limit_key(s.parse().expect("ip"));
        assert_eq!(
            key("2001:db8:1:2:aaaa::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_eq!(key("2001:db8:1:2::7").to_string(), "2001:db8:1:2::");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        let limiter = AddressLimiter::new(2);
        assert_eq!(limiter.hit(key("2001:db8::1"), 0), Ok(()));
        assert_eq!(limiter.hit("2001:db8::2".parse().expect("ip"), 0), Ok(()));
        assert!(
            limiter
                .hit("2001:db8::ffff:3".parse().expect("ip"), 0)
                .is_err()
        );
        assert_eq!(
            limiter.hit("2001:db8:0:1::1".parse().expect("ip"), 0),
            Ok(())
        );
    }
}
