//! The API document's Python client, unchanged but for the base URL, against the demo.
//! Ignored unless `VIGIA_TEST_PYTHON` was set when it was built (CI sets it and installs
//! `requests`); then it needs `python3` with `requests` and fails without them.

use crate::helpers::{AppOptions, Backend, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(vigia_test_python),
    ignore = "needs VIGIA_TEST_PYTHON: python3 with requests"
)]
async fn the_documents_python_flow_runs_unchanged_against_the_demo() {
    crate::helpers::require_python("requests", "pip install requests").await;
    let app = spawn_app_with(AppOptions {
        backend: Backend::Sqlite,
        fixture: false,
        ..Default::default()
    })
    .await;
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/seed/complete_flow.py"
    ))
    .expect("script")
    .replace("https://api.vigia.com", &app.address)
        + "\nimport json, sys\njson.dump({'login_status': login_response.status_code, 'login': login_response.json(), 'user_info': user_info, 'icsrs': icsrs}, sys.stdout)\n";

    let result = crate::helpers::json_output(&crate::helpers::python(&["-c", &script]).await);
    assert_eq!(result["login_status"], 200);
    let me = &result["user_info"];
    assert_eq!(me["username"], "juan.perez");
    assert_eq!(me["email"], "juan.perez@example.com");
    assert_eq!(me["role"], "admin");
    assert_eq!(me["roles"], serde_json::json!(["admin", "qf"]));
    assert_eq!(me["is_active"], true);
    assert_eq!(me["empleado_id"], 456);
    assert_eq!(me["permissions"]["icsr"]["delete"], true);
    let login = &result["login"];
    assert_eq!(login["token_type"], "bearer");
    assert_eq!(login["user"]["role"], "admin");
    // Step 4: the demo tenant's cases, a JSON list of ICSRs.
    let icsrs = result["icsrs"].as_array().expect("a JSON list");
    assert!(!icsrs.is_empty(), "the demo seeds sample cases");
    for case in icsrs {
        assert!(
            case["safety_report_id"].is_string() && case["reactions"].is_array(),
            "{case}"
        );
    }
}
