//! The load benchmark: `cargo bench --bench load` (or `bash deploy/bench/run.sh`, which also
//! installs wrk).
//!
//! Builds nothing by itself: cargo builds the release `vigia` binary and this file (with the
//! release profile, which the bench profile inherits: the baselines are optimised as the
//! server is). It starts the server on loopback over a fresh temporary directory, provisions
//! what each scenario needs, drives it with wrk (2 threads, 64 connections) and prints one line
//! per scenario. Every figure is also given as a ratio to a baseline measured in the same run:
//! - a bare poem route returning the same bytes as whoami (this binary re-executed as a tiny
//!   server, `VIGIA_BENCH_ROLE=bare`): what poem and hyper cost at the least;
//! - a bare poem-openapi operation at whoami's path that extracts what whoami's signature does
//!   (a bearer `SecurityScheme` declared as OAuth2's password flow, with a checker that takes
//!   the credential as it is, and an `X-Tenant` `Header<Option<String>>`) and answers the same
//!   bytes as `application/json` (`VIGIA_BENCH_ROLE=openapi`), sent whoami's very request:
//!   whoami's cost beyond it is our own (edge layer, token and session checks, log line,
//!   metrics);
//! - the single-core argon2id verify rate at the configured parameters, for logins.
//!
//! Each baseline is measured right before and right after the scenarios compared with it (the
//! two HTTP baselines in mirrored order around whoami and me), and each figure is divided by
//! the mean of the two measurements around it: on a shared machine the speed drifts by 10%
//! within seconds.
//!
//! Scenarios: the baselines; whoami; me; login; whoami while logins saturate the hasher; one
//! tenant's logins while another floods the hasher (fairness); cold
//! start with 100,000 registered tenants; first request to each of 10,000 cold tenants; whoami
//! round-robin over those 10,000 tenants; RSS and open files after touching them; whoami with
//! a token never seen before on every request (no verified-token cache), EdDSA and HS256 side
//! by side; and
//! `vigia tenant create` per SQLite tenant. Then the Postgres fleet (`benches/load/postgres.rs`):
//! 1,000 tenant databases on a PostgreSQL cluster of the benchmark's own, then 1,000 more, half
//! on it and half on a second one, within each server's connection budget.
//!
//! `VIGIA_BENCH_ONLY=sqlite` runs only the first part, `VIGIA_BENCH_ONLY=postgres` only the
//! Postgres fleet (skipped when PostgreSQL's server binaries are not installed), and
//! `VIGIA_BENCH_ONLY=hot` only the request path, in about three minutes: the two HTTP
//! baselines, whoami, me, login (with its argon2 baseline), the whoami round-robin over
//! 10,000 tenants with its one-tenant reference, and the uncached token checks. For that it registers only the 10,000 tenants
//! (not 100,000) and still makes the first request to each (printed), so the round-robin
//! starts from the state it does in the full run.
//!
//! `VIGIA_BENCH_SERVER=/path/to/vigia` runs the scenarios against that binary instead of the
//! one cargo built, e.g. an older build kept aside, to compare two builds within the same
//! minutes (run the benchmark once per binary, back to back, and compare the ratios: the
//! baselines absorb the machine's drift). The benchmark still provisions with this build's
//! library, so that binary must read this build's tenant files and database schema. For a
//! strict A/B, give both binaries this way, each built by `cargo build --release`: the binary
//! `cargo bench` builds differs from the shipped one, since the benchmark's dev-dependencies
//! add features to shared dependencies (tokio's `test-util` and `process`, hyper's client).
//!
//! `VIGIA_BENCH_KEEP=1` keeps the work dir (config, tenants, Lua scripts) for profiling:
//! `benches/profile/callgrind.sh` counts the instructions of a whoami request in the server and
//! in the poem-openapi baseline, and says where they go.

#[path = "../tests/support/pg_cluster.rs"]
mod pg_cluster;
#[path = "load/postgres.rs"]
mod postgres;

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use serde_json::json;
use vigia::{
    auth::password::Hasher,
    config::{JwtAlgorithm, Settings},
    domain::{Email, Password, Permissions, Role, Roles, Scope, TenantId, Username},
    store::users::NewUser,
    tenancy::{
        Incarnation, ServerSecret, SigningKey,
        file::{self, TenantFile},
        provision::{self, NewTenant},
    },
};

