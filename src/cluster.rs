//! What replicas share through Redis (`redis.url`): counters that have no database row (login
//! attempts per client address), and events that tell every replica to drop what it caches (a
//! user changed, a token was revoked, a tenant's entry changed). Without Redis both stay
//! in-process, and a client sees the same behaviour from a single server.
//!
//! Redis is shared state, never a condition of serving: while it is unreachable (also at
//! start), callers fall back to in-process state, an outage is logged once when it starts and
//! once when it ends, and Redis is retried every couple of seconds (`Health`).
//!
//! Events are Redis pub/sub messages on one channel: at most once, in order per publisher. A
//! replica that misses one (Redis restarted, a reconnect) still converges: user snapshots expire
//! after `security.user_cache_millis`, tenant entries are re-checked every
//! `tenants.recheck_millis`, and revocations are in the tenant's database, read when the tenant
//! is loaded.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use deadpool_redis::{Config, Pool, Runtime, redis};
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::{config::RedisSettings, domain::Scope};

/// A pool of Redis connections, and the names of this deployment's keys.
#[derive(Clone)]
pub struct Redis {
    pool: Pool,
    client: redis::Client,
    prefix: String,
    health: Arc<Health>,
}

/// Whether Redis answered lately. Redis is shared state, not a dependency of logins: after a
/// failure it is not asked again for [`RETRY_AFTER_FAILURE`], so that requests do not each
/// pay a failed connection attempt (callers fall back to in-process state meanwhile); then
/// the next call tries again, and a success ends the degradation.
struct Health {
    epoch: Instant,
    /// Milliseconds since `epoch` before which Redis is not asked.
    quiet_until: AtomicU64,
    degraded: AtomicBool,
}

/// How long Redis is left alone after a failure.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(2);
/// The longest a connection to Redis, or a free one from the pool, is waited for.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

impl Health {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn quiet(&self) -> bool {
        self.now() < self.quiet_until.load(Ordering::Relaxed)
    }

    fn failed(&self, error: &anyhow::Error) {
        let retry = u64::try_from(RETRY_AFTER_FAILURE.as_millis()).unwrap_or(u64::MAX);
        self.quiet_until
            .store(self.now().saturating_add(retry), Ordering::Relaxed);
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::error!(
                alert = "shared_state_degraded",
                error = %error,
                "Redis unreachable: throttling falls back to this process alone until it answers again"
            );
        }
    }

    fn succeeded(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::warn!("Redis answers again: throttling is shared between replicas again");
        }
    }
}

/// A change every replica must hear of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// User `id` of `scope` changed: drop its snapshot.
    User { scope: Option<String>, id: i64 },
    /// Token `jti` of `scope` was revoked.
    Revoked { scope: Option<String>, jti: String },
    /// Tenant `id`'s registry entry changed (provisioned, activated, deactivated).
    Tenant { id: String },
}

/// `None` for the legacy scope, else the tenant ID: the wire form of a [`Scope`].
pub fn scope_name(scope: &Scope) -> Option<String> {
    match scope {
        Scope::Legacy => None,
        Scope::Tenant(id) => Some(id.to_string()),
    }
}

impl Redis {
    /// The shared state of `redis.url`, when set. A Redis that does not answer now is not an
    /// error: the server starts degraded (see `Health`) and uses Redis once it answers.
    pub async fn connect(settings: &RedisSettings) -> anyhow::Result<Option<Self>> {
        let Some(url) = &settings.url else {
            return Ok(None);
        };
        let url = url.expose_secret();
        let mut config = Config::from_url(url);
        let mut pool = deadpool_redis::PoolConfig::new(settings.pool_size.max(1));
        pool.timeouts = deadpool_redis::Timeouts {
            wait: Some(CONNECT_TIMEOUT),
            create: Some(CONNECT_TIMEOUT),
            recycle: Some(CONNECT_TIMEOUT),
        };
        config.pool = Some(pool);
        let pool = config.create_pool(Some(Runtime::Tokio1))?;
        let client = redis::Client::open(url)?;
        let redis = Self {
            pool,
            client,
            prefix: settings.key_prefix.clone(),
            health: Arc::new(Health {
                epoch: Instant::now(),
                quiet_until: AtomicU64::new(0),
                degraded: AtomicBool::new(false),
            }),
        };
        // Logs the degradation when Redis is down at start.
        let _ = redis.ping().await;
        Ok(Some(redis))
    }

