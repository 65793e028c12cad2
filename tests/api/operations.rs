//! The operators' provisioning API, and the registry kept in the legacy database.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    AppOptions, Backend, PASSWORD, TestApp, assert_error, audit, backend_tests, spawn_app_with,
};

const OPERATOR: &str = "operator-token-0123456789abcdef-0123456789";

fn options(backend: &Backend, extra: &[(&str, &str)]) -> AppOptions {
    let mut overrides = vec![("admin.token".to_owned(), OPERATOR.to_owned())];
    overrides.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    AppOptions {
        backend: backend.clone(),
        overrides,
        ..Default::default()
    }
}

fn tenant(app: &TestApp, id: &str) -> Value {
    json!({
        "id": id,
        "name": "Globex Pharma",
        "database_url": app.tenant_database_url(id),
        "admin": {
            "username": "ana",
            "email": format!("ana@{id}.example"),
            "full_name": "Ana Gómez",
            "password": PASSWORD,
        },
    })
}

async fn provision(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.post("/api/v1/admin/tenants")
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("sent")
}

async fn set_active(app: &TestApp, id: &str, active: bool) -> reqwest::Response {
    app.client
        .patch(app.url(&format!("/api/v1/admin/tenants/{id}")))
        .bearer_auth(OPERATOR)
        .json(&json!({"active": active}))
        .send()
        .await
        .expect("sent")
}

async fn listed(app: &TestApp) -> Vec<Value> {
    let resp = app
        .get("/api/v1/admin/tenants")
        .bearer_auth(OPERATOR)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json::<Value>()
        .await
        .expect("json")
        .as_array()
        .expect("list")
        .clone()
}

backend_tests! {
    async fn the_operator_api_is_absent_without_a_token(backend) {
        let app = spawn_app_with(AppOptions { backend: backend.clone(), ..Default::default() }).await;
        for token in [None, Some(OPERATOR)] {
            let mut req = app.get("/api/v1/admin/tenants");
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            assert_error(req.send().await.expect("sent"), StatusCode::NOT_FOUND).await;
        }
        let resp = provision(&app, OPERATOR, &tenant(&app, "globex")).await;
        assert_error(resp, StatusCode::NOT_FOUND).await;
    }
}

backend_tests! {
    async fn operators_provision_list_deactivate_and_reactivate_tenants(backend) {
        let app = spawn_app_with(options(&backend, &[])).await;

        // Only the operator token: neither none, nor another, nor a user's JWT.
        let user_jwt = app.token(Some(crate::helpers::TENANT), "juan.perez").await;
        for token in ["wrong-token", user_jwt.as_str()] {
            assert_error(provision(&app, token, &tenant(&app, "globex")).await, StatusCode::UNAUTHORIZED).await;
        }
        let resp = app.get("/api/v1/admin/tenants").send().await.expect("sent");
        assert_error(resp, StatusCode::UNAUTHORIZED).await;

        let resp = provision(&app, OPERATOR, &tenant(&app, "globex")).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(resp.headers()["location"], "/api/v1/admin/tenants/globex");
        let made: Value = resp.json().await.expect("json");
        assert_eq!(made["status"], "active");
        assert_eq!(made["backend"], backend.name());
        assert!(!made.to_string().contains(PASSWORD));

        // Served at once, with its admin.
        let admin = app.token(Some("globex"), "ana").await;
        let me: Value = app.me(&admin, None).await.json().await.expect("json");
        assert_eq!(me["role"], "admin");
        // Audited in the tenant's own trail.
        let events = audit(&app, &admin, "").await;
        let kinds: Vec<&str> = events.iter()
            .map(|e| e["event_type"].as_str().expect("type")).collect();
        assert!(kinds.ends_with(&["user_created", "tenant_provisioned"]), "{kinds:?}");

        let ids: Vec<String> = listed(&app).await.iter().map(|t| t["id"].as_str().expect("id").to_owned()).collect();
        assert_eq!(ids, ["acme", "globex"]);

        assert_error(provision(&app, OPERATOR, &tenant(&app, "globex")).await, StatusCode::CONFLICT).await;
        let mut bad = tenant(&app, "Bad_Id");
        assert_error(provision(&app, OPERATOR, &bad).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        bad = tenant(&app, "initech");
        bad["admin"]["password"] = json!("ana@initech.example");
        assert_error(provision(&app, OPERATOR, &bad).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        // A database that cannot be reached: refused, and nothing registered.
        bad = tenant(&app, "initech");
        bad["database_url"] = json!("postgres://nobody@127.0.0.1:1/nowhere");
        let resp = provision(&app, OPERATOR, &bad).await;
        assert!(resp.status().is_server_error(), "{}", resp.status());
        assert_eq!(listed(&app).await.len(), 2, "nothing left behind");
        let resp = app.login(Some("initech"), "ana", PASSWORD).await;
        assert_error(resp, StatusCode::NOT_FOUND).await;

        // Deactivated: logins and tokens refused; reactivated: served again.
        let resp = set_active(&app, "globex", false).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.json::<Value>().await.expect("json")["status"], "inactive");
        assert_error(app.login(Some("globex"), "ana", PASSWORD).await, StatusCode::FORBIDDEN).await;
        assert_error(app.me(&admin, None).await, StatusCode::FORBIDDEN).await;
        assert_eq!(set_active(&app, "globex", true).await.status(), StatusCode::OK);
        assert_eq!(app.me(&admin, None).await.status(), StatusCode::OK);
        assert_error(set_active(&app, "nobody", false).await, StatusCode::NOT_FOUND).await;

        assert_eq!(audit(&app, &admin, "type=tenant_deactivated").await.len(), 1);
    }
}

backend_tests! {
    async fn the_registry_can_live_in_the_legacy_database(backend) {
        let app = spawn_app_with(options(&backend, &[("tenants.registry", "database")])).await;
        let resp = provision(&app, OPERATOR, &tenant(&app, "globex")).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert!(
            !app.settings.tenants.dir.join("globex.toml").exists(),
            "the entry is a row, not a file"
        );
        app.token(Some("globex"), "ana").await;
        assert_eq!(set_active(&app, "globex", false).await.status(), StatusCode::OK);
        assert_error(app.login(Some("globex"), "ana", PASSWORD).await, StatusCode::FORBIDDEN).await;
        assert_eq!(set_active(&app, "globex", true).await.status(), StatusCode::OK);

        // A restarted server (another replica, say) reads the same table.
        let app = app.restart().await;
        app.token(Some("globex"), "ana").await;
        let listed = listed(&app).await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["id"], "globex");
    }
}

