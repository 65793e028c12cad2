//! The first development start: the API document's example works right away.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{AppOptions, backend_tests, spawn_app_with};

backend_tests! {
    async fn a_first_development_start_seeds_the_documents_example(backend) {
        let app = spawn_app_with(AppOptions {
            backend: backend.clone(),
            fixture: false,
            ..Default::default()
        })
        .await;

        // The document's complete flow: login by e-mail with X-ScopeHandle, then /me with both headers.
        let resp = app
            .login(
                Some("acme-pharma"),
                "juan.perez@example.com",
                "SecurePass123",
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let token = resp.json::<Value>().await.expect("json")["access_token"]
            .as_str()
            .expect("token")
            .to_owned();
        let me: Value = app
            .me(&token, Some("acme-pharma"))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(me["username"], "juan.perez");
        assert_eq!(me["full_name"], "Juan Pérez García");
        assert_eq!(me["roles"], serde_json::json!(["admin", "qf"]));
        assert_eq!(me["empleado_id"], 456);
        // The document's example permissions, and (admin) every other action too.
        assert_eq!(me["permissions"]["icsr"], serde_json::json!({"view": true, "edit": true, "delete": true}));
        assert_eq!(me["permissions"]["reports"], serde_json::json!({"view": true, "generate": true}));
        assert_eq!(me["permissions"]["users"]["manage"], true);
    }
}

backend_tests! {
    async fn production_never_seeds(backend) {
        let app = spawn_app_with(AppOptions {
            backend: backend.clone(),
            fixture: false,
            overrides: vec![("environment".into(), "production".into())],
        })
        .await;
        let resp = app
            .login(
                Some("acme-pharma"),
                "juan.perez@example.com",
                "SecurePass123",
            )
            .await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert!(!app.settings.tenants.dir.join("acme-pharma.toml").exists());
    }
}
