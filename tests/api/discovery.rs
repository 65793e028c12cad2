//! Each tenant as an OpenID Connect issuer: discovery, its public keys, its token endpoint, and
//! tokens that a module verifies offline with nothing but the issuer URL.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::Jwk};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    AppOptions, PASSWORD, SECRET, TENANT, TestApp, assert_error, assert_oauth_error, backend_tests,
    eventually, json_output, python, spawn_app, spawn_app_with,
};

async fn json_of(app: &TestApp, url: &str) -> (StatusCode, Option<String>, Value) {
    let resp = app.client.get(url).send().await.expect("sent");
    let status = resp.status();
    let cache = resp
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().expect("ASCII").to_owned());
    (status, cache, resp.json().await.expect("JSON"))
}

/// The claims of `token`, verified as a resource server would: the key from the issuer's JWKS
/// (found through discovery) by the token's `kid`, the algorithm pinned, `iss` and `aud` checked.
async fn verify_offline(app: &TestApp, issuer: &str, token: &str) -> Result<Value, String> {
    let (_, _, discovery) =
        json_of(app, &format!("{issuer}/.well-known/openid-configuration")).await;
    let jwks_uri = discovery["jwks_uri"].as_str().ok_or("no jwks_uri")?;
    let (_, _, jwks) = json_of(app, jwks_uri).await;
    verify(&jwks, issuer, token)
}

