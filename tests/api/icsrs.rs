//! ICSRs: CRUD guarded by icsr.view / icsr.edit / icsr.delete, keyset pagination, optimistic
//! concurrency, soft delete, and an audit record with old and new values for every change.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TENANT, TestApp, UserSpec, assert_error, audit, backend_tests, spawn_app};

fn case(report_id: &str) -> Value {
    json!({
        "safety_report_id": report_id,
        "receipt_date": "2026-03-14",
        "seriousness_criteria": ["caused_or_prolonged_hospitalisation"],
        "patient": {"initials": "JPG", "age": {"value": 54, "unit": "year"}, "sex": "male"},
        "suspect_product": "Amoxicillin 500 mg capsules",
        "reactions": [{"term": "Anaphylactic reaction", "meddra_code": 10002198}],
        "narrative": "Patient developed an anaphylactic reaction 20 minutes after the first dose.",
    })
}

async fn create(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.post("/api/v1/icsrs")
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("sent")
}

async fn created(app: &TestApp, token: &str, report_id: &str) -> Value {
    let resp = create(app, token, &case(report_id)).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    resp.json().await.expect("json")
}

async fn patch(app: &TestApp, token: &str, id: i64, body: &Value) -> reqwest::Response {
    app.client
        .patch(app.url(&format!("/api/v1/icsrs/{id}")))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("sent")
}

async fn delete(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client
        .delete(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
}

backend_tests! {
    async fn a_case_is_created_read_changed_and_soft_deleted_with_its_audit_trail(backend) {
        let app = spawn_app(backend.clone()).await;
        let admin = app.token(Some(TENANT), "juan.perez").await;

        let resp = create(&app, &admin, &case("ES-ACME-2026-000001")).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let location = resp.headers()["location"].to_str().expect("ascii").to_owned();
        let made: Value = resp.json().await.expect("json");
        let id = made["id"].as_i64().expect("id");
        assert_eq!(location, format!("/api/v1/icsrs/{id}"));
        assert_eq!(made["serious"], true);
        assert_eq!(made["status"], "draft");
        assert_eq!(made["version"], 1);
        assert_eq!(made["patient"]["age"], json!({"value": 54, "unit": "year"}));
        assert_eq!(made["reactions"][0]["meddra_code"], 10002198);

        let read: Value = app.get(&location).bearer_auth(&admin).send().await.expect("sent")
            .json().await.expect("json");
        assert_eq!(read, made);

        let resp = patch(&app, &admin, id, &json!({"status": "in_review", "seriousness_criteria": []})).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let changed: Value = resp.json().await.expect("json");
        assert_eq!(changed["status"], "in_review");
        assert_eq!(changed["serious"], false);
        assert_eq!(changed["version"], 2);
        assert_eq!(changed["narrative"], made["narrative"], "absent fields stay");

        // A patch that changes nothing makes no version and no record.
        let same: Value = patch(&app, &admin, id, &json!({"status": "in_review"})).await.json().await.expect("json");
        assert_eq!(same["version"], 2);

        let resp = delete(&app, &admin, &format!("/api/v1/icsrs/{id}")).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let resp = app.get(&location).bearer_auth(&admin).send().await.expect("sent");
        assert_error(resp, StatusCode::NOT_FOUND).await;
        assert_error(patch(&app, &admin, id, &json!({"status": "closed"})).await, StatusCode::NOT_FOUND).await;
        assert_error(delete(&app, &admin, &format!("/api/v1/icsrs/{id}")).await, StatusCode::NOT_FOUND).await;
        let list: Value = app.get("/api/v1/icsrs").bearer_auth(&admin).send().await.expect("sent")
            .json().await.expect("json");
        assert_eq!(list, json!([]));

        // The trail, newest first: who, and the old and new values of each change.
        let trail = audit(&app, &admin, &format!("resource=icsr:{id}")).await;
        let kinds: Vec<&str> = trail.iter().map(|e| e["event_type"].as_str().expect("type")).collect();
        assert_eq!(kinds, ["icsr_deleted", "icsr_updated", "icsr_created"]);
        for event in &trail {
            assert_eq!(event["actor_username"], "juan.perez");
            assert_eq!(event["resource"], format!("icsr:{id}"));
            assert!(event["occurred_at"].as_str().is_some_and(|t| t.ends_with('Z')));
        }
        let changes = &trail[1]["details"]["changes"];
        assert_eq!(changes["status"], json!({"old": "draft", "new": "in_review"}));
        assert_eq!(changes["seriousness_criteria"], json!({"old": ["caused_or_prolonged_hospitalisation"], "new": []}));
        assert!(changes.get("narrative").is_none(), "only changed fields: {changes}");
        assert_eq!(trail[2]["details"]["new"]["safety_report_id"], "ES-ACME-2026-000001");
        assert_eq!(trail[0]["details"]["old"]["status"], "in_review");

        // The row itself stays, refused a hard delete by the database.
        let hard = app.execute("DELETE FROM icsrs WHERE id = $1", Some(id)).await;
        assert!(hard.is_err(), "a hard delete must be refused");

        // A deleted case frees its report id.
        let again = create(&app, &admin, &case("ES-ACME-2026-000001")).await;
        assert_eq!(again.status(), StatusCode::CREATED);
    }
}

backend_tests! {
    async fn each_operation_needs_its_permission(backend) {
        let app = spawn_app(backend.clone()).await;
        app.create_user(Some(TENANT), UserSpec::new("pharmacist").roles(&["qf"])).await;
        app.create_user(Some(TENANT), UserSpec::new("reader").roles(&["viewer"])).await;
        app.create_user(Some(TENANT), UserSpec::new("nobody").roles(&["viewer"])).await;
        let admin = app.token(Some(TENANT), "juan.perez").await;
        let qf = app.token(Some(TENANT), "pharmacist").await;
        let nobody = app.token(Some(TENANT), "nobody").await;

        // qf: view and edit, not delete.
        let made = created(&app, &qf, "ES-ACME-2026-000002").await;
        let id = made["id"].as_i64().expect("id");
        assert_eq!(patch(&app, &qf, id, &json!({"narrative": "Follow-up received."})).await.status(), StatusCode::OK);
        let detail = assert_error(delete(&app, &qf, &format!("/api/v1/icsrs/{id}")).await, StatusCode::FORBIDDEN).await;
        assert!(detail.contains("icsr.delete"), "{detail}");

        // A role the tenant does not define grants nothing.
        let resp = app.get("/api/v1/icsrs").bearer_auth(&nobody).send().await.expect("sent");
        let detail = assert_error(resp, StatusCode::FORBIDDEN).await;
        assert!(detail.contains("icsr.view"), "{detail}");
        let detail = assert_error(create(&app, &nobody, &case("X-1")).await, StatusCode::FORBIDDEN).await;
        assert!(detail.contains("icsr.edit"), "{detail}");

        // A per-user override grants it; another withdraws it from a role.
        let reader = app.get("/api/v1/users?role=viewer").bearer_auth(&admin).send().await.expect("sent")
            .json::<Value>().await.expect("json").as_array().expect("list").iter()
            .find(|u| u["username"] == "reader").expect("reader")["id"].as_i64().expect("id");
        let resp = app.client.put(app.url(&format!("/api/v1/users/{reader}/permissions")))
            .bearer_auth(&admin)
            .json(&json!({"permissions": {"icsr": {"view": true}}}))
            .send().await.expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);
        let reader_token = app.token(Some(TENANT), "reader").await;
        let resp = app.get(&format!("/api/v1/icsrs/{id}")).bearer_auth(&reader_token).send().await.expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_error(patch(&app, &reader_token, id, &json!({"status": "closed"})).await, StatusCode::FORBIDDEN).await;

        // Unauthenticated is 401, not 403.
        let resp = app.get("/api/v1/icsrs").send().await.expect("sent");
        assert_error(resp, StatusCode::UNAUTHORIZED).await;
    }
}

