//! Three server processes behind no load balancer, sharing one Postgres (legacy database with
//! the tenant registry, and the tenants' databases) and one Redis — what a deployment of
//! replicas does. Ignored unless both `VIGIA_TEST_POSTGRES_URL` and `VIGIA_TEST_REDIS_URL` were
//! set when it was built (CI sets them). Every database and Redis key it makes is named after
//! this run and removed.

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use vigia::store::{self, DatabaseUrl, PoolSettings};

use crate::helpers::{
    PASSWORD, RedisKeys, SECRET, drop_databases, eventually, postgres_server, redis_url,
};

const OPERATOR: &str = "operator-token-0123456789abcdef-0123456789";
const TENANT: &str = "replica-pharma";

struct Replica {
    name: &'static str,
    base: String,
    child: Child,
}

/// The Postgres databases this test made, dropped on drop.
struct Databases {
    pg_base: String,
    names: Vec<String>,
}

impl Drop for Databases {
    fn drop(&mut self) {
        drop_databases(self.pg_base.clone(), std::mem::take(&mut self.names));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

async fn start(name: &'static str, dir: &Path, env: &[(String, String)]) -> Replica {
    let port = free_port();
    let data = dir.join(name);
    std::fs::create_dir_all(&data).expect("data dir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_vigia"));
    command
        .arg("serve")
        .current_dir(&data)
        .env("VIGIA__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("VIGIA__DATA_DIR", data.join("data"))
        .env("VIGIA__TENANTS__DIR", data.join("tenants"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).expect("log"))
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let child = command.spawn().expect("vigia starts");
    let replica = Replica {
        name,
        base: format!("http://127.0.0.1:{port}"),
        child,
    };
    let client = Client::new();
    eventually(Duration::from_secs(30), || async {
        let resp = client
            .get(format!("{}/readyz", replica.base))
            .send()
            .await
            .ok()?;
        (resp.status() == StatusCode::OK).then_some(())
    })
    .await;
    replica
}

async fn login(
    client: &Client,
    replica: &Replica,
    username: &str,
    password: &str,
) -> reqwest::Response {
    client
        .post(format!("{}/api/v1/auth/login", replica.base))
        .header("X-Tenant", TENANT)
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .expect("sent")
}

async fn token(client: &Client, replica: &Replica, username: &str, password: &str) -> String {
    let resp = login(client, replica, username, password).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "login of {username} through {}",
        replica.name
    );
    resp.json::<Value>().await.expect("json")["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

async fn me(client: &Client, replica: &Replica, token: &str) -> StatusCode {
    client
        .get(format!("{}/api/v1/auth/me", replica.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(all(vigia_test_postgres, vigia_test_redis)),
    ignore = "needs VIGIA_TEST_POSTGRES_URL and VIGIA_TEST_REDIS_URL: the PostgreSQL server and the Redis the three replicas share"
)]
async fn three_replicas_share_tenants_tokens_lockouts_and_revocations() {
    let (pg_base, redis_url) = (postgres_server(), redis_url());
    let keys = RedisKeys::new(redis_url.clone());
    let run = format!("{:08x}", rand::random::<u32>());
    let legacy = format!("vigia_t_{run}_legacy");
    let tenant_db = format!("vigia_t_{run}_replica");
    let _databases = Databases {
        pg_base: pg_base.clone(),
        names: vec![legacy.clone(), tenant_db.clone()],
    };
    let legacy_url = format!("{pg_base}/{legacy}");
    let (created, _) = store::create_database(
        &DatabaseUrl::parse(&legacy_url).expect("url"),
        &PoolSettings::from(
            &vigia::config::Settings::from_overrides(&[])
                .expect("defaults")
                .database,
        ),
    )
    .await
    .expect("legacy database");
    created.close().await;

    let dir = tempfile::tempdir().expect("temp dir");
    let env: Vec<(String, String)> = [
        ("VIGIA__ENVIRONMENT", "production"),
        ("VIGIA__JWT__SECRET", SECRET),
        // One issuer behind the load balancer: every replica names the same public URL.
        ("VIGIA__SERVER__PUBLIC_URL", "https://vigia.example.test"),
        ("VIGIA__ADMIN__TOKEN", OPERATOR),
        ("VIGIA__TENANTS__REGISTRY", "database"),
        ("VIGIA__LEGACY__DATABASE_URL", legacy_url.as_str()),
        ("VIGIA__REDIS__URL", redis_url.as_str()),
        ("VIGIA__REDIS__KEY_PREFIX", keys.prefix.as_str()),
        ("VIGIA__SERVER__SHUTDOWN_GRACE_SECONDS", "10"),
        // An unknown tenant is remembered for a minute: only the Redis event can make C see
        // the new one within 2 s.
        ("VIGIA__TENANTS__NEGATIVE_CACHE_MILLIS", "60000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let a = start("a", dir.path(), &env).await;
    let mut b = start("b", dir.path(), &env).await;
    let c = start("c", dir.path(), &env).await;
    let client = Client::new();

    // A tenant provisioned through A's operator API logs in through C within 2 s, though C
    // had just cached it as unknown.
    let status = login(&client, &c, "ana", PASSWORD).await.status();
    assert_eq!(status, StatusCode::NOT_FOUND);
    let resp = client
        .post(format!("{}/api/v1/admin/tenants", a.base))
        .bearer_auth(OPERATOR)
        .json(&json!({
            "id": TENANT,
            "name": "Replica Pharma",
            "database_url": format!("{pg_base}/{tenant_db}"),
            "admin": {"username": "ana", "email": "ana@replica.example", "password": PASSWORD},
        }))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let provisioned = Instant::now();
    eventually(Duration::from_secs(2), || async {
        (login(&client, &c, "ana", PASSWORD).await.status() == StatusCode::OK).then_some(())
    })
    .await;
    eprintln!(
        "provisioned on A, served by C after {:?}",
        provisioned.elapsed()
    );

    // A token from A is accepted by B.
    let admin = token(&client, &a, "ana", PASSWORD).await;
    assert_eq!(me(&client, &b, &admin).await, StatusCode::OK);

    for username in ["victim", "pat"] {
        let resp = client
            .post(format!("{}/api/v1/users", a.base))
            .bearer_auth(&admin)
            .json(
                &json!({"username": username, "email": format!("{username}@replica.example"),
                          "password": PASSWORD, "roles": ["qf"]}),
            )
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::CREATED);
    }

    // A lockout triggered through A holds on B and C — for an account, and for a name that
    // matches none (kept in Redis).
    for name in ["victim", "ghost"] {
        for _ in 0..5 {
            let status = login(&client, &a, name, "wrong-password").await.status();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}");
        }
        for replica in [&b, &c] {
            let status = login(&client, replica, name, PASSWORD).await.status();
            assert_eq!(
                status,
                StatusCode::TOO_MANY_REQUESTS,
                "{name} through {}",
                replica.name
            );
        }
    }

    // A password change through A revokes the old token on B within 2 s, though B had the
    // user cached; a logout through A revokes that token on C.
    let old = token(&client, &b, "pat", PASSWORD).await;
    assert_eq!(me(&client, &b, &old).await, StatusCode::OK);
    let resp = client
        .post(format!("{}/api/v1/auth/change-password", a.base))
        .bearer_auth(&old)
        .json(&json!({"current_password": PASSWORD, "new_password": "An0ther-Passw0rd"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let changed = Instant::now();
    eventually(Duration::from_secs(2), || async {
        (me(&client, &b, &old).await == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    eprintln!(
        "password changed on A, old token refused by B after {:?}",
        changed.elapsed()
    );
    let fresh = token(&client, &c, "pat", "An0ther-Passw0rd").await;
    assert_eq!(me(&client, &c, &fresh).await, StatusCode::OK);
    let resp = client
        .post(format!("{}/api/v1/auth/logout", a.base))
        .bearer_auth(&fresh)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    eventually(Duration::from_secs(2), || async {
        (me(&client, &c, &fresh).await == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;

    // Killing B mid-load loses no acknowledged write: every case answered 201 (by A or B) is
    // there, read through C.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let client = client.clone();
            let admin = admin.clone();
            let bases = [a.base.clone(), b.base.clone()];
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0..60 {
                    let id = format!("ES-REPL-{w}-{n:03}");
                    let resp = client
                        .post(format!("{}/api/v1/icsrs", bases[n % 2]))
                        .bearer_auth(&admin)
                        .json(&json!({
                            "safety_report_id": id,
                            "receipt_date": "2026-01-15",
                            "suspect_product": "Product X",
                            "reactions": [{"term": "Nausea"}],
                        }))
                        .send()
                        .await;
                    if let Ok(resp) = resp
                        && resp.status() == StatusCode::CREATED
                    {
                        acknowledged.push(id);
                    }
                }
                acknowledged
            })
        })
        .collect();
    // Let the load run, then kill B without warning.
    eventually(Duration::from_secs(30), || async {
        let resp = client
            .get(format!("{}/api/v1/icsrs?limit=200", c.base))
            .bearer_auth(&admin)
            .send()
            .await
            .ok()?;
        let list: Value = resp.json().await.ok()?;
        (list.as_array()?.len() >= 40).then_some(())
    })
    .await;
    b.child.start_kill().expect("kill B");
    let _ = b.child.wait().await;
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("writer"));
    }
    assert!(
        acknowledged.len() >= 40,
        "the load ran: {} acknowledged",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() < 240,
        "B died mid-load, so some writes failed"
    );
    for id in &acknowledged {
        let resp = client
            .get(format!("{}/api/v1/icsrs?safety_report_id={id}", c.base))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("sent");
        let found: Value = resp.json().await.expect("json");
        assert_eq!(
            found.as_array().map(Vec::len),
            Some(1),
            "acknowledged {id} is missing"
        );
    }
    eprintln!(
        "{} writes acknowledged before and after B was killed; all present",
        acknowledged.len()
    );

    // SIGTERM: A drains and exits 0.
    let mut a = a;
    let pid = a.child.id().expect("pid");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), a.child.wait())
        .await
        .expect("A stopped within its grace period")
        .expect("exit status");
    assert!(exit.success(), "A exited with {exit}");
    drop(c);
}
