//! Swagger UI as a person uses it, in a real browser against the demo: Authorize through the
//! OAuth2 password dialog (tenant in `client_id`), then "Try it out" on `GET /api/v1/auth/me`
//! and `GET /api/v1/icsrs`, reading each 200 response from the page.
//! Ignored unless `VIGIA_TEST_BROWSER` was set when it was built (CI sets it and installs
//! Debian's `chromium` and `tests/browser`'s npm packages); then it fails, naming what to
//! install, when one of them is missing. The script is `tests/browser/swagger_ui.mjs`. Screenshots
//! are left at `target/test-artifacts/swagger-ui.png` (the whole page) and `swagger-ui-me.png`
//! (the `/me` operation with its response; `openapi/swagger-ui.png` is a copy).

use std::{path::PathBuf, time::Duration};

use serde_json::Value;

use crate::helpers::{AppOptions, Backend, PASSWORD, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(vigia_test_browser),
    ignore = "needs VIGIA_TEST_BROWSER: node, `npm ci --prefix tests/browser` and Debian's chromium"
)]
async fn swagger_ui_authorizes_with_the_tenant_as_client_id_and_calls_me() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // The prerequisites first, so that their absence reads as such rather than as the script's
    // failure.
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .is_dir(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser`"
    );
    let chromium = std::env::var_os("CHROMIUM")
        .filter(|path| !path.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        chromium.is_file(),
        "no Chromium at {} (the script's $CHROMIUM or its default): install it (Debian: apt-get \
         install chromium)",
        chromium.display()
    );
    let app = spawn_app_with(AppOptions {
        backend: Backend::Sqlite,
        fixture: false,
        ..Default::default()
    })
    .await;

    let artifacts = root.join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("target/test-artifacts");
    let screenshot = artifacts.join("swagger-ui.png");
    let me_screenshot = artifacts.join("swagger-ui-me.png");
    let _ = std::fs::remove_file(&screenshot);
    let _ = std::fs::remove_file(&me_screenshot);

    let mut command = tokio::process::Command::new("node");
    command
        .arg(root.join("tests/browser/swagger_ui.mjs"))
        .args(["--base", &app.address])
        .args(["--tenant", "acme-pharma"])
        .args(["--username", "juan.perez"])
        .args(["--password", PASSWORD])
        // Each step's bound: 30 s rather than the script's 15 s, as the rest of the suite
        // shares the machine's cores while this runs.
        .args(["--timeout", "30000"])
        .arg("--screenshot")
        .arg(&screenshot)
        .arg("--me-screenshot")
        .arg(&me_screenshot)
        .arg("--icsrs")
        .current_dir(root.join("tests/browser"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    // The script bounds each step; this bounds the whole run should the browser hang.
    let out = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .expect("swagger_ui.mjs finished within 180 s")
        .expect("node runs (is Node.js installed?)");

    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "swagger_ui.mjs failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    let line = stdout.lines().last().expect("a JSON summary line");
    let result: Value = serde_json::from_str(line).expect("the summary is JSON");
    // The dialog's "Request body" choice: the tenant went out as the form's client_id.
    assert_eq!(result["client_id_via"], "body", "{result}");
    assert_eq!(result["me_status"], 200, "{result}");
    let me = &result["me_body"];
    assert_eq!(me["username"], "juan.perez", "{result}");
    assert_eq!(me["email"], "juan.perez@example.com", "{result}");
    assert_eq!(me["roles"], serde_json::json!(["admin", "qf"]), "{result}");
    assert_eq!(result["icsrs_status"], 200, "{result}");
    for file in [&screenshot, &me_screenshot] {
        assert!(file.is_file(), "no screenshot at {}", file.display());
    }
}
