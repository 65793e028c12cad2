use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    AppOptions, PASSWORD, TENANT, UserSpec, assert_error, backend_tests, eventually, spawn_app,
    spawn_app_with,
};

fn claims_of(token: &str) -> (Value, Value) {
    use base64::Engine;
    let decode = |part: &str| -> Value {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .expect("base64url");
        serde_json::from_slice(&bytes).expect("json")
    };
    let mut parts = token.split('.');
    let header = decode(parts.next().expect("header"));
    let claims = decode(parts.next().expect("claims"));
    (header, claims)
}

backend_tests! {
    async fn login_by_email_returns_a_bearer_token_and_the_user_summary(backend) {
        let app = spawn_app(backend.clone()).await;

        let resp = app
            .login(Some(TENANT), "juan.perez@example.com", PASSWORD)
            .await;

        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["token_type"], "bearer");
        let user = &body["user"];
        assert_eq!(user["username"], "juan.perez");
        assert_eq!(user["email"], "juan.perez@example.com");
        assert_eq!(user["role"], "admin");
        assert_eq!(user["roles"], serde_json::json!(["admin", "qf"]));
        assert!(user["id"].is_i64());
        let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
        // The seed's fields, and RFC 6749's `expires_in` and `refresh_token` beside them.
        assert_eq!(keys, ["access_token", "expires_in", "refresh_token", "token_type", "user"]);
        assert_eq!(body["expires_in"], 480 * 60, "seconds until the token expires");
    }
}

backend_tests! {
    async fn username_and_email_match_case_insensitively(backend) {
        let app = spawn_app(backend.clone()).await;
        for login in ["juan.perez", "JUAN.PEREZ", "Juan.Perez@Example.COM"] {
            let resp = app.login(Some(TENANT), login, PASSWORD).await;
            assert_eq!(resp.status(), StatusCode::OK, "{login}");
        }
    }
}

backend_tests! {
    async fn tokens_carry_the_contract_claims(backend) {
        let app = spawn_app(backend.clone()).await;
        let token = app.token(Some(TENANT), "juan.perez").await;

        let (header, claims) = claims_of(&token);

        assert_eq!(header["alg"], "EdDSA");
        for claim in [
            "sub", "uid", "username", "email", "role", "roles", "tenant", "trace", "iat", "exp", "jti",
            "iss", "aud",
        ] {
            assert!(claims.get(claim).is_some(), "claim {claim} missing");
        }
        assert_eq!(claims["sub"], claims["uid"].to_string());
        assert_eq!(claims["tenant"], TENANT);
        assert_eq!(claims["iss"], format!("{}/tenants/{TENANT}", app.address));
        assert_eq!(claims["aud"], "vigia");
        assert_eq!(claims["role"], "admin");
        let ttl = claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat");
        assert_eq!(ttl, 480 * 60);
        let other = app.token(Some(TENANT), "juan.perez").await;
        assert_ne!(
            claims_of(&other).1["jti"],
            claims["jti"],
            "every token has its own jti"
        );
    }
}

