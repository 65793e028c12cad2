use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    PASSWORD, TENANT, UserSpec, assert_error, backend_tests, eventually, spawn_app,
};

backend_tests! {
    async fn the_seeds_flow_works_for_a_tenant(backend) {
        let app = spawn_app(backend.clone()).await;
        let token = app.token(Some(TENANT), "juan.perez@example.com").await;

        let resp = app.me(&token, Some(TENANT)).await;

        assert_eq!(resp.status(), StatusCode::OK);
        let me: Value = resp.json().await.expect("json");
        assert_eq!(me["username"], "juan.perez");
        assert_eq!(me["full_name"], "Juan Pérez García");
        assert_eq!(me["empleado_id"], 456);
        assert_eq!(me["is_active"], true);
        assert_eq!(me["permissions"]["icsr"]["delete"], true);
        assert_eq!(me["permissions"]["reports"]["generate"], true);
        let mut keys: Vec<&str> = me
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "email",
                "empleado_id",
                "full_name",
                "id",
                "is_active",
                "permissions",
                "role",
                "roles",
                "username"
            ]
        );

        let who: Value = app.whoami(&token, None).await.json().await.expect("json");
        let mut keys: Vec<&str> = who
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "email",
                "empleado_id",
                "full_name",
                "id",
                "role",
                "roles",
                "username"
            ]
        );
    }
}