/// The password in `url`'s userinfo, if any.
fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    Some(userinfo.split_once(':')?.1.to_owned())
}

/// `url` (`postgres://user@host/db`) with `password` in its userinfo and again as
/// `?password=`.
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a scheme");
    let (authority, path) = rest.split_once('/').expect("a database");
    let (userinfo, host) = authority.rsplit_once('@').unwrap_or(("", authority));
    let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
    format!("{scheme}://{user}:{password}@{host}/{path}?password={password}")
}

backend_tests! {
    /// Issue 12, finding 9: neither the operators' API nor the audit trail shows a password
    /// given in a database URL's userinfo or query string.
    async fn database_passwords_never_show_in_the_operators_api_or_the_audit_trail(backend) {
        let app = spawn_app_with(options(&backend, &[])).await;
        // An entry written by hand, never opened: the listing shows it as it parses.
        std::fs::write(
            app.settings.tenants.dir.join("byhand.toml"),
            "database_url = 'postgres://u:pw-in-userinfo@db.invalid/x?password=s3cret\
             &sslmode=require&PassWord=s3cret&sslpassword=s3cret&pass%77ord=s3cret'\n\
             name = 'By hand'\nactive = true\n",
        )
        .expect("registry file");
        let mut secrets = vec!["s3cret".to_owned(), "pw-in-userinfo".to_owned()];

        if let Some(url) = app.tenant_database_url("globex") {
            // On Postgres, provisioned through the API as well: the test server trusts its
            // role, so the password (the server's own, if its URL has one) is only carried.
            let password = password_of(&url).unwrap_or_else(|| "s3cret-pg".to_owned());
            secrets.push(password.clone());
            let mut body = tenant(&app, "globex");
            body["database_url"] = json!(with_password(&url, &password));
            let resp = provision(&app, OPERATOR, &body).await;
            assert_eq!(resp.status(), StatusCode::CREATED);
            let made = resp.text().await.expect("body");
            assert!(made.contains(":***@") && made.contains("password=***"), "{made}");
            for secret in &secrets {
                assert!(!made.contains(secret.as_str()), "{secret} in {made}");
            }
            let admin = app.token(Some("globex"), "ana").await;
            let events = audit(&app, &admin, "type=tenant_provisioned").await;
            let shown = serde_json::to_string(&events).expect("json");
            assert!(shown.contains("password=***"), "{shown}");
            for secret in &secrets {
                assert!(!shown.contains(secret.as_str()), "{secret} in {shown}");
            }
        }

        let list = serde_json::to_string(&listed(&app).await).expect("json");
        assert!(
            list.contains(
                "postgres://u:***@db.invalid/x?password=***&sslmode=require&PassWord=***\
                 &sslpassword=***&pass%77ord=***"
            ),
            "{list}"
        );
        for secret in &secrets {
            assert!(!list.contains(secret.as_str()), "{secret} in {list}");
        }
    }
}
