//! The test harness: [`spawn_app`] starts the real server on a random port over a fresh
//! temporary data directory and talks HTTP to it.
//!
//! Backend: SQLite always; Postgres when `VIGIA_TEST_POSTGRES_URL` names a server (e.g.
//! `postgres://postgres@127.0.0.1:5432`); without it the Postgres tests are built ignored (see
//! `build.rs`). On Postgres every test gets its own uniquely named databases (legacy and
//! tenants), dropped when the test's `TestApp` is dropped.

use std::{
    io::Read,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use reqwest::{Client, RequestBuilder, Response, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use vigia::{
    auth::password::Hasher,
    config::Settings,
    domain::{Email, FullName, Password, Permissions, Role, Roles, TenantId, Username},
    startup::Application,
    store::{
        self, DatabaseUrl, PoolSettings, Store,
        audit::{AuditType, NewAuditEvent},
        users::NewUser,
    },
    tenancy::{
        Source,
        provision::{self, NewTenant},
    },
};

pub const PASSWORD: &str = "SecurePass123";
pub const TENANT: &str = "acme";
pub const SECRET: &str = "test-secret-0123456789abcdef-0123456789abcdef";

/// Which database server a test's databases (legacy and tenants) live on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// `postgres://user@host:port` (no database): each test makes its own databases there.
    Postgres(String),
}

impl Backend {
    /// The Postgres backend on the server [`postgres_server`] names.
    pub fn postgres() -> Self {
        Self::Postgres(postgres_server())
    }

    fn postgres_base(&self) -> Option<&str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres(base) => Some(base),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

/// `postgres://user@host:port` of the server `VIGIA_TEST_POSTGRES_URL` names. A test that calls
/// this is ignored unless the variable was set when it was built, so it is missing only when the
/// test was run on purpose (`--ignored`) or its binary by hand: that fails, it never passes.
pub fn postgres_server() -> String {
    let url = std::env::var("VIGIA_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .expect(
            "VIGIA_TEST_POSTGRES_URL is not set: this test needs a PostgreSQL server to create \
             test databases on (e.g. postgres://postgres@127.0.0.1:5432)",
        );
    url.trim_end_matches('/').to_owned()
}

/// Declares each test twice, `<name>::sqlite` and `<name>::postgres`, passing the backend to
/// the body. The Postgres variant is ignored, with the reason, unless `VIGIA_TEST_POSTGRES_URL`
/// was set when the tests were built (CI sets it; see `build.rs`).
macro_rules! backend_tests {
    ($( $(#[doc = $doc:literal])* async fn $name:ident($backend:ident) $body:block )*) => {
        $(
            $(#[doc = $doc])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn test_body($backend: crate::helpers::Backend) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    test_body(crate::helpers::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    not(vigia_test_postgres),
                    ignore = "needs VIGIA_TEST_POSTGRES_URL: a PostgreSQL server to create test databases on"
                )]
                async fn postgres() {
                    test_body(crate::helpers::Backend::postgres()).await
                }
            }
        )*
    };
}
pub(crate) use backend_tests;

/// A hash of [`PASSWORD`] at the configured parameters, computed once per test binary.
async fn password_hash(settings: &Settings) -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    if let Some(hash) = HASH.get() {
        return hash.clone();
    }
    let hasher = Hasher::new(&settings.argon2).expect("hasher");
    let hash = hasher
        .hash(
            &vigia::domain::Scope::Legacy,
            Password::parse(PASSWORD.into(), "password").expect("valid"),
        )
        .await
        .expect("hash");
    HASH.get_or_init(|| hash).clone()
}

/// A user to create in a test.
#[derive(Clone, Debug)]
pub struct UserSpec {
    pub username: String,
    pub email: String,
    pub full_name: Option<String>,
    pub roles: Vec<String>,
    pub active: bool,
    pub empleado_id: Option<i64>,
    pub permissions: Value,
}

impl UserSpec {
    pub fn new(username: &str) -> Self {
        Self {
            username: username.into(),
            email: format!("{username}@example.com"),
            full_name: Some(format!("{username} full name")),
            roles: vec!["qf".into()],
            active: true,
            empleado_id: None,
            permissions: json!({}),
        }
    }

    pub fn roles(mut self, roles: &[&str]) -> Self {
        self.roles = roles.iter().map(|r| r.to_string()).collect();
        self
    }

    pub fn inactive(mut self) -> Self {
        self.active = false;
        self
    }

    /// The API document's example user.
    pub fn juan() -> Self {
        Self {
            username: "juan.perez".into(),
            email: "juan.perez@example.com".into(),
            full_name: Some("Juan Pérez García".into()),
            roles: vec!["admin".into(), "qf".into()],
            active: true,
            empleado_id: Some(456),
            permissions: json!({
                "icsr": {"view": true, "edit": true, "delete": true},
                "reports": {"view": true, "generate": true}
            }),
        }
    }

    pub async fn into_new_user(self, settings: &Settings) -> NewUser {
        NewUser {
            username: Username::parse(&self.username).expect("valid username"),
            email: Email::parse(&self.email).expect("valid email"),
            full_name: self
                .full_name
                .as_deref()
                .map(|n| FullName::parse(n).expect("valid")),
            password_hash: password_hash(settings).await,
            is_active: self.active,
            empleado_id: self.empleado_id,
            permissions: Permissions::parse(self.permissions).expect("valid permissions"),
            roles: Roles::new(
                self.roles
                    .iter()
                    .map(|r| Role::parse(r).expect("valid role"))
                    .collect(),
            )
            .expect("roles"),
        }
    }
}

/// Options for [`spawn_app_with`].
pub struct AppOptions {
    pub backend: Backend,
    /// Extra configuration keys, e.g. `("environment", "production")`.
    pub overrides: Vec<(String, String)>,
    /// Provision tenant [`TENANT`] with [`UserSpec::juan`] before starting (so no demo is seeded).
    pub fixture: bool,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            backend: Backend::Sqlite,
            overrides: Vec::new(),
            fixture: true,
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: Client,
    pub settings: Settings,
    /// Holds the data and registry directories; removed on drop.
    pub dir: tempfile::TempDir,
    pub backend: Backend,
    /// The configuration keys the server was started with.
    overrides: Vec<(String, String)>,
    /// Unique per test; prefixes Postgres database names.
    pub run_id: String,
    /// Postgres databases this test made, dropped on drop.
    pg_databases: std::sync::Mutex<Vec<String>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// The server over a fresh directory, with tenant [`TENANT`] and user juan.perez on `backend`.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(AppOptions {
        backend,
        ..Default::default()
    })
    .await
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let run_id = format!("{:08x}", rand::random::<u32>());
    let data_dir = dir.path().join("data");
    let tenants_dir = dir.path().join("tenants");
    let mut overrides: Vec<(String, String)> = vec![
        ("server.listen".into(), "127.0.0.1:0".into()),
        ("data_dir".into(), data_dir.display().to_string()),
        ("tenants.dir".into(), tenants_dir.display().to_string()),
        ("jwt.secret".into(), SECRET.into()),
    ];
    let mut pg_databases = Vec::new();
    if let Some(base) = options.backend.postgres_base() {
        let name = format!("vigia_t_{run_id}_legacy");
        overrides.push(("legacy.database_url".into(), format!("{base}/{name}")));
        pg_databases.push(name);
    }
    overrides.extend(options.overrides);
    let pairs: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let settings = Settings::from_overrides(&pairs).expect("test settings");

    let app_stub = TestApp {
        address: String::new(),
        port: 0,
        client: Client::new(),
        settings: settings.clone(),
        backend: options.backend.clone(),
        overrides,
        dir,
        run_id,
        pg_databases: std::sync::Mutex::new(pg_databases),
        shutdown: None,
        server: None,
    };
    if options.backend.postgres_base().is_some() {
        let url = DatabaseUrl::parse(settings.legacy_database_url().expose_secret()).expect("url");
        let (store, _) = store::create_database(&url, &PoolSettings::from(&settings.database))
            .await
            .expect("legacy Postgres database");
        store.close().await;
    }
    if options.fixture {
        app_stub.provision_tenant(TENANT).await;
        app_stub.create_user(Some(TENANT), UserSpec::juan()).await;
    }
    app_stub.start().await
}