backend_tests! {
    async fn an_unknown_user_and_a_wrong_password_answer_alike(backend) {
        let app = spawn_app(backend.clone()).await;

        let wrong = assert_error(
            app.login(Some(TENANT), "juan.perez", "WrongPass123").await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        let unknown = assert_error(
            app.login(Some(TENANT), "nobody", PASSWORD).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;

        assert_eq!(wrong, unknown);
    }
}

backend_tests! {
    async fn inactive_and_roleless_users_get_403_only_with_the_right_password(backend) {
        let app = spawn_app(backend.clone()).await;
        app.create_user(Some(TENANT), UserSpec::new("sleeper").inactive())
            .await;
        app.create_user(Some(TENANT), UserSpec::new("noroles").roles(&[]))
            .await;

        for user in ["sleeper", "noroles"] {
            assert_error(
                app.login(Some(TENANT), user, "WrongPass123").await,
                StatusCode::UNAUTHORIZED,
            )
            .await;
            assert_error(
                app.login(Some(TENANT), user, PASSWORD).await,
                StatusCode::FORBIDDEN,
            )
            .await;
        }
    }
}

backend_tests! {
    async fn login_role_prefers_admin_while_whoami_gives_the_first_role(backend) {
        let app = spawn_app(backend.clone()).await;
        app.create_user(
            Some(TENANT),
            UserSpec::new("maria").roles(&["qf", "evaluator", "admin"]),
        )
        .await;

        let resp = app.login(Some(TENANT), "maria", PASSWORD).await;
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["user"]["role"], "admin");
        assert_eq!(
            body["user"]["roles"],
            serde_json::json!(["qf", "evaluator", "admin"])
        );

        let token = body["access_token"].as_str().expect("token");
        let who: Value = app
            .whoami(token, Some(TENANT))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(who["role"], "qf");
        let me: Value = app
            .me(token, Some(TENANT))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(me["role"], "admin");
    }
}

backend_tests! {
    async fn malformed_login_forms_are_422(backend) {
        let app = spawn_app(backend.clone()).await;
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![("username", "juan.perez")],
            vec![("password", PASSWORD)],
            vec![("username", ""), ("password", PASSWORD)],
            vec![("username", "juan.perez"), ("password", "12345")],
            vec![
                ("username", "juan.perez"),
                ("password", PASSWORD),
                ("grant_type", "client_credentials"),
            ],
        ];
        for form in cases {
            let resp = app
                .post("/api/v1/auth/login")
                .header("X-Tenant", TENANT)
                .form(&form)
                .send()
                .await
                .expect("sent");
            assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    }
}

backend_tests! {
    async fn a_json_login_body_is_422(backend) {
        let app = spawn_app(backend.clone()).await;
        let resp = app
            .post("/api/v1/auth/login")
            .header("X-Tenant", TENANT)
            .json(&serde_json::json!({"username": "juan.perez", "password": PASSWORD}))
            .send()
            .await
            .expect("sent");
        assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
}

backend_tests! {
    async fn oauth2_client_extras_are_accepted_and_ignored(backend) {
        let app = spawn_app(backend.clone()).await;
        let resp = app
            .post("/api/v1/auth/login")
            .header("X-Tenant", TENANT)
            .form(&[
                ("grant_type", "password"),
                ("username", "juan.perez"),
                ("password", PASSWORD),
                ("scope", ""),
                ("client_id", "swagger"),
                ("client_secret", ""),
            ])
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);
    }
}

backend_tests! {
    async fn an_unknown_tenant_is_404(backend) {
        let app = spawn_app(backend.clone()).await;
        assert_error(
            app.login(Some("no-such-tenant"), "juan.perez", PASSWORD)
                .await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
}

backend_tests! {
    async fn the_oauth2_client_id_names_the_tenant_when_no_header_does(backend) {
        let app = spawn_app(backend.clone()).await;
        let form = |client_id: &'static str| {
            [
                ("grant_type", "password"),
                ("username", "juan.perez"),
                ("password", PASSWORD),
                ("client_id", client_id),
            ]
        };
        // Swagger UI's Authorize dialog: the tenant in the form's client_id.
        let resp = app
            .post("/api/v1/auth/login")
            .form(&form(TENANT))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);
        let token = resp.json::<Value>().await.expect("json")["access_token"]
            .as_str()
            .expect("token")
            .to_owned();
        // The token carries the tenant: /me needs no X-Tenant.
        let me = app
            .get("/api/v1/auth/me")
            .bearer_auth(&token)
            .send()
            .await
            .expect("sent");
        assert_eq!(me.status(), StatusCode::OK);
        assert_eq!(me.json::<Value>().await.expect("json")["username"], "juan.perez");

        // The same as HTTP Basic client credentials.
        let resp = app
            .post("/api/v1/auth/login")
            .basic_auth(TENANT, Some(""))
            .form(&form(""))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);

        // The header, when given, wins over the client ID.
        let resp = app
            .post("/api/v1/auth/login")
            .header("X-Tenant", TENANT)
            .form(&form("other-tenant"))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);

        // A client ID that is no tenant ID is a validation error, an unknown one a 404.
        let resp = app
            .post("/api/v1/auth/login")
            .form(&form("Not A Tenant"))
            .send()
            .await
            .expect("sent");
        assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
        let resp = app
            .post("/api/v1/auth/login")
            .form(&form("no-such-tenant"))
            .send()
            .await
            .expect("sent");
        assert_error(resp, StatusCode::NOT_FOUND).await;
    }
}

backend_tests! {
    async fn a_tenants_flood_of_logins_never_makes_another_tenants_correct_logins_fail(backend) {
        // Security review 2, item 4: every tenant shared one hashing queue, so one tenant's
        // flood pushed other tenants' logins to 503. One hashing thread and a queue of four
        // make the flood saturate it at once.
        let app = spawn_app_with(AppOptions {
            backend: backend.clone(),
            overrides: vec![
                ("argon2.workers".into(), "1".into()),
                ("argon2.queue".into(), "4".into()),
                ("security.login_attempts_per_ip_per_minute".into(), "1000000".into()),
            ],
            ..Default::default()
        })
        .await;
        app.provision_tenant("flooder").await;
        app.create_user(Some("flooder"), UserSpec::new("victim")).await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flood: Vec<_> = (0..24)
            .map(|worker| {
                let (client, url, stop) = (app.client.clone(), app.url("/api/v1/auth/login"), stop.clone());
                tokio::spawn(async move {
                    let mut refused = 0u32;
                    let mut attempt = 0u32;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        attempt += 1;
                        // A new unknown name each time: no lockout ends the flood early.
                        let name = format!("nobody-{worker}-{attempt}");
                        let resp = client
                            .post(&url)
                            .header("X-Tenant", "flooder")
                            .form(&[("username", name.as_str()), ("password", "Wrong-Pass-1")])
                            .send()
                            .await
                            .expect("sent");
                        if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
                            refused += 1;
                        }
                    }
                    refused
                })
            })
            .collect();
        // The flood saturates the hasher: its own requests start being refused.
        let saturated = eventually(std::time::Duration::from_secs(20), || async {
            let name = format!("probe-{}", rand::random::<u32>());
            let resp = app.login(Some("flooder"), &name, "Wrong-Pass-1").await;
            (resp.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(())
        })
        .await;
        let mut outcomes = Vec::new();
        for _ in 0..10 {
            outcomes.push(app.login(Some(TENANT), "juan.perez", PASSWORD).await.status());
        }
        // A user of the flooded tenant itself is refused (503) while its tenant's share is
        // spent; those refusals are not wrong guesses and must not lock the account.
        let mut victim_refused = 0;
        for _ in 0..20 {
            let status = app.login(Some("flooder"), "victim", PASSWORD).await.status();
            assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "refusals never lock the victim");
            if status == StatusCode::SERVICE_UNAVAILABLE {
                victim_refused += 1;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut refused = 0;
        for worker in flood {
            refused += worker.await.expect("flood worker");
        }
        let () = saturated;
        assert!(refused > 0, "the flood saturated the hasher");
        assert!(victim_refused >= 5, "the victim met the flood ({victim_refused} refusals)");
        assert_eq!(app.login(Some("flooder"), "victim", PASSWORD).await.status(), StatusCode::OK);
        assert!(
            outcomes.iter().all(|s| *s == StatusCode::OK),
            "every correct login of the other tenant succeeded: {outcomes:?}"
        );
    }
}
