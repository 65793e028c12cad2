//! Request IDs, Prometheus metrics, and log lines that user input cannot forge.

use reqwest::StatusCode;
use serde_json::Value;
use vigia::telemetry::must_escape;

use crate::helpers::{
    AppOptions, Backend, PASSWORD, SECRET, TENANT, TestApp, UserSpec, assert_error, backend_tests,
    spawn_app, spawn_app_with,
};

backend_tests! {
    async fn request_ids_are_echoed_or_generated(backend) {
        let app = spawn_app(backend.clone()).await;
        let resp = app.get("/healthz").header("X-Request-Id", "lb-42.abc").send().await.expect("sent");
        assert_eq!(resp.headers()["x-request-id"], "lb-42.abc");
        let mut seen = std::collections::HashSet::new();
        for sent in [None, Some("has space"), Some(""), None] {
            let mut req = app.get("/api/v1/auth/me");
            if let Some(id) = sent {
                req = req.header("X-Request-Id", id);
            }
            let resp = req.send().await.expect("sent");
            // Errors carry one too.
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
            let id = resp.headers()["x-request-id"].to_str().expect("ascii").to_owned();
            assert!(id.len() >= 18 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'), "{sent:?} → {id}");
            assert!(seen.insert(id), "request IDs are unique");
        }
    }
}

backend_tests! {
    async fn metrics_count_requests_logins_and_lockouts(backend) {
        let app = spawn_app(backend.clone()).await;
        let token = app.token(Some(TENANT), "juan.perez").await;
        assert_eq!(app.me(&token, None).await.status(), StatusCode::OK);
        assert_eq!(app.me("garbage", None).await.status(), StatusCode::UNAUTHORIZED);
        for _ in 0..5 {
            app.login(Some(TENANT), "juan.perez", "wrong-password").await;
        }
        let resp = app.get("/metrics").send().await.expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers()["content-type"].to_str().expect("ascii").starts_with("text/plain"));
        let text = resp.text().await.expect("text");
        for expected in [
            r#"vigia_http_requests_total{route="me",method="GET",status="200"} 1"#,
            r#"vigia_http_requests_total{route="me",method="GET",status="401"} 1"#,
            r#"vigia_http_request_duration_seconds_count{route="me",method="GET"} 2"#,
            r#"vigia_logins_total{outcome="succeeded"} 1"#,
            r#"vigia_logins_total{outcome="bad_credentials"} 5"#,
            "vigia_lockouts_total 1",
            r#"vigia_build_info{version=""#,
            "vigia_tenant_pools_open ",
            "vigia_hashing_queue_depth 0",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }
}

backend_tests! {
    /// Issue 12, finding 7: a login name with CR, ESC, TAB, NEL, a line separator and a bidi
    /// override (and no space, so the old text format left it unquoted and raw) reaches the
    /// lockout alert escaped, in both log formats, and no raw control character reaches the
    /// log at all.
    async fn a_login_name_cannot_forge_log_lines(backend) {
        let app = spawn_app(backend.clone()).await;
        for environment in ["development", "production"] {
            // A name per run: the first run's lock is kept in the tenant's database.
            let name = format!("ghost\r\x1b[31m\tadmin\u{85}logged-in\u{2028}\u{202e}x-{environment}");
            let name = name.as_str();
            let server = app.serve_process(&[
                ("VIGIA__ENVIRONMENT", environment),
                ("VIGIA__JWT__SECRET", SECRET),
            ]);
            let address = server.address().await;
            for _ in 0..5 {
                let resp = app
                    .client
                    .post(format!("{address}/api/v1/auth/login"))
                    .header("X-Tenant", TENANT)
                    .form(&[("username", name), ("password", "wrong-password")])
                    .send()
                    .await
                    .expect("sent");
                assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
            }
            let alert = server.log_line("account_locked").await;
            let log = server.log();
            let raw: Vec<char> = log.chars().filter(|&c| c != '\n' && must_escape(c)).collect();
            assert!(raw.is_empty(), "{environment}: raw {raw:?} in the log:\n{log}");
            if environment == "production" {
                let line: Value = serde_json::from_str(&alert).expect("a JSON line");
                assert_eq!(line["username"], name, "{alert}");
            } else {
                let escaped = r#"username="ghost\r\u{1b}[31m\tadmin\u{85}logged-in\u{2028}\u{202e}x-development""#;
                assert!(alert.contains(escaped), "{alert}");
            }
        }
    }
}
/// The scrape, checked to be Prometheus text: every line a comment (`# HELP`, `# TYPE`,
/// `# UNIT`, `# EOF`) or a sample `name{labels} value`, and the last `# EOF`.
async fn scrape(app: &TestApp) -> String {
    let resp = app.get("/metrics").send().await.expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.expect("text");
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                ["HELP ", "TYPE ", "UNIT "]
                    .iter()
                    .any(|k| comment.starts_with(k))
                    || comment == "EOF",
                "not a Prometheus comment: {line:?}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}");
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
            "bad metric name in {line:?}"
        );
        assert!(
            name_end == series.len() || series.ends_with('}'),
            "bad labels in {line:?}"
        );
    }
    assert_eq!(text.lines().last(), Some("# EOF"), "{text}");
    text
}

