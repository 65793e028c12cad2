//! The `vigia` binary, run as an operator would, against the directories of a running server.

use std::{
    io::Write,
    process::{Command, Output, Stdio},
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    Backend, PASSWORD, TENANT, TestApp, assert_error, backend_tests, eventually, spawn_app,
};

fn run(mut cmd: Command, stdin: Option<&str>) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("vigia runs");
    let mut pipe = child.stdin.take().expect("stdin");
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).expect("stdin written");
    }
    drop(pipe);
    child.wait_with_output().expect("vigia finishes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tenant_create(app: &TestApp, id: &str, url: Option<String>) -> Output {
    let mut cmd = app.cli();
    cmd.args(["tenant", "create", id, "--name", "Created by CLI"]);
    if let Some(url) = url {
        cmd.args(["--database-url", &url]);
    }
    run(cmd, None)
}

fn user_create(
    app: &TestApp,
    tenant: &str,
    username: &str,
    roles: &[&str],
    password: &str,
) -> Output {
    let mut cmd = app.cli();
    cmd.args(["user", "create", "--tenant", tenant, "--username", username])
        .args([
            "--email",
            &format!("{username}@example.com"),
            "--full-name",
            "Ana Gómez",
            "--empleado-id",
            "77",
        ])
        .args([
            "--permissions",
            r#"{"icsr": {"view": true}}"#,
            "--password-stdin",
        ]);
    for role in roles {
        cmd.args(["--role", role]);
    }
    run(cmd, Some(&format!("{password}\n")))
}

backend_tests! {
    async fn a_tenant_and_user_made_by_the_cli_log_in_on_the_running_server(backend) {
        let app = spawn_app(backend.clone()).await;
        // Known-unknown first, so the server's negative cache holds it.
        assert_error(
            app.login(Some("cli-co"), "ana", PASSWORD).await,
            StatusCode::NOT_FOUND,
        )
        .await;

        let out = tenant_create(&app, "cli-co", app.tenant_database_url("cli-co"));
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("created tenant cli-co"));
        let out = user_create(&app, "cli-co", "ana", &["qf", "admin"], PASSWORD);
        assert!(out.status.success(), "{}", text(&out.stderr));

        let resp = eventually(Duration::from_secs(5), || async {
            let resp = app.login(Some("cli-co"), "ana", PASSWORD).await;
            (resp.status() == StatusCode::OK).then_some(resp)
        })
        .await;
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["user"]["roles"], serde_json::json!(["qf", "admin"]));
        let token = body["access_token"].as_str().expect("token");
        let me: Value = app.me(token, None).await.json().await.expect("json");
        assert_eq!(me["full_name"], "Ana Gómez");
        assert_eq!(me["empleado_id"], 77);
        assert_eq!(me["permissions"]["icsr"]["view"], true);

        let list = run(
            {
                let mut c = app.cli();
                c.args(["tenant", "list"]);
                c
            },
            None,
        );
        assert!(list.status.success());
        let lines = text(&list.stdout);
        let backend = backend.name();
        assert!(
            lines
                .lines()
                .any(|l| l == format!("cli-co\t{backend}\tactive")),
            "{lines}"
        );
        assert!(
            lines.lines().any(|l| l.starts_with(&format!("{TENANT}\t"))),
            "{lines}"
        );
    }
}

