//! Bearer tokens as an attacker or a buggy client would present them. The server here signs
//! with `HS256` (`jwt.algorithm`), whose keys the tests can derive and so forge tokens with
//! exactly one thing wrong; `discovery.rs` covers `EdDSA`'s published keys.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use vigia::{
    config::JwtAlgorithm,
    domain::{Scope, TenantId},
    tenancy::ServerSecret,
};

use std::time::Duration;

use crate::helpers::{
    AppOptions, Backend, SECRET, TENANT, TestApp, UserSpec, assert_error, backend_tests,
    eventually, spawn_app_with,
};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn secret() -> ServerSecret {
    ServerSecret::new(SECRET.as_bytes().to_vec()).signing_with(JwtAlgorithm::HS256)
}

/// The server with `jwt.algorithm = "HS256"`.
async fn hs256_app(backend: Backend) -> TestApp {
    spawn_app_with(AppOptions {
        backend,
        overrides: vec![("jwt.algorithm".into(), "HS256".into())],
        ..Default::default()
    })
    .await
}

/// The signing key of `scope` in `app` (a tenant's derives from its registration too).
fn key_of(app: &TestApp, scope: &Scope) -> EncodingKey {
    let incarnation = scope.tenant().and_then(|id| app.incarnation(id.as_str()));
    EncodingKey::from_secret(&secret().derive(scope, incarnation))
}

/// A header as the server writes it: the algorithm and the signing secret's `kid`.
fn header(alg: Algorithm) -> Header {
    let mut header = Header::new(alg);
    header.kid = Some(secret().kid());
    header
}

fn acme() -> Scope {
    Scope::Tenant(TenantId::parse(TENANT).expect("valid"))
}

/// Claims of a well-formed token for juan (id from the database) in `TENANT`.
async fn claims(app: &TestApp) -> Value {
    let token = app.token(Some(TENANT), "juan.perez").await;
    let me: Value = app
        .me(&token, Some(TENANT))
        .await
        .json()
        .await
        .expect("json");
    let id = me["id"].as_i64().expect("id");
    json!({
        "sub": id.to_string(), "uid": id, "username": "juan.perez", "email": "juan.perez@example.com",
        "role": "admin", "roles": ["admin", "qf"], "tenant": TENANT, "trace": "abcd1234",
        "iat": now() - 10, "exp": now() + 600, "jti": "test-jti", "ver": 0,
        "iss": format!("{}/tenants/{TENANT}", app.address), "aud": "vigia"
    })
}

fn sign(app: &TestApp, claims: &Value, scope: &Scope) -> String {
    jsonwebtoken::encode(&header(Algorithm::HS256), claims, &key_of(app, scope)).expect("signed")
}

backend_tests! {
    async fn a_token_forged_with_the_right_derived_key_is_accepted(backend) {
        // Guards the other tests in this file: their refusals come from what they change.
        let app = hs256_app(backend.clone()).await;
        let token = sign(&app, &claims(&app).await, &acme());
        assert_eq!(app.me(&token, Some(TENANT)).await.status(), StatusCode::OK);
        assert_eq!(app.me(&token, None).await.status(), StatusCode::OK);
    }
}

backend_tests! {
    async fn expired_tokens_are_refused(backend) {
        let app = hs256_app(backend.clone()).await;
        let mut c = claims(&app).await;
        c["iat"] = json!(now() - 7200);
        c["exp"] = json!(now() - 3600);
        let detail = assert_error(
            app.me(&sign(&app, &c, &acme()), Some(TENANT)).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert!(detail.to_lowercase().contains("expired"), "{detail}");
    }
}

backend_tests! {
    async fn tokens_missing_a_claim_are_refused(backend) {
        let app = hs256_app(backend.clone()).await;
        let full = claims(&app).await;
        for claim in [
            "sub", "uid", "username", "roles", "trace", "iat", "exp", "jti", "iss", "aud",
        ] {
            let mut c = full.clone();
            c.as_object_mut().expect("object").remove(claim);
            let resp = app.me(&sign(&app, &c, &acme()), Some(TENANT)).await;
            assert_error(resp, StatusCode::UNAUTHORIZED).await;
        }
    }
}

backend_tests! {
    async fn tokens_signed_with_the_raw_secret_or_another_algorithm_are_refused(backend) {
        let app = hs256_app(backend.clone()).await;
        let c = claims(&app).await;
        let raw = jsonwebtoken::encode(
            &header(Algorithm::HS256),
            &c,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("signed");
        assert_error(app.me(&raw, Some(TENANT)).await, StatusCode::UNAUTHORIZED).await;

        let hs512 =
            jsonwebtoken::encode(&header(Algorithm::HS512), &c, &key_of(&app, &acme())).expect("signed");
        assert_error(app.me(&hs512, Some(TENANT)).await, StatusCode::UNAUTHORIZED).await;

        // Right key and algorithm, but no kid, or a kid of no configured secret.
        let no_kid = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &c, &key_of(&app, &acme())).expect("signed");
        assert_error(app.me(&no_kid, Some(TENANT)).await, StatusCode::UNAUTHORIZED).await;
        let mut other = header(Algorithm::HS256);
        other.kid = Some("0123456789abcdef".into());
        let wrong_kid = jsonwebtoken::encode(&other, &c, &key_of(&app, &acme())).expect("signed");
        assert_error(app.me(&wrong_kid, Some(TENANT)).await, StatusCode::UNAUTHORIZED).await;

        // alg "none": header and payload, empty signature.
        use base64::Engine;
        let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&c)
        );
        assert_error(app.me(&none, Some(TENANT)).await, StatusCode::UNAUTHORIZED).await;
    }
}