/// The fixture's tenant and two more, each with a user: (tenant, username).
const TENANTS: [(&str, &str); 3] = [
    (TENANT, "juan.perez"),
    ("northwind-labs", "ana"),
    ("globex-pharma", "ana"),
];

backend_tests! {
    async fn metrics_name_no_tenant_unless_per_tenant_series_are_configured(backend) {
        let app = spawn_app(backend.clone()).await;
        for (id, user) in &TENANTS[1..] {
            app.provision_tenant(id).await;
            app.create_user(Some(id), UserSpec::new(user)).await;
        }
        for (id, user) in TENANTS {
            assert_eq!(app.login(Some(id), user, PASSWORD).await.status(), StatusCode::OK);
            app.login(Some(id), user, "wrong-password").await;
        }
        let text = scrape(&app).await;
        for (id, _) in TENANTS {
            assert!(!text.contains(id), "tenant {id} is named by default:\n{text}");
        }
        assert!(!text.contains("tenant="), "{text}");
        assert!(text.contains(r#"vigia_logins_total{outcome="succeeded"} 3"#), "{text}");
        assert!(text.contains(r#"vigia_logins_total{outcome="bad_credentials"} 3"#), "{text}");

        let app = app.restart_with(&[("metrics.per_tenant", "true")]).await;
        for (id, user) in TENANTS {
            assert_eq!(app.login(Some(id), user, PASSWORD).await.status(), StatusCode::OK);
        }
        let text = scrape(&app).await;
        for (id, _) in TENANTS {
            let series = format!(r#"vigia_logins_total{{tenant="{id}",outcome="succeeded"}} 1"#);
            assert!(text.contains(&series), "missing {series:?} in:\n{text}");
        }
    }
}

const SCRAPE_TOKEN: &str = "scrape-token-0123456789abcdef-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_metrics_token_is_required_to_scrape() {
    let app = spawn_app_with(AppOptions {
        backend: Backend::Sqlite,
        overrides: vec![("metrics.token".into(), SCRAPE_TOKEN.into())],
        ..Default::default()
    })
    .await;
    let user_jwt = app.token(Some(TENANT), "juan.perez").await;
    let near_miss = format!("{}x", &SCRAPE_TOKEN[..SCRAPE_TOKEN.len() - 1]);
    let refused = [
        None,
        Some(format!("Bearer {near_miss}")),
        Some(format!("Bearer {SCRAPE_TOKEN}x")),
        Some(format!("Bearer {user_jwt}")),
        Some(format!("Basic {SCRAPE_TOKEN}")),
        Some(SCRAPE_TOKEN.to_owned()),
    ];
    for authorization in refused {
        let mut req = app.get("/metrics");
        if let Some(value) = &authorization {
            req = req.header("Authorization", value);
        }
        let resp = req.send().await.expect("sent");
        let detail = assert_error(resp, StatusCode::UNAUTHORIZED).await;
        assert_eq!(detail, "Not authenticated", "{authorization:?}");
    }

    let resp = app
        .get("/metrics")
        .bearer_auth(SCRAPE_TOKEN)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.expect("text");
    assert!(
        text.contains(r#"vigia_logins_total{outcome="succeeded"} 1"#),
        "{text}"
    );
    // The refused scrapes were counted like any request, without leaking what they sent.
    assert!(
        text.contains(r#"vigia_http_requests_total{route="metrics",method="GET",status="401"} 6"#),
        "{text}"
    );
    assert!(!text.contains(SCRAPE_TOKEN));
}
