//! Permissions (role grants merged with per-user overrides, shown by /me) and the users admin
//! API: create, list, roles, overrides — all audited, none on one's own account.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, TENANT, TestApp, UserSpec, assert_error, audit, backend_tests, eventually, put,
    spawn_app,
};

async fn me(app: &TestApp, token: &str) -> Value {
    let resp = app.me(token, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.expect("json")
}

async fn create_user(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.post("/api/v1/users")
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("sent")
}

fn new_user(username: &str, roles: &[&str]) -> Value {
    json!({
        "username": username,
        "email": format!("{username}@acme.example"),
        "full_name": "Ana Torres",
        "password": PASSWORD,
        "roles": roles,
        "empleado_id": 77,
    })
}

backend_tests! {
    async fn me_shows_the_roles_grants_merged_with_the_users_overrides(backend) {
        let app = spawn_app(backend.clone()).await;
        let mut spec = UserSpec::new("ana").roles(&["qf"]);
        spec.permissions = json!({"icsr": {"edit": false, "delete": true}, "labels": {"print": true}});
        app.create_user(Some(TENANT), spec).await;
        let token = app.token(Some(TENANT), "ana").await;
        let permissions = me(&app, &token).await["permissions"].clone();
        assert_eq!(permissions["icsr"], json!({"view": true, "edit": false, "delete": true}));
        assert_eq!(permissions["reports"], json!({"view": true, "generate": true}));
        assert_eq!(permissions["users"], json!({"view": false, "manage": false}));
        assert_eq!(permissions["audit"], json!({"view": false}));
        assert_eq!(permissions["labels"], json!({"print": true}));

        let admin = app.token(Some(TENANT), "juan.perez").await;
        let permissions = me(&app, &admin).await["permissions"].clone();
        for module in ["icsr", "reports", "users", "audit"] {
            let actions = permissions[module].as_object().expect("module");
            assert!(actions.values().all(|a| a == true), "admin: {module}: {actions:?}");
        }
    }
}

backend_tests! {
    async fn a_tenant_file_defines_further_roles(backend) {
        let app = spawn_app(backend.clone()).await;
        let file = app.settings.tenants.dir.join(format!("{TENANT}.toml"));
        let mut text = std::fs::read_to_string(&file).expect("tenant file");
        text.push_str("\n[roles.evaluator]\nicsr = { view = true }\nsignals = { assess = true }\n");
        std::fs::write(&file, text).expect("written");
        app.create_user(Some(TENANT), UserSpec::new("eva").roles(&["evaluator"])).await;
        // The registry re-reads a changed file within tenants.recheck_millis.
        let permissions = eventually(Duration::from_secs(10), || async {
            let token = app.token(Some(TENANT), "eva").await;
            let permissions = me(&app, &token).await["permissions"].clone();
            (permissions["signals"]["assess"] == true).then_some(permissions)
        })
        .await;
        assert_eq!(permissions["icsr"], json!({"view": true, "edit": false, "delete": false}));
        let token = app.token(Some(TENANT), "eva").await;
        let resp = app.get("/api/v1/icsrs").bearer_auth(&token).send().await.expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);
        // The new role can now be assigned through the API.
        let admin = app.token(Some(TENANT), "juan.perez").await;
        let resp = create_user(&app, &admin, new_user("eve", &["evaluator"])).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
}

backend_tests! {
    async fn me_follows_a_redefined_role_without_a_new_token(backend) {
        // `/me` bodies are rendered once per user record and tenant handle: a tenant file
        // that redefines a role must still show in the next `/me` of an unchanged user.
        let app = spawn_app(backend.clone()).await;
        app.create_user(Some(TENANT), UserSpec::new("ana").roles(&["qf"])).await;
        let token = app.token(Some(TENANT), "ana").await;
        let before = me(&app, &token).await;
        assert_eq!(before["permissions"]["icsr"], json!({"view": true, "edit": true, "delete": false}));
        assert_eq!(me(&app, &token).await, before, "a second read is the same body");

        let file = app.settings.tenants.dir.join(format!("{TENANT}.toml"));
        let mut text = std::fs::read_to_string(&file).expect("tenant file");
        text.push_str("\n[roles.qf]\nicsr = { view = true, delete = true }\n");
        std::fs::write(&file, text).expect("written");
        let after = eventually(Duration::from_secs(10), || async {
            let body = me(&app, &token).await;
            (body["permissions"]["icsr"]["delete"] == true).then_some(body)
        })
        .await;
        assert_eq!(after["permissions"]["icsr"], json!({"view": true, "edit": false, "delete": true}));
        assert_eq!(after["permissions"]["reports"], json!({"view": false, "generate": false}));
        assert_eq!(after["username"], before["username"]);
    }
}

backend_tests! {
    async fn admins_create_list_and_read_users(backend) {
        let app = spawn_app(backend.clone()).await;
        let admin = app.token(Some(TENANT), "juan.perez").await;

        let resp = create_user(&app, &admin, new_user("ana.torres", &["qf"])).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let location = resp.headers()["location"].to_str().expect("ascii").to_owned();
        let ana: Value = resp.json().await.expect("json");
        assert_eq!(ana["username"], "ana.torres");
        assert_eq!(ana["role"], "qf");
        assert_eq!(ana["is_active"], true);
        assert_eq!(ana["empleado_id"], 77);
        assert_eq!(ana["permissions"], json!({}));
        assert_eq!(ana["effective_permissions"]["icsr"]["edit"], true);
        assert!(ana.get("password_hash").is_none() && !ana.to_string().contains("argon2"));

        // The new user can log in with the password given.
        let token = app.token(Some(TENANT), "ana.torres").await;
        assert_eq!(me(&app, &token).await["email"], "ana.torres@acme.example");

        let read: Value = app.get(&location).bearer_auth(&admin).send().await.expect("sent").json().await.expect("json");
        assert_eq!(read["id"], ana["id"]);
        let list: Value = app.get("/api/v1/users?role=qf").bearer_auth(&admin).send().await.expect("sent").json().await.expect("json");
        let names: Vec<&str> = list.as_array().expect("list").iter().map(|u| u["username"].as_str().expect("name")).collect();
        assert_eq!(names, ["ana.torres", "juan.perez"], "newest first, holders of qf");
        let inactive: Value = app.get("/api/v1/users?active=false").bearer_auth(&admin).send().await.expect("sent").json().await.expect("json");
        assert_eq!(inactive, json!([]));
        let active: Value = app.get("/api/v1/users?active=true").bearer_auth(&admin).send().await.expect("sent").json().await.expect("json");
        assert_eq!(active.as_array().expect("list").len(), 2);
        let resp = app.get("/api/v1/users?limit=1").bearer_auth(&admin).send().await.expect("sent");
        assert!(resp.headers()["link"].to_str().expect("ascii").contains("before="));

        // Taken names, unknown roles, weak passwords.
        assert_error(create_user(&app, &admin, new_user("ANA.TORRES", &["qf"])).await, StatusCode::CONFLICT).await;
        let detail = assert_error(create_user(&app, &admin, new_user("bob", &["qff"])).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(detail.contains("qff"), "{detail}");
        let mut weak = new_user("carl", &["qf"]);
        weak["password"] = json!("carl");
        assert_error(create_user(&app, &admin, weak).await, StatusCode::UNPROCESSABLE_ENTITY).await;

        // A qf user may not.
        assert_error(create_user(&app, &token, new_user("dan", &["qf"])).await, StatusCode::FORBIDDEN).await;
        let resp = app.get("/api/v1/users").bearer_auth(&token).send().await.expect("sent");
        let detail = assert_error(resp, StatusCode::FORBIDDEN).await;
        assert!(detail.contains("users.view"), "{detail}");

        // Audited, with the admin as actor.
        let events = audit(&app, &admin, "type=user_created&user=ana.torres").await;
        let event = &events[0];
        assert_eq!(event["actor_username"], "juan.perez");
        assert_eq!(event["details"]["via"], "api");
        assert_eq!(event["details"]["roles"], json!(["qf"]));
    }
}

backend_tests! {
    async fn role_changes_revoke_tokens_and_are_audited(backend) {
        let app = spawn_app(backend.clone()).await;
        let ana = app.create_user(Some(TENANT), UserSpec::new("ana").roles(&["qf"])).await;
        let admin = app.token(Some(TENANT), "juan.perez").await;
        let old = app.token(Some(TENANT), "ana").await;

        let resp = put(&app, &admin, &format!("/api/v1/users/{ana}/roles"), json!({"roles": ["admin", "qf"]})).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["roles"], json!(["admin", "qf"]));
        // The old token claims the old roles: refused.
        assert_error(app.me(&old, None).await, StatusCode::UNAUTHORIZED).await;
        let new = app.token(Some(TENANT), "ana").await;
        assert_eq!(me(&app, &new).await["role"], "admin");

        let resp = put(&app, &admin, &format!("/api/v1/users/{ana}/permissions"), json!({"permissions": {"icsr": {"delete": false}}})).await;
        assert_eq!(resp.status(), StatusCode::OK);
        // Overrides take effect on the next request, without a new login.
        assert_eq!(me(&app, &new).await["permissions"]["icsr"]["delete"], false);

        // Not on oneself; not malformed; not unknown users.
        let me_id = me(&app, &admin).await["id"].as_i64().expect("id");
        assert_error(put(&app, &admin, &format!("/api/v1/users/{me_id}/roles"), json!({"roles": ["qf"]})).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_error(put(&app, &admin, &format!("/api/v1/users/{me_id}/permissions"), json!({"permissions": {}})).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_error(put(&app, &admin, &format!("/api/v1/users/{ana}/roles"), json!({"roles": ["qf", "qf"]})).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_error(put(&app, &admin, &format!("/api/v1/users/{ana}/permissions"), json!({"permissions": {"icsr": {"view": "yes"}}})).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_error(put(&app, &admin, "/api/v1/users/999999/roles", json!({"roles": ["qf"]})).await, StatusCode::NOT_FOUND).await;

        let items = audit(&app, &admin, "user=ana").await;
        let roles = items.iter().find(|e| e["event_type"] == "user_roles_changed").expect("roles record");
        assert_eq!(roles["details"], json!({"old": ["qf"], "new": ["admin", "qf"]}));
        assert_eq!(roles["actor_username"], "juan.perez");
        let perms = items.iter().find(|e| e["event_type"] == "user_permissions_changed").expect("permissions record");
        assert_eq!(perms["details"]["new"], json!({"icsr": {"delete": false}}));
        assert_eq!(perms["details"]["old"], json!({}));
    }
}
