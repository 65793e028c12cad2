//! What replicas share through Redis (`redis.url`): counters that have no database row (login
//! attempts per client address), and events that tell
//! every replica to drop what it caches (a user changed, a token was revoked, a tenant's entry
//! changed). Without Redis both stay in-process, and a client sees the same behaviour from a
//! single server.
//!
//! Events are Redis pub/sub messages on one channel: at most once, in order per publisher. A
//! replica that misses one (Redis restarted, a reconnect) still converges: user snapshots expire
//! after `security.user_cache_millis`, tenant entries are re-checked every
//! `tenants.recheck_millis`, and revocations are in the tenant's database, read when the tenant
//! is loaded.

use std::time::Duration;

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
    /// Connects (and checks the connection) when `redis.url` is set.
    pub async fn connect(settings: &RedisSettings) -> anyhow::Result<Option<Self>> {
        let Some(url) = &settings.url else {
            return Ok(None);
        };
        let url = url.expose_secret();
        let mut config = Config::from_url(url);
        config.pool = Some(deadpool_redis::PoolConfig::new(settings.pool_size.max(1)));
        let pool = config.create_pool(Some(Runtime::Tokio1))?;
        let client = redis::Client::open(url)?;
        let redis = Self {
            pool,
            client,
            prefix: settings.key_prefix.clone(),
        };
        redis
            .ping()
            .await
            .map_err(|e| anyhow::anyhow!("Redis at redis.url does not answer: {e}"))?;
        Ok(Some(redis))
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
        let mut conn = self.connection().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// Counts one login attempt from `addr` in the current minute; the count so far.
    pub async fn hit_address(&self, addr: &str, minute: i64) -> anyhow::Result<i64> {
        let key = self.key(&["rate", addr, &minute.to_string()]);
        let mut conn = self.connection().await?;
        let (count,): (i64,) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .expire(&key, 120)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(count)
    }

    /// Tells every replica (this one included) of `event`.
    pub async fn publish(&self, event: &Event) -> anyhow::Result<()> {
        let payload = serde_json::to_string(event)?;
        let mut conn = self.connection().await?;
        let _: i64 = redis::cmd("PUBLISH")
            .arg(self.channel())
            .arg(payload)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn open_subscription(
        client: &redis::Client,
        channel: &str,
    ) -> redis::RedisResult<redis::aio::PubSub> {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok(pubsub)
    }

    /// Subscribes (an error if Redis refuses now), then hands every event to `handle` for as
    /// long as the process runs; after a lost connection it subscribes again (an event missed
    /// meanwhile is covered by the caches' TTLs).
    pub async fn subscribe<F, Fut>(&self, handle: F) -> anyhow::Result<()>
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let client = self.client.clone();
        let channel = self.channel();
        let first = Self::open_subscription(&client, &channel).await?;
        tokio::spawn(async move {
            let mut next = Some(first);
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