backend_tests! {
    async fn lists_are_newest_first_filtered_and_paged_by_link(backend) {
        let app = spawn_app(backend.clone()).await;
        let admin = app.token(Some(TENANT), "juan.perez").await;
        let mut ids = Vec::new();
        for n in 0..5 {
            let mut body = case(&format!("ES-ACME-2026-10000{n}"));
            if n % 2 == 0 {
                body["seriousness_criteria"] = json!([]);
                body["receipt_date"] = json!("2025-12-01");
            }
            let resp = create(&app, &admin, &body).await;
            assert_eq!(resp.status(), StatusCode::CREATED);
            ids.push(resp.json::<Value>().await.expect("json")["id"].as_i64().expect("id"));
        }
        let ids_of = |list: &Value| -> Vec<i64> {
            list.as_array().expect("a JSON list").iter().map(|c| c["id"].as_i64().expect("id")).collect()
        };

        let resp = app.get("/api/v1/icsrs?limit=2").bearer_auth(&admin).send().await.expect("sent");
        let link = resp.headers()["link"].to_str().expect("ascii").to_owned();
        let first: Value = resp.json().await.expect("json");
        assert_eq!(ids_of(&first), [ids[4], ids[3]]);
        let next = link.strip_prefix('<').and_then(|l| l.split_once(">; rel=\"next\"")).expect("a next link").0.to_owned();
        let resp = app.get(&next).bearer_auth(&admin).send().await.expect("sent");
        assert!(resp.headers().contains_key("link"));
        assert_eq!(ids_of(&resp.json().await.expect("json")), [ids[2], ids[1]]);

        let serious: Value = app.get("/api/v1/icsrs?serious=true").bearer_auth(&admin).send().await.expect("sent")
            .json().await.expect("json");
        assert_eq!(ids_of(&serious), [ids[3], ids[1]]);
        let old: Value = app.get("/api/v1/icsrs?received_to=2025-12-31").bearer_auth(&admin).send().await.expect("sent")
            .json().await.expect("json");
        assert_eq!(ids_of(&old), [ids[4], ids[2], ids[0]]);
        let resp = app.get("/api/v1/icsrs?received_from=2026-01-01&serious=true&limit=1").bearer_auth(&admin).send().await.expect("sent");
        let link = resp.headers()["link"].to_str().expect("ascii").to_owned();
        assert!(link.contains("serious=true") && link.contains("received_from=2026-01-01"), "filters carry over: {link}");
        let one: Value = app.get("/api/v1/icsrs?safety_report_id=ES-ACME-2026-100002").bearer_auth(&admin).send().await.expect("sent")
            .json().await.expect("json");
        assert_eq!(ids_of(&one), [ids[2]]);

        for bad in ["status=done", "received_from=yesterday", "limit=0", "serious=maybe"] {
            let resp = app.get(&format!("/api/v1/icsrs?{bad}")).bearer_auth(&admin).send().await.expect("sent");
            assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    }
}

backend_tests! {
    async fn bad_cases_are_422_duplicates_409_and_stale_versions_409(backend) {
        let app = spawn_app(backend.clone()).await;
        let admin = app.token(Some(TENANT), "juan.perez").await;
        let made = created(&app, &admin, "ES-ACME-2026-000003").await;
        let id = made["id"].as_i64().expect("id");

        assert_error(create(&app, &admin, &case("ES-ACME-2026-000003")).await, StatusCode::CONFLICT).await;
        for (field, value) in [
            ("safety_report_id", json!("has spaces")),
            ("receipt_date", json!("2999-01-01")),
            ("receipt_date", json!("14/03/2026")),
            ("seriousness_criteria", json!(["fatal"])),
            ("reactions", json!([])),
            ("reactions", json!([{"term": "Rash", "meddra_code": 42}])),
            ("patient", json!({"age": {"value": 200, "unit": "year"}})),
            ("patient", json!({"sex": "x"})),
            ("status", json!("archived")),
            ("suspect_product", json!("")),
        ] {
            let mut body = case("ES-ACME-2026-000004");
            body[field] = value.clone();
            let detail = assert_error(create(&app, &admin, &body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert!(detail.contains(field), "{field}={value}: {detail}");
        }
        let mut missing = case("ES-ACME-2026-000004");
        missing.as_object_mut().expect("object").remove("reactions");
        assert_error(create(&app, &admin, &missing).await, StatusCode::UNPROCESSABLE_ENTITY).await;

        // Optimistic concurrency: the version read must still be current.
        let resp = patch(&app, &admin, id, &json!({"narrative": "v2", "version": 1})).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let detail = assert_error(patch(&app, &admin, id, &json!({"narrative": "v3", "version": 1})).await, StatusCode::CONFLICT).await;
        assert!(detail.contains("version 2"), "{detail}");
        let resp = delete(&app, &admin, &format!("/api/v1/icsrs/{id}?version=1")).await;
        assert_error(resp, StatusCode::CONFLICT).await;

        // Renaming onto another live case's report id is a conflict too.
        created(&app, &admin, "ES-ACME-2026-000005").await;
        assert_error(patch(&app, &admin, id, &json!({"safety_report_id": "ES-ACME-2026-000005"})).await, StatusCode::CONFLICT).await;

        // A narrative up to E2B's 100,000 characters fits.
        let long = patch(&app, &admin, id, &json!({"narrative": "x".repeat(100_000)})).await;
        assert_eq!(long.status(), StatusCode::OK);
        let too_long = patch(&app, &admin, id, &json!({"narrative": "x".repeat(100_001)})).await;
        assert_error(too_long, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
}

backend_tests! {
    async fn cases_belong_to_their_tenant(backend) {
        let app = spawn_app(backend.clone()).await;
        app.provision_tenant("globex").await;
        app.create_user(Some("globex"), UserSpec::juan()).await;
        let acme = app.token(Some(TENANT), "juan.perez").await;
        let globex = app.token(Some("globex"), "juan.perez").await;
        let made = created(&app, &acme, "ES-ACME-2026-000006").await;
        let id = made["id"].as_i64().expect("id");
        let resp = app.get(&format!("/api/v1/icsrs/{id}")).bearer_auth(&globex).send().await.expect("sent");
        assert_error(resp, StatusCode::NOT_FOUND).await;
        let list: Value = app.get("/api/v1/icsrs").bearer_auth(&globex).send().await.expect("sent")
            .json().await.expect("json");
        assert_eq!(list, json!([]));
        // The acme token with X-Tenant: globex is a foreign token.
        let resp = app.get("/api/v1/icsrs").bearer_auth(&acme).header("X-Tenant", "globex").send().await.expect("sent");
        assert_error(resp, StatusCode::UNAUTHORIZED).await;
    }
}
