//! With `redis.url`, login throttling lives in Redis; a client sees the same answers as from a
//! server keeping it in memory. Runs when
//! `VIGIA_TEST_REDIS_URL` is set.

use reqwest::StatusCode;

use crate::helpers::{
    AppOptions, PASSWORD, RedisKeys, TENANT, assert_error, backend_tests, redis_url, spawn_app_with,
};

backend_tests! {
    async fn throttling_goes_through_redis_and_unknown_names_still_lock(backend) {
        let Some(url) = redis_url() else {
            eprintln!("skipped: set VIGIA_TEST_REDIS_URL");
            return;
        };
        let keys = RedisKeys::new(url.clone());
        let app = spawn_app_with(AppOptions {
            backend: backend.clone(),
            overrides: vec![
                ("redis.url".into(), url),
                ("redis.key_prefix".into(), keys.prefix.clone()),
                ("security.login_attempts_per_ip_per_minute".into(), "12".into()),
            ],
            ..Default::default()
        })
        .await;
        let ready = app.get("/readyz").send().await.expect("sent");
        assert_eq!(ready.status(), StatusCode::OK);

        // A name without an account locks like an account (in the tenant's database, shared by
        // the replicas like the account's own lock).
        for _ in 0..5 {
            assert_error(app.login(Some(TENANT), "ghost", "wrong-password").await, StatusCode::UNAUTHORIZED).await;
        }
        let resp = app.login(Some(TENANT), "ghost", PASSWORD).await;
        assert!(resp.headers().contains_key("retry-after"));
        assert_error(resp, StatusCode::TOO_MANY_REQUESTS).await;
        // The per-address limit: within two minute windows at most 2 × 12 attempts pass.
        let mut throttled = false;
        for _ in 0..25 {
            let resp = app.login(Some(TENANT), "juan.perez", "wrong-password").await;
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