impl TestApp {
    /// Starts the server over this app's directories.
    async fn start(mut self) -> TestApp {
        let app = Application::build(self.settings.clone())
            .await
            .expect("server builds");
        self.port = app.port();
        self.address = format!("http://127.0.0.1:{}", self.port);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        self.shutdown = Some(tx);
        self.server = Some(tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        })));
        self
    }

    /// Stops the server and starts a new one over the same directories and databases (and the
    /// same `server.public_url`, hence the same issuers).
    pub async fn restart(self) -> TestApp {
        self.restart_with(&[]).await
    }

    /// Like [`TestApp::restart`], with configuration keys changed.
    pub async fn restart_with(mut self, changes: &[(&str, &str)]) -> TestApp {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        // The new server listens on another port, but stays the same issuer, as a deployment
        // behind a fixed public URL does: tokens issued before the restart name it in `iss`.
        if !self.overrides.iter().any(|(k, _)| k == "server.public_url") {
            self.overrides
                .push(("server.public_url".into(), self.address.clone()));
        }
        self.overrides
            .extend(changes.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let pairs: Vec<(&str, &str)> = self
            .overrides
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.settings = Settings::from_overrides(&pairs).expect("test settings");
        self.start().await
    }

    /// The database URL a new tenant gets on this test's backend.
    pub fn tenant_database_url(&self, id: &str) -> Option<String> {
        self.backend.postgres_base().map(|base| {
            let name = format!("vigia_t_{}_{}", self.run_id, id.replace('-', "_"));
            self.pg_databases.lock().expect("lock").push(name.clone());
            format!("{base}/{name}")
        })
    }

    /// Provisions a tenant on this test's backend through the library (what the CLI does).
    pub async fn provision_tenant(&self, id: &str) {
        let tenant = NewTenant {
            id: TenantId::parse(id).expect("valid id"),
            database_url: self.tenant_database_url(id),
            name: Some(format!("{id} (test)")),
            first_user: None,
            via: "test",
        };
        provision::create_tenant(
            &self.settings,
            &PoolSettings::from(&self.settings.database),
            &Source::Files(self.settings.tenants.dir.clone()),
            tenant,
        )
        .await
        .expect("tenant provisioned");
    }

    /// Opens `tenant`'s database (or the legacy one) directly.
    pub async fn store(&self, tenant: Option<&str>) -> Store {
        let raw = match tenant {
            None => self
                .settings
                .legacy_database_url()
                .expose_secret()
                .to_owned(),
            Some(id) => {
                let path = self.settings.tenants.dir.join(format!("{id}.toml"));
                let text = std::fs::read_to_string(path).expect("tenant file");
                let entry: toml::Value = toml::from_str(&text).expect("toml");
                entry["database_url"].as_str().expect("url").to_owned()
            }
        };
        let url = DatabaseUrl::parse(&raw).expect("url");
        provision::open_or_create(&url, &PoolSettings::from(&self.settings.database))
            .await
            .expect("store opens")
    }

    /// Runs one statement against `TENANT`'s database behind the server's back (what another
    /// process or an admin tool would do), binding `id` as `$1` when given.
    pub async fn execute(&self, sql: &'static str, id: Option<i64>) -> Result<(), sqlx::Error> {
        match self.store(Some(TENANT)).await {
            Store::Sqlite(pool) => sqlx::query(sql).bind(id).execute(&pool).await.map(drop),
            Store::Postgres(pool) => {
                let mut conn = pool.lease().await.expect("a connection");
                sqlx::query(sql)
                    .bind(id)
                    .execute(&mut *conn)
                    .await
                    .map(drop)
            }
        }
    }

    /// Creates a user with password [`PASSWORD`]; returns its id.
    pub async fn create_user(&self, tenant: Option<&str>, spec: UserSpec) -> i64 {
        let store = self.store(tenant).await;
        let id = store
            .create_user(
                &spec.into_new_user(&self.settings).await,
                &NewAuditEvent::by_operator(AuditType::UserCreated, "test"),
            )
            .await
            .expect("user created");
        store.close().await;
        id
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.client.post(self.url(path))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path))
    }

    /// `/metrics` as text (no `metrics.token` configured).
    pub async fn metrics_text(&self) -> String {
        self.get("/metrics")
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("text")
    }

    pub async fn login(&self, tenant: Option<&str>, username: &str, password: &str) -> Response {
        let mut req = self
            .post("/api/v1/auth/login")
            .form(&[("username", username), ("password", password)]);
        if let Some(t) = tenant {
            req = req.header("X-Tenant", t);
        }
        req.send().await.expect("request sent")
    }

    /// Logs in and returns the access token, asserting success.
    pub async fn token(&self, tenant: Option<&str>, username: &str) -> String {
        self.token_with(tenant, username, PASSWORD).await
    }

    /// A token of `username`, whose password is `password`.
    pub async fn token_with(&self, tenant: Option<&str>, username: &str, password: &str) -> String {
        let resp = self.login(tenant, username, password).await;
        assert_eq!(resp.status(), StatusCode::OK, "login of {username} failed");
        let body: Value = resp.json().await.expect("json");
        body["access_token"].as_str().expect("token").to_owned()
    }

    pub async fn get_with(
        &self,
        path: &str,
        token: Option<&str>,
        tenant: Option<&str>,
    ) -> Response {
        let mut req = self.get(path);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(t) = tenant {
            req = req.header("X-Tenant", t);
        }
        req.send().await.expect("request sent")
    }

    pub async fn me(&self, token: &str, tenant: Option<&str>) -> Response {
        self.get_with("/api/v1/auth/me", Some(token), tenant).await
    }

    pub async fn whoami(&self, token: &str, tenant: Option<&str>) -> Response {
        self.get_with("/api/v1/auth/whoami", Some(token), tenant)
            .await
    }

    pub async fn change_password(&self, token: &str, current: &str, new: &str) -> Response {
        self.post("/api/v1/auth/change-password")
            .bearer_auth(token)
            .json(&json!({"current_password": current, "new_password": new}))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn reset_password(
        &self,
        tenant: Option<&str>,
        token: Option<&str>,
        email: &str,
        new: &str,
    ) -> Response {
        let mut req = self
            .post("/api/v1/auth/reset-password")
            .json(&json!({"email": email, "new_password": new}));
        if let Some(t) = tenant {
            req = req.header("X-Tenant", t);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    /// The path of the `vigia` binary, with this app's configuration file written for it.
    pub fn cli(&self) -> std::process::Command {
        let config = self.dir.path().join("vigia.toml");
        if !config.exists() {
            let legacy = self
                .settings
                .legacy_database_url()
                .expose_secret()
                .to_owned();
            std::fs::write(
                &config,
                format!(
                    "data_dir = {:?}\n[tenants]\ndir = {:?}\n[legacy]\ndatabase_url = {:?}\n",
                    self.settings.data_dir.display().to_string(),
                    self.settings.tenants.dir.display().to_string(),
                    legacy,
                ),
            )
            .expect("config written");
        }
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vigia"));
        cmd.arg("--config").arg(config).env_remove("RUST_LOG");
        for (key, _) in std::env::vars() {
            if key.starts_with("VIGIA__") {
                cmd.env_remove(key);
            }
        }
        cmd
    }

    /// The refresh grant at the token endpoint of `tenant`'s issuer (`None`: the legacy one).
    pub async fn refresh_grant(&self, tenant: Option<&str>, token: &str) -> Response {
        let path = match tenant {
            Some(id) => format!("/tenants/{id}/oauth2/token"),
            None => "/oauth2/token".into(),
        };
        self.post(&path)
            .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
            .send()
            .await
            .expect("request sent")
    }

    /// A service client of `tenant` made with `vigia client create`, holding `permissions`; its
    /// ID and secret.
    pub fn service_client(
        &self,
        tenant: &str,
        name: &str,
        permissions: &[&str],
    ) -> (String, String) {
        let mut cmd = self.cli();
        cmd.args(["client", "create", "--tenant", tenant, "--name", name]);
        for p in permissions {
            cmd.args(["--permission", p]);
        }
        let out = cmd.output().expect("vigia runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).expect("UTF-8");
        let field = |name: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("no {name} in {stdout}"))
                .to_owned()
        };
        (field("client_id"), field("client_secret"))
    }

    /// The registration identity in tenant `id`'s registry file (its key derives from it).
    pub fn incarnation(&self, id: &str) -> Option<vigia::tenancy::Incarnation> {
        let path = self.settings.tenants.dir.join(format!("{id}.toml"));
        let text = std::fs::read_to_string(path).expect("tenant file");
        toml::from_str::<vigia::tenancy::TenantFile>(&text)
            .expect("tenant file parses")
            .incarnation
    }

    pub fn data_dir(&self) -> PathBuf {
        self.settings.data_dir.clone()
    }

    /// `vigia serve` as a process of its own over this app's directories and databases, on a
    /// free loopback port unless `env` says otherwise, with `env` (`VIGIA__…`) set and its
    /// stderr captured byte for byte. No JWT secret unless `env` gives one.
    pub fn serve_process(&self, env: &[(&str, &str)]) -> ServerProcess {
        let mut cmd = self.cli();
        cmd.arg("serve")
            .env("VIGIA__SERVER__LISTEN", "127.0.0.1:0")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("vigia serve starts");
        let mut stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                sink.lock().expect("log lock").extend_from_slice(&buf[..n]);
            }
        });
        ServerProcess { child, log, reader }
    }
}