const SECRET: &str = "bench-secret-0123456789abcdef-0123456789abcdef";
/// The benchmark server's `server.public_url`: its tokens' issuers, whatever port it binds.
const PUBLIC_URL: &str = "http://vigia.bench";
const REGISTERED: usize = 100_000;
const TOUCHED: usize = 10_000;
const DURATION: &str = "10s";
/// Distinct tokens of the uncached-verification scenarios: more than the verified-token cache
/// holds (100,000) and than 3 s of requests.
const FRESH: usize = 250_000;

fn main() -> anyhow::Result<()> {
    match std::env::var("VIGIA_BENCH_ROLE").as_deref() {
        Ok("bare") => return bare_server(),
        Ok("openapi") => return openapi_server(),
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(orchestrate())
}

/// The baseline: a bare poem route answering the given bytes as JSON, on a port it prints.
fn bare_server() -> anyhow::Result<()> {
    use poem::{EndpointExt, Route, get, handler, http::header, listener::TcpAcceptor};
    let body: &'static [u8] = std::fs::read(std::env::var("VIGIA_BENCH_BODY")?)?.leak();
    #[handler]
    fn bare(body: poem::web::Data<&&'static [u8]>) -> poem::Response {
        poem::Response::builder()
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(*body.0)
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on http://{}", listener.local_addr()?);
        std::io::stdout().flush()?;
        let acceptor = TcpAcceptor::from_tokio(listener)?;
        poem::Server::new_with_acceptor(acceptor)
            .run(Route::new().at("/", get(bare)).data(body))
            .await?;
        anyhow::Ok(())
    })
}

/// The second baseline: a bare poem-openapi operation at whoami's path that extracts what
/// whoami's signature does (a bearer security scheme declared as OAuth2's password flow, as
/// ours is, with a checker, and the `X-Tenant` header) and answers the given bytes as JSON, on
/// a port it prints. What whoami costs beyond it is our own work: the edge layer, the token and
/// session checks, the log line, the metrics.
fn openapi_server() -> anyhow::Result<()> {
    use poem::{Request, Route, listener::TcpAcceptor};
    use poem_openapi::{
        ApiResponse, OAuthScopes, OpenApi, OpenApiService, SecurityScheme, auth::Bearer,
        param::Header, payload::Binary,
    };

    #[derive(OAuthScopes)]
    #[expect(dead_code, reason = "named in the spec only")]
    enum Scopes {
        /// The only scope.
        #[oai(rename = "bench")]
        Bench,
    }

    #[derive(SecurityScheme)]
    #[oai(
        rename = "bearer",
        ty = "oauth2",
        flows(password(token_url = "/api/v1/auth/login", scopes = "Scopes")),
        checker = "accept"
    )]
    struct BearerAuth(#[expect(dead_code, reason = "extracted, not used")] Bearer);

    /// The checker: the credential, taken as it is (the extraction is what is measured).
    async fn accept(_req: &Request, bearer: Bearer) -> poem::Result<Bearer> {
        Ok(bearer)
    }

    #[derive(ApiResponse)]
    enum WhoAmI {
        /// The caller.
        #[oai(status = 200, content_type = "application/json; charset=utf-8")]
        Ok(Binary<&'static [u8]>),
    }

    struct Api {
        body: &'static [u8],
    }

    #[OpenApi]
    impl Api {
        #[oai(path = "/api/v1/auth/whoami", method = "get", operation_id = "whoami")]
        async fn whoami(
            &self,
            _auth: BearerAuth,
            #[oai(name = "X-Tenant")] _x_tenant: Header<Option<String>>,
        ) -> WhoAmI {
            WhoAmI::Ok(Binary(self.body))
        }
    }

    let body: &'static [u8] = std::fs::read(std::env::var("VIGIA_BENCH_BODY")?)?.leak();
    let api = OpenApiService::new(Api { body }, "baseline", "1");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on http://{}", listener.local_addr()?);
        std::io::stdout().flush()?;
        let acceptor = TcpAcceptor::from_tokio(listener)?;
        poem::Server::new_with_acceptor(acceptor)
            .run(Route::new().nest("/", api))
            .await?;
        anyhow::Ok(())
    })
}

/// The `vigia` binary the scenarios run: `VIGIA_BENCH_SERVER`, or the one cargo built.
fn server_binary() -> PathBuf {
    std::env::var_os("VIGIA_BENCH_SERVER")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_vigia")), PathBuf::from)
}

struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Non-2xx answers and socket errors (timeouts included).
    errors: u64,
    /// Of `errors`, the answers with a status other than 2xx or 3xx (a 503 of a saturated
    /// database server among them).
    non_2xx: u64,
}

impl std::fmt::Display for Wrk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}",
            self.rps, self.p50_ms, self.p99_ms, self.errors
        )
    }
}

/// Runs wrk with 2 threads and `connections` connections; `script` is Lua (or empty).
fn wrk(
    url: &str,
    connections: u32,
    headers: &[String],
    script: Option<&Path>,
) -> anyhow::Result<Wrk> {
    wrk_for(url, connections, headers, script, DURATION)
}

/// [`wrk`] for `duration` (`3s`) instead of [`DURATION`].
fn wrk_for(
    url: &str,
    connections: u32,
    headers: &[String],
    script: Option<&Path>,
    duration: &str,
) -> anyhow::Result<Wrk> {
    // The server logs a line per request to a file: let the kernel write the previous
    // scenario's lines out first, so its writeback does not run during this one.
    Command::new("sync").status()?;
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{duration}"),
        "--latency",
        "--timeout",
        "5s",
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    let out = cmd.arg(url).output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |prefix: &str| -> Option<String> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    };
    let millis = |raw: String| -> f64 {
        let raw = raw.trim();
        let (number, factor) = if let Some(v) = raw.strip_suffix("us") {
            (v, 0.001)
        } else if let Some(v) = raw.strip_suffix("ms") {
            (v, 1.0)
        } else if let Some(v) = raw.strip_suffix('s') {
            (v, 1000.0)
        } else {
            (raw, 1.0)
        };
        number.parse::<f64>().unwrap_or(f64::NAN) * factor
    };
    let non_2xx = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let errors = non_2xx
        + field("Socket errors:")
            .map(|v| {
                v.split(',')
                    .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
    Ok(Wrk {
        rps: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        p50_ms: field("50%").map(millis).unwrap_or(f64::NAN),
        p99_ms: field("99%").map(millis).unwrap_or(f64::NAN),
        errors,
        non_2xx,
    })
}

/// Where a child's "listening on http://…" line appears.
enum Announces {
    /// On its stdout (the bare baseline, which prints nothing else).
    Stdout,
    /// In its log, written to this file: the server logs a line per request, and a log file
    /// is what production gives it. A pipe read by this process would make the benchmark's
    /// own reading compete with the server for the same cores.
    Log(PathBuf),
}

/// Starts a child and waits for its "listening on http://…" line; the address.
fn start(mut cmd: Command, announces: Announces) -> anyhow::Result<(KillOnDrop, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (child, line) = match announces {
        Announces::Stdout => {
            cmd.stdout(Stdio::piped()).stderr(Stdio::null());
            let mut child = KillOnDrop(cmd.spawn()?);
            let stdout = child.0.stdout.take().expect("piped");
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let found = BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                    .find(|l| l.contains("listening on "));
                let _ = tx.send(found);
            });
            let line = rx.recv_timeout(Duration::from_secs(60))?;
            (child, line.unwrap_or_default())
        }
        Announces::Log(path) => {
            cmd.stdout(Stdio::null())
                .stderr(std::fs::File::create(&path)?);
            let child = KillOnDrop(cmd.spawn()?);
            loop {
                let log = std::fs::read_to_string(&path)?;
                if let Some(line) = log.lines().find(|l| l.contains("listening on ")) {
                    break (child, line.to_owned());
                }
                anyhow::ensure!(Instant::now() < deadline, "the server did not start: {log}");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    let address = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| anyhow::anyhow!("no address announced"))?
        .to_owned();
    Ok((child, address))
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lua(path: &Path, body: &str) -> anyhow::Result<PathBuf> {
    std::fs::write(path, body)?;
    Ok(path.to_path_buf())
}

/// A wrk script (`dir/name`) sending each request with the next of `tokens`, round-robin.
///
/// A round-robin's wrk picks each request in Lua, which costs wrk (on the same cores) more
/// than fixed headers: its single-tenant reference is the same script over one token. The
/// requests are formatted once, in `init`, so the per-request Lua work (and what the load
/// generator takes from the server's cores) is the same for one token as for 10,000.
fn rotating(dir: &Path, name: &str, tokens: &[String]) -> anyhow::Result<PathBuf> {
    let mut script = String::from("local tokens = {\n");
    for t in tokens {
        script.push_str(&format!("\"{t}\",\n"));
    }
    script.push_str(
        "}\nlocal requests = {}\ninit = function(args)\n  for n, t in ipairs(tokens) do\n    \
         requests[n] = wrk.format(\"GET\", nil, {[\"Authorization\"] = \"Bearer \" .. t})\n  \
         end\nend\nlocal i = 0\nrequest = function()\n  i = i % #requests + 1\n  \
         return requests[i]\nend\n",
    );
    lua(&dir.join(name), &script)
}

/// A token of juan.perez in `tenant`, signed with the key of the tenant's registration (its
/// entry under `tenants`), issued by the benchmark server's issuer for it (`PUBLIC_URL`).
fn token(secret: &ServerSecret, tenants: &Path, tenant: &str) -> anyhow::Result<String> {
    Ok(signed_tokens(secret, tenants, tenant, 1)?.remove(0))
}

/// `count` distinct tokens of juan.perez in `tenant` (as [`token`], each with its own `jti`).
fn signed_tokens(
    secret: &ServerSecret,
    tenants: &Path,
    tenant: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let id = TenantId::parse(tenant)?;
    let entry: TenantFile = toml::from_str(&std::fs::read_to_string(file::path_of(tenants, &id))?)?;
    let key = SigningKey::derive(secret, &Scope::Tenant(id), entry.incarnation);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    (0..count)
        .map(|n| {
            let claims = json!({
                "sub": "1", "uid": 1, "username": "juan.perez", "email": "juan.perez@example.com",
                "role": "admin", "roles": ["admin", "qf"], "tenant": tenant, "trace": "bench",
                "iat": now, "exp": now + 3600, "jti": format!("bench-{tenant}-{n}"), "ver": 0,
                "iss": format!("{PUBLIC_URL}/tenants/{tenant}"), "aud": "vigia"
            });
            Ok(key.sign(&claims)?)
        })
        .collect()
}

fn status_of(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

/// The parts of the benchmark, as `VIGIA_BENCH_ONLY` names them.
const PARTS: [&str; 3] = ["sqlite", "postgres", "hot"];

async fn orchestrate() -> anyhow::Result<()> {
    let only = std::env::var("VIGIA_BENCH_ONLY").ok();
    if let Some(part) = &only {
        anyhow::ensure!(
            PARTS.contains(&part.as_str()),
            "VIGIA_BENCH_ONLY={part}: expected one of {PARTS:?}"
        );
    }
    let runs = |part: &str| only.as_deref().is_none_or(|only| only == part);
    anyhow::ensure!(
        Command::new("wrk").arg("--version").output().is_ok(),
        "wrk is not installed (apt-get install wrk)"
    );
    let server = server_binary();
    anyhow::ensure!(
        server.is_file(),
        "VIGIA_BENCH_SERVER={}: no such file",
        server.display()
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let dir = tempfile::tempdir()?;
    // VIGIA_BENCH_KEEP=1 keeps the work dir (see the header).
    let keep = std::env::var_os("VIGIA_BENCH_KEEP").is_some();
    let root = &if keep {
        dir.keep()
    } else {
        dir.path().to_path_buf()
    };
    println!(
        "vigia load benchmark — {cores} cores, wrk -t2 -c64 -d{DURATION}, work dir {}\n\
         server {}",
        root.display(),
        server.display()
    );
    if runs("sqlite") {
        sqlite_tenants(root, cores, Scenarios::All).await?;
    }
    if only.as_deref() == Some("hot") {
        sqlite_tenants(root, cores, Scenarios::Hot).await?;
    }
    if runs("postgres") {
        postgres::fleet(&root.join("postgres")).await?;
    }
    Ok(())
}

/// Which scenarios of the first part run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenarios {
    All,
    /// `VIGIA_BENCH_ONLY=hot`: the request path only (see the header).
    Hot,
}

/// The first part: the baselines, one SQLite tenant's reads and logins, and the scenarios over
/// 100,000 registered SQLite tenants (`TOUCHED` of them in `Scenarios::Hot`).
async fn sqlite_tenants(root: &Path, cores: usize, scenarios: Scenarios) -> anyhow::Result<()> {
    let all = scenarios == Scenarios::All;
    // Baseline: single-core argon2id verify rate at the configured parameters.
    let settings = Settings::from_overrides(&[])?;
    let params = argon2::Params::new(
        settings.argon2.memory_kib,
        settings.argon2.iterations,
        settings.argon2.parallelism,
        None,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let hash = argon
        .hash_password(b"SecurePass123")
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string();
    // Measured on one thread for 3 s; again around the login scenario, whose figure is
    // compared with the two measurements that bracket it (the machine's speed drifts).
    let argon_rate = || -> anyhow::Result<f64> {
        let start_time = Instant::now();
        let mut verifies = 0u32;
        while start_time.elapsed() < Duration::from_secs(3) {
            argon
                .verify_password(b"SecurePass123", hash.as_str())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            verifies += 1;
        }
        Ok(f64::from(verifies) / start_time.elapsed().as_secs_f64())
    };
    if all {
        println!(
            "{:<44} {:>9.1} verifies/s (one core)",
            "baseline: argon2id verify",
            argon_rate()?
        );
    }

    // Provisioning: a template tenant, copied; then registry files up to REGISTERED.
    let data = root.join("data");
    let tenants = root.join("tenants");
    let config = root.join("vigia.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[tenants]\ndir = {:?}\npool_cache_capacity = {}\n[server]\npublic_url = {PUBLIC_URL:?}\n[jwt]\nsecret = {SECRET:?}\n\
             [security]\nlockout_threshold = 1000000000\nlogin_attempts_per_ip_per_minute = 1000000000\n",
            data.display().to_string(),
            tenants.display().to_string(),
            settings.tenants.pool_cache_capacity,
        ),
    )?;
    let settings = Settings::load(Some(&config))?;
    let hasher = Hasher::new(&settings.argon2)?;
    let user = NewUser {
        username: Username::parse("juan.perez")?,
        email: Email::parse("juan.perez@example.com")?,
        full_name: Some(vigia::domain::FullName::parse("Juan Pérez García")?),
        password_hash: hasher
            .hash(
                &vigia::domain::Scope::Legacy,
                Password::parse("SecurePass123".into(), "password")?,
            )
            .await?,
        is_active: true,
        empleado_id: Some(456),
        permissions: Permissions::parse(
            json!({"icsr": {"view": true, "edit": true}, "reports": {"view": true}}),
        )?,
        roles: Roles::new(vec![Role::parse("admin")?, Role::parse("qf")?])?,
    };
    let template = TenantFile {
        database_url: String::new(),
        name: "bench".into(),
        active: true,
        security: Default::default(),
        roles: Default::default(),
        incarnation: None,
    };
    provision::create_tenant(
        &settings,
        &vigia::store::PoolSettings::from(&settings.database),
        &vigia::tenancy::Source::Files(settings.tenants.dir.clone()),
        NewTenant {
            id: TenantId::parse("t000000")?,
            database_url: None,
            name: None,
            first_user: Some(user),
            via: "bench",
        },
    )
    .await?;
    let template_db = settings.tenant_sqlite_dir().join("t000000.db");
    let provisioning = Instant::now();
    let registered = if all { REGISTERED } else { TOUCHED };
    for i in 1..registered {
        let id = TenantId::parse(&format!("t{i:06}"))?;
        let db = settings.tenant_sqlite_dir().join(format!("{id}.db"));
        if i < TOUCHED {
            std::fs::copy(&template_db, &db)?;
        }
        let entry = TenantFile {
            database_url: vigia::config::sqlite_url(&db),
            incarnation: Some(Incarnation::random()),
            ..template.clone()
        };
        file::write_new(&tenants, &id, &entry)?;
    }
    println!(
        "{:<44} {registered} registered ({TOUCHED} with a database) in {:.1} s",
        "set-up",
        provisioning.elapsed().as_secs_f64()
    );

    // Cold start with 100,000 registered tenants.
    let bin = server_binary();
    let serve = || {
        let mut cmd = Command::new(&bin);
        cmd.arg("--config")
            .arg(&config)
            .arg("serve")
            .env("VIGIA__SERVER__LISTEN", "127.0.0.1:0")
            .env("NO_COLOR", "1");
        cmd
    };
    let started = Instant::now();
    let (server, address) = start(serve(), Announces::Log(root.join("server.log")))?;
    let client = reqwest::Client::new();
    while client
        .get(format!("{address}/healthz"))
        .send()
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let start_ms = started.elapsed().as_secs_f64() * 1000.0;
    if all {
        println!(
            "{:<44} {start_ms:>9.0} ms to first /healthz (goal < 1000 ms)",
            "cold start, 100,000 tenants"
        );
    }

    let secret = ServerSecret::new(SECRET.as_bytes().to_vec());
    let tok = token(&secret, &tenants, "t000000")?;
    let auth = format!("Authorization: Bearer {tok}");
    let whoami_body = client
        .get(format!("{address}/api/v1/auth/whoami"))
        .bearer_auth(&tok)
        .send()
        .await?
        .bytes()
        .await?;
    let body_file = root.join("whoami.json");
    std::fs::write(&body_file, &whoami_body)?;

    // The two baselines, this binary re-executed: a bare poem route, and a bare poem-openapi
    // operation extracting what whoami does; both answer whoami's bytes.
    let baseline = |role: &str| -> anyhow::Result<(KillOnDrop, String)> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.env("VIGIA_BENCH_ROLE", role)
            .env("VIGIA_BENCH_BODY", &body_file);
        start(cmd, Announces::Stdout)
    };
    let (bare, bare_address) = baseline("bare")?;
    let (openapi, openapi_address) = baseline("openapi")?;
    let bare_url = format!("{bare_address}/");
    let openapi_url = format!("{openapi_address}/api/v1/auth/whoami");
    // The operation is sent whoami's very request (its path and token, no X-Tenant).
    let openapi_run = || wrk(&openapi_url, 64, std::slice::from_ref(&auth), None);
    // Each baseline is measured before whoami, between whoami and me, and after me, in mirrored
    // order (bare, openapi, whoami, openapi, bare, me, bare, openapi), so that each scenario
    // has both baselines at the same distances on either side; each is compared with the two
    // measurements that bracket it (the machine's speed drifts within seconds).
    let base = wrk(&bare_url, 64, &[], None)?;
    println!("{:<44} {base}", "baseline: bare poem route, same bytes");
    let op_base = openapi_run()?;
    println!("{:<44} {op_base}", "baseline: bare poem-openapi operation");
    let whoami = wrk(
        &format!("{address}/api/v1/auth/whoami"),
        64,
        std::slice::from_ref(&auth),
        None,
    )?;
    let op_between = openapi_run()?;
    let between = wrk(&bare_url, 64, &[], None)?;
    let me = wrk(
        &format!("{address}/api/v1/auth/me"),
        64,
        &[auth.clone(), "X-Tenant: t000000".into()],
        None,
    )?;
    let last = wrk(&bare_url, 64, &[], None)?;
    let op_last = openapi_run()?;
    drop((bare, openapi));
    println!(
        "{:<44} {whoami}  = {:.2}x bare (goal >= 0.6), {:.2}x openapi (goal >= 0.8)",
        "whoami",
        whoami.rps / ((base.rps + between.rps) / 2.0),
        whoami.rps / ((op_base.rps + op_between.rps) / 2.0)
    );
    println!(
        "{:<44} {me}  = {:.2}x bare (goal >= 0.6), {:.2}x openapi",
        "me",
        me.rps / ((between.rps + last.rps) / 2.0),
        me.rps / ((op_between.rps + op_last.rps) / 2.0)
    );
    println!(
        "{:<44} {:>9.0} before whoami, {:.0} between, {:.0} after me (req/s)",
        "  baseline: bare poem route around them", base.rps, between.rps, last.rps
    );
    println!(
        "{:<44} {:>9.0} before whoami, {:.0} between, {:.0} after me (req/s)",
        "  baseline: poem-openapi operation around", op_base.rps, op_between.rps, op_last.rps
    );
    let bare_rps = (base.rps + between.rps + last.rps) / 3.0;
    let openapi_rps = (op_base.rps + op_between.rps + op_last.rps) / 3.0;

    let login_script = lua(
        &root.join("login.lua"),
        "wrk.method = \"POST\"\nwrk.body = \"username=juan.perez&password=SecurePass123\"\n\
         wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\nwrk.headers[\"X-Tenant\"] = \"t000000\"\n",
    )?;
    let before = argon_rate()?;
    let login = wrk(
        &format!("{address}/api/v1/auth/login"),
        64,
        &[],
        Some(&login_script),
    )?;
    let after = argon_rate()?;
    let cap = (before + after) / 2.0 * cores as f64;
    println!(
        "{:<44} {login}  = {:.2}x {cores} cores x argon2 rate (goal >= 0.9)",
        "login",
        login.rps / cap
    );
    println!(
        "{:<44} {before:>9.1} before, {after:.1} after (one core)",
        "  baseline: argon2id verify around login"
    );

    // The contention scenarios (not in `Scenarios::Hot`).
    if all {
        // whoami while logins keep every hashing thread busy.
        let login_url = format!("{address}/api/v1/auth/login");
        let background = std::thread::spawn(move || wrk(&login_url, 32, &[], Some(&login_script)));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mixed = wrk(
            &format!("{address}/api/v1/auth/whoami"),
            32,
            std::slice::from_ref(&auth),
            None,
        )?;
        let logins = background
            .join()
            .map_err(|_| anyhow::anyhow!("login load panicked"))??;
        println!(
            "{:<44} {mixed}  (goal p99 < 10 ms)",
            "whoami during login saturation"
        );
        println!("{:<44} {logins}", "  logins meanwhile (503 = queue bound)");

        // Hashing fairness: tenant A (t000001) floods logins with twice as many connections as
        // the hasher admits (workers + queue), while tenant B (t000000) logs in over 4
        // connections. Round-robin over tenants gives B up to half the hashing capacity; none of
        // B's correct logins may be refused.
        let flood_script = lua(
            &root.join("flood.lua"),
            "wrk.method = \"POST\"\nwrk.body = \"username=juan.perez&password=SecurePass123\"\n\
             wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\nwrk.headers[\"X-Tenant\"] = \"t000001\"\n",
        )?;
        let flood_url = format!("{address}/api/v1/auth/login");
        let flood_connections = u32::try_from(2 * (cores + settings.argon2.queue)).unwrap_or(256);
        let before = argon_rate()?;
        let flood = std::thread::spawn(move || {
            wrk(&flood_url, flood_connections, &[], Some(&flood_script))
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let fair = wrk(
            &format!("{address}/api/v1/auth/login"),
            4,
            &[],
            Some(&root.join("login.lua")),
        )?;
        let flooding = flood
            .join()
            .map_err(|_| anyhow::anyhow!("flood panicked"))??;
        let after = argon_rate()?;
        let share = (before + after) / 2.0 * cores as f64 / 2.0;
        println!(
            "{:<44} {fair}  = {:.2}x half of {cores} cores x argon2 rate; {} refused (goal 0)",
            "tenant B's logins while tenant A floods",
            fair.rps / share,
            fair.errors
        );
        println!(
            "{:<44} {flooding}",
            "  tenant A's flood meanwhile (503 = displaced)"
        );
    }

    // Cold tenants: the first request to each of 10,000 (in `Scenarios::Hot` too: the
    // round-robin below starts from the state this pass leaves).
    let tokens: Vec<String> = (0..TOUCHED)
        .map(|i| token(&secret, &tenants, &format!("t{i:06}")))
        .collect::<Result<_, _>>()?;
    // Eight clients at a time, each timing its own requests.
    let mut clients = tokio::task::JoinSet::new();
    for lane in 0..8 {
        let mine: Vec<String> = tokens.iter().skip(1 + lane).step_by(8).cloned().collect();
        let (client, url) = (client.clone(), format!("{address}/api/v1/auth/whoami"));
        clients.spawn(async move {
            let mut times = Vec::with_capacity(mine.len());
            for tok in mine {
                let t = Instant::now();
                let resp = client.get(&url).bearer_auth(tok).send().await?;
                anyhow::ensure!(
                    resp.status() == 200,
                    "cold tenant answered {}",
                    resp.status()
                );
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(times)
        });
    }
    let touching = Instant::now();
    let mut firsts = Vec::with_capacity(TOUCHED);
    while let Some(times) = clients.join_next().await {
        firsts.extend(times??);
    }
    let touch_seconds = touching.elapsed().as_secs_f64();
    let pid = server.0.id();
    println!(
        "{:<44} p50 {:.2} ms  p99 {:.2} ms, 8 clients, {touch_seconds:.1} s in all (goal p50 < 20 ms)",
        "first request to a cold tenant (x9,999)",
        percentile(&mut firsts, 0.5),
        percentile(&mut firsts, 0.99)
    );
    if all {
        println!(
            "{:<44} RSS {} MB (goal < 256)  open files {} (pool cache capacity {})",
            "after touching 10,000 tenants",
            status_of(pid, "VmRSS:").unwrap_or(0) / 1024,
            open_files(pid),
            settings.tenants.pool_cache_capacity
        );
    }

    // The single-tenant reference (see `rotating`), like the other baselines, is measured
    // before and after.
    let whoami_url = format!("{address}/api/v1/auth/whoami");
    let one_script = rotating(root, "one_tenant.lua", &tokens[..1])?;
    let one = wrk(&whoami_url, 64, &[], Some(&one_script))?;
    println!(
        "{:<44} {one}  = {:.2}x bare, {:.2}x openapi",
        "whoami, one tenant, same Lua script",
        one.rps / bare_rps,
        one.rps / openapi_rps
    );
    let rr = wrk(
        &whoami_url,
        64,
        &[],
        Some(&rotating(root, "round_robin.lua", &tokens)?),
    )?;
    let one_after = wrk(&whoami_url, 64, &[], Some(&one_script))?;
    println!(
        "{:<44} {rr}  = {:.2}x one tenant (goal >= 0.8); {:.2}x plain whoami",
        "whoami round-robin over 10,000 tenants",
        rr.rps / ((one.rps + one_after.rps) / 2.0),
        rr.rps / whoami.rps
    );
    println!(
        "{:<44} {:>9.0} before, {:.0} after (req/s)",
        "  baseline: one tenant around it", one.rps, one_after.rps
    );
    if all {
        println!(
            "{:<44} RSS {} MB  open files {}",
            "after the round-robin",
            status_of(pid, "VmRSS:").unwrap_or(0) / 1024,
            open_files(pid)
        );
    }

    // Token checks the verified-token cache cannot answer: every request carries a token the
    // server has never seen (more tokens than the run sends, and than the cache holds), so
    // each is verified. EdDSA on this server, then HS256 on a second one over the same files
    // (`jwt.algorithm = "HS256"`), back to back, 3 s each.
    let fresh = signed_tokens(&secret, &tenants, "t000000", FRESH)?;
    let eddsa = wrk_for(
        &whoami_url,
        64,
        &[],
        Some(&rotating(root, "fresh_eddsa.lua", &fresh)?),
        "3s",
    )?;
    drop(server);
    let mut hs256 = serve();
    hs256.env("VIGIA__JWT__ALGORITHM", "HS256");
    let (hs_server, hs_address) = start(hs256, Announces::Log(root.join("server-hs256.log")))?;
    let hs_secret = secret.clone().signing_with(JwtAlgorithm::HS256);
    let fresh = signed_tokens(&hs_secret, &tenants, "t000000", FRESH)?;
    let hmac = wrk_for(
        &format!("{hs_address}/api/v1/auth/whoami"),
        64,
        &[],
        Some(&rotating(root, "fresh_hs256.lua", &fresh)?),
        "3s",
    )?;
    drop(hs_server);
    for (name, run) in [("EdDSA", &eddsa), ("HS256", &hmac)] {
        anyhow::ensure!(
            run.rps * 3.0 < FRESH as f64,
            "{name}: {:.0} requests for {FRESH} fresh tokens: some were seen twice",
            run.rps * 3.0
        );
    }
    println!(
        "{:<44} {eddsa}  = {:.2}x HS256; {:.2}x whoami with a known token",
        "whoami, every token new: EdDSA (3 s)",
        eddsa.rps / hmac.rps,
        eddsa.rps / whoami.rps
    );
    println!(
        "{:<44} {hmac}  = {:.2}x whoami with a known token",
        "whoami, every token new: HS256 (3 s)",
        hmac.rps / whoami.rps
    );
    if !all {
        return Ok(());
    }

    // Provisioning through the CLI, one process per tenant as an operator runs it.
    let creates = 20;
    let t = Instant::now();
    for i in 0..creates {
        let out = Command::new(&bin)
            .arg("--config")
            .arg(&config)
            .args(["tenant", "create", &format!("new{i:03}")])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    println!(
        "{:<44} {:>9.1} ms per tenant (goal < 50 ms)",
        "vigia tenant create (SQLite), x20",
        t.elapsed().as_secs_f64() * 1000.0 / f64::from(creates)
    );
    Ok(())
}