    /// Whether Redis failed lately and callers use their in-process fallback.
    pub fn is_degraded(&self) -> bool {
        self.health.degraded.load(Ordering::Relaxed)
    }

    /// Runs `call` against Redis unless Redis failed within [`RETRY_AFTER_FAILURE`], and keeps
    /// [`Health`] up to date with its outcome.
    async fn guarded<T>(&self, call: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
        if self.health.quiet() {
            anyhow::bail!("Redis unreachable (not retried yet)");
        }
        let outcome = call.await;
        match &outcome {
            Ok(_) => self.health.succeeded(),
            Err(e) => self.health.failed(e),
        }
        outcome
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    fn channel(&self) -> String {
        self.key(&["events"])
    }

    async fn connection(&self) -> anyhow::Result<deadpool_redis::Connection> {
        Ok(self.pool.get().await?)
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        self.guarded(async {
            let mut conn = self.connection().await?;
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            Ok(())
        })
        .await
    }

    /// Counts one login attempt from `addr` in the current minute; the count so far.
    pub async fn hit_address(&self, addr: &str, minute: i64) -> anyhow::Result<i64> {
        let key = self.key(&["rate", addr, &minute.to_string()]);
        self.guarded(async {
            let mut conn = self.connection().await?;
            let (count,): (i64,) = redis::pipe()
                .atomic()
                .incr(&key, 1)
                .expire(&key, 120)
                .ignore()
                .query_async(&mut conn)
                .await?;
            Ok(count)
        })
        .await
    }

    /// Tells every replica (this one included) of `event`.
    pub async fn publish(&self, event: &Event) -> anyhow::Result<()> {
        let payload = serde_json::to_string(event)?;
        self.guarded(async {
            let mut conn = self.connection().await?;
            let _: i64 = redis::cmd("PUBLISH")
                .arg(self.channel())
                .arg(payload)
                .query_async(&mut conn)
                .await?;
            Ok(())
        })
        .await
    }

    async fn open_subscription(
        client: &redis::Client,
        channel: &str,
    ) -> anyhow::Result<redis::aio::PubSub> {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        Ok(tokio::time::timeout(CONNECT_TIMEOUT, subscribed).await??)
    }

    /// Subscribes, then hands every event to `handle` for as long as the process runs; while
    /// Redis is unreachable (now, or after a lost connection) it tries again every second (an
    /// event missed meanwhile is covered by the caches' TTLs).
    pub async fn subscribe<F, Fut>(&self, handle: F) -> anyhow::Result<()>
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let client = self.client.clone();
        let channel = self.channel();
        let first = Self::open_subscription(&client, &channel).await;
        if let Err(e) = &first {
            tracing::warn!(error = %e, "replica events: cannot subscribe; retrying");
        }
        tokio::spawn(async move {
            let mut next = first.ok();
            loop {
                let mut pubsub = match next.take() {
                    Some(pubsub) => pubsub,
                    None => match Self::open_subscription(&client, &channel).await {
                        Ok(pubsub) => pubsub,
                        Err(e) => {
                            tracing::warn!(error = %e, "replica events: cannot subscribe; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    },
                };
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    match serde_json::from_slice::<Event>(message.get_payload_bytes()) {
                        Ok(event) => handle(event).await,
                        Err(e) => tracing::warn!(error = %e, "ignored a malformed replica event"),
                    }
                }
                tracing::warn!("replica events: Redis connection lost; resubscribing");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_a_stable_wire_form() {
        let event = Event::User {
            scope: Some("acme".into()),
            id: 7,
        };
        let text = serde_json::to_string(&event).expect("json");
        assert_eq!(text, r#"{"kind":"user","scope":"acme","id":7}"#);
        assert_eq!(serde_json::from_str::<Event>(&text).expect("parsed"), event);
    }
}