/// A `vigia serve` process ([`TestApp::serve_process`]), killed on drop.
pub struct ServerProcess {
    child: std::process::Child,
    log: Arc<Mutex<Vec<u8>>>,
    /// Copies stderr into `log` until the process closes it.
    reader: std::thread::JoinHandle<()>,
}

impl ServerProcess {
    /// Everything the process wrote to stderr so far (a character cut by the last read shows
    /// as U+FFFD until the rest arrives).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().expect("log lock")).into_owned()
    }

    /// Waits until the log says where the server listens: its base URL.
    pub async fn address(&self) -> String {
        eventually(Duration::from_secs(30), || async {
            let log = self.log();
            let rest = log.split("listening on http://").nth(1)?;
            let end = rest.find([' ', '"'])?;
            Some(format!("http://{}", &rest[..end]))
        })
        .await
    }

    /// The exit status, once the process has ended within `deadline` (else the test fails)
    /// and all it wrote has been read.
    pub async fn exit_status(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let (child, reader) = (&mut self.child, &self.reader);
        eventually(deadline, || {
            let status = child.try_wait().expect("wait");
            let read = reader.is_finished();
            async move { status.filter(|_| read) }
        })
        .await
    }

    /// Waits until the log holds a line containing `needle`: that line.
    pub async fn log_line(&self, needle: &str) -> String {
        eventually(Duration::from_secs(10), || async {
            self.log()
                .lines()
                .find(|line| line.contains(needle))
                .map(str::to_owned)
        })
        .await
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        let names =
            std::mem::take(&mut *self.pg_databases.lock().unwrap_or_else(|e| e.into_inner()));
        if let (Some(base), false) = (
            self.backend.postgres_base().map(str::to_owned),
            names.is_empty(),
        ) {
            drop_databases(base, names);
        }
    }
}

