use reqwest::StatusCode;

use crate::helpers::{AppOptions, TENANT, assert_error, backend_tests, spawn_app, spawn_app_with};

backend_tests! {
    async fn unknown_routes_and_wrong_methods_use_the_error_shape(backend) {
        let app = spawn_app(backend.clone()).await;
        assert_error(
            app.get("/api/v1/nope").send().await.expect("sent"),
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_error(
            app.get("/api/v1/auth/login").send().await.expect("sent"),
            StatusCode::METHOD_NOT_ALLOWED,
        )
        .await;
    }
}

backend_tests! {
    async fn oversized_bodies_are_413_whether_declared_or_chunked(backend) {
        let app = spawn_app(backend.clone()).await;
        let big = "x".repeat(64 * 1024);
        let declared = app
            .post("/api/v1/auth/login")
            .header("X-Tenant", TENANT)
            .form(&[("username", big.as_str()), ("password", "SecurePass123")])
            .send()
            .await
            .expect("sent");
        assert_error(declared, StatusCode::PAYLOAD_TOO_LARGE).await;

        let stream = futures_stream(big.into_bytes());
        let chunked = app
            .post("/api/v1/auth/change-password")
            .header("Content-Type", "application/json")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await;
        // The server answers 413 as soon as it has read past the limit; it may close the
        // connection before the client has finished sending, which the client sees as an
        // incomplete exchange. Either way nothing past the limit was accepted.
        match chunked {
            Ok(resp) => {
                assert_error(resp, StatusCode::PAYLOAD_TOO_LARGE).await;
            }
            Err(e) => assert!(e.is_request(), "unexpected failure: {e}"),
        }
        let health = app.get("/healthz").send().await.expect("sent");
        assert_eq!(health.status(), StatusCode::OK, "the server is unharmed");

        let huge_header = "x".repeat(20 * 1024);
        let resp = app.get("/healthz").header("X-Padding", huge_header).send().await.expect("sent");
        assert_error(resp, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE).await;
    }
}

fn futures_stream(
    bytes: Vec<u8>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    tokio_stream::iter(
        bytes
            .chunks(4096)
            .map(|c| Ok(c.to_vec()))
            .collect::<Vec<_>>(),
    )
}

backend_tests! {
    async fn health_and_readiness_answer(backend) {
        let app = spawn_app(backend.clone()).await;
        for path in ["/healthz", "/readyz"] {
            let resp = app.get(path).send().await.expect("sent");
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            assert_eq!(
                resp.json::<serde_json::Value>().await.expect("json")["status"],
                "ok"
            );
        }
    }
}

backend_tests! {
    async fn sql_injection_strings_are_just_data(backend) {
        // Each hostile current password below is a failed login of juan: keep the lockout out
        // of this test's way.
        let app = spawn_app_with(AppOptions {
            backend: backend.clone(),
            overrides: vec![("security.lockout_threshold".into(), "50".into())],
            ..Default::default()
        })
        .await;
        let token = app.token(Some(TENANT), "juan.perez").await;
        let hostile = [
            "' OR '1'='1",
            "juan.perez' --",
            "\" OR 1=1; DROP TABLE users; --",
            "juan.perez@example.com' OR 'a'='a",
            "x'); DELETE FROM audit_events; --",
        ];
        for h in hostile {
            assert_error(app.login(Some(TENANT), h, "' OR '1'='1").await, StatusCode::UNAUTHORIZED).await;
            assert_error(app.reset_password(Some(TENANT), None, h, "NewPassword123").await, StatusCode::UNPROCESSABLE_ENTITY).await;
            let wrong = app.change_password(&token, &format!("{h}-pad"), "NewPassword123").await;
            assert_error(wrong, StatusCode::UNAUTHORIZED).await;
            let q = app
                .get("/api/v1/audit-events")
                .query(&[("user", h)])
                .bearer_auth(&token)
                .send()
                .await
                .expect("sent");
            assert_eq!(q.status(), StatusCode::OK);
            let page: serde_json::Value = q.json().await.expect("json");
            // Only the records of the failed login under exactly that name match it.
            let items = page["items"].as_array().expect("items");
            assert!(!items.is_empty());
            for item in items {
                assert_eq!(item["subject_username"].as_str(), Some(h.to_lowercase().as_str()), "{item}");
            }
        }
        assert_eq!(app.login(Some(TENANT), "juan.perez", "SecurePass123").await.status(), StatusCode::OK);
        let all = app.get("/api/v1/audit-events?limit=200").bearer_auth(&token).send().await.expect("sent");
        let page: serde_json::Value = all.json().await.expect("json");
        assert!(page["items"].as_array().expect("items").len() > 5, "the trail is intact");
    }
}
