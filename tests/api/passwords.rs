use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    AppOptions, PASSWORD, TENANT, UserSpec, assert_error, audit, backend_tests, spawn_app,
    spawn_app_with,
};

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
