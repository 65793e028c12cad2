//! PgBouncer in front of Postgres (issue 17, item 5): in **session** pool mode the whole flow
//! works through it, databases are created and dropped through it, and PgBouncer's server
//! connections, reused by one Vigia connection after another, never trip over the named
//! prepared statements sqlx leaves on them (PgBouncer's `server_reset_query`, `DISCARD ALL`,
//! clears them between clients). Transaction mode is not supported: see the README.
//!
//! Ignored unless `VIGIA_TEST_POSTGRES_URL` was set when it was built; then it needs `pgbouncer`
//! (Debian's package; CI installs it) and fails without it.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    str::FromStr,
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, postgres::PgConnectOptions};

use crate::helpers::{
    AppOptions, Backend, PASSWORD, TENANT, TestApp, UserSpec, drop_databases, eventually,
    postgres_server, spawn_app_with,
};

/// PgBouncer's `default_pool_size`: server connections per database (and user).
const POOL_SIZE: usize = 2;
/// Rounds of requests, each over fresh Vigia connections: more than [`POOL_SIZE`], so some
/// server connection serves more than one of them.
const ROUNDS: usize = 4;
/// Requests in flight at once within a round.
const PARALLEL: usize = 8;

/// A `pgbouncer` process of the test's own on a free loopback port, in front of one Postgres
/// server; killed when dropped (also when the test fails).
struct PgBouncer {
    child: Child,
    port: u16,
    /// Holds the configuration, the auth file and the log.
    dir: tempfile::TempDir,
}

