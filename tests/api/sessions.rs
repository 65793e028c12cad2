//! Sessions and refresh tokens (RFC 6749 §6, RFC 9700 §4.14.2): each refresh token works once,
//! a spent one presented again ends its whole family, and the events that change what a user
//! may do end the user's sessions.

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{
    AppOptions, PASSWORD, TENANT, TestApp, UserSpec, assert_error, assert_oauth_error, audit,
    backend_tests, jwt_claims, put, spawn_app, spawn_app_with,
};

/// Logs `username` in through the seed's endpoint; its access and refresh tokens.
async fn login(app: &TestApp, username: &str) -> (String, String) {
    let resp = app.login(Some(TENANT), username, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("JSON");
    let access = body["access_token"].as_str().expect("access token");
    let refresh = body["refresh_token"]
        .as_str()
        .expect("the seed's login gains a refresh token");
    (access.to_owned(), refresh.to_owned())
}

async fn refresh(app: &TestApp, token: &str) -> Response {
    app.refresh_grant(Some(TENANT), token).await
}

/// Refreshes `token`, asserting success; the new access and refresh tokens.
async fn refreshed(app: &TestApp, token: &str) -> (String, String) {
    let resp = refresh(app, token).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(
        body["user"]["username"].as_str().map(str::is_empty),
        Some(false)
    );
    (
        body["access_token"].as_str().expect("access").to_owned(),
        body["refresh_token"].as_str().expect("refresh").to_owned(),
    )
}

async fn refused(app: &TestApp, token: &str) {
    assert_oauth_error(
        refresh(app, token).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

backend_tests! {
    async fn a_refresh_token_works_once_and_its_reuse_ends_the_family(backend) {
        let app = spawn_app(backend.clone()).await;
        let (first_access, first) = login(&app, "juan.perez").await;
        let (other_access, other) = login(&app, "juan.perez").await;
        let sid = jwt_claims(&first_access)["sid"].clone();
        assert!(sid.is_string());
        assert_ne!(jwt_claims(&other_access)["sid"], sid, "each login opens its own session");

        let (second_access, second) = refreshed(&app, &first).await;
        assert_ne!(second, first);
        assert_eq!(jwt_claims(&second_access)["sid"], sid, "a refresh stays in its session");
        assert_eq!(app.whoami(&second_access, None).await.status(), StatusCode::OK);
        let (third_access, third) = refreshed(&app, &second).await;

        // The first token again: someone holds a copy. The whole family ends, its live access
        // tokens with it, and the audit trail raises the alert.
        refused(&app, &first).await;
        refused(&app, &third).await;
        for token in [&first_access, &second_access, &third_access] {
            assert_error(app.whoami(token, None).await, StatusCode::UNAUTHORIZED).await;
        }
        // The user's other session is untouched.
        assert_eq!(app.whoami(&other_access, None).await.status(), StatusCode::OK);
        refreshed(&app, &other).await;

        // Dead tokens presented again write nothing more: one alert per family.
        refused(&app, &first).await;
        refused(&app, &third).await;
        let admin = app.token(Some(TENANT), "juan.perez").await;
        let alerts = audit(&app, &admin, "type=refresh_token_reused").await;
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0]["details"]["sid"], sid);
        assert_eq!(alerts[0]["subject_username"], "juan.perez");
        let refreshes = audit(&app, &admin, "type=token_refreshed").await;
        assert_eq!(refreshes.len(), 3);
    }
}

backend_tests! {
    async fn concurrent_presentations_of_one_token_rotate_it_at_most_once(backend) {
        let app = spawn_app(backend.clone()).await;
        let (_, token) = login(&app, "juan.perez").await;
        let attempts = (0..8).map(|_| refresh(&app, &token));
        let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
            .await
            .into_iter()
            .map(|r| r.status())
            .collect();
        let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert!(won <= 1, "{statuses:?}");
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST),
            "{statuses:?}"
        );
        // The losers were reuses: the family is over, the winner's token included.
        refused(&app, &token).await;
    }
}