backend_tests! {
    async fn a_cli_user_without_roles_exists_but_gets_403(backend) {
        let app = spawn_app(backend.clone()).await;
        let out = user_create(&app, TENANT, "norole", &[], PASSWORD);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_error(
            app.login(Some(TENANT), "norole", PASSWORD).await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
}

backend_tests! {
    async fn cli_failures_are_one_line_non_zero_and_change_nothing(backend) {
        let app = spawn_app(backend.clone()).await;
        let registry_before = std::fs::read_dir(&app.settings.tenants.dir)
            .expect("dir")
            .count();

        let cases: Vec<Output> = vec![
            tenant_create(&app, TENANT, None),
            tenant_create(&app, "Bad_Id", None),
            tenant_create(&app, "../escape", None),
            tenant_create(&app, "badurl", Some("mysql://localhost/x".into())),
            tenant_create(
                &app,
                "unreachable",
                Some("postgres://nobody@127.0.0.1:1/vigia_unreachable".into()),
            ),
            user_create(&app, TENANT, "juan.perez", &["qf"], PASSWORD),
            user_create(&app, TENANT, "bad user", &["qf"], PASSWORD),
            user_create(&app, TENANT, "shorty", &["qf"], "12345"),
            user_create(&app, TENANT, "badrole", &["Admin!"], PASSWORD),
            user_create(&app, "ghost", "ana", &["qf"], PASSWORD),
        ];
        for out in cases {
            assert!(!out.status.success());
            let err = text(&out.stderr);
            assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
            assert!(err.starts_with("vigia: error: "), "{err:?}");
        }

        assert_eq!(
            std::fs::read_dir(&app.settings.tenants.dir)
                .expect("dir")
                .count(),
            registry_before
        );
        assert!(
            !app.data_dir()
                .join("tenants")
                .join("unreachable.db")
                .exists()
        );
        assert!(!app.data_dir().join("tenants").join("badurl.db").exists());
        assert_eq!(
            app.login(Some(TENANT), "juan.perez", PASSWORD)
                .await
                .status(),
            StatusCode::OK
        );
    }
}

backend_tests! {
    async fn migrate_reports_every_scope(backend) {
        let app = spawn_app(backend.clone()).await;
        let out = run(
            {
                let mut c = app.cli();
                c.arg("migrate");
                c
            },
            None,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.contains("migrated legacy"), "{stdout}");
        assert!(stdout.contains(&format!("migrated {TENANT}")), "{stdout}");
    }
}

#[test]
fn help_documents_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_vigia"))
        .arg("--help")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let help = text(&out.stdout);
    for command in ["serve", "tenant", "user", "migrate", "openapi"] {
        assert!(help.contains(command), "{help}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_vigia"))
        .args(["user", "create", "--help"])
        .output()
        .expect("runs");
    let help = text(&out.stdout);
    for flag in [
        "--tenant",
        "--username",
        "--email",
        "--full-name",
        "--role",
        "--empleado-id",
        "--inactive",
        "--permissions",
        "--password-stdin",
    ] {
        assert!(help.contains(flag), "{flag} missing from\n{help}");
    }
}

/// Issue 12, finding 10: `serve` refuses development on a non-loopback address with one line
/// that tells the operator what to set, unless `server.allow_development_on_network` opts in;
/// production without a secret names `VIGIA__JWT__SECRET`; the other commands still work with
/// the server's 0.0.0.0 configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_development_on_a_network_address_and_production_without_a_secret() {
    let app = spawn_app(Backend::Sqlite).await;
    let deadline = Duration::from_secs(30);

    let mut refused = app.serve_process(&[("VIGIA__SERVER__LISTEN", "0.0.0.0:0")]);
    assert!(!refused.exit_status(deadline).await.success());
    let err = refused.log();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(
        err.starts_with("vigia: error: refusing to serve environment \"development\" on 0.0.0.0:0")
            && err.contains("environment = \"production\"")
            && err.contains("VIGIA__JWT__SECRET")
            && err.contains("server.allow_development_on_network = true"),
        "{err}"
    );

    let mut refused = app.serve_process(&[
        ("VIGIA__SERVER__LISTEN", "0.0.0.0:0"),
        ("VIGIA__ENVIRONMENT", "production"),
    ]);
    assert!(!refused.exit_status(deadline).await.success());
    let err = refused.log();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(
        err.starts_with("vigia: error: ") && err.contains("set VIGIA__JWT__SECRET"),
        "{err}"
    );

    // The other commands run with the server's configuration, 0.0.0.0 included.
    let mut cmd = app.cli();
    cmd.env("VIGIA__SERVER__LISTEN", "0.0.0.0:8000");
    cmd.args(["tenant", "create", "open-co"]);
    let out = run(cmd, None);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Opted in: it serves, on every interface.
    let server = app.serve_process(&[
        ("VIGIA__SERVER__LISTEN", "0.0.0.0:0"),
        ("VIGIA__SERVER__ALLOW_DEVELOPMENT_ON_NETWORK", "true"),
    ]);
    let address = server.address().await.replace("0.0.0.0", "127.0.0.1");
    let resp = app
        .client
        .get(format!("{address}/healthz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
}
