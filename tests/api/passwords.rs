//! Passwords: change, reset (open in development, an account administrator's in production),
//! and the upgrade of hashes made with older argon2 parameters.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use vigia::{
    auth::password::Hasher,
    config::Argon2Settings,
    domain::{LoginIdentifier, Password},
    store::audit::{AuditType, NewAuditEvent},
};

use crate::helpers::{
    AppOptions, PASSWORD, TENANT, TestApp, UserSpec, assert_error, audit, backend_tests,
    eventually, spawn_app, spawn_app_with,
};

/// Argon2id parameters older (cheaper) than the server's.
const OLD_PARAMETERS: Argon2Settings = Argon2Settings {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
    workers: 1,
    queue: 1,
};

/// A hash of `password` at `parameters`.
async fn hash_of(parameters: &Argon2Settings, password: &str) -> String {
    Hasher::new(parameters)
        .expect("hasher")
        .hash(
            &vigia::domain::Scope::Legacy,
            Password::parse(password.into(), "password").expect("valid"),
        )
        .await
        .expect("hash")
}

/// The hash stored for `username` in [`TENANT`], read behind the server's back.
async fn stored_hash(app: &TestApp, username: &str) -> String {
    let store = app.store(Some(TENANT)).await;
    let user = store
        .user_by_login(&LoginIdentifier::parse(username).expect("valid"))
        .await
        .expect("read")
        .expect("user exists");
    store.close().await;
    user.password_hash
}

backend_tests! {
    async fn a_changed_password_replaces_the_old_one(backend) {
        let app = spawn_app(backend.clone()).await;
        let token = app.token(Some(TENANT), "juan.perez").await;

        let resp = app
            .change_password(&token, PASSWORD, "NewSecurePass456")
            .await;

        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.json::<Value>().await.expect("json"),
            serde_json::json!({"success": true})
        );
        assert_error(
            app.login(Some(TENANT), "juan.perez", PASSWORD).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert_eq!(
            app.login(Some(TENANT), "juan.perez", "NewSecurePass456")
                .await
                .status(),
            StatusCode::OK
        );
    }
}