/// The `pgbouncer` binary: on the `PATH`, or where Debian's package puts it (`/usr/sbin`,
/// which is not on every user's `PATH`).
fn pgbouncer_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("pgbouncer"))
        .find(|candidate| candidate.is_file())
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl PgBouncer {
    /// Starts `binary` in session pool mode in front of the server `upstream` names; trusts
    /// local clients and logs in to the server as the upstream's user.
    async fn start(binary: &Path, upstream: &PgConnectOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let user = upstream.get_username().to_owned();
        // The users PgBouncer accepts; `auth_type = trust` checks no password, and the test
        // server trusts local connections too (as CI's does).
        let auth_file = dir.path().join("users.txt");
        std::fs::write(&auth_file, format!("\"{user}\" \"\"\n")).expect("auth file");
        let config = dir.path().join("pgbouncer.ini");
        let log = dir.path().join("pgbouncer.log");
        // PgBouncer refuses to run as root: it switches to `postgres` (`-u`), which must read
        // the directory.
        let root = running_as_root();
        if root {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(chown.success(), "the directory is handed to postgres");
        }
        // A port found free may be taken before PgBouncer binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            // The configuration the README recommends, at a small scale: session mode with
            // `server_reset_query` left at its default (`DISCARD ALL`: set it empty and this
            // test fails at once with `prepared statement "sqlx_s_1" already exists`); sqlx
            // sends `extra_float_digits` when it connects, which PgBouncer refuses unless told
            // to ignore it; the user's server connections capped no lower than Vigia's budget.
            std::fs::write(
                &config,
                format!(
                    "[databases]\n\
                     * = host={host} port={upstream_port}\n\
                     \n\
                     [pgbouncer]\n\
                     listen_addr = 127.0.0.1\n\
                     listen_port = {port}\n\
                     unix_socket_dir =\n\
                     auth_type = trust\n\
                     auth_file = {auth_file}\n\
                     pool_mode = session\n\
                     default_pool_size = {POOL_SIZE}\n\
                     max_client_conn = 50\n\
                     max_user_connections = 10\n\
                     ignore_startup_parameters = extra_float_digits\n",
                    host = upstream.get_host(),
                    upstream_port = upstream.get_port(),
                    auth_file = auth_file.display(),
                ),
            )
            .expect("config written");
            let mut command = Command::new(binary);
            if root {
                command.args(["-u", "postgres"]);
            }
            let mut child = command
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log file"))
                .spawn()
                .expect("pgbouncer starts");
            let listening = eventually(Duration::from_secs(10), || {
                let exited = child.try_wait().expect("wait").is_some();
                async move {
                    if exited {
                        return Some(false);
                    }
                    let up = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
                    up.is_ok().then_some(true)
                }
            })
            .await;
            if listening {
                return Self { child, port, dir };
            }
        }
        panic!(
            "pgbouncer did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `postgres://user@127.0.0.1:PORT`, without a database: what the test's databases are
    /// reached (and created) through.
    fn url(&self, user: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Drops, on the real server, every database whose name starts with `prefix`, when dropped:
/// the test's databases, should the test fail before the server removed them through
/// PgBouncer.
struct DropOnServer {
    base: String,
    prefix: String,
}

impl Drop for DropOnServer {
    fn drop(&mut self) {
        let (base, prefix) = (self.base.clone(), self.prefix.clone());
        let names = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(databases_named(&base, &prefix))
        })
        .join()
        .unwrap_or_default();
        if !names.is_empty() {
            drop_databases(self.base.clone(), names);
        }
    }
}

/// The databases on the server `base` whose names start with `prefix`.
async fn databases_named(base: &str, prefix: &str) -> Vec<String> {
    let Ok(mut conn) = sqlx::PgConnection::connect(&format!("{base}/postgres")).await else {
        return Vec::new();
    };
    let names: Vec<String> = sqlx::query_scalar("SELECT datname::text FROM pg_database")
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
    let _ = conn.close().await;
    names
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// The backend processes of database `name` on the server `base` (there: PgBouncer's server
/// connections).
async fn backends_of(base: &str, name: &str) -> BTreeSet<i32> {
    let mut conn = sqlx::PgConnection::connect(&format!("{base}/postgres"))
        .await
        .expect("the real server answers");
    let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1")
        .bind(name)
        .fetch_all(&mut conn)
        .await
        .expect("pg_stat_activity");
    let _ = conn.close().await;
    pids.into_iter().collect()
}

/// The connections the server holds open to PgBouncer (`vigia_database_connections` of
/// `server`, every state), from `/metrics`, which must know `server`.
async fn open_connections(app: &TestApp, server: &str) -> u64 {
    let text = app.metrics_text().await;
    let label = format!("server=\"{server}\"");
    assert!(
        text.contains(&format!("vigia_database_connection_budget{{{label}}} 10")),
        "{text}"
    );
    text.lines()
        .filter(|line| line.starts_with("vigia_database_connections{") && line.contains(&label))
        .map(|line| {
            line.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .expect("a gauge value")
        })
        .sum()
}

/// An ICSR with sender's id `report_id`.
fn case(report_id: &str) -> Value {
    json!({
        "safety_report_id": report_id,
        "receipt_date": "2026-03-14",
        "seriousness_criteria": [],
        "patient": {"initials": "JPG", "sex": "male"},
        "suspect_product": "Amoxicillin 500 mg capsules",
        "reactions": [{"term": "Rash", "meddra_code": 10037844}],
        "narrative": "A rash after the second dose.",
    })
}

/// One user's session through the API, each answer asserted: whoami, `/me`, a new ICSR, the
/// list holding it. Shareable with spawned tasks (no borrow of the [`TestApp`]).
#[derive(Clone)]
struct Session {
    client: reqwest::Client,
    address: String,
    token: String,
}

impl Session {
    async fn get(&self, path: &str) -> Value {
        let resp = self
            .client
            .get(format!("{}{path}", self.address))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        resp.json().await.expect("json")
    }

    async fn work(self, report_id: String) {
        let who = self.get("/api/v1/auth/whoami").await;
        assert_eq!(who["username"], "juan.perez", "{who}");
        let me = self.get("/api/v1/auth/me").await;
        assert_eq!(me["username"], "juan.perez", "{me}");
        assert_eq!(me["email"], "juan.perez@example.com", "{me}");
        let resp = self
            .client
            .post(format!("{}/api/v1/icsrs", self.address))
            .bearer_auth(&self.token)
            .json(&case(&report_id))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::CREATED, "{report_id}");
        let made: Value = resp.json().await.expect("json");
        assert_eq!(made["safety_report_id"], report_id.as_str());
        assert_eq!(made["version"], 1);
        let id = made["id"].as_i64().expect("id");
        let one = self
            .get(&format!("/api/v1/icsrs?safety_report_id={report_id}"))
            .await;
        assert_eq!(one.as_array().map(Vec::len), Some(1), "{one}");
        assert_eq!(one[0]["id"], id);
        let read = self.get(&format!("/api/v1/icsrs/{id}")).await;
        assert_eq!(read, made);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(vigia_test_postgres),
    ignore = "needs VIGIA_TEST_POSTGRES_URL: a PostgreSQL server to put pgbouncer (Debian's package) in front of"
)]
async fn the_whole_flow_works_through_pgbouncer_in_session_mode_over_reused_server_connections() {
    let real = postgres_server();
    let binary = pgbouncer_binary().expect(
        "pgbouncer is not installed (on the PATH or in /usr/sbin): install it (Debian: apt-get \
         install pgbouncer)",
    );
    let upstream = PgConnectOptions::from_str(&real).expect("VIGIA_TEST_POSTGRES_URL parses");
    let user = upstream.get_username().to_owned();
    let bouncer = PgBouncer::start(&binary, &upstream).await;
    let via = format!("127.0.0.1:{}", bouncer.port);
    // Every database of this test (legacy and tenant) is created, used and dropped through
    // PgBouncer. Vigia's pools are no larger than PgBouncer's (see the README), and close a
    // connection idle for a second, so each round below starts over new client connections.
    let app = spawn_app_with(AppOptions {
        backend: Backend::Postgres(bouncer.url(&user)),
        overrides: vec![
            (
                "database.postgres_max_connections".into(),
                POOL_SIZE.to_string(),
            ),
            // No more than PgBouncer lets the user hold on the server (max_user_connections).
            (
                "database.postgres_connections_per_server".into(),
                "10".into(),
            ),
            ("database.postgres_idle_seconds".into(), "1".into()),
            // More logins from one address than a client would make.
            (
                "security.login_attempts_per_ip_per_minute".into(),
                "1000".into(),
            ),
        ],
        fixture: true,
    })
    .await;
    let prefix = format!("vigia_t_{}_", app.run_id);
    let _cleanup = DropOnServer {
        base: real.clone(),
        prefix: prefix.clone(),
    };
    let tenant_db = format!("{prefix}{TENANT}");
    let mut made = databases_named(&real, &prefix).await;
    made.sort();
    assert_eq!(
        made,
        [tenant_db.clone(), format!("{prefix}legacy")],
        "the databases were created through PgBouncer"
    );

    for i in 0..PARALLEL {
        app.create_user(Some(TENANT), UserSpec::new(&format!("colleague{i}")))
            .await;
    }

    let mut servers: Vec<BTreeSet<i32>> = Vec::new();
    let mut password = PASSWORD.to_owned();
    for round in 0..ROUNDS {
        // Arrange: the server holds no connection to PgBouncer, so this round's are new ones.
        eventually(Duration::from_secs(15), || async {
            (open_connections(&app, &via).await == 0).then_some(())
        })
        .await;

        // Act and assert: a login, requests one after another, then several at once.
        let token = app.token_with(Some(TENANT), "juan.perez", &password).await;
        let session = Session {
            client: app.client.clone(),
            address: app.address.clone(),
            token,
        };
        for i in 0..5 {
            session.clone().work(format!("ES-PGB-{round}-S{i}")).await;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..PARALLEL {
            tasks.spawn(session.clone().work(format!("ES-PGB-{round}-P{i}")));
        }
        for i in 0..PARALLEL {
            let login = app.client.post(app.url("/api/v1/auth/login"));
            tasks.spawn(async move {
                let username = format!("colleague{i}");
                let resp = login
                    .header("X-Tenant", TENANT)
                    .form(&[("username", username.as_str()), ("password", PASSWORD)])
                    .send()
                    .await
                    .expect("sent");
                assert_eq!(resp.status(), StatusCode::OK, "login of {username}");
                let body: Value = resp.json().await.expect("json");
                assert_eq!(body["user"]["username"], username.as_str());
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("a parallel request panicked");
        }
        let list = session.get("/api/v1/icsrs?limit=200").await;
        assert_eq!(
            list.as_array().map(Vec::len),
            Some((round + 1) * (5 + PARALLEL)),
            "every case of every round so far"
        );
        if round == ROUNDS / 2 {
            let new = format!("ChangedPass{round}x");
            let resp = app.change_password(&session.token, &password, &new).await;
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(
                resp.json::<Value>().await.expect("json"),
                json!({"success": true})
            );
            let old = app.login(Some(TENANT), "juan.perez", &password).await;
            assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
            password = new;
        }

        // The tenant database's server connections once the round's clients are gone.
        eventually(Duration::from_secs(15), || async {
            (open_connections(&app, &via).await == 0).then_some(())
        })
        .await;
        servers.push(backends_of(&real, &tenant_db).await);
    }

    // Server connections outlived the clients that used them and served the next rounds'
    // clients: none lost along the way and never more than PgBouncer's pool, while every
    // round opened client connections of its own (so more than the pool, all told).
    for pair in servers.windows(2) {
        assert!(
            pair[0].is_subset(&pair[1]),
            "a server connection was replaced: {servers:?}\n{}",
            bouncer.log()
        );
    }
    let last = servers.last().expect("rounds ran");
    assert!(
        !servers[0].is_empty() && last.len() <= POOL_SIZE,
        "server connections after each round: {servers:?}"
    );

    // The test's databases are dropped through PgBouncer too.
    drop(app);
    assert_eq!(
        databases_named(&real, &prefix).await,
        Vec::<String>::new(),
        "the databases were dropped through PgBouncer"
    );
}
