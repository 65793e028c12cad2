//! The reference resource server (`examples/resource_server.rs`) against the real server: it
//! holds no secret, only the issuer URL, and follows a key rotation by itself.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    AppOptions, PASSWORD, SECRET, TENANT, UserSpec, backend_tests, eventually, spawn_app_with,
};

/// The example, started with `issuer` and `permission`; killed on drop.
struct ResourceServer {
    child: Child,
    url: String,
}

impl ResourceServer {
    fn start(issuer: &str, permission: &str) -> Self {
        // `cargo test` builds it beside the test binary (target/debug/examples/); built here too
        // for a run of this test target alone (`cargo test --test api`).
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let built = Command::new(cargo)
            .args(["build", "--quiet", "--example", "resource_server"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(
            built.success(),
            "building examples/resource_server.rs failed"
        );
        let exe = std::env::current_exe().expect("test binary");
        let example = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("target/debug")
            .join("examples/resource_server");
        let mut child = Command::new(example)
            .args([issuer, permission, "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the example starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("its first line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        Self { child, url }
    }

    async fn cases(&self, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = reqwest::Client::new().get(format!("{}/cases", self.url));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.expect("sent");
        (resp.status(), resp.json().await.expect("JSON"))
    }
}

impl Drop for ResourceServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port, for a server that must come back at the same address.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

backend_tests! {
    async fn a_resource_server_trusts_tokens_by_the_jwks_alone_and_follows_a_rotation(backend) {
        let port = free_port();
        let app = spawn_app_with(AppOptions {
            backend: backend.clone(),
            overrides: vec![("server.listen".into(), format!("127.0.0.1:{port}"))],
            ..Default::default()
        })
        .await;
        let issuer = format!("{}/tenants/{TENANT}", app.address);
        let cases = ResourceServer::start(&issuer, "users.manage");

        let admin = app.token(Some(TENANT), "juan.perez").await;
        let (status, body) = cases.cases(Some(&admin)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let me: Value = app.me(&admin, None).await.json().await.expect("JSON");
        assert_eq!(body["subject"], me["sub"]);
        assert_eq!(body["tenant"], TENANT);

        // A pharmacist (qf) lacks users.manage; no token, garbage, another tenant's token.
        app.create_user(Some(TENANT), UserSpec::new("farma").roles(&["qf"])).await;
        let pharmacist = app.token(Some(TENANT), "farma").await;
        assert_eq!(cases.cases(Some(&pharmacist)).await.0, StatusCode::FORBIDDEN);
        assert_eq!(cases.cases(None).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(cases.cases(Some("x.y.z")).await.0, StatusCode::UNAUTHORIZED);
        app.provision_tenant("other").await;
        app.create_user(Some("other"), UserSpec::juan()).await;
        let foreign = app.token(Some("other"), "juan.perez").await;
        let (status, body) = cases.cases(Some(&foreign)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

        // A service client's token: the client is the subject, its permissions decide.
        for (permissions, expected) in [(&["users.manage"][..], StatusCode::OK), (&["icsr.view"][..], StatusCode::FORBIDDEN)] {
            let (id, secret) = app.service_client(TENANT, "module", permissions);
            let resp = app
                .post(&format!("/tenants/{TENANT}/oauth2/token"))
                .basic_auth(&id, Some(&secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .expect("sent");
            let grant: Value = resp.json().await.expect("JSON");
            let (status, body) = cases.cases(grant["access_token"].as_str()).await;
            assert_eq!(status, expected, "{body}");
            if status == StatusCode::OK {
                assert_eq!(body["subject"], id.as_str());
            }
        }

        // Rotation: a new secret signs, the old one still verifies. The resource server meets
        // a new kid, fetches the JWKS again (at most every 5 s) and accepts both tokens.
        let newer = "a-newer-secret-0123456789abcdef-0123456789abcdef";
        let app = app.restart_with(&[("jwt.secret", &format!("{newer},{SECRET}"))]).await;
        assert_eq!(app.port, port, "the issuer is back at its address");
        let rotated = app.token_with(Some(TENANT), "juan.perez", PASSWORD).await;
        assert_ne!(
            jsonwebtoken::decode_header(&rotated).expect("JWT").kid,
            jsonwebtoken::decode_header(&admin).expect("JWT").kid
        );
        eventually(Duration::from_secs(20), || async {
            (cases.cases(Some(&rotated)).await.0 == StatusCode::OK).then_some(())
        })
        .await;
        assert_eq!(cases.cases(Some(&admin)).await.0, StatusCode::OK, "issued before the rotation");
    }
}