backend_tests! {
    async fn change_password_checks_the_current_one_and_the_new_ones_length(backend) {
        let app = spawn_app(backend.clone()).await;
        let token = app.token(Some(TENANT), "juan.perez").await;

        assert_error(
            app.change_password(&token, "WrongPass123", "NewSecurePass456")
                .await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert_error(
            app.change_password(&token, PASSWORD, "short").await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_error(
            app.change_password(&token, PASSWORD, PASSWORD).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        let missing = app
            .post("/api/v1/auth/change-password")
            .bearer_auth(&token)
            .json(&serde_json::json!({"current_password": PASSWORD}))
            .send()
            .await
            .expect("sent");
        assert_error(missing, StatusCode::UNPROCESSABLE_ENTITY).await;
        // Nothing changed.
        assert_eq!(
            app.login(Some(TENANT), "juan.perez", PASSWORD)
                .await
                .status(),
            StatusCode::OK
        );
    }
}

backend_tests! {
    async fn change_password_needs_a_token(backend) {
        let app = spawn_app(backend.clone()).await;
        let resp = app
            .post("/api/v1/auth/change-password")
            .json(
                &serde_json::json!({"current_password": PASSWORD, "new_password": "NewSecurePass456"}),
            )
            .send()
            .await
            .expect("sent");
        assert_error(resp, StatusCode::UNAUTHORIZED).await;
    }
}

backend_tests! {
    async fn reset_password_is_open_in_development(backend) {
        let app = spawn_app(backend.clone()).await;

        let resp = app
            .reset_password(
                Some(TENANT),
                None,
                "Juan.Perez@example.com",
                "NewPassword123",
            )
            .await;

        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.expect("json");
        assert_eq!(
            body,
            serde_json::json!({"email": "juan.perez@example.com", "tenant": TENANT, "success": true})
        );
        assert_eq!(
            app.login(Some(TENANT), "juan.perez", "NewPassword123")
                .await
                .status(),
            StatusCode::OK
        );
    }
}

backend_tests! {
    async fn reset_password_needs_a_tenant_a_known_email_and_a_valid_password(backend) {
        let app = spawn_app(backend.clone()).await;
        assert_error(
            app.reset_password(None, None, "juan.perez@example.com", "NewPassword123")
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_error(
            app.reset_password(Some(TENANT), None, "nobody@example.com", "NewPassword123")
                .await,
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_error(
            app.reset_password(Some(TENANT), None, "juan.perez@example.com", "short")
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_error(
            app.reset_password(Some(TENANT), None, "not-an-email", "NewPassword123")
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_error(
            app.reset_password(
                Some("ghost"),
                None,
                "juan.perez@example.com",
                "NewPassword123",
            )
            .await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
}

backend_tests! {
    async fn in_production_reset_password_needs_an_admin_of_the_same_tenant(backend) {
        let app = spawn_app_with(AppOptions {
            backend: backend.clone(),
            overrides: vec![("environment".into(), "production".into())],
            ..Default::default()
        })
        .await;
        app.create_user(Some(TENANT), UserSpec::new("ana").roles(&["qf"]))
            .await;
        app.provision_tenant("other").await;
        app.create_user(Some("other"), UserSpec::new("boss").roles(&["admin"]))
            .await;
        let qf = app.token(Some(TENANT), "ana").await;
        let foreign_admin = app.token(Some("other"), "boss").await;
        let admin = app.token(Some(TENANT), "juan.perez").await;
        let target = "ana@example.com";

        assert_error(
            app.reset_password(Some(TENANT), None, target, "NewPassword123")
                .await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert_error(
            app.reset_password(Some(TENANT), Some(&qf), target, "NewPassword123")
                .await,
            StatusCode::FORBIDDEN,
        )
        .await;
        assert_error(
            app.reset_password(Some(TENANT), Some(&foreign_admin), target, "NewPassword123")
                .await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert_eq!(
            app.login(Some(TENANT), "ana", PASSWORD).await.status(),
            StatusCode::OK,
            "refused resets change nothing"
        );

        let resp = app
            .reset_password(Some(TENANT), Some(&admin), target, "NewPassword123")
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            app.login(Some(TENANT), "ana", "NewPassword123")
                .await
                .status(),
            StatusCode::OK
        );
    }
}

backend_tests! {
    async fn wrong_current_passwords_count_as_failed_logins_and_lock_the_account(backend) {
        // Security review 2, item 4: a stolen token used to allow unlimited guesses of the
        // current password.
        let app = spawn_app(backend.clone()).await;
        let token = app.token(Some(TENANT), "juan.perez").await;
        let admin = app.token(Some(TENANT), "juan.perez").await;
        for guess in 1..=5 {
            assert_error(
                app.change_password(&token, &format!("Guess-{guess}-Pass"), "NewSecurePass456").await,
                StatusCode::UNAUTHORIZED,
            )
            .await;
        }
        // The threshold (5) is reached: the account is locked, for guesses and logins alike,
        // even with the right password.
        let sixth = app.change_password(&token, PASSWORD, "NewSecurePass456").await;
        let wait: u64 = sixth
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Retry-After seconds");
        assert!(wait > 0 && wait <= 15 * 60, "{wait}");
        assert_error(sixth, StatusCode::TOO_MANY_REQUESTS).await;
        assert_error(app.login(Some(TENANT), "juan.perez", PASSWORD).await, StatusCode::TOO_MANY_REQUESTS).await;

        let failed = audit(&app, &admin, "type=login_failed").await;
        let via_change: Vec<_> = failed
            .iter()
            .filter(|e| e["details"]["via"] == "change_password")
            .collect();
        assert_eq!(via_change.len(), 6, "five wrong guesses and one refusal while locked");
        assert_eq!(audit(&app, &admin, "type=account_locked").await.len(), 1);
    }
}

backend_tests! {
    async fn a_login_with_old_hash_parameters_upgrades_the_hash_and_audits_it(backend) {
        let app = spawn_app(backend.clone()).await;
        let old = hash_of(&OLD_PARAMETERS, PASSWORD).await;
        let mut ana = UserSpec::new("ana").into_new_user(&app.settings).await;
        ana.password_hash = old.clone();
        let store = app.store(Some(TENANT)).await;
        store
            .create_user(&ana, &NewAuditEvent::by_operator(AuditType::UserCreated, "test"))
            .await
            .expect("user created");
        store.close().await;

        let token = app.token(Some(TENANT), "ana").await;

        let argon2 = &app.settings.argon2;
        let current = format!(
            "$argon2id$v=19$m={},t={},p={}$",
            argon2.memory_kib, argon2.iterations, argon2.parallelism
        );
        eventually(Duration::from_secs(10), || async {
            stored_hash(&app, "ana").await.starts_with(&current).then_some(())
        })
        .await;
        // The same password, re-hashed: it still logs in, and no token was revoked.
        assert_eq!(app.me(&token, None).await.status(), StatusCode::OK);
        assert_eq!(app.login(Some(TENANT), "ana", PASSWORD).await.status(), StatusCode::OK);
        let admin = app.token(Some(TENANT), "juan.perez").await;
        let events = audit(&app, &admin, "type=password_rehashed").await;
        assert_eq!(events.len(), 1, "{events:?}");
        let event = &events[0];
        assert_eq!(event["subject_username"], "ana");
        assert!(event["trace"].as_str().is_some_and(|t| !t.is_empty()));
        assert_eq!(
            event["details"],
            json!({
                "old": {"algorithm": "argon2id", "version": 19, "m": 1024, "t": 1, "p": 1},
                "new": {
                    "algorithm": "argon2id",
                    "version": 19,
                    "m": argon2.memory_kib,
                    "t": argon2.iterations,
                    "p": argon2.parallelism,
                },
            })
        );
        assert!(!event.to_string().contains('$'), "no hash material: {event}");
    }
}

backend_tests! {
    async fn a_right_current_password_clears_earlier_wrong_guesses(backend) {
        let app = spawn_app(backend.clone()).await;
        let token = app.token(Some(TENANT), "juan.perez").await;
        for guess in 1..=4 {
            let resp = app.change_password(&token, &format!("Guess-{guess}-Pass"), "NewSecurePass456").await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        }
        assert_eq!(app.change_password(&token, PASSWORD, "NewSecurePass456").await.status(), StatusCode::OK);
        let token = app.token_with(Some(TENANT), "juan.perez", "NewSecurePass456").await;
        for guess in 1..=4 {
            let resp = app.change_password(&token, &format!("Guess-{guess}-Pass"), PASSWORD).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "the counter started again");
        }
        assert_eq!(app.change_password(&token, "NewSecurePass456", PASSWORD).await.status(), StatusCode::OK);
    }
}

backend_tests! {
    async fn a_hash_upgrade_never_undoes_a_reset_that_landed_after_the_verification(backend) {
        // The race, step by step: a login verified ana's hash, a reset replaces it, and only
        // then does the login's upgrade (a re-hash of the old password) reach the store.
        let app = spawn_app(backend.clone()).await;
        let ana = app.create_user(Some(TENANT), UserSpec::new("ana")).await;
        let verified = stored_hash(&app, "ana").await;
        let resp = app
            .reset_password(Some(TENANT), None, "ana@example.com", "NewPassword123")
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let store = app.store(Some(TENANT)).await;
        let event = NewAuditEvent::by_operator(AuditType::PasswordRehashed, "test");

        let stale = hash_of(&app.settings.argon2, PASSWORD).await;
        let applied = store
            .upgrade_password_hash(ana, &verified, &stale, &event)
            .await
            .expect("upgrade");

        assert!(!applied, "the upgrade of a replaced hash must not apply");
        assert_error(
            app.login(Some(TENANT), "ana", PASSWORD).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert_eq!(
            app.login(Some(TENANT), "ana", "NewPassword123").await.status(),
            StatusCode::OK
        );
        let admin = app.token(Some(TENANT), "juan.perez").await;
        assert!(audit(&app, &admin, "type=password_rehashed").await.is_empty());

        // The hash that is still stored is replaced, and the upgrade recorded.
        let current = stored_hash(&app, "ana").await;
        let rehashed = hash_of(&app.settings.argon2, "NewPassword123").await;
        let applied = store
            .upgrade_password_hash(ana, &current, &rehashed, &event)
            .await
            .expect("upgrade");
        assert!(applied);
        assert_eq!(stored_hash(&app, "ana").await, rehashed);
        assert_eq!(audit(&app, &admin, "type=password_rehashed").await.len(), 1);
        store.close().await;
    }
}