/// Polls `check` until it returns `Some`, or fails the test after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "condition not met within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Asserts the error shape: `status`, a JSON body with a non-empty string `detail`.
pub async fn assert_error(resp: Response, status: StatusCode) -> String {
    assert_eq!(resp.status(), status, "unexpected status");
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(
            resp.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer"),
            "a 401 must carry WWW-Authenticate: Bearer"
        );
    }
    let body: Value = resp.json().await.expect("error body is JSON");
    let detail = body["detail"]
        .as_str()
        .expect("error body has a string detail");
    assert!(!detail.is_empty());
    detail.to_owned()
}

/// Asserts an OAuth2 error (RFC 6749 5.2): `status`, `error` = `code`, and the same reason in
/// `error_description` and `detail`; the reason.
pub async fn assert_oauth_error(resp: Response, status: StatusCode, code: &str) -> String {
    assert_eq!(resp.status(), status);
    let body: Value = resp.json().await.expect("a JSON error body");
    assert_eq!(body["error"], code, "{body}");
    let detail = body["detail"].as_str().expect("detail").to_owned();
    assert_eq!(body["error_description"], detail.as_str(), "{body}");
    detail
}

/// The Redis `VIGIA_TEST_REDIS_URL` names, for the replica and shared-state tests (ignored
/// unless it was set when they were built; missing, it fails the test as in
/// [`postgres_server`]).
pub fn redis_url() -> String {
    std::env::var("VIGIA_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .expect(
            "VIGIA_TEST_REDIS_URL is not set: this test needs a Redis (e.g. redis://127.0.0.1:6379)",
        )
}

