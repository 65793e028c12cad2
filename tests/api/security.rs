//! Account security: revocation, lockout, rate limits, the audit trail, password policy.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    AppOptions, Backend, PASSWORD, TENANT, TestApp, UserSpec, assert_error, audit, backend_tests,
    spawn_app, spawn_app_with,
};

fn options(backend: &Backend, overrides: &[(&str, &str)]) -> AppOptions {
    AppOptions {
        backend: backend.clone(),
        overrides: overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

async fn post(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.post(path)
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
}

async fn user_id(app: &TestApp, username: &str) -> i64 {
    let token = app.token(Some(TENANT), username).await;
    let me: Value = app.me(&token, None).await.json().await.expect("json");
    me["id"].as_i64().expect("id")
}

backend_tests! {
    async fn a_password_change_revokes_every_earlier_token(backend) {
        let app = spawn_app(backend.clone()).await;
        let first = app.token(Some(TENANT), "juan.perez").await;
        let second = app.token(Some(TENANT), "juan.perez").await;

        assert_eq!(app.change_password(&first, PASSWORD, "NewSecurePass456").await.status(), StatusCode::OK);

        for old in [&first, &second] {
            let detail = assert_error(app.me(old, Some(TENANT)).await, StatusCode::UNAUTHORIZED).await;
            assert!(detail.contains("revoked"), "{detail}");
        }
        let fresh = app.login(Some(TENANT), "juan.perez", "NewSecurePass456").await;
        let token = fresh.json::<Value>().await.expect("json")["access_token"].as_str().expect("token").to_owned();
        assert_eq!(app.me(&token, None).await.status(), StatusCode::OK);
    }
}

backend_tests! {
    async fn a_reset_revokes_the_users_tokens(backend) {
        let app = spawn_app(backend.clone()).await;
        app.create_user(Some(TENANT), UserSpec::new("ana")).await;
        let token = app.token(Some(TENANT), "ana").await;

        let resp = app.reset_password(Some(TENANT), None, "ana@example.com", "Another-Pass-1").await;
        assert_eq!(resp.status(), StatusCode::OK);

        assert_error(app.me(&token, None).await, StatusCode::UNAUTHORIZED).await;
    }
}

backend_tests! {
    async fn deactivation_by_an_admin_revokes_at_once_and_reactivation_does_not_restore(backend) {
        let app = spawn_app(backend.clone()).await;
        let ana = app.create_user(Some(TENANT), UserSpec::new("ana")).await;
        let admin = app.token(Some(TENANT), "juan.perez").await;
        let token = app.token(Some(TENANT), "ana").await;

        let resp = post(&app, &format!("/api/v1/users/{ana}/deactivate"), &admin).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.json::<Value>().await.expect("json")["is_active"], false);

        assert_error(app.me(&token, None).await, StatusCode::UNAUTHORIZED).await;
        assert_error(app.login(Some(TENANT), "ana", PASSWORD).await, StatusCode::FORBIDDEN).await;

        assert_eq!(post(&app, &format!("/api/v1/users/{ana}/activate"), &admin).await.status(), StatusCode::OK);
        assert_error(app.me(&token, None).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(app.login(Some(TENANT), "ana", PASSWORD).await.status(), StatusCode::OK);
    }
}

backend_tests! {
    async fn only_admins_administer_and_never_themselves_out(backend) {
        let app = spawn_app(backend.clone()).await;
        let ana = app.create_user(Some(TENANT), UserSpec::new("ana")).await;
        let juan = user_id(&app, "juan.perez").await;
        let qf = app.token(Some(TENANT), "ana").await;
        let admin = app.token(Some(TENANT), "juan.perez").await;

        assert_error(post(&app, &format!("/api/v1/users/{juan}/deactivate"), &qf).await, StatusCode::FORBIDDEN).await;
        assert_error(post(&app, &format!("/api/v1/users/{ana}/unlock"), &qf).await, StatusCode::FORBIDDEN).await;
        let resp = app.get("/api/v1/audit-events").bearer_auth(&qf).send().await.expect("sent");
        assert_error(resp, StatusCode::FORBIDDEN).await;
        assert_error(post(&app, &format!("/api/v1/users/{juan}/deactivate"), &admin).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_error(post(&app, "/api/v1/users/999999/deactivate", &admin).await, StatusCode::NOT_FOUND).await;
        assert_error(post(&app, "/api/v1/users/abc/deactivate", &admin).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
}

backend_tests! {
    async fn logout_revokes_that_token_only(backend) {
        let app = spawn_app(backend.clone()).await;
        let kept = app.token(Some(TENANT), "juan.perez").await;
        let dropped = app.token(Some(TENANT), "juan.perez").await;

        let resp = post(&app, "/api/v1/auth/logout", &dropped).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.json::<Value>().await.expect("json"), json!({"success": true}));

        assert_error(app.me(&dropped, None).await, StatusCode::UNAUTHORIZED).await;
        assert_error(post(&app, "/api/v1/auth/logout", &dropped).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(app.me(&kept, None).await.status(), StatusCode::OK);

        let refused = audit(&app, &kept, "type=token_refused").await;
        assert_eq!(refused.len(), 2);
        assert!(refused.iter().all(|e| e["details"]["reason"] == "logged_out"));
        assert_eq!(audit(&app, &kept, "type=logout").await.len(), 1);
        let created = audit(&app, &kept, "type=user_created").await;
        assert_eq!(created[0]["subject_username"], "juan.perez");
        assert_eq!(created[0]["details"]["via"], "test");
    }
}

backend_tests! {
    async fn a_logout_survives_a_restart(backend) {
        let app = spawn_app(backend.clone()).await;
        let token = app.token(Some(TENANT), "juan.perez").await;
        assert_eq!(post(&app, "/api/v1/auth/logout", &token).await.status(), StatusCode::OK);

        let restarted = app.restart().await;

        assert_error(restarted.me(&token, None).await, StatusCode::UNAUTHORIZED).await;
    }
}

backend_tests! {
    async fn repeated_failures_lock_the_account_and_it_unlocks_by_admin(backend) {
        let app = spawn_app(backend.clone()).await;
        app.create_user(Some(TENANT), UserSpec::new("ana")).await;
        for _ in 0..5 {
            assert_error(app.login(Some(TENANT), "ana", "WrongPass123").await, StatusCode::UNAUTHORIZED).await;
        }

        let locked = app.login(Some(TENANT), "ana", PASSWORD).await;
        let retry: i64 = locked.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
        assert!((1..=15 * 60).contains(&retry), "{retry}");
        let detail = assert_error(locked, StatusCode::TOO_MANY_REQUESTS).await;

        // A name with no account locks the same way, with the same words.
        for _ in 0..5 {
            assert_error(app.login(Some(TENANT), "nobody", "WrongPass123").await, StatusCode::UNAUTHORIZED).await;
        }
        let phantom = assert_error(app.login(Some(TENANT), "nobody", PASSWORD).await, StatusCode::TOO_MANY_REQUESTS).await;
        assert_eq!(detail, phantom);

        let admin = app.token(Some(TENANT), "juan.perez").await;
        let ana = app.store(Some(TENANT)).await.user_by_email(&vigia::domain::Email::parse("ana@example.com").expect("valid")).await.expect("db").expect("ana").id;
        assert_eq!(post(&app, &format!("/api/v1/users/{ana}/unlock"), &admin).await.status(), StatusCode::OK);
        assert_eq!(app.login(Some(TENANT), "ana", PASSWORD).await.status(), StatusCode::OK);

        let locks = audit(&app, &admin, "type=account_locked").await;
        let names: Vec<&str> = locks.iter().filter_map(|e| e["subject_username"].as_str()).collect();
        assert!(names.contains(&"ana") && names.contains(&"nobody"), "{names:?}");
        assert_eq!(audit(&app, &admin, "type=user_unlocked").await.len(), 1);
    }
}

backend_tests! {
    async fn two_hundred_parallel_wrong_attempts_get_no_more_than_the_threshold_of_tries(backend) {
        let app = spawn_app_with(options(&backend, &[
            ("security.login_attempts_per_ip_per_minute", "10000"),
            ("argon2.queue", "1000"),
        ]))
        .await;
        app.create_user(Some(TENANT), UserSpec::new("target")).await;

        let attempts = (0..200).map(|_| {
            let client = app.client.clone();
            let url = app.url("/api/v1/auth/login");
            tokio::spawn(async move {
                client
                    .post(url)
                    .header("X-Tenant", TENANT)
                    .form(&[("username", "target"), ("password", "WrongPass123")])
                    .send()
                    .await
                    .expect("sent")
                    .status()
            })
        });
        let mut statuses = Vec::new();
        for attempt in attempts {
            statuses.push(attempt.await.expect("joined"));
        }

        let tried = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
        let refused = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
        assert_eq!(tried + refused, 200, "{statuses:?}");
        assert_eq!(tried, 5, "exactly the threshold of password checks");
        let admin = app.token(Some(TENANT), "juan.perez").await;
        let checked = audit(&app, &admin, "type=login_failed&user=target").await;
        let bad = checked.iter().filter(|e| e["details"]["reason"] == "bad_credentials").count();
        assert_eq!(bad, 5);
        assert_eq!(app.login(Some(TENANT), "target", PASSWORD).await.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}

/// Appends a `[security]` table to the tenant's file before the server first loads it.
fn tenant_security(app: &TestApp, table: &str) {
    let path = app.settings.tenants.dir.join(format!("{TENANT}.toml"));
    let text = std::fs::read_to_string(&path).expect("file");
    std::fs::write(&path, format!("{text}\n[security]\n{table}\n")).expect("written");
}

backend_tests! {
    async fn a_tenant_file_can_tighten_its_lockout(backend) {
        let app = spawn_app(backend.clone()).await;
        tenant_security(&app, "lockout_threshold = 2");

        assert_error(app.login(Some(TENANT), "juan.perez", "WrongPass123").await, StatusCode::UNAUTHORIZED).await;
        assert_error(app.login(Some(TENANT), "juan.perez", "WrongPass123").await, StatusCode::UNAUTHORIZED).await;
        assert_error(app.login(Some(TENANT), "juan.perez", PASSWORD).await, StatusCode::TOO_MANY_REQUESTS).await;
    }
}

backend_tests! {
    async fn each_address_gets_a_login_quota(backend) {
        let app = spawn_app_with(options(&backend, &[("security.login_attempts_per_ip_per_minute", "3")])).await;
        for _ in 0..3 {
            assert_eq!(app.login(Some(TENANT), "juan.perez", PASSWORD).await.status(), StatusCode::OK);
        }
        let limited = app.login(Some(TENANT), "juan.perez", PASSWORD).await;
        assert!(limited.headers().contains_key("retry-after"));
        assert_error(limited, StatusCode::TOO_MANY_REQUESTS).await;
    }
}

backend_tests! {
    async fn the_audit_trail_records_who_did_what_and_is_append_only(backend) {
        let app = spawn_app(backend.clone()).await;
        app.create_user(Some(TENANT), UserSpec::new("ana")).await;
        assert_error(app.login(Some(TENANT), "ana", "WrongPass123").await, StatusCode::UNAUTHORIZED).await;
        let ana = app.token(Some(TENANT), "ana").await;
        assert_eq!(app.change_password(&ana, PASSWORD, "Changed-Pass-9").await.status(), StatusCode::OK);
        let admin = app.token(Some(TENANT), "juan.perez").await;
        let resp = app.reset_password(Some(TENANT), Some(&admin), "ana@example.com", "Reset-Pass-77").await;
        assert_eq!(resp.status(), StatusCode::OK);

        let events = audit(&app, &admin, "user=ana").await;
        let types: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().expect("type")).collect();
        assert_eq!(types, ["password_reset", "password_changed", "login_succeeded", "login_failed", "user_created"]);
        let reset = &events[0];
        assert_eq!(reset["actor_username"], "juan.perez");
        assert_eq!(reset["subject_username"], "ana");
        assert_eq!(reset["client_addr"], "127.0.0.1");
        assert!(reset["trace"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(reset["occurred_at"].as_str().expect("time").ends_with('Z'));
        assert_eq!(events[3]["details"]["reason"], "bad_credentials");

        // Filters and keyset pagination.
        let page = app.get("/api/v1/audit-events?user=ana&limit=3").bearer_auth(&admin).send().await.expect("sent");
        let page: Value = page.json().await.expect("json");
        assert_eq!(page["items"].as_array().expect("items").len(), 3);
        let before = page["next_before"].as_i64().expect("cursor");
        let rest = audit(&app, &admin, &format!("user=ana&before={before}")).await;
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[0]["event_type"], "login_failed");
        assert!(audit(&app, &admin, "user=ana&since=2999-01-01T00:00:00Z").await.is_empty());
        assert_eq!(audit(&app, &admin, "user=ana&until=2999-01-01T00:00:00Z").await.len(), 5);
        let bad = app.get("/api/v1/audit-events?since=yesterday").bearer_auth(&admin).send().await.expect("sent");
        assert_error(bad, StatusCode::UNPROCESSABLE_ENTITY).await;
        let bad = app.get("/api/v1/audit-events?type=nope").bearer_auth(&admin).send().await.expect("sent");
        assert_error(bad, StatusCode::UNPROCESSABLE_ENTITY).await;

        // The database itself refuses to rewrite history.
        for sql in ["UPDATE audit_events SET event_type = 'x'", "DELETE FROM audit_events"] {
            assert!(app.execute(sql, None).await.is_err(), "{sql} must be refused");
        }
        assert_eq!(audit(&app, &admin, "user=ana").await.len(), 5);
    }
}

backend_tests! {
    async fn password_policy_is_per_tenant(backend) {
        let app = spawn_app(backend.clone()).await;
        tenant_security(&app, "password_min_length = 12");
        let token = app.token(Some(TENANT), "juan.perez").await;

        let short = app.change_password(&token, PASSWORD, "Short-Pass1").await;
        let detail = assert_error(short, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(detail.contains("12"), "{detail}");
        assert_error(app.change_password(&token, PASSWORD, "JUAN.PEREZ@example.com").await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_error(app.reset_password(Some(TENANT), None, "juan.perez@example.com", "juan.perez").await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(app.change_password(&token, PASSWORD, "Long-Enough-Pass").await.status(), StatusCode::OK);
    }
}

backend_tests! {
    async fn password_aging_refuses_an_old_password_once_it_checked_out(backend) {
        let app = spawn_app_with(options(&backend, &[("security.password_max_age_days", "90")])).await;
        assert_eq!(app.login(Some(TENANT), "juan.perez", PASSWORD).await.status(), StatusCode::OK);
        app.execute("UPDATE users SET password_changed_at = 0", None).await.expect("executed");

        assert_error(app.login(Some(TENANT), "juan.perez", "WrongPass123").await, StatusCode::UNAUTHORIZED).await;
        let detail = assert_error(app.login(Some(TENANT), "juan.perez", PASSWORD).await, StatusCode::FORBIDDEN).await;
        assert!(detail.contains("expired"), "{detail}");
    }
}

backend_tests! {
    async fn no_response_ever_contains_a_password_hash(backend) {
        let app = spawn_app(backend.clone()).await;
        let token = app.token(Some(TENANT), "juan.perez").await;
        let mut bodies = Vec::new();
        let login = app.login(Some(TENANT), "juan.perez", PASSWORD).await;
        bodies.push(login.text().await.expect("text"));
        for path in ["/api/v1/auth/me", "/api/v1/auth/whoami", "/api/v1/audit-events", "/openapi.json"] {
            bodies.push(app.get_with(path, Some(&token), None).await.text().await.expect("text"));
        }
        let juan = user_id(&app, "juan.perez").await;
        bodies.push(post(&app, &format!("/api/v1/users/{juan}/unlock"), &token).await.text().await.expect("text"));
        bodies.push(app.reset_password(Some(TENANT), None, "juan.perez@example.com", PASSWORD).await.text().await.expect("text"));
        for body in bodies {
            assert!(!body.contains("$argon2"), "a hash leaked: {body}");
            assert!(!body.contains("password_hash"), "a hash field leaked: {body}");
        }
    }
}

backend_tests! {
    async fn rotated_secrets_verify_old_tokens_until_removed(backend) {
        let old = "old-secret-0123456789abcdef-0123456789abcdef";
        let new = "new-secret-0123456789abcdef-0123456789abcdef";
        let app = spawn_app_with(options(&backend, &[("jwt.secret", old)])).await;
        let token = app.token(Some(TENANT), "juan.perez").await;

        let rotated = app.restart_with(&[("jwt.secret", &format!("{new},{old}"))]).await;
        assert_eq!(rotated.me(&token, None).await.status(), StatusCode::OK, "old tokens still verify");
        let fresh = rotated.token(Some(TENANT), "juan.perez").await;

        let retired = rotated.restart_with(&[("jwt.secret", new)]).await;
        assert_error(retired.me(&token, None).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(retired.me(&fresh, None).await.status(), StatusCode::OK, "new tokens are signed by the first secret");
    }
}

backend_tests! {
    async fn lockouts_of_unknown_names_are_atomic_and_survive_a_restart(backend) {
        // Security review 2, item 11: a name that matches no account is counted in the tenant's
        // database like an account, so its lock outlives the process as an account's does.
        let app = spawn_app_with(options(&backend, &[
            ("security.login_attempts_per_ip_per_minute", "10000"),
            ("argon2.queue", "1000"),
        ]))
        .await;
        let attempts: Vec<_> = (0..40)
            .map(|_| {
                let (client, url) = (app.client.clone(), app.url("/api/v1/auth/login"));
                tokio::spawn(async move {
                    client
                        .post(url)
                        .header("X-Tenant", TENANT)
                        .form(&[("username", "Ghost"), ("password", "WrongPass123")])
                        .send()
                        .await
                        .expect("sent")
                        .status()
                })
            })
            .collect();
        let mut tried = 0;
        for attempt in attempts {
            match attempt.await.expect("joined") {
                StatusCode::UNAUTHORIZED => tried += 1,
                StatusCode::TOO_MANY_REQUESTS => {}
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!(tried, 5, "exactly the threshold of tries, however parallel");
        let app = app.restart().await;
        let locked = app.login(Some(TENANT), "ghost", PASSWORD).await;
        assert!(locked.headers().contains_key("retry-after"));
        assert_error(locked, StatusCode::TOO_MANY_REQUESTS).await;
        assert_eq!(
            app.login(Some(TENANT), "juan.perez", PASSWORD).await.status(),
            StatusCode::OK,
            "other names are untouched"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_limit_counts_an_ipv6_client_by_its_64() {
    // Security review 2, item 11: one IPv6 host holds a /64 and could take a new address for
    // every attempt. Behind a trusted proxy the client address comes from X-Forwarded-For.
    let app = spawn_app_with(options(
        &Backend::Sqlite,
        &[
            ("security.trust_forwarded_for", "true"),
            ("security.login_attempts_per_ip_per_minute", "3"),
        ],
    ))
    .await;
    let login_from = |addr: &'static str| {
        app.post("/api/v1/auth/login")
            .header("X-Tenant", TENANT)
            .header("X-Forwarded-For", addr)
            .form(&[("username", "juan.perez"), ("password", PASSWORD)])
            .send()
    };
    for addr in [
        "2001:db8:5:6::1",
        "2001:db8:5:6::2",
        "2001:db8:5:6:ffff:1:2:3",
    ] {
        assert_eq!(
            login_from(addr).await.expect("sent").status(),
            StatusCode::OK,
            "{addr}"
        );
    }
    let fourth = login_from("2001:db8:5:6:abcd::9").await.expect("sent");
    let detail = assert_error(fourth, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(detail.contains("address"), "{detail}");
    assert_eq!(
        login_from("2001:db8:5:7::1").await.expect("sent").status(),
        StatusCode::OK,
        "another /64 is another client"
    );
}

backend_tests! {
    async fn answers_that_carry_personal_data_or_tokens_are_never_stored_by_caches(backend) {
        // Security review 2, item 11.
        let app = spawn_app(backend.clone()).await;
        let login = app.login(Some(TENANT), "juan.perez", PASSWORD).await;
        assert_eq!(login.headers()["cache-control"], "no-store");
        let token = app.token(Some(TENANT), "juan.perez").await;
        for path in ["/api/v1/auth/me", "/api/v1/auth/whoami", "/api/v1/users", "/api/v1/icsrs", "/api/v1/audit-events", "/api/v1/users/1"] {
            let resp = app.get(path).bearer_auth(&token).send().await.expect("sent");
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            assert_eq!(resp.headers()["cache-control"], "no-store", "{path}");
        }
        let refused = app.get("/api/v1/auth/me").send().await.expect("sent");
        assert_eq!(refused.headers()["cache-control"], "no-store");
    }
}

/// Every file and directory under `dir` with its permission bits, `dir` itself included.
#[cfg(unix)]
fn modes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, bool, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(dir).expect("stat");
    let mut out = vec![(
        dir.to_path_buf(),
        meta.is_dir(),
        meta.permissions().mode() & 0o7777,
    )];
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            out.extend(modes(&entry.expect("entry").path()));
        }
    }
    out
}

/// Issue 12, finding 9: the data directory and its subdirectories are 0700, and every SQLite
/// file in it — databases and their `-wal` and `-shm` files, made by the server at start, by
/// the operators' API and by the CLI — is 0600; a data directory found open is tightened.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_and_the_data_directory_are_private_to_the_service_user() {
    use std::os::unix::fs::PermissionsExt;
    const OPERATOR: &str = "operator-token-0123456789abcdef-0123456789";
    let app = spawn_app_with(options(&Backend::Sqlite, &[("admin.token", OPERATOR)])).await;
    app.token(Some(TENANT), "juan.perez").await;
    let resp = app
        .post("/api/v1/admin/tenants")
        .bearer_auth(OPERATOR)
        .json(&json!({
            "id": "globex",
            "name": "Globex",
            "admin": {"username": "ana", "email": "ana@globex.example", "password": PASSWORD},
        }))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::CREATED);
    app.token(Some("globex"), "ana").await;
    let out = app
        .cli()
        .args(["tenant", "create", "initech"])
        .output()
        .expect("vigia runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let found = modes(&app.data_dir());
    let names: Vec<String> = found
        .iter()
        .map(|(path, _, _)| {
            path.file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for expected in [
        "legacy.db",
        "acme.db",
        "acme.db-wal",
        "acme.db-shm",
        "globex.db",
        "globex.db-wal",
        "globex.db-shm",
        "initech.db",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
    for (path, is_dir, mode) in &found {
        let want = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{} is {mode:04o}", path.display());
    }

    // An open data directory (as an older version made it) is tightened at start.
    std::fs::set_permissions(app.data_dir(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let app = app.restart().await;
    let mode = std::fs::metadata(app.data_dir())
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o700);
}