/// The claims of `token` if a key of `jwks` verifies it for `issuer` and audience `vigia`.
fn verify(jwks: &Value, issuer: &str, token: &str) -> Result<Value, String> {
    let kid = jsonwebtoken::decode_header(token)
        .map_err(|e| e.to_string())?
        .kid
        .ok_or("no kid")?;
    let jwk: Jwk = jwks["keys"]
        .as_array()
        .ok_or("no keys")?
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .map(|k| serde_json::from_value(k.clone()).expect("a JWK"))
        .ok_or("kid not in the JWKS")?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&["vigia"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}

backend_tests! {
    async fn a_module_verifies_tokens_with_nothing_but_the_issuer_url(backend) {
        let app = spawn_app(backend.clone()).await;
        let issuer = format!("{}/tenants/{TENANT}", app.address);
        let (status, _, discovery) =
            json_of(&app, &format!("{issuer}/.well-known/openid-configuration")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(discovery["issuer"], issuer.as_str());
        assert_eq!(discovery["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
        assert_eq!(discovery["token_endpoint"], format!("{issuer}/oauth2/token"));
        assert_eq!(discovery["introspection_endpoint"], format!("{issuer}/oauth2/introspect"));
        assert_eq!(discovery["revocation_endpoint"], format!("{issuer}/oauth2/revoke"));
        assert_eq!(
            discovery["grant_types_supported"],
            json!(["password", "refresh_token", "client_credentials"])
        );
        assert_eq!(discovery["userinfo_endpoint"], app.url("/api/v1/auth/me"));
        assert_eq!(discovery["id_token_signing_alg_values_supported"], json!(["EdDSA"]));

        let (status, cache, jwks) = json_of(&app, &format!("{issuer}/.well-known/jwks.json")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(cache.as_deref().is_some_and(|c| c.contains("max-age=")), "{cache:?}");
        let key = &jwks["keys"][0];
        assert_eq!((&key["kty"], &key["crv"], &key["alg"], &key["use"]), (&json!("OKP"), &json!("Ed25519"), &json!("EdDSA"), &json!("sig")));
        let (_, _, again) = json_of(&app, &format!("{issuer}/.well-known/jwks.json")).await;
        assert_eq!(again, jwks, "the JWKS changes only on rotation");

        let token = app.token(Some(TENANT), "juan.perez").await;
        let claims = verify_offline(&app, &issuer, &token).await.expect("verifies offline");
        assert_eq!(claims["tenant"], TENANT);
        assert_eq!(claims["iss"], issuer.as_str());
        assert_eq!(claims["aud"], "vigia");
        let me: Value = app.me(&token, None).await.json().await.expect("JSON");
        assert_eq!(me["sub"], claims["sub"], "userinfo gives the token's subject");

        // Another issuer's keys never verify it: not the legacy issuer's, whose discovery
        // names the server's base URL.
        let (status, _, legacy) =
            json_of(&app, &app.url("/.well-known/openid-configuration")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(legacy["issuer"], app.address.as_str());
        assert!(verify_offline(&app, &app.address, &token).await.is_err());
    }
}

backend_tests! {
    async fn unknown_inactive_or_malformed_tenants_are_no_issuer(backend) {
        let app = spawn_app(backend.clone()).await;
        for tenant in ["nobody", "BAD", "a..b", "-x", "a%20b", "a%2Fb"] {
            for doc in ["openid-configuration", "jwks.json"] {
                let resp = app.get(&format!("/tenants/{tenant}/.well-known/{doc}")).send().await.expect("sent");
                assert_error(resp, StatusCode::NOT_FOUND).await;
            }
        }
        let path = app.settings.tenants.dir.join(format!("{TENANT}.toml"));
        let text = std::fs::read_to_string(&path).expect("tenant file");
        std::fs::write(&path, text.replace("active = true", "active = false")).expect("written");
        eventually(Duration::from_secs(10), || async {
            let resp = app
                .get(&format!("/tenants/{TENANT}/.well-known/openid-configuration"))
                .send()
                .await
                .expect("sent");
            (resp.status() == StatusCode::NOT_FOUND).then_some(())
        })
        .await;
        let resp = app.get(&format!("/tenants/{TENANT}/.well-known/jwks.json")).send().await.expect("sent");
        assert_error(resp, StatusCode::NOT_FOUND).await;
    }
}

backend_tests! {
    async fn the_token_endpoint_takes_the_tenant_from_the_issuer_path(backend) {
        let app = spawn_app(backend.clone()).await;
        let form = [("grant_type", "password"), ("username", "juan.perez"), ("password", PASSWORD)];
        let resp = app
            .post(&format!("/tenants/{TENANT}/oauth2/token"))
            .form(&form)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let body: Value = resp.json().await.expect("JSON");
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["expires_in"], 480 * 60);
        let token = body["access_token"].as_str().expect("token");
        assert_eq!(app.whoami(token, None).await.status(), StatusCode::OK);

        assert!(body["refresh_token"].as_str().is_some_and(|t| t.len() == 43), "{body}");

        // Errors are RFC 6749 5.2's, with the `detail` of every error here.
        let wrong = [("username", "juan.perez"), ("password", "WrongPass123")];
        let resp = app.post(&format!("/tenants/{TENANT}/oauth2/token")).form(&wrong).send().await.expect("sent");
        assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
        let resp = app.post("/tenants/nobody/oauth2/token").form(&form).send().await.expect("sent");
        assert_error(resp, StatusCode::NOT_FOUND).await;
        // The legacy issuer's endpoint logs in to the legacy database, where juan is unknown.
        let resp = app.post("/oauth2/token").form(&form).send().await.expect("sent");
        assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
        for (form, error) in [
            (vec![("grant_type", "authorization_code"), ("code", "x")], "unsupported_grant_type"),
            (vec![("grant_type", "password"), ("username", "juan.perez")], "invalid_request"),
            (vec![("grant_type", "refresh_token")], "invalid_request"),
            (vec![("grant_type", "password"), ("username", "juan.perez"), ("password", "short")], "invalid_request"),
        ] {
            let resp = app.post(&format!("/tenants/{TENANT}/oauth2/token")).form(&form).send().await.expect("sent");
            assert_oauth_error(resp, StatusCode::BAD_REQUEST, error).await;
        }
        // A body that is no form is an invalid request too, in the same shape.
        for path in [format!("/tenants/{TENANT}/oauth2/token"), "/oauth2/introspect".into(), "/oauth2/revoke".into()] {
            let resp = app.post(&path).json(&json!({"grant_type": "password"})).send().await.expect("sent");
            assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
            let resp = app.post(&path).send().await.expect("sent");
            assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
        }
        let resp = app
            .post(&format!("/tenants/{TENANT}/oauth2/token"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.headers()["www-authenticate"], "Basic realm=\"vigia\"");
        assert_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
}

backend_tests! {
    async fn an_hmac_token_made_with_the_public_key_is_refused(backend) {
        // RFC 8725 2.1: a server that let the header choose the algorithm would check an HS256
        // token with the Ed25519 public key as the HMAC key, which everyone has.
        let app = spawn_app(backend.clone()).await;
        let issuer = format!("{}/tenants/{TENANT}", app.address);
        let (_, _, jwks) = json_of(&app, &format!("{issuer}/.well-known/jwks.json")).await;
        let key = &jwks["keys"][0];
        let token = app.token(Some(TENANT), "juan.perez").await;
        let claims = verify_offline(&app, &issuer, &token).await.expect("verifies");
        let mut header = Header::new(Algorithm::HS256);
        header.kid = key["kid"].as_str().map(str::to_owned);
        for secret in [key["x"].as_str().expect("x").as_bytes().to_vec(), {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(key["x"].as_str().expect("x"))
                .expect("base64url")
        }] {
            let forged = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret))
                .expect("signed");
            assert_error(app.whoami(&forged, Some(TENANT)).await, StatusCode::UNAUTHORIZED).await;
        }
    }
}

backend_tests! {
    async fn rotated_secrets_are_all_published_and_old_tokens_keep_working(backend) {
        // A fixed public URL: the issuer outlives the restart's new port.
        let public = "https://auth.example.test";
        let app = spawn_app_with(AppOptions {
            backend: backend.clone(),
            overrides: vec![("server.public_url".into(), format!("{public}/"))],
            ..Default::default()
        })
        .await;
        let issuer = format!("{public}/tenants/{TENANT}");
        let jwks_path = format!("/tenants/{TENANT}/.well-known/jwks.json");
        let (_, _, discovery) =
            json_of(&app, &app.url(&format!("/tenants/{TENANT}/.well-known/openid-configuration"))).await;
        assert_eq!(discovery["issuer"], issuer.as_str(), "server.public_url, without its slash");
        assert_eq!(discovery["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
        let before = app.token(Some(TENANT), "juan.perez").await;
        let (_, _, old_jwks) = json_of(&app, &app.url(&jwks_path)).await;
        assert!(verify(&old_jwks, &issuer, &before).is_ok());

        let newer = "a-newer-secret-0123456789abcdef-0123456789abcdef";
        let rotated = format!("{newer},{SECRET}");
        let app = app.restart_with(&[("jwt.secret", &rotated)]).await;
        let (_, _, jwks) = json_of(&app, &app.url(&jwks_path)).await;
        assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2), "{jwks}");
        let after = app.token(Some(TENANT), "juan.perez").await;
        let kid = |t: &str| jsonwebtoken::decode_header(t).expect("JWT").kid.expect("kid");
        assert_eq!(jwks["keys"][0]["kid"], kid(&after).as_str(), "the first secret signs");
        assert_eq!(jwks["keys"][1]["kid"], kid(&before).as_str(), "the older one still verifies");
        assert!(verify(&jwks, &issuer, &before).is_ok());
        assert!(verify(&jwks, &issuer, &after).is_ok());
        assert!(verify(&old_jwks, &issuer, &after).is_err(), "a cached JWKS misses the new kid");
        assert_eq!(app.whoami(&before, None).await.status(), StatusCode::OK, "issued before the rotation");
        assert_eq!(app.whoami(&after, None).await.status(), StatusCode::OK);
    }
}

backend_tests! {
    async fn hs256_deployments_sign_with_the_derived_key_and_publish_none(backend) {
        let app = spawn_app_with(AppOptions {
            backend: backend.clone(),
            overrides: vec![("jwt.algorithm".into(), "HS256".into())],
            ..Default::default()
        })
        .await;
        let issuer = format!("{}/tenants/{TENANT}", app.address);
        let (_, _, discovery) = json_of(&app, &format!("{issuer}/.well-known/openid-configuration")).await;
        assert_eq!(discovery["id_token_signing_alg_values_supported"], json!(["HS256"]));
        let (_, _, jwks) = json_of(&app, &format!("{issuer}/.well-known/jwks.json")).await;
        assert_eq!(jwks["keys"], json!([]), "an HMAC key is never published");
        let token = app.token(Some(TENANT), "juan.perez").await;
        assert_eq!(jsonwebtoken::decode_header(&token).expect("JWT").alg, Algorithm::HS256);
        assert!(verify_offline(&app, &issuer, &token).await.is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(vigia_test_python),
    ignore = "needs VIGIA_TEST_PYTHON: python3 with requests and PyJWT[crypto]"
)]
async fn pyjwt_verifies_tokens_with_nothing_but_the_issuer_url() {
    crate::helpers::require_python(
        "requests, jwt, cryptography",
        "pip install requests 'PyJWT[crypto]'",
    )
    .await;
    let app = spawn_app(crate::helpers::Backend::Sqlite).await;
    let issuer = format!("{}/tenants/{TENANT}", app.address);
    let client = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc/pyjwt_client.py");
    let result = json_output(&python(&[client, &issuer, "juan.perez", PASSWORD]).await);
    assert_eq!(result["claims"]["iss"], issuer.as_str());
    assert_eq!(result["claims"]["tenant"], TENANT);
    assert_eq!(result["claims"]["username"], "juan.perez");
    assert_eq!(result["expires_in"], 480 * 60);

    // The same client against another tenant's issuer with this tenant's user: no such issuer.
    let other = format!("{}/tenants/nobody", app.address);
    let out = python(&[client, &other, "juan.perez", PASSWORD]).await;
    assert!(
        !out.status.success(),
        "an unknown tenant has no discovery document"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(vigia_test_python),
    ignore = "needs VIGIA_TEST_PYTHON: python3 with requests, PyJWT[crypto] and authlib"
)]
async fn authlib_logs_in_refreshes_and_serves_a_client_with_nothing_but_the_issuer_url() {
    crate::helpers::require_python(
        "requests, jwt, cryptography, authlib",
        "pip install requests 'PyJWT[crypto]' authlib",
    )
    .await;
    let app = spawn_app(crate::helpers::Backend::Sqlite).await;
    let (id, secret) = app.service_client(TENANT, "authlib", &["icsr.view"]);
    let issuer = format!("{}/tenants/{TENANT}", app.address);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc/authlib_client.py");
    let seen = json_output(&python(&[script, &issuer, "juan.perez", PASSWORD, &id, &secret]).await);
    assert_eq!(seen["person"]["username"], "juan.perez");
    assert_eq!(seen["refreshed"]["iss"], issuer.as_str());
    assert_eq!(seen["service"]["sub"], id.as_str());
    assert_eq!(seen["service"]["permissions"], json!(["icsr.view"]));
    assert_eq!(seen["introspected"]["active"], true);
    assert_eq!(seen["introspected"]["username"], "juan.perez");
    assert_eq!(seen["after_revocation"], json!({"active": false}));
    assert_eq!(seen["reuse"], "invalid_grant");
}
