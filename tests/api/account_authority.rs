//! The rule of account administration (issue 12): every account change checks the caller's
//! permissions after its overrides, and reaches no further than the caller's own authority —
//! no role or `true` override it lacks the actions of, no account that holds actions it lacks.
//! The matrix: a full admin, an admin whose `users.*` were withdrawn, a helpdesk role that
//! grants `users.manage` only, and a `qf` granted `users.manage` by an override.

use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    AppOptions, Backend, PASSWORD, TENANT, TestApp, UserSpec, assert_error, audit, backend_tests,
    eventually, put, spawn_app, spawn_app_with,
};

const NEW_PASSWORD: &str = "Taken-Over-99";

async fn production(backend: &Backend) -> TestApp {
    spawn_app_with(AppOptions {
        backend: backend.clone(),
        overrides: vec![("environment".into(), "production".into())],
        ..Default::default()
    })
    .await
}

/// Defines `helpdesk` (`users.manage` only) and `evaluator` (`icsr.view`, `signals.assess`) in
/// the tenant's file, and waits until the server serves them: `token`'s `/me` then names
/// `signals`, as every `/me` lists every action the tenant's roles mention.
async fn define_roles(app: &TestApp, token: &str) {
    let file = app.settings.tenants.dir.join(format!("{TENANT}.toml"));
    let mut text = std::fs::read_to_string(&file).expect("tenant file");
    text.push_str(
        "\n[roles.helpdesk]\nusers = { manage = true }\n\
         \n[roles.evaluator]\nicsr = { view = true }\nsignals = { assess = true }\n",
    );
    std::fs::write(&file, text).expect("written");
    eventually(Duration::from_secs(10), || async {
        let me: Value = app.me(token, None).await.json().await.expect("json");
        me["permissions"]["signals"].is_object().then_some(())
    })
    .await;
}

async fn create(
    app: &TestApp,
    token: &str,
    username: &str,
    roles: &[&str],
    permissions: Value,
) -> Response {
    app.post("/api/v1/users")
        .bearer_auth(token)
        .json(&json!({
            "username": username,
            "email": format!("{username}@acme.example"),
            "password": PASSWORD,
            "roles": roles,
            "permissions": permissions,
        }))
        .send()
        .await
        .expect("sent")
}

async fn post(app: &TestApp, token: &str, path: &str) -> Response {
    app.post(path)
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
}

/// Every account change `token` may attempt on user `id` (`email`), each asserted refused with
/// 403; returns the details.
async fn every_change_is_refused(app: &TestApp, token: &str, id: i64, email: &str) -> Vec<String> {
    let mut details = Vec::new();
    for resp in [
        put(
            app,
            token,
            &format!("/api/v1/users/{id}/roles"),
            json!({"roles": ["qf"]}),
        )
        .await,
        put(
            app,
            token,
            &format!("/api/v1/users/{id}/permissions"),
            json!({"permissions": {}}),
        )
        .await,
        post(app, token, &format!("/api/v1/users/{id}/deactivate")).await,
        post(app, token, &format!("/api/v1/users/{id}/activate")).await,
        post(app, token, &format!("/api/v1/users/{id}/unlock")).await,
        app.reset_password(Some(TENANT), Some(token), email, NEW_PASSWORD)
            .await,
    ] {
        details.push(assert_error(resp, StatusCode::FORBIDDEN).await);
    }
    details
}

/// `username`'s `/me`, through a fresh login with [`PASSWORD`].
async fn me_of(app: &TestApp, username: &str) -> Value {
    let token = app.token(Some(TENANT), username).await;
    app.me(&token, None).await.json().await.expect("json")
}