backend_tests! {
    async fn tampered_tokens_are_refused(backend) {
        let app = hs256_app(backend.clone()).await;
        let token = app.token(Some(TENANT), "juan.perez").await;
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        // Flip one character of the signature, then of the payload.
        let flip = |s: &mut String| {
            let c = if s.ends_with('A') { 'B' } else { 'A' };
            s.pop();
            s.push(c);
        };
        let mut sig = parts.clone();
        flip(&mut sig[2]);
        assert_error(
            app.me(&sig.join("."), Some(TENANT)).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        flip(&mut parts[1]);
        assert_error(
            app.me(&parts.join("."), Some(TENANT)).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
}

backend_tests! {
    async fn garbage_authorization_headers_are_401_with_the_error_shape(backend) {
        let app = hs256_app(backend.clone()).await;
        for value in [
            "",
            "Bearer",
            "Bearer ",
            "Bearer x.y.z",
            "Bearer ....",
            "Basic anVhbjpwdw==",
            "Token abc",
            "Bearer \u{7f}",
        ] {
            let req = app.get("/api/v1/auth/me").header("X-Tenant", TENANT);
            let req = match reqwest::header::HeaderValue::from_str(value) {
                Ok(v) => req.header("Authorization", v),
                Err(_) => req,
            };
            let resp = req.send().await.expect("sent");
            assert_error(resp, StatusCode::UNAUTHORIZED).await;
        }
        assert_error(
            app.get("/api/v1/auth/me").send().await.expect("sent"),
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
}

backend_tests! {
    async fn a_deleted_users_token_is_refused(backend) {
        let app = short_user_cache(&backend).await;
        let id = app.create_user(Some(TENANT), UserSpec::new("leaver")).await;
        let token = app.token(Some(TENANT), "leaver").await;
        assert_eq!(app.me(&token, Some(TENANT)).await.status(), StatusCode::OK);

        // Removed by another process: seen once this server's user snapshot expires.
        app.execute("DELETE FROM users WHERE id = $1", Some(id)).await.expect("executed");

        let resp = eventually(Duration::from_secs(5), || async {
            let resp = app.me(&token, Some(TENANT)).await;
            (resp.status() != StatusCode::OK).then_some(resp)
        })
        .await;
        assert_error(resp, StatusCode::UNAUTHORIZED).await;
    }
}

backend_tests! {
    async fn a_user_deactivated_by_another_process_is_refused_within_the_cache_ttl(backend) {
        let app = short_user_cache(&backend).await;
        let id = app.create_user(Some(TENANT), UserSpec::new("paused")).await;
        let token = app.token(Some(TENANT), "paused").await;

        app.execute("UPDATE users SET is_active = FALSE WHERE id = $1", Some(id)).await.expect("executed");

        let resp = eventually(Duration::from_secs(5), || async {
            let resp = app.me(&token, Some(TENANT)).await;
            (resp.status() != StatusCode::OK).then_some(resp)
        })
        .await;
        assert_error(resp, StatusCode::UNAUTHORIZED).await;
        assert_error(app.login(Some(TENANT), "paused", crate::helpers::PASSWORD).await, StatusCode::FORBIDDEN).await;
    }
}

/// A server whose user snapshots live 300 ms, for changes made behind its back.
async fn short_user_cache(backend: &crate::helpers::Backend) -> TestApp {
    crate::helpers::spawn_app_with(crate::helpers::AppOptions {
        backend: backend.clone(),
        overrides: vec![("security.user_cache_millis".into(), "300".into())],
        ..Default::default()
    })
    .await
}

backend_tests! {
    async fn tokens_not_yet_valid_are_refused(backend) {
        let app = hs256_app(backend.clone()).await;
        let base = claims(&app).await;
        let mut future_iat = base.clone();
        future_iat["iat"] = json!(now() + 3600);
        assert_error(app.me(&sign(&app, &future_iat, &acme()), None).await, StatusCode::UNAUTHORIZED).await;
        let mut future_nbf = base.clone();
        future_nbf["nbf"] = json!(now() + 3600);
        assert_error(app.me(&sign(&app, &future_nbf, &acme()), None).await, StatusCode::UNAUTHORIZED).await;
        // Within the leeway a slightly fast client clock is tolerated.
        let mut skewed = base;
        skewed["iat"] = json!(now() + 5);
        assert_eq!(app.me(&sign(&app, &skewed, &acme()), None).await.status(), StatusCode::OK);
    }
}

backend_tests! {
    async fn a_token_with_a_stale_version_is_refused(backend) {
        let app = hs256_app(backend.clone()).await;
        let mut c = claims(&app).await;
        c["ver"] = json!(1);
        let detail = assert_error(app.me(&sign(&app, &c, &acme()), None).await, StatusCode::UNAUTHORIZED).await;
        assert!(detail.contains("revoked"), "{detail}");
    }
}

backend_tests! {
    async fn a_token_accepted_before_is_refused_at_once_after_a_change(backend) {
        // Every token here is used before its change, so each refusal comes from a session
        // the server remembered with the token and then found stale, not from a first lookup.
        const OPERATOR: &str = "operator-token-0123456789abcdef-0123456789";
        let app = crate::helpers::spawn_app_with(crate::helpers::AppOptions {
            backend: backend.clone(),
            overrides: vec![("admin.token".into(), OPERATOR.into())],
            ..Default::default()
        })
        .await;
        let admin = app.token(Some(TENANT), "juan.perez").await;
        let mut ids = std::collections::HashMap::new();
        for name in ["ana", "ben", "carla", "dario"] {
            ids.insert(name, app.create_user(Some(TENANT), UserSpec::new(name)).await);
        }
        let accepted = |token: String| {
            let app = &app;
            async move {
                assert_eq!(app.whoami(&token, None).await.status(), StatusCode::OK);
                assert_eq!(app.me(&token, Some(TENANT)).await.status(), StatusCode::OK);
                assert_eq!(app.whoami(&token, None).await.status(), StatusCode::OK);
                token
            }
        };
        let refused = |token: String, status: StatusCode| {
            let app = &app;
            async move {
                assert_error(app.whoami(&token, None).await, status).await;
                assert_error(app.me(&token, Some(TENANT)).await, status).await;
            }
        };
        let post = |path: String, token: String| {
            let app = &app;
            async move { app.post(&path).bearer_auth(token).send().await.expect("sent") }
        };
        let admin = accepted(admin).await;

        // Logout: that token only.
        let gone = accepted(app.token(Some(TENANT), "ana").await).await;
        let kept = accepted(app.token(Some(TENANT), "ana").await).await;
        assert_eq!(post("/api/v1/auth/logout".into(), gone.clone()).await.status(), StatusCode::OK);
        refused(gone, StatusCode::UNAUTHORIZED).await;
        let kept = accepted(kept).await;

        // Deactivation by an administrator.
        let ben = accepted(app.token(Some(TENANT), "ben").await).await;
        let resp = post(format!("/api/v1/users/{}/deactivate", ids["ben"]), admin.clone()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        refused(ben, StatusCode::UNAUTHORIZED).await;

        // A password change: the user's other token too.
        let first = accepted(app.token(Some(TENANT), "carla").await).await;
        let second = accepted(app.token(Some(TENANT), "carla").await).await;
        let resp = app.change_password(&first, crate::helpers::PASSWORD, "Brand-New-Pass-9").await;
        assert_eq!(resp.status(), StatusCode::OK);
        refused(second, StatusCode::UNAUTHORIZED).await;

        // A role change.
        let dario = accepted(app.token(Some(TENANT), "dario").await).await;
        let resp = app
            .client
            .put(app.url(&format!("/api/v1/users/{}/roles", ids["dario"])))
            .bearer_auth(&admin)
            .json(&json!({"roles": ["admin"]}))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);
        refused(dario, StatusCode::UNAUTHORIZED).await;

        // An override takes effect on the token's next request: `/me` is not served stale.
        let me = |token: String| {
            let app = &app;
            async move { app.me(&token, None).await.json::<Value>().await.expect("json") }
        };
        assert_eq!(me(kept.clone()).await["permissions"]["icsr"]["delete"], false);
        let resp = app
            .client
            .put(app.url(&format!("/api/v1/users/{}/permissions", ids["ana"])))
            .bearer_auth(&admin)
            .json(&json!({"permissions": {"icsr": {"delete": true}}}))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(me(kept.clone()).await["permissions"]["icsr"]["delete"], true);

        // Nobody else's token was disturbed by those changes; then the tenant is deactivated.
        let admin = accepted(admin).await;
        let resp = app
            .client
            .patch(app.url(&format!("/api/v1/admin/tenants/{TENANT}")))
            .bearer_auth(OPERATOR)
            .json(&json!({"active": false}))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);
        refused(admin, StatusCode::FORBIDDEN).await;
    }
}