backend_tests! {
    async fn a_token_is_refused_by_every_other_tenant_and_by_legacy_mode(backend) {
        let app = spawn_app(backend.clone()).await;
        app.provision_tenant("globex").await;
        // Same username, same id (first user) in the other tenant: only the key tells them apart.
        app.create_user(Some("globex"), UserSpec::juan()).await;
        app.create_user(None, UserSpec::juan()).await;
        let acme = app.token(Some(TENANT), "juan.perez").await;
        let globex = app.token(Some("globex"), "juan.perez").await;
        let legacy = app.token(None, "juan.perez").await;

        assert_error(
            app.me(&acme, Some("globex")).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert_error(
            app.me(&globex, Some(TENANT)).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert_error(
            app.me(&legacy, Some(TENANT)).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;

        assert_eq!(
            app.me(&acme, None).await.status(),
            StatusCode::OK,
            "the token's tenant applies without a header"
        );
        assert_eq!(
            app.me(&globex, Some("globex")).await.status(),
            StatusCode::OK
        );
        assert_eq!(app.me(&legacy, None).await.status(), StatusCode::OK);
    }
}

backend_tests! {
    async fn legacy_mode_serves_the_shared_database_without_a_tenant(backend) {
        let app = spawn_app(backend.clone()).await;
        app.create_user(None, UserSpec::new("legacy.user").roles(&["evaluator"]))
            .await;

        assert_error(
            app.login(Some(TENANT), "legacy.user", PASSWORD).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        let resp = app.login(None, "legacy.user", PASSWORD).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.expect("json");
        let token = body["access_token"].as_str().expect("token");
        let (_, claims) = token.split_once('.').expect("jwt");
        use base64::Engine;
        let payload = claims.split('.').next().expect("payload");
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .expect("b64"),
        )
        .expect("json");
        assert!(claims["tenant"].is_null(), "legacy tokens name no tenant");

        let who: Value = app.whoami(token, None).await.json().await.expect("json");
        assert_eq!(who["username"], "legacy.user");
        assert_eq!(who["role"], "evaluator");
    }
}

backend_tests! {
    async fn accounts_in_different_tenants_are_separate(backend) {
        let app = spawn_app(backend.clone()).await;
        app.provision_tenant("initech").await;
        app.create_user(Some("initech"), UserSpec::new("solo"))
            .await;

        assert_error(
            app.login(Some(TENANT), "solo", PASSWORD).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert_eq!(
            app.login(Some("initech"), "solo", PASSWORD).await.status(),
            StatusCode::OK
        );
    }
}

backend_tests! {
    async fn a_tenant_created_while_running_is_served_at_once(backend) {
        let app = spawn_app(backend.clone()).await;
        // Asked for before it exists: remembered as unknown for a moment.
        assert_error(
            app.login(Some("newco"), "solo", PASSWORD).await,
            StatusCode::NOT_FOUND,
        )
        .await;

        app.provision_tenant("newco").await;
        app.create_user(Some("newco"), UserSpec::new("solo")).await;

        eventually(Duration::from_secs(5), || async {
            (app.login(Some("newco"), "solo", PASSWORD).await.status() == StatusCode::OK).then_some(())
        })
        .await;
    }
}

backend_tests! {
    async fn a_deactivated_tenant_is_refused_without_a_restart(backend) {
        let app = spawn_app(backend.clone()).await;
        let token = app.token(Some(TENANT), "juan.perez").await;
        let path = app.settings.tenants.dir.join(format!("{TENANT}.toml"));
        let text = std::fs::read_to_string(&path).expect("tenant file");
        std::fs::write(&path, text.replace("active = true", "active = false")).expect("written");

        eventually(Duration::from_secs(10), || async {
            (app.me(&token, Some(TENANT)).await.status() == StatusCode::FORBIDDEN).then_some(())
        })
        .await;
        assert_error(
            app.login(Some(TENANT), "juan.perez", PASSWORD).await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
}

backend_tests! {
    async fn hostile_tenant_headers_are_422_and_touch_nothing(backend) {
        let app = spawn_app(backend.clone()).await;
        let token = app.token(Some(TENANT), "juan.perez").await;
        let long = "a".repeat(64);
        let hostile: Vec<&[u8]> = vec![
            b"../etc/passwd",
            b"..",
            b"acme/../acme",
            b"ACME",
            b"Acme",
            long.as_bytes(),
            b"acme\tx",
            b"acme pharma",
            b"acme%00",
            b"acm\xe9",
            b"acme_pharma",
            b"-acme",
            b"acme.toml",
            b"' OR 1=1 --",
        ];
        for value in hostile {
            let header = reqwest::header::HeaderValue::from_bytes(value).expect("a sendable header");
            let login = app
                .post("/api/v1/auth/login")
                .header("X-Tenant", header.clone())
                .form(&[("username", "juan.perez"), ("password", PASSWORD)])
                .send()
                .await
                .expect("sent");
            let detail = assert_error(login, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert!(detail.contains("X-Tenant"), "{detail}");
            let me = app
                .get("/api/v1/auth/me")
                .bearer_auth(&token)
                .header("X-Tenant", header)
                .send()
                .await
                .expect("sent");
            assert_error(me, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
        let twice = app
            .get("/api/v1/auth/me")
            .bearer_auth(&token)
            .header("X-Tenant", TENANT)
            .header("X-Tenant", "other")
            .send()
            .await
            .expect("sent");
        assert_error(twice, StatusCode::UNPROCESSABLE_ENTITY).await;
        // Nothing was created by any of them.
        let entries: Vec<String> = std::fs::read_dir(&app.settings.tenants.dir)
            .expect("registry")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(entries, [format!("{TENANT}.toml")]);
    }
}

backend_tests! {
    async fn sqlite_and_the_suites_backend_serve_side_by_side(backend) {
        let app = spawn_app(backend.clone()).await;
        let sqlite_url = format!("sqlite://{}", app.data_dir().join("side.db").display());
        vigia::tenancy::provision::create_tenant(
            &app.settings,
            &vigia::tenancy::Source::Files(app.settings.tenants.dir.clone()),
            vigia::tenancy::provision::NewTenant {
                id: vigia::domain::TenantId::parse("side").expect("valid"),
                database_url: Some(sqlite_url),
                name: None,
                first_user: None,
                via: "test",
            },
        )
        .await
        .expect("provisioned");
        app.create_user(Some("side"), UserSpec::new("sider")).await;

        assert_eq!(
            app.login(Some("side"), "sider", PASSWORD).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            app.login(Some(TENANT), "juan.perez", PASSWORD)
                .await
                .status(),
            StatusCode::OK
        );
    }
}