/// A Redis key prefix unique to one test; every key under it is deleted on drop.
pub struct RedisKeys {
    pub url: String,
    pub prefix: String,
}

impl RedisKeys {
    pub fn new(url: String) -> Self {
        let prefix = format!("vigia-test-{:08x}", rand::random::<u32>());
        Self { url, prefix }
    }

    pub async fn connection(&self) -> deadpool_redis::redis::aio::MultiplexedConnection {
        deadpool_redis::redis::Client::open(self.url.as_str())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        block_on_own_runtime(async move {
            use deadpool_redis::redis;
            let Ok(client) = redis::Client::open(url.as_str()) else {
                return;
            };
            let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}:*"))
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            for key in keys {
                let _: Result<i64, _> = redis::cmd("DEL").arg(key).query_async(&mut conn).await;
            }
        });
    }
}

/// Runs cleanup `work` to completion from a `Drop`, which runs inside the test's runtime: on a
/// thread with a runtime of its own.
pub fn block_on_own_runtime(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(work);
    })
    .join();
}

/// Drops Postgres databases `names` on the server `base`.
pub fn drop_databases(base: String, names: Vec<String>) {
    block_on_own_runtime(async move {
        let pools = PoolSettings::from(&Settings::from_overrides(&[]).expect("defaults").database);
        for name in names {
            let url = DatabaseUrl::parse(&format!("{base}/{name}")).expect("url");
            store::drop_database(&url, &pools).await;
        }
    });
}

