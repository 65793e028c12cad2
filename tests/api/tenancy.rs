use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use vigia::store::{DatabaseUrl, PoolSettings};

use crate::helpers::{
    AppOptions, Backend, PASSWORD, TENANT, TestApp, UserSpec, assert_error, backend_tests,
    eventually, spawn_app, spawn_app_with,
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
                "sub",
                "username"
            ]
        );
        assert_eq!(me["sub"], me["id"].to_string(), "the token's subject");

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
            &vigia::store::PoolSettings::from(&app.settings.database),
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

/// Removes tenant `id` the way an operator offboards it by hand: its registry entry and its
/// database.
async fn offboard_by_hand(app: &TestApp, id: &str) {
    let entry: vigia::tenancy::TenantFile = toml::from_str(
        &std::fs::read_to_string(app.settings.tenants.dir.join(format!("{id}.toml")))
            .expect("entry"),
    )
    .expect("parses");
    std::fs::remove_file(app.settings.tenants.dir.join(format!("{id}.toml"))).expect("removed");
    let url = DatabaseUrl::parse(&entry.database_url).expect("url");
    vigia::store::drop_database(&url, &PoolSettings::from(&app.settings.database)).await;
}

backend_tests! {
    async fn a_tenant_registered_again_never_accepts_its_predecessors_tokens(backend) {
        // Security review 2, item 5: offboard `x`, register `x` again with a new user whose id
        // is also 1; the old admin's token must not answer as the new user (nor at all).
        let app = spawn_app_with(AppOptions {
            backend: backend.clone(),
            overrides: vec![("tenants.recheck_millis".into(), "50".into())],
            ..Default::default()
        })
        .await;
        app.provision_tenant("x").await;
        let old_admin = app.create_user(Some("x"), UserSpec::juan()).await;
        let old_token = app.token(Some("x"), "juan.perez").await;
        assert_eq!(app.whoami(&old_token, None).await.status(), StatusCode::OK);
        let first = app.incarnation("x").expect("a new registration has an identity");

        offboard_by_hand(&app, "x").await;
        app.provision_tenant("x").await;
        let successor = app
            .create_user(Some("x"), UserSpec::new("helpdesk").roles(&["qf"]))
            .await;
        assert_eq!(successor, old_admin, "the successor's user has the same id");
        assert_ne!(app.incarnation("x"), Some(first), "and the registration a new identity");

        let new_token = eventually(Duration::from_secs(10), || async {
            let resp = app.login(Some("x"), "helpdesk", PASSWORD).await;
            if resp.status() != StatusCode::OK {
                return None;
            }
            let body: Value = resp.json().await.ok()?;
            body["access_token"].as_str().map(str::to_owned)
        })
        .await;
        let whoami: Value = app.whoami(&new_token, None).await.json().await.expect("json");
        assert_eq!(whoami["username"], "helpdesk");

        for tenant in [None, Some("x")] {
            assert_error(app.whoami(&old_token, tenant).await, StatusCode::UNAUTHORIZED).await;
            assert_error(app.me(&old_token, tenant).await, StatusCode::UNAUTHORIZED).await;
        }
        let restarted = app.restart().await;
        assert_error(restarted.me(&old_token, None).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(restarted.me(&new_token, None).await.status(), StatusCode::OK);
    }
}

backend_tests! {
    async fn a_token_naming_a_tenant_opens_its_database_only_once_its_signature_checks_out(backend) {
        // Security review 2, item 5: an unsigned token naming a tenant used to open (create,
        // migrate) that tenant's database before its signature was checked.
        let app = spawn_app(backend.clone()).await;
        let entry: vigia::tenancy::TenantFile = toml::from_str(
            &std::fs::read_to_string(app.settings.tenants.dir.join(format!("{TENANT}.toml")))
                .expect("entry"),
        )
        .expect("parses");
        let url = DatabaseUrl::parse(&entry.database_url).expect("url");
        // The server has not touched the tenant yet; take its database away to see whether a
        // request opens (or recreates) it.
        vigia::store::drop_database(&url, &PoolSettings::from(&app.settings.database)).await;
        let sqlite_file = app.settings.tenant_sqlite_dir().join(format!("{TENANT}.db"));

        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = serde_json::json!({
            "sub": "1", "uid": 1, "username": "juan.perez", "email": "juan.perez@example.com",
            "role": "admin", "roles": ["admin"], "tenant": TENANT, "trace": "x", "iat": now,
            "exp": now + 600, "jti": "forged", "ver": 0
        });
        let b64 = |v: &Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let unsigned = format!("{}.{}.", b64(&serde_json::json!({"alg": "none", "typ": "JWT"})), b64(&claims));
        let wrong_key = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"not the tenant's key"),
        )
        .expect("signed");
        for token in [&unsigned, &wrong_key] {
            for header in [None, Some(TENANT)] {
                assert_error(app.whoami(token, header).await, StatusCode::UNAUTHORIZED).await;
                assert_error(app.me(token, header).await, StatusCode::UNAUTHORIZED).await;
            }
        }
        if backend == Backend::Sqlite {
            assert!(!sqlite_file.exists(), "no database was created for a forged token");
        }
        // A real login does need the database, and says it is unavailable.
        let resp = app.login(Some(TENANT), "juan.perez", PASSWORD).await;
        assert!(resp.status().is_server_error() || resp.status() == StatusCode::UNAUTHORIZED);
    }
}
