//! With `redis.url`, login throttling lives in Redis; a client sees the same answers as from a
//! server keeping it in memory. Ignored unless `VIGIA_TEST_REDIS_URL` was set when it was built
//! (and, for the Postgres variant, `VIGIA_TEST_POSTGRES_URL`); the outage test starts and stops
//! a `redis-server` of its own, and fails when there is none to start.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    AppOptions, Backend, PASSWORD, RedisKeys, TENANT, assert_error, eventually, redis_url,
    spawn_app_with,
};

/// On both backends, as `backend_tests!` declares a test, but both variants need Redis.
mod throttling_goes_through_redis_and_unknown_names_still_lock {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(vigia_test_redis),
        ignore = "needs VIGIA_TEST_REDIS_URL: a Redis to keep the login counters in"
    )]
    async fn sqlite() {
        test_body(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(all(vigia_test_postgres, vigia_test_redis)),
        ignore = "needs VIGIA_TEST_POSTGRES_URL and VIGIA_TEST_REDIS_URL: a PostgreSQL server to create test databases on, a Redis to keep the login counters in"
    )]
    async fn postgres() {
        test_body(Backend::postgres()).await
    }

    async fn test_body(backend: Backend) {
        let url = redis_url();
        let keys = RedisKeys::new(url.clone());
        let app = spawn_app_with(AppOptions {
            backend: backend.clone(),
            overrides: vec![
                ("redis.url".into(), url),
                ("redis.key_prefix".into(), keys.prefix.clone()),
                (
                    "security.login_attempts_per_ip_per_minute".into(),
                    "12".into(),
                ),
            ],
            ..Default::default()
        })
        .await;
        let ready = app.get("/readyz").send().await.expect("sent");
        assert_eq!(ready.status(), StatusCode::OK);

        // A name without an account locks like an account (in the tenant's database, shared by
        // the replicas like the account's own lock).
        for _ in 0..5 {
            assert_error(
                app.login(Some(TENANT), "ghost", "wrong-password").await,
                StatusCode::UNAUTHORIZED,
            )
            .await;
        }
        let resp = app.login(Some(TENANT), "ghost", PASSWORD).await;
        assert!(resp.headers().contains_key("retry-after"));
        assert_error(resp, StatusCode::TOO_MANY_REQUESTS).await;
        // The per-address limit: within two minute windows at most 2 × 12 attempts pass.
        let mut throttled = false;
        for _ in 0..25 {
            let resp = app
                .login(Some(TENANT), "juan.perez", "wrong-password")
                .await;
            if resp.status() == StatusCode::TOO_MANY_REQUESTS {
                let detail = assert_error(resp, StatusCode::TOO_MANY_REQUESTS).await;
                if detail.contains("address") {
                    throttled = true;
                    break;
                }
            }
        }
        assert!(throttled, "the address limit held");
        let mut conn = keys.connection().await;
        let counted: Vec<String> = deadpool_redis::redis::cmd("KEYS")
            .arg(format!("{}:rate:127.0.0.1:*", keys.prefix))
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        assert!(!counted.is_empty(), "the address was counted in Redis");
    }
}

/// `redis-server` on `port`, stopped when dropped (also when the test fails).
struct OwnRedis(std::process::Child);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn own_redis(port: u16) -> OwnRedis {
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-server does not start: install it (Debian: apt-get install redis-server)");
    OwnRedis(child)
}

/// Keys of this deployment's address counters in the Redis at `url`.
async fn rate_keys(url: &str) -> Option<Vec<String>> {
    let client = deadpool_redis::redis::Client::open(url).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    deadpool_redis::redis::cmd("KEYS")
        .arg("outage:rate:*")
        .query_async(&mut conn)
        .await
        .ok()
}

/// The readiness answer's `status` and `shared_state`.
async fn readiness(app: &crate::helpers::TestApp) -> (StatusCode, serde_json::Value) {
    let resp = app.get("/readyz").send().await.expect("sent");
    (resp.status(), resp.json().await.expect("json"))
}

/// In the Redis group although it leaves `VIGIA_TEST_REDIS_URL`'s server alone: a machine with
/// that Redis has `redis-server` (CI's does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(vigia_test_redis),
    ignore = "needs VIGIA_TEST_REDIS_URL (the Redis group): redis-server, to start and stop one of the test's own"
)]
async fn a_redis_outage_degrades_logins_but_does_not_stop_them() {
    // Issue 17, item 6: with redis.url set and Redis down, every login used to answer 503.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let redis = own_redis(port);
    let url = format!("redis://127.0.0.1:{port}");
    eventually(Duration::from_secs(10), || rate_keys(&url)).await;
    let app = spawn_app_with(AppOptions {
        overrides: vec![
            ("redis.url".into(), url.clone()),
            ("redis.key_prefix".into(), "outage".into()),
        ],
        ..Default::default()
    })
    .await;
    let token = app.token(Some(TENANT), "juan.perez").await;
    assert_eq!(
        readiness(&app).await,
        (
            StatusCode::OK,
            json!({"status": "ok", "shared_state": "ok"})
        )
    );
    assert!(
        !rate_keys(&url).await.expect("keys").is_empty(),
        "counted in Redis"
    );

    drop(redis);
    for _ in 0..3 {
        assert_eq!(
            app.login(Some(TENANT), "juan.perez", PASSWORD)
                .await
                .status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        app.whoami(&token, None).await.status(),
        StatusCode::OK,
        "token checks go on"
    );
    assert_eq!(
        readiness(&app).await,
        (
            StatusCode::OK,
            json!({"status": "degraded", "shared_state": "unreachable"})
        ),
        "ready (kept by the load balancer), and honest about it"
    );
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("vigia_shared_state_degraded 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("vigia_shared_state_fallbacks_total 0\n"),
        "{metrics}"
    );

    // Redis returns (empty): the next logins are counted there again.
    let _redis = own_redis(port);
    eventually(Duration::from_secs(20), || async {
        let resp = app.login(Some(TENANT), "juan.perez", PASSWORD).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let keys = rate_keys(&url).await?;
        (!keys.is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        readiness(&app).await,
        (
            StatusCode::OK,
            json!({"status": "ok", "shared_state": "ok"})
        )
    );
}