/// `PUT path` with a JSON body, as the holder of `token`.
pub async fn put(app: &TestApp, token: &str, path: &str, body: Value) -> Response {
    app.client
        .put(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("sent")
}

/// The audit records an admin's token sees in its own scope, newest first, with `query` (e.g.
/// `type=login_failed`, `resource=icsr:42`).
pub async fn audit(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    let resp = app
        .get(&format!("/api/v1/audit-events?limit=200&{query}"))
        .bearer_auth(admin)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let page: Value = resp.json().await.expect("json");
    page["items"].as_array().expect("items").clone()
}

/// Fails, saying what to install, unless `python3` can import `modules` (`"requests, jwt"`):
/// checked before a Python test's script runs, so that a missing prerequisite reads as such
/// rather than as the script's failure.
pub async fn require_python(modules: &str, install: &str) {
    let check = tokio::process::Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .await
        .unwrap_or_else(|e| panic!("python3 is not installed ({e}): install it, then {install}"));
    assert!(
        check.status.success(),
        "python3 cannot import {modules}: {install}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

/// Runs `python3` with `args`; its output, whatever the exit status.
pub async fn python(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new("python3")
        .args(args)
        .output()
        .await
        .expect("python3 runs")
}

/// What a Python script that must succeed printed as JSON on stdout (its stderr on failure).
pub fn json_output(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// The claims of a JWT, read without checking anything (what the server put in it).
pub fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}
