use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{backend_tests, spawn_app};

#[test]
fn the_committed_spec_matches_the_code() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .expect("openapi/openapi.json is committed");
    let generated = vigia::api::spec_json();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is stale: run `cargo run -q -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn the_cli_prints_the_same_spec() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigia"))
        .arg("openapi")
        .output()
        .expect("runs");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        vigia::api::spec_json().trim_end()
    );
}

#[test]
fn every_operation_is_described_with_its_error_responses() {
    let spec: Value = serde_json::from_str(&vigia::api::spec_json()).expect("json");
    let paths = spec["paths"].as_object().expect("paths");
    for path in [
        "/api/v1/auth/login",
        "/api/v1/auth/me",
        "/api/v1/auth/whoami",
        "/api/v1/auth/change-password",
        "/api/v1/auth/reset-password",
    ] {
        let ops = paths[path]
            .as_object()
            .unwrap_or_else(|| panic!("{path} missing"));
        for (method, op) in ops {
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path} has no summary"
            );
            assert!(
                op["description"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path} has no description"
            );
            for status in ["401", "422", "500"] {
                assert!(
                    op["responses"].get(status).is_some(),
                    "{method} {path} lacks {status}"
                );
            }
        }
    }
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["flows"]["password"]["tokenUrl"],
        "/api/v1/auth/login"
    );
}

backend_tests! {
    async fn the_server_serves_the_spec_and_swagger_ui(backend) {
        let app = spawn_app(backend.clone()).await;
        let spec = app.get("/openapi.json").send().await.expect("sent");
        assert_eq!(spec.status(), StatusCode::OK);
        let served: Value = spec.json().await.expect("json");
        assert_eq!(
            served,
            serde_json::from_str::<Value>(&vigia::api::spec_json()).expect("json")
        );

        let docs = app.get("/docs").send().await.expect("sent");
        assert_eq!(docs.status(), StatusCode::OK);
        assert!(docs.text().await.expect("html").contains("swagger"));
    }
}
