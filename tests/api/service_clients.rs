//! Service clients (the client-credentials grant), introspection (RFC 7662) and revocation
//! (RFC 7009): machines get tokens of their own, within what their creator may do; a resource
//! server asks whether a token is still active and sees logouts and password changes at once.

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, TENANT, TestApp, UserSpec, assert_error, assert_oauth_error, audit, backend_tests,
    jwt_claims, spawn_app,
};

async fn client_token(app: &TestApp, tenant: &str, id: &str, secret: &str) -> Response {
    app.post(&format!("/tenants/{tenant}/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("sent")
}

async fn introspect(app: &TestApp, client: &(String, String), token: &str) -> Value {
    let resp = app
        .post(&format!("/tenants/{TENANT}/oauth2/introspect"))
        .basic_auth(&client.0, Some(&client.1))
        .form(&[("token", token)])
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    resp.json().await.expect("JSON")
}

async fn revoke(app: &TestApp, client: Option<&(String, String)>, token: &str) -> Response {
    let mut req = app.post(&format!("/tenants/{TENANT}/oauth2/revoke"));
    if let Some((id, secret)) = client {
        req = req.basic_auth(id, Some(secret));
    }
    req.form(&[("token", token), ("token_type_hint", "access_token")])
        .send()
        .await
        .expect("sent")
}

/// Logs `username` in at the tenant's token endpoint; the whole token response.
async fn password_grant(app: &TestApp, tenant: &str, username: &str) -> Value {
    let resp = app
        .post(&format!("/tenants/{tenant}/oauth2/token"))
        .form(&[("username", username), ("password", PASSWORD)])
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.expect("JSON")
}

backend_tests! {
    async fn an_operators_client_gets_its_own_tokens_until_revoked(backend) {
        let app = spawn_app(backend.clone()).await;
        let (id, secret) = app.service_client(TENANT, "signals", &["icsr.view", "reports.view"]);
        assert!(id.starts_with("svc-"), "{id}");
        assert_eq!(secret.len(), 43);

        let resp = client_token(&app, TENANT, &id, &secret).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let body: Value = resp.json().await.expect("JSON");
        assert_eq!(body["scope"], "icsr.view reports.view");
        assert!(body.get("refresh_token").is_none() && body.get("user").is_none(), "{body}");
        let token = body["access_token"].as_str().expect("token").to_owned();
        let c = jwt_claims(&token);
        assert_eq!((&c["sub"], &c["client_id"]), (&json!(id), &json!(id)));
        assert_eq!(c["permissions"], json!(["icsr.view", "reports.view"]));
        assert_eq!(c["iss"], format!("{}/tenants/{TENANT}", app.address));
        assert_eq!(c["tenant"], TENANT);
        // A client is no user: the user endpoints refuse its token.
        let detail = assert_error(app.whoami(&token, None).await, StatusCode::UNAUTHORIZED).await;
        assert!(detail.contains("service client"), "{detail}");

        // client_secret_post works too; a wrong secret, an unknown client, or a client of
        // another tenant do not.
        let resp = app
            .post(&format!("/tenants/{TENANT}/oauth2/token"))
            .form(&[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", &secret)])
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);
        for (who, pass) in [(id.as_str(), "wrong"), ("svc-0000000000000000", secret.as_str())] {
            let resp = client_token(&app, TENANT, who, pass).await;
            assert_eq!(resp.headers()["www-authenticate"], "Basic realm=\"vigia\"");
            assert_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
        }
        // A malformed ID (a NUL, which Postgres refuses in a parameter) is just no client.
        let resp = app
            .post(&format!("/tenants/{TENANT}/oauth2/token"))
            .form(&[("grant_type", "client_credentials"), ("client_id", "svc-\0x"), ("client_secret", "s")])
            .send()
            .await
            .expect("sent");
        assert_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
        app.provision_tenant("globex").await;
        let resp = client_token(&app, "globex", &id, &secret).await;
        assert_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;

        // Listed, then revoked: no more tokens, and its tokens introspect inactive at once.
        let gateway = app.service_client(TENANT, "gateway", &[]);
        assert_eq!(introspect(&app, &gateway, &token).await["active"], true);
        let out = app.cli().args(["client", "list", "--tenant", TENANT]).output().expect("runs");
        let listed = String::from_utf8(out.stdout).expect("UTF-8");
        assert!(listed.lines().any(|l| l.starts_with(&id) && l.ends_with("active")), "{listed}");
        assert!(!listed.contains(&secret));
        let out = app.cli().args(["client", "revoke", "--tenant", TENANT, &id]).output().expect("runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = app.cli().args(["client", "revoke", "--tenant", TENANT, &id]).output().expect("runs");
        assert!(!out.status.success(), "revoking twice is an error");
        let resp = client_token(&app, TENANT, &id, &secret).await;
        assert_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
        assert_eq!(introspect(&app, &gateway, &token).await, json!({"active": false}));

        let admin = app.token(Some(TENANT), "juan.perez").await;
        for (kind, count) in [
            ("client_created", 2),
            ("client_token_issued", 2),
            ("client_revoked", 1),
            ("client_auth_failed", 4),
        ] {
            let events = audit(&app, &admin, &format!("type={kind}")).await;
            assert_eq!(events.len(), count, "{kind}: {events:?}");
        }
    }
}

backend_tests! {
    async fn administrators_create_clients_within_their_own_authority(backend) {
        let app = spawn_app(backend.clone()).await;
        let admin = app.token(Some(TENANT), "juan.perez").await;
        let create = |token: &str, body: Value| {
            app.post("/api/v1/clients").bearer_auth(token).json(&body).send()
        };
        let resp = create(&admin, json!({"name": "reports", "permissions": ["reports.view", "icsr.view"]})).await.expect("sent");
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let created: Value = resp.json().await.expect("JSON");
        let id = created["client_id"].as_str().expect("id").to_owned();
        let secret = created["client_secret"].as_str().expect("secret").to_owned();
        assert_eq!(created["permissions"], json!(["icsr.view", "reports.view"]));
        assert_eq!(created["created_by"], "juan.perez");
        assert_eq!(client_token(&app, TENANT, &id, &secret).await.status(), StatusCode::OK);

        // Listed without the secret, nor anything derived from it.
        let resp = app.get("/api/v1/clients").bearer_auth(&admin).send().await.expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);
        let text = resp.text().await.expect("body");
        assert!(text.contains(&id) && !text.contains(&secret) && !text.contains("secret"), "{text}");

        // A pharmacist may not; a users.manage holder may grant only what it holds.
        app.create_user(Some(TENANT), UserSpec::new("ana")).await;
        let ana = app.token(Some(TENANT), "ana").await;
        let resp = create(&ana, json!({"name": "x", "permissions": []})).await.expect("sent");
        assert_error(resp, StatusCode::FORBIDDEN).await;
        assert_error(app.get("/api/v1/clients").bearer_auth(&ana).send().await.expect("sent"), StatusCode::FORBIDDEN).await;
        let mut helpdesk = UserSpec::new("helpdesk");
        helpdesk.permissions = json!({"users": {"manage": true}});
        app.create_user(Some(TENANT), helpdesk).await;
        let helpdesk = app.token(Some(TENANT), "helpdesk").await;
        let resp = create(&helpdesk, json!({"name": "x", "permissions": ["icsr.view", "icsr.delete"]})).await.expect("sent");
        let detail = assert_error(resp, StatusCode::FORBIDDEN).await;
        assert!(detail.contains("icsr.delete") && !detail.contains("icsr.view"), "{detail}");
        let resp = create(&helpdesk, json!({"name": "x", "permissions": ["icsr.view"]})).await.expect("sent");
        assert_eq!(resp.status(), StatusCode::CREATED);
        let refused = audit(&app, &admin, "type=account_change_refused").await;
        assert!(refused.iter().any(|e| e["details"]["action"] == "create_client" && e["details"]["missing"] == json!(["icsr.delete"])), "{refused:?}");

        // Bad input is a 422, never a client.
        for body in [
            json!({"name": "", "permissions": []}),
            json!({"name": "x", "permissions": ["icsr"]}),
            json!({"name": "x", "permissions": ["ICSR.VIEW"]}),
            json!({"name": "x"}),
        ] {
            let resp = create(&admin, body.clone()).await.expect("sent");
            assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
        }

        // Revoked through the API, once.
        let path = format!("/api/v1/clients/{id}");
        let resp = app.client.delete(app.url(&path)).bearer_auth(&ana).send().await.expect("sent");
        assert_error(resp, StatusCode::FORBIDDEN).await;
        let resp = app.client.delete(app.url(&path)).bearer_auth(&admin).send().await.expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);
        let resp = app.client.delete(app.url(&path)).bearer_auth(&admin).send().await.expect("sent");
        assert_error(resp, StatusCode::NOT_FOUND).await;
        let resp = client_token(&app, TENANT, &id, &secret).await;
        assert_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
}

backend_tests! {
    async fn introspection_sees_logouts_and_password_changes_at_once(backend) {
        let app = spawn_app(backend.clone()).await;
        let gateway = app.service_client(TENANT, "gateway", &[]);
        let login = password_grant(&app, TENANT, "juan.perez").await;
        let token = login["access_token"].as_str().expect("token");
        let found = introspect(&app, &gateway, token).await;
        assert_eq!(found["active"], true);
        assert_eq!(found["sub"], "1");
        assert_eq!(found["username"], "juan.perez");
        assert_eq!(found["token_type"], "access_token");
        assert_eq!(found["sid"], jwt_claims(token)["sid"]);
        assert!(found["scope"].as_str().is_some_and(|s| s.split(' ').any(|p| p == "users.manage")), "{found}");

        // Only a client may ask.
        let url = format!("/tenants/{TENANT}/oauth2/introspect");
        let resp = app.post(&url).form(&[("token", token)]).send().await.expect("sent");
        assert_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
        let resp = app.post(&url).basic_auth(&gateway.0, Some("nope")).form(&[("token", token)]).send().await.expect("sent");
        assert_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;

        // A refresh token is active until spent.
        let refresh = login["refresh_token"].as_str().expect("refresh");
        let found = introspect(&app, &gateway, refresh).await;
        assert_eq!((&found["active"], &found["token_type"]), (&json!(true), &json!("refresh_token")));
        let resp = app.refresh_grant(Some(TENANT), refresh).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(introspect(&app, &gateway, refresh).await, json!({"active": false}));

        // Logout, then a password change: inactive at once.
        let resp = app.post("/api/v1/auth/logout").bearer_auth(token).send().await.expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(introspect(&app, &gateway, token).await, json!({"active": false}));
        let token = app.token(Some(TENANT), "juan.perez").await;
        assert_eq!(introspect(&app, &gateway, &token).await["active"], true);
        let resp = app.change_password(&token, PASSWORD, "AnotherPass456").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(introspect(&app, &gateway, &token).await, json!({"active": false}));

        // What the user may do is read now, not from the token: a withdrawn action is gone.
        let ana = app.create_user(Some(TENANT), UserSpec::new("ana")).await;
        let ana_token = app.token(Some(TENANT), "ana").await;
        let scope = |found: Value| found["scope"].as_str().expect("scope").to_owned();
        assert!(scope(introspect(&app, &gateway, &ana_token).await).contains("icsr.edit"));
        let admin = app.token_with(Some(TENANT), "juan.perez", "AnotherPass456").await;
        let resp = crate::helpers::put(&app, &admin, &format!("/api/v1/users/{ana}/permissions"), json!({"permissions": {"icsr": {"edit": false}}})).await;
        assert!(resp.status().is_success(), "{}", resp.status());
        let now = scope(introspect(&app, &gateway, &ana_token).await);
        assert!(!now.contains("icsr.edit") && now.contains("icsr.view"), "{now}");

        // Another tenant's token, and garbage, are inactive here.
        app.provision_tenant("globex").await;
        app.create_user(Some("globex"), UserSpec::new("hank")).await;
        let foreign = password_grant(&app, "globex", "hank").await;
        for token in [foreign["access_token"].as_str().expect("token"), foreign["refresh_token"].as_str().expect("refresh"), "x.y.z", "garbage", ""] {
            let resp = app.post(&url).basic_auth(&gateway.0, Some(&gateway.1)).form(&[("token", token)]).send().await.expect("sent");
            if token.is_empty() {
                assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
            } else {
                assert_eq!(resp.json::<Value>().await.expect("JSON"), json!({"active": false}), "{token}");
            }
        }
    }
}

backend_tests! {
    async fn revocation_ends_what_it_names(backend) {
        let app = spawn_app(backend.clone()).await;
        let gateway = app.service_client(TENANT, "gateway", &["icsr.view"]);

        // A refresh token, by its holder (no client needed): its session and access tokens end.
        let login = password_grant(&app, TENANT, "juan.perez").await;
        let (access, refresh) = (login["access_token"].as_str().expect("a"), login["refresh_token"].as_str().expect("r"));
        let resp = revoke(&app, None, refresh).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_error(app.whoami(access, None).await, StatusCode::UNAUTHORIZED).await;
        let resp = app.refresh_grant(Some(TENANT), refresh).await;
        assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;

        // An access token, by a client.
        let access = app.token(Some(TENANT), "juan.perez").await;
        assert_eq!(revoke(&app, Some(&gateway), &access).await.status(), StatusCode::OK);
        assert_error(app.whoami(&access, None).await, StatusCode::UNAUTHORIZED).await;

        // A client's own token.
        let resp = client_token(&app, TENANT, &gateway.0, &gateway.1).await;
        let body: Value = resp.json().await.expect("JSON");
        let own = body["access_token"].as_str().expect("token");
        assert_eq!(introspect(&app, &gateway, own).await["active"], true);
        assert_eq!(revoke(&app, Some(&gateway), own).await.status(), StatusCode::OK);
        assert_eq!(introspect(&app, &gateway, own).await, json!({"active": false}));

        // Unknown or dead tokens answer the same; bad client credentials do not.
        for token in ["garbage", refresh, &access] {
            assert_eq!(revoke(&app, Some(&gateway), token).await.status(), StatusCode::OK);
        }
        let bad = (gateway.0.clone(), "wrong".to_owned());
        let resp = revoke(&app, Some(&bad), "garbage").await;
        assert_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;

        // A spent refresh token revoked by its holder (the app logging out after a thief
        // refreshed first): the session ends, the thief's tokens with it.
        let login = password_grant(&app, TENANT, "juan.perez").await;
        let spent = login["refresh_token"].as_str().expect("refresh");
        let resp = app.refresh_grant(Some(TENANT), spent).await;
        let thief: Value = resp.json().await.expect("JSON");
        assert_eq!(revoke(&app, None, spent).await.status(), StatusCode::OK);
        let thief_access = thief["access_token"].as_str().expect("access");
        assert_error(app.whoami(thief_access, None).await, StatusCode::UNAUTHORIZED).await;

        let admin = app.token(Some(TENANT), "juan.perez").await;
        let revoked = audit(&app, &admin, "type=token_revoked").await;
        let by: Vec<&Value> = revoked.iter().map(|e| &e["details"]["revoked_by"]).collect();
        assert_eq!(by.len(), 3, "the refresh token, the user's and the client's access tokens: {revoked:?}");
        assert_eq!(by.iter().filter(|b| **b == &json!(gateway.0)).count(), 2, "{by:?}");
        assert!(audit(&app, &admin, "type=logout").await.is_empty(), "a revocation is no logout");
        assert_eq!(audit(&app, &admin, "type=refresh_token_reused").await.len(), 1);
    }
}

backend_tests! {
    async fn failed_client_authentications_are_rate_limited_per_address(backend) {
        let app = crate::helpers::spawn_app_with(crate::helpers::AppOptions {
            backend: backend.clone(),
            overrides: vec![("security.login_attempts_per_ip_per_minute".into(), "4".into())],
            ..Default::default()
        })
        .await;
        // One of the address's four attempts a minute: logins and client failures share them.
        let admin = app.token(Some(TENANT), "juan.perez").await;
        let (id, _) = app.service_client(TENANT, "gateway", &[]);
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(client_token(&app, TENANT, &id, "wrong").await.status());
        }
        assert_eq!(statuses[..3], [StatusCode::UNAUTHORIZED; 3], "{statuses:?}");
        let resp = client_token(&app, TENANT, &id, "wrong").await;
        assert!(resp.headers().contains_key("retry-after"));
        assert_oauth_error(resp, StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable").await;
        // Each refusal past the limit writes nothing: the audit trail holds the first three.
        assert_eq!(audit(&app, &admin, "type=client_auth_failed").await.len(), 3);
    }
}

backend_tests! {
    async fn the_legacy_issuer_never_vouches_for_a_tenants_token(backend) {
        let app = spawn_app(backend.clone()).await;
        app.create_user(None, UserSpec::new("root").roles(&["admin"])).await;
        let root = app.token(None, "root").await;
        let resp = app
            .post("/api/v1/clients")
            .bearer_auth(&root)
            .json(&json!({"name": "legacy gateway", "permissions": []}))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::CREATED);
        let created: Value = resp.json().await.expect("JSON");
        let id = created["client_id"].as_str().expect("id");
        let secret = created["client_secret"].as_str().expect("secret");
        let tenant_token = app.token(Some(TENANT), "juan.perez").await;
        for (token, active) in [(root.as_str(), true), (tenant_token.as_str(), false)] {
            let resp = app
                .post("/oauth2/introspect")
                .basic_auth(id, Some(secret))
                .form(&[("token", token)])
                .send()
                .await
                .expect("sent");
            let found: Value = resp.json().await.expect("JSON");
            assert_eq!(found["active"], active, "{found}");
        }
        // Nor does it revoke one, nor write in the tenant's trail.
        let resp = app.post("/oauth2/revoke").form(&[("token", tenant_token.as_str())]).send().await.expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(app.whoami(&tenant_token, None).await.status(), StatusCode::OK);
        assert!(audit(&app, &tenant_token, "type=token_refused").await.is_empty());
    }
}