backend_tests! {
    async fn password_changes_resets_deactivation_role_changes_and_logout_end_sessions(backend) {
        let app = spawn_app(backend.clone()).await;
        let admin = app.token(Some(TENANT), "juan.perez").await;
        let ana = app.create_user(Some(TENANT), UserSpec::new("ana").roles(&["qf"])).await;

        // Role change.
        let (_, token) = login(&app, "ana").await;
        let resp = put(&app, &admin, &format!("/api/v1/users/{ana}/roles"), json!({"roles": ["admin", "qf"]})).await;
        assert!(resp.status().is_success(), "{}", resp.status());
        refused(&app, &token).await;

        // Password change.
        let (access, token) = login(&app, "ana").await;
        let resp = app.change_password(&access, PASSWORD, "AnotherPass456").await;
        assert_eq!(resp.status(), StatusCode::OK);
        refused(&app, &token).await;

        // Reset by an administrator.
        let resp = app.reset_password(Some(TENANT), Some(&admin), "ana@example.com", PASSWORD).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let (_, token) = login(&app, "ana").await;
        let resp = app.reset_password(Some(TENANT), Some(&admin), "ana@example.com", "ThirdPass789").await;
        assert_eq!(resp.status(), StatusCode::OK);
        refused(&app, &token).await;
        let resp = app.reset_password(Some(TENANT), Some(&admin), "ana@example.com", PASSWORD).await;
        assert_eq!(resp.status(), StatusCode::OK);

        // Deactivation; activating again does not bring the session back.
        let (_, token) = login(&app, "ana").await;
        for action in ["deactivate", "activate"] {
            let resp = app
                .post(&format!("/api/v1/users/{ana}/{action}"))
                .bearer_auth(&admin)
                .send()
                .await
                .expect("sent");
            assert!(resp.status().is_success(), "{action}: {}", resp.status());
        }
        refused(&app, &token).await;

        // Logout ends the session of the presented token, and only that one.
        let (access, token) = login(&app, "ana").await;
        let (_, kept) = login(&app, "ana").await;
        let resp = app.post("/api/v1/auth/logout").bearer_auth(&access).send().await.expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);
        refused(&app, &token).await;
        refreshed(&app, &kept).await;
    }
}

backend_tests! {
    async fn sessions_idle_out_and_end_at_their_absolute_lifetime(backend) {
        let app = spawn_app_with(AppOptions {
            backend: backend.clone(),
            overrides: vec![("security.session_idle_minutes".into(), "15".into())],
            ..Default::default()
        })
        .await;
        // An access token lives no longer than the idle timeout, so an idle client is logged
        // off within it.
        let resp = app.login(Some(TENANT), "juan.perez", PASSWORD).await;
        let body: Value = resp.json().await.expect("JSON");
        assert_eq!(body["expires_in"], 15 * 60);
        let access = body["access_token"].as_str().expect("access");
        assert_eq!(jwt_claims(access)["exp"].as_u64().zip(jwt_claims(access)["iat"].as_u64()).map(|(e, i)| e - i), Some(900));
        let token = body["refresh_token"].as_str().expect("refresh").to_owned();
        let (_, next) = refreshed(&app, &token).await;

        // Sixteen minutes without a refresh (moved behind the server's back).
        app.execute("UPDATE refresh_sessions SET last_used_at = last_used_at - 960", None)
            .await
            .expect("updated");
        refused(&app, &next).await;

        // An access token never outlives its session: ten minutes before the end, a refresh
        // gives ten minutes at most.
        let (_, token) = login(&app, "juan.perez").await;
        app.execute("UPDATE refresh_sessions SET expires_at = last_used_at + 600 WHERE ended_at IS NULL", None)
            .await
            .expect("updated");
        let (access, token) = refreshed(&app, &token).await;
        let lifetime = jwt_claims(&access)["exp"].as_u64().zip(jwt_claims(&access)["iat"].as_u64()).map(|(e, i)| e - i);
        assert!(lifetime.is_some_and(|l| l <= 600), "{lifetime:?}");

        // However active, a session ends at its absolute lifetime.
        app.execute("UPDATE refresh_sessions SET expires_at = expires_at - 86400 WHERE ended_at IS NULL", None)
            .await
            .expect("updated");
        refused(&app, &token).await;

        let admin = app.token(Some(TENANT), "juan.perez").await;
        let reasons: Vec<Value> = audit(&app, &admin, "type=token_refused")
            .await
            .iter()
            .map(|e| e["details"]["reason"].clone())
            .collect();
        assert!(reasons.contains(&json!("session_idle")), "{reasons:?}");
        assert!(reasons.contains(&json!("session_expired")), "{reasons:?}");
    }
}

backend_tests! {
    async fn refresh_tokens_are_stored_hashed_and_bound_to_their_tenant(backend) {
        let app = spawn_app(backend.clone()).await;
        let (_, token) = login(&app, "juan.perez").await;
        let store = app.store(Some(TENANT)).await;
        assert!(store.refresh_record(&token).await.expect("read").is_none(), "never stored as is");
        let hash = format!("{:x}", Sha256::digest(token.as_bytes()));
        assert!(store.refresh_record(&hash).await.expect("read").is_some());
        store.close().await;

        // Another issuer (another tenant's database, or the legacy one) knows nothing of it.
        app.provision_tenant("globex").await;
        for issuer in [Some("globex"), None] {
            let resp = app.refresh_grant(issuer, &token).await;
            assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
        }
        for garbage in ["x", "", &"A".repeat(4000)] {
            assert_eq!(refresh(&app, garbage).await.status(), StatusCode::BAD_REQUEST);
        }
        // None of that spent it.
        refreshed(&app, &token).await;
    }
}
