//! Bounded resources: one `vigia serve` process, limited to 256 open files, serves 300 SQLite
//! tenants, because tenant pools live in a bounded cache that closes evicted pools.

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::json;
use vigia::{
    domain::{Scope, TenantId},
    tenancy::{
        ServerSecret,
        provision::{self, NewTenant},
    },
};

use crate::helpers::{AppOptions, Backend, SECRET, UserSpec, spawn_app_with};

const TENANTS: usize = 300;
const FD_LIMIT: usize = 256;
const POOL_CACHE: usize = 16;

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_serves_more_tenants_than_it_may_open_files() {
    let app = spawn_app_with(AppOptions {
        backend: Backend::Sqlite,
        fixture: false,
        ..Default::default()
    })
    .await;
    let user = UserSpec::new("solo").into_new_user(&app.settings).await;
    for i in 0..TENANTS {
        let tenant = NewTenant {
            id: TenantId::parse(&format!("t{i:04}")).expect("valid"),
            database_url: None,
            name: None,
            first_user: Some(user.clone()),
            via: "test",
        };
        provision::create_tenant(
            &app.settings,
            &vigia::store::PoolSettings::from(&app.settings.database),
            &vigia::tenancy::Source::Files(app.settings.tenants.dir.clone()),
            tenant,
        )
        .await
        .expect("provisioned");
    }

    let mut cmd = std::process::Command::new("sh");
    let inner = app.cli();
    let args: Vec<String> = inner
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    cmd.arg("-c")
        .arg(format!("ulimit -n {FD_LIMIT} && exec \"$0\" \"$@\" serve"))
        .arg(inner.get_program())
        .args(&args)
        .env("VIGIA__SERVER__LISTEN", "127.0.0.1:0")
        .env("VIGIA__JWT__SECRET", SECRET)
        // Tokens are forged below with the derived HMAC keys.
        .env("VIGIA__JWT__ALGORITHM", "HS256")
        .env(
            "VIGIA__TENANTS__POOL_CACHE_CAPACITY",
            POOL_CACHE.to_string(),
        )
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().expect("vigia serve starts"));
    let address = listening_address(&mut child.0);

    let client = reqwest::Client::new();
    let secret = ServerSecret::new(SECRET.as_bytes().to_vec());
    for round in 0..2 {
        for i in 0..TENANTS {
            let id = format!("t{i:04}");
            let scope = Scope::Tenant(TenantId::parse(&id).expect("valid"));
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let claims = json!({
                "sub": "1", "uid": 1, "username": "solo", "email": "solo@example.com", "role": "qf",
                "roles": ["qf"], "tenant": id, "trace": "scale", "iat": now, "exp": now + 600, "jti": format!("{round}-{i}"), "ver": 0,
                "iss": format!("{address}/tenants/{id}"), "aud": "vigia"
            });
            let token = jsonwebtoken::encode(
                &{
                    let mut header = Header::new(Algorithm::HS256);
                    header.kid = Some(secret.kid());
                    header
                },
                &claims,
                &EncodingKey::from_secret(&secret.derive(&scope, app.incarnation(&id))),
            )
            .expect("signed");
            let resp = client
                .get(format!("{address}/api/v1/auth/whoami"))
                .bearer_auth(token)
                .send()
                .await
                .expect("sent");
            assert_eq!(resp.status(), StatusCode::OK, "tenant {id}, round {round}");
        }
    }

    let open = std::fs::read_dir(format!("/proc/{}/fd", child.0.id()))
        .expect("proc fd")
        .count();
    eprintln!("{TENANTS} tenants served twice; {open} descriptors open (limit {FD_LIMIT})");
    assert!(open < FD_LIMIT, "{open} descriptors open");
}

/// Reads the child's log until it says where it listens.
fn listening_address(child: &mut std::process::Child) -> String {
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let address = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let _ = tx.send(address);
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    rx.recv_timeout(deadline - Instant::now())
        .expect("the server reports its address")
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