backend_tests! {
    async fn in_production_an_admin_whose_users_actions_were_withdrawn_cannot_take_over_another_admin(backend) {
        let app = production(&backend).await;
        let root = app.create_user(Some(TENANT), UserSpec::new("root").roles(&["admin"])).await;
        let mut lame = UserSpec::new("lame").roles(&["admin"]);
        lame.permissions = json!({"users": {"view": false, "manage": false}});
        let lame = app.create_user(Some(TENANT), lame).await;
        let withdrawn = app.token(Some(TENANT), "lame").await;

        let details = every_change_is_refused(&app, &withdrawn, root, "root@example.com").await;
        let created = create(&app, &withdrawn, "mallory", &["admin"], json!({})).await;
        let detail = assert_error(created, StatusCode::FORBIDDEN).await;

        assert!(details.iter().chain([&detail]).all(|d| d == "Missing permission: users.manage"), "{details:?} {detail}");
        // The reset did not happen: the withdrawn admin cannot log in as root.
        assert_error(app.login(Some(TENANT), "root", NEW_PASSWORD).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(me_of(&app, "root").await["roles"], json!(["admin"]));
        assert_error(app.login(Some(TENANT), "mallory", PASSWORD).await, StatusCode::UNAUTHORIZED).await;

        // A full admin still resets another admin's password, and the withdrawn admin's.
        let admin = app.token(Some(TENANT), "juan.perez").await;
        for email in ["root@example.com", "lame@example.com"] {
            let resp = app.reset_password(Some(TENANT), Some(&admin), email, NEW_PASSWORD).await;
            assert_eq!(resp.status(), StatusCode::OK, "{email}");
        }
        assert_eq!(app.login(Some(TENANT), "root", NEW_PASSWORD).await.status(), StatusCode::OK);

        // Each refusal is on the record, with the action and what was lacking.
        let refused = audit(&app, &admin, "type=account_change_refused").await;
        assert_eq!(refused.len(), 7, "{refused:?}");
        assert!(refused.iter().all(|e| e["actor_id"] == lame && e["details"]["missing"] == json!(["users.manage"])));
        let reset = refused.iter().find(|e| e["details"]["action"] == "reset_password").expect("reset refusal");
        assert!(reset["trace"].as_str().is_some_and(|t| !t.is_empty()));
        let actions: Vec<&str> = refused.iter().filter_map(|e| e["details"]["action"].as_str()).collect();
        for action in ["create_user", "set_roles", "set_permissions", "deactivate", "activate", "unlock"] {
            assert!(actions.contains(&action), "{action} missing from {actions:?}");
        }
    }
}

backend_tests! {
    async fn a_helpdesk_with_users_manage_only_administers_no_account_that_may_do_more(backend) {
        let app = production(&backend).await;
        let root = app.create_user(Some(TENANT), UserSpec::new("root").roles(&["admin"])).await;
        app.create_user(Some(TENANT), UserSpec::new("ana").roles(&["qf"])).await;
        let desk = app.create_user(Some(TENANT), UserSpec::new("desk").roles(&["helpdesk"])).await;
        let desk2 = app.create_user(Some(TENANT), UserSpec::new("desk2").roles(&["helpdesk"])).await;
        let helpdesk = app.token(Some(TENANT), "desk").await;
        define_roles(&app, &helpdesk).await;

        // It mints no admin, no qf, no evaluator (a role of this tenant), and no override it lacks.
        let resp = create(&app, &helpdesk, "mallory", &["admin"], json!({})).await;
        let detail = assert_error(resp, StatusCode::FORBIDDEN).await;
        assert_eq!(detail, "Cannot grant role admin: it holds actions you lack", "without users.view, nothing is listed");
        assert_error(app.login(Some(TENANT), "mallory", PASSWORD).await, StatusCode::UNAUTHORIZED).await;
        for role in ["qf", "evaluator"] {
            let detail = assert_error(create(&app, &helpdesk, "mallory", &[role], json!({})).await, StatusCode::FORBIDDEN).await;
            assert!(detail.starts_with(&format!("Cannot grant role {role}:")), "{detail}");
        }
        let resp = create(&app, &helpdesk, "mallory", &["helpdesk"], json!({"audit": {"view": true}})).await;
        let detail = assert_error(resp, StatusCode::FORBIDDEN).await;
        assert_eq!(detail, "Cannot grant permissions you lack (audit.view)");

        // It touches no admin: no demotion, no deactivation, no unlock, no reset.
        let details = every_change_is_refused(&app, &helpdesk, root, "root@example.com").await;
        assert!(details.iter().all(|d| d == "Cannot change this user: they hold actions you lack"), "{details:?}");
        assert_error(app.login(Some(TENANT), "root", NEW_PASSWORD).await, StatusCode::UNAUTHORIZED).await;
        let root_now = me_of(&app, "root").await;
        assert_eq!(root_now["roles"], json!(["admin"]));
        assert_eq!(root_now["is_active"], true);
        // Nor a qf, who may view and edit cases; nor may it promote or empower its peers.
        let resp = app.reset_password(Some(TENANT), Some(&helpdesk), "ana@example.com", NEW_PASSWORD).await;
        assert_error(resp, StatusCode::FORBIDDEN).await;
        let resp = put(&app, &helpdesk, &format!("/api/v1/users/{desk2}/roles"), json!({"roles": ["admin"]})).await;
        assert_error(resp, StatusCode::FORBIDDEN).await;
        let resp = put(&app, &helpdesk, &format!("/api/v1/users/{desk2}/permissions"), json!({"permissions": {"icsr": {"view": true}}})).await;
        assert_eq!(assert_error(resp, StatusCode::FORBIDDEN).await, "Cannot grant permissions you lack (icsr.view)");
        // Its own overrides stay out of its reach, as before.
        let resp = put(&app, &helpdesk, &format!("/api/v1/users/{desk}/permissions"), json!({"permissions": {"audit": {"view": true}}})).await;
        assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
        let desk_now = me_of(&app, "desk").await;
        assert_eq!(desk_now["permissions"]["audit"]["view"], false);

        // Within its reach: accounts that hold nothing it lacks; `false` overrides grant nothing.
        let resp = create(&app, &helpdesk, "desk3", &["helpdesk"], json!({"icsr": {"delete": false}})).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(post(&app, &helpdesk, &format!("/api/v1/users/{desk2}/deactivate")).await.status(), StatusCode::OK);
        assert_eq!(post(&app, &helpdesk, &format!("/api/v1/users/{desk2}/activate")).await.status(), StatusCode::OK);
        let resp = app.reset_password(Some(TENANT), Some(&helpdesk), "desk2@example.com", NEW_PASSWORD).await;
        assert_eq!(resp.status(), StatusCode::OK);

        // A full admin still does all of it.
        let admin = app.token(Some(TENANT), "juan.perez").await;
        assert_eq!(create(&app, &admin, "second.admin", &["admin"], json!({})).await.status(), StatusCode::CREATED);
        let resp = put(&app, &admin, &format!("/api/v1/users/{desk2}/permissions"), json!({"permissions": {"audit": {"view": true}}})).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(put(&app, &admin, &format!("/api/v1/users/{root}/roles"), json!({"roles": ["qf"]})).await.status(), StatusCode::OK);
        assert_eq!(post(&app, &admin, &format!("/api/v1/users/{root}/deactivate")).await.status(), StatusCode::OK);
        let resp = app.reset_password(Some(TENANT), Some(&admin), "ana@example.com", NEW_PASSWORD).await;
        assert_eq!(resp.status(), StatusCode::OK);

        let refused = audit(&app, &admin, "type=account_change_refused").await;
        let minting = refused.iter().find(|e| e["details"]["roles"] == json!(["admin"]) && e["details"]["action"] == "create_user").expect("recorded");
        assert_eq!(minting["actor_username"], "desk");
        let missing = minting["details"]["missing"].as_array().expect("list");
        assert!(missing.contains(&json!("audit.view")) && missing.contains(&json!("icsr.delete")), "{missing:?}");
        let demotion = refused.iter().find(|e| e["details"]["action"] == "set_roles" && e["subject_id"] == root).expect("recorded");
        assert_eq!(demotion["details"]["roles"], json!(["qf"]));
    }
}

backend_tests! {
    async fn a_qf_granted_users_manage_grants_and_changes_only_what_it_holds_itself(backend) {
        // The finding: a qf granted users.manage created an admin, logged in with it, read the
        // audit trail, and demoted an admin.
        let app = spawn_app(backend.clone()).await;
        let juan = app.me(&app.token(Some(TENANT), "juan.perez").await, None).await.json::<Value>().await.expect("json")["id"].as_i64().expect("id");
        let mut manager = UserSpec::new("qfm");
        manager.permissions = json!({"users": {"manage": true}});
        app.create_user(Some(TENANT), manager).await;
        let mut viewer = UserSpec::new("qfv");
        viewer.permissions = json!({"users": {"manage": true, "view": true}});
        app.create_user(Some(TENANT), viewer).await;
        let qfm = app.token(Some(TENANT), "qfm").await;
        let qfv = app.token(Some(TENANT), "qfv").await;
        define_roles(&app, &qfm).await;

        let detail = assert_error(create(&app, &qfm, "mallory", &["admin"], json!({})).await, StatusCode::FORBIDDEN).await;
        assert_eq!(detail, "Cannot grant role admin: it holds actions you lack");
        assert_error(app.login(Some(TENANT), "mallory", PASSWORD).await, StatusCode::UNAUTHORIZED).await;
        let detail = assert_error(put(&app, &qfm, &format!("/api/v1/users/{juan}/roles"), json!({"roles": ["qf"]})).await, StatusCode::FORBIDDEN).await;
        assert_eq!(detail, "Cannot change this user: they hold actions you lack");
        assert_eq!(me_of(&app, "juan.perez").await["roles"], json!(["admin", "qf"]));

        // With users.view, which shows every account's permissions, the detail names them.
        let detail = assert_error(create(&app, &qfv, "mallory", &["admin"], json!({})).await, StatusCode::FORBIDDEN).await;
        // (An admin holds every action, signals.assess of this tenant's evaluator role too.)
        assert_eq!(detail, "Cannot grant role admin: it holds actions you lack (audit.view, icsr.delete, signals.assess)");
        let detail = assert_error(create(&app, &qfv, "mallory", &["qf", "evaluator"], json!({})).await, StatusCode::FORBIDDEN).await;
        assert_eq!(detail, "Cannot grant role evaluator: it holds actions you lack (signals.assess)");
        let detail = assert_error(put(&app, &qfv, &format!("/api/v1/users/{juan}/roles"), json!({"roles": ["qf"]})).await, StatusCode::FORBIDDEN).await;
        assert_eq!(detail, "Cannot change this user: they hold actions you lack (audit.view, icsr.delete, signals.assess)");
        let detail = assert_error(post(&app, &qfv, &format!("/api/v1/users/{juan}/deactivate")).await, StatusCode::FORBIDDEN).await;
        assert!(detail.starts_with("Cannot change this user"), "{detail}");

        // It still manages pharmacists: every action a qf holds, it holds.
        let resp = create(&app, &qfm, "bea", &["qf"], json!({"users": {"manage": true}})).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let bea = resp.json::<Value>().await.expect("json")["id"].as_i64().expect("id");
        assert_eq!(post(&app, &qfm, &format!("/api/v1/users/{bea}/deactivate")).await.status(), StatusCode::OK);
        assert_eq!(post(&app, &qfm, &format!("/api/v1/users/{bea}/activate")).await.status(), StatusCode::OK);
        let resp = put(&app, &qfm, &format!("/api/v1/users/{bea}/roles"), json!({"roles": ["qf"]})).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
}

backend_tests! {
    async fn only_an_unrestricted_admin_grants_admin_and_nobody_resets_their_own_password(backend) {
        // A non-admin granted every named action still may not mint or change an admin (the
        // role means every action, named or not, and other modules trust its claim); and a
        // token alone never sets its own user's password in production.
        let app = production(&backend).await;
        let mut everything = UserSpec::new("almighty");
        everything.permissions = json!({
            "icsr": {"view": true, "edit": true, "delete": true},
            "reports": {"view": true, "generate": true},
            "users": {"view": true, "manage": true},
            "audit": {"view": true}
        });
        app.create_user(Some(TENANT), everything).await;
        let almighty = app.token(Some(TENANT), "almighty").await;
        let juan = app.token(Some(TENANT), "juan.perez").await;
        let detail = assert_error(create(&app, &almighty, "mallory", &["admin"], json!({})).await, StatusCode::FORBIDDEN).await;
        assert!(detail.starts_with("Only an administrator"), "{detail}");
        assert_error(app.login(Some(TENANT), "mallory", PASSWORD).await, StatusCode::UNAUTHORIZED).await;
        assert_error(
            app.reset_password(Some(TENANT), Some(&almighty), "juan.perez@example.com", NEW_PASSWORD).await,
            StatusCode::FORBIDDEN,
        )
        .await;
        assert_eq!(app.login(Some(TENANT), "juan.perez", PASSWORD).await.status(), StatusCode::OK);
        // It still administers accounts that are not admins.
        assert_eq!(create(&app, &almighty, "clerk", &["qf"], json!({})).await.status(), StatusCode::CREATED);

        let own = app.reset_password(Some(TENANT), Some(&juan), "juan.perez@example.com", NEW_PASSWORD).await;
        let detail = assert_error(own, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(detail.contains("change-password"), "{detail}");
        assert_eq!(app.login(Some(TENANT), "juan.perez", PASSWORD).await.status(), StatusCode::OK);
        // A full admin still resets the others', and grants admin.
        assert_eq!(
            app.reset_password(Some(TENANT), Some(&juan), "almighty@example.com", NEW_PASSWORD).await.status(),
            StatusCode::OK
        );
        assert_eq!(create(&app, &juan, "deputy", &["admin"], json!({})).await.status(), StatusCode::CREATED);
    }
}
