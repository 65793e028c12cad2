//! The Postgres fleet: 1,000 tenants, each with a database of its own on one PostgreSQL
//! cluster that accepts `max_connections = 100`, served by one server with the default
//! connection budget (`database.postgres_connections_per_server`, 80); then 1,000 more, half on
//! that cluster and half on a second one, which must get a budget of its own.
//!
//! Both clusters are the benchmark's own ([`PgCluster`]: a temporary directory, a free port,
//! stopped and removed at the end); a shared PostgreSQL is never touched. The server keeps its
//! defaults but for what points it at cluster A (its legacy database there, the registry in
//! files), the operator token, the login limits raised as in the first part, and
//! `environment = "production"` (no demo tenant on a first start). The tenants are provisioned
//! through its operator API, so its budget governs the maintenance connections that create the
//! databases as well as the tenants' pools.
//!
//! While everything runs, a [`Sampler`] per cluster counts the client connections the cluster
//! sees (`pg_stat_activity`, its own left out) every 50 ms. The highest count of each phase is
//! printed; a count above the budget, or an error answer in a round-robin, fails the benchmark
//! at its end (the later phases still run, so one finding does not hide the others), and a
//! failed request while provisioning, filing cases or in a pass stops it there.
//!
//! Phases, for the 1,000 tenants on cluster A and then for the 1,000 split over A and B:
//! provisioning ([`IN_FLIGHT`] requests at a time, through the operator API); one case filed
//! per tenant; a pass that logs every tenant's user in and lists its cases; whoami and
//! `/icsrs` round-robin over every tenant's token (wrk, as in the first part) against the same
//! over one tenant's, and on A `/icsrs` over 40 of them too (fewer tenants than the budget has
//! connections); the server's `vigia_database_*` metrics.

use std::{
    future::Future,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use sqlx::{Connection, Executor, postgres::PgConnection};
use vigia::{config::Settings, tenancy::ServerSecret};

use super::{Announces, PUBLIC_URL, SECRET, Wrk, pg_cluster::PgCluster, rotating, start, token};

/// The clusters' `max_connections`, a stock install's.
const MAX_CONNECTIONS: u32 = 100;
/// Tenants in each part: all on cluster A, then (new ones) half on A and half on B.
const TENANTS: usize = 1_000;
/// Fewer tenants than the budget has connections (40 of 80): the 64 requests in flight over
/// them need about two connections per tenant, which the budget holds, though each pool may
/// open five.
const FEW: usize = 40;
/// Requests in flight at once while provisioning, filing cases and in the pass.
const IN_FLIGHT: usize = 16;
/// How often a sampler counts a cluster's connections.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// The operator token (`admin.token`) of the provisioning API.
const OPERATOR_TOKEN: &str = "bench-operator-token-0123456789abcdef";
/// Each tenant's first administrator, `juan.perez`, logs in with this.
const PASSWORD: &str = "SecurePass123";
/// The client connections a cluster serves, but the sampler's own.
const COUNT_CONNECTIONS: &str = "SELECT count(*) FROM pg_stat_activity \
                                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";

/// Runs the Postgres part in `dir` (created here); prints "skipped" without PostgreSQL's
/// server binaries.
pub async fn fleet(dir: &Path) -> anyhow::Result<()> {
    let Some(a) = PgCluster::start(MAX_CONNECTIONS) else {
        println!(
            "{:<44} skipped: PostgreSQL's server binaries (initdb, pg_ctl in \
             /usr/lib/postgresql/N/bin) are not installed",
            "postgres fleet"
        );
        return Ok(());
    };
    let a = a?;
    std::fs::create_dir_all(dir)?;

    // The legacy database on cluster A too, so its pool draws on A's budget like the tenants'.
    let mut admin = PgConnection::connect(&format!("{}/postgres", a.url())).await?;
    admin.execute("CREATE DATABASE vigia_legacy").await?;
    admin.close().await?;
    let config = dir.join("vigia.toml");
    std::fs::write(
        &config,
        format!(
            "environment = \"production\"\ndata_dir = {:?}\n[tenants]\ndir = {:?}\n\
             [legacy]\ndatabase_url = \"{}/vigia_legacy\"\n[server]\npublic_url = {PUBLIC_URL:?}\n[jwt]\nsecret = {SECRET:?}\n\
             [admin]\ntoken = {OPERATOR_TOKEN:?}\n\
             [security]\nlockout_threshold = 1000000000\nlogin_attempts_per_ip_per_minute = 1000000000\n",
            dir.join("data").display().to_string(),
            dir.join("tenants").display().to_string(),
            a.url(),
        ),
    )?;
    let settings = Settings::load(Some(&config))?;
    let budget = usize::try_from(settings.database.postgres_connections_per_server)?;
    let mut serve = Command::new(super::server_binary());
    serve
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("VIGIA__SERVER__LISTEN", "127.0.0.1:0")
        .env("NO_COLOR", "1");
    let (server, address) = start(serve, Announces::Log(dir.join("server.log")))?;
    let fleet = Fleet {
        client: reqwest::Client::new(),
        address,
        dir: dir.to_path_buf(),
        tenants: settings.tenants.dir.clone(),
        secret: ServerSecret::new(SECRET.as_bytes().to_vec()),
        budget,
        samplers: vec![Sampler::start("A", &a, budget).await?],
        violations: Mutex::new(Vec::new()),
    };
    while fleet
        .client
        .get(fleet.url("/healthz"))
        .send()
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "{:<44} cluster A on port {} (max_connections {MAX_CONNECTIONS}), budget {budget} per \
         server (default), pool cache {}, {IN_FLIGHT} requests in flight",
        "postgres fleet", a.port, settings.tenants.pool_cache_capacity
    );

    // One database server.
    let on_a: Vec<String> = (1..=TENANTS).map(|i| format!("a{i:04}")).collect();
    let base_a = a.url();
    fleet
        .provision("on A", &on_a, move |_| base_a.clone())
        .await?;
    fleet.file_cases(&on_a).await?;
    let tokens = fleet.pass(&on_a).await?;
    fleet
        .round_robin("whoami", "/api/v1/auth/whoami", &tokens)
        .await?;
    fleet
        .round_robin("/icsrs", "/api/v1/icsrs", &tokens)
        .await?;
    fleet
        .round_robin("/icsrs", "/api/v1/icsrs", &tokens[..FEW])
        .await?;
    fleet.show_metrics().await?;

    // A second database server, with a budget of its own: as many new tenants again, half on
    // each server, interleaved so both are drawn on at once. New ones on A too, not the first
    // thousand: those users' records, cached since the first pass, would expire (after
    // `security.user_cache_millis`, 5 min) all together in the middle of this part.
    let Some(b) = PgCluster::start(MAX_CONNECTIONS) else {
        anyhow::bail!("cluster B did not start where cluster A did");
    };
    let b = b?;
    let mut fleet = fleet;
    fleet.samplers.push(Sampler::start("B", &b, budget).await?);
    println!(
        "{:<44} cluster B on port {} (max_connections {MAX_CONNECTIONS}), same server process",
        "postgres fleet, second server", b.port
    );
    let split: Vec<String> = (1..=TENANTS / 2)
        .flat_map(|i| [format!("a{:04}", TENANTS + i), format!("b{i:04}")])
        .collect();
    let (base_a, base_b) = (a.url(), b.url());
    fleet
        .provision("half on A, half on B", &split, move |id| {
            if id.starts_with('a') {
                base_a.clone()
            } else {
                base_b.clone()
            }
        })
        .await?;
    fleet.file_cases(&split).await?;
    let tokens = fleet.pass(&split).await?;
    fleet
        .round_robin("whoami", "/api/v1/auth/whoami", &tokens)
        .await?;
    fleet
        .round_robin("/icsrs", "/api/v1/icsrs", &tokens)
        .await?;
    fleet.show_metrics().await?;

    // The server first, the samplers next, the clusters last.
    drop(server);
    let violations = std::mem::take(&mut *fleet.violations.lock().expect("BUG: lock poisoned"));
    drop(fleet);
    drop((b, a));
    anyhow::ensure!(
        violations.is_empty(),
        "the Postgres fleet missed its goals (VIGIA_BENCH_KEEP=1 keeps the server log, {}):\n  {}",
        dir.join("server.log").display(),
        violations.join("\n  ")
    );
    Ok(())
}

/// The running server, what reaches it, and the samplers watching its database servers.
struct Fleet {
    client: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    address: String,
    /// The work directory, for the wrk scripts.
    dir: PathBuf,
    /// The server's tenant registry: each entry's incarnation enters its signing key.
    tenants: PathBuf,
    secret: ServerSecret,
    /// The server's `database.postgres_connections_per_server`.
    budget: usize,
    /// One per cluster, A first.
    samplers: Vec<Sampler>,
    /// What went against the goals (a count above the budget, a refused request in a
    /// round-robin): the benchmark fails with them at its end.
    violations: Mutex<Vec<String>>,
}

impl Fleet {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Provisions `ids` through the operator API, each in a database of its own on the server
    /// `server_of` names (`postgres://…@host:port`), with `juan.perez` as its first
    /// administrator.
    async fn provision(
        &self,
        label: &str,
        ids: &[String],
        server_of: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> anyhow::Result<()> {
        self.start_phase()?;
        let (client, url) = (self.client.clone(), self.url("/api/v1/admin/tenants"));
        let (seconds, outcomes) = in_lanes(ids, move |id| {
            let request = client.post(&url).bearer_auth(OPERATOR_TOKEN).json(&json!({
                "id": id,
                "name": format!("Bench {id}"),
                "database_url": format!("{}/vigia_{id}", server_of(&id)),
                "admin": {
                    "username": "juan.perez",
                    "email": "juan.perez@example.com",
                    "full_name": "Juan Pérez García",
                    "password": PASSWORD,
                },
            }));
            async move { expect(request.send().await?, 201).await.map(drop) }
        })
        .await?;
        let (_, failures) = sort_out(outcomes);
        println!(
            "{:<44} {} in {seconds:.1} s ({:.1} per s), {} failed; {}",
            format!("provision {} tenants, {label}", thousands(ids.len())),
            thousands(ids.len() - failures.len()),
            ids.len() as f64 / seconds,
            failures.len(),
            self.end_phase("provisioning")?
        );
        self.no_failures("provisioning", &failures)
    }

    /// Files one case in each of `ids`, as its administrator (a token signed like the
    /// server's, as in the first part), so the pass and `/icsrs` read a row.
    async fn file_cases(&self, ids: &[String]) -> anyhow::Result<()> {
        self.start_phase()?;
        let (client, url) = (self.client.clone(), self.url("/api/v1/icsrs"));
        let (secret, tenants) = (self.secret.clone(), self.tenants.clone());
        let (seconds, outcomes) = in_lanes(ids, move |id| {
            let token = token(&secret, &tenants, &id);
            let request = client.post(&url).json(&json!({
                "safety_report_id": format!("ES-{}-2026-000001", id.to_uppercase()),
                "receipt_date": "2026-03-14",
                "seriousness_criteria": ["caused_or_prolonged_hospitalisation"],
                "patient": {"initials": "JPG", "age": {"value": 54, "unit": "year"}, "sex": "male"},
                "suspect_product": "Amoxicillin 500 mg capsules",
                "reactions": [{"term": "Anaphylactic reaction", "meddra_code": 10002198}],
                "narrative": "An anaphylactic reaction 20 minutes after the first dose.",
            }));
            async move {
                let resp = request.bearer_auth(token?).send().await?;
                expect(resp, 201).await.map(drop)
            }
        })
        .await?;
        let (_, failures) = sort_out(outcomes);
        println!(
            "{:<44} {} in {seconds:.1} s, {} failed; {}",
            "  one case filed per tenant",
            thousands(ids.len() - failures.len()),
            failures.len(),
            self.end_phase("filing cases")?
        );
        self.no_failures("filing cases", &failures)
    }

    /// Logs each of `ids`'s `juan.perez` in, then lists the tenant's cases (one expected);
    /// the tokens, for the round-robins.
    async fn pass(&self, ids: &[String]) -> anyhow::Result<Vec<String>> {
        let reclaimed = self.reclaimed().await?;
        self.start_phase()?;
        let (client, login, icsrs) = (
            self.client.clone(),
            self.url("/api/v1/auth/login"),
            self.url("/api/v1/icsrs"),
        );
        let (seconds, outcomes) = in_lanes(ids, move |id| {
            let login = client
                .post(&login)
                .header("X-Tenant", &id)
                .form(&[("username", "juan.perez"), ("password", PASSWORD)]);
            let (client, icsrs) = (client.clone(), icsrs.clone());
            async move {
                let body: Value = expect(login.send().await?, 200).await?.json().await?;
                let token = body["access_token"]
                    .as_str()
                    .ok_or_else(|| anyhow::anyhow!("login answered no token: {body}"))?
                    .to_owned();
                let list = client
                    .get(&icsrs)
                    .bearer_auth(&token)
                    .header("X-Tenant", &id)
                    .send()
                    .await?;
                let cases: Vec<Value> = expect(list, 200).await?.json().await?;
                anyhow::ensure!(cases.len() == 1, "listed {} cases, filed one", cases.len());
                Ok(token)
            }
        })
        .await?;
        let (tokens, failures) = sort_out(outcomes);
        let peaks = self.end_phase("the pass")?;
        let reclaimed = self.reclaimed().await? - reclaimed;
        println!(
            "{:<44} {} logins + {} case lists in {seconds:.1} s, {} failed (goal 0); \
             {reclaimed} reclaimed; {peaks}",
            format!("pass over {} tenants", thousands(ids.len())),
            thousands(ids.len()),
            thousands(ids.len()),
            failures.len(),
        );
        self.no_failures("the pass", &failures)?;
        Ok(tokens)
    }

    /// wrk on `path` round-robin over `tokens`, and over the first token alone before and
    /// after it (the same Lua script, see `rotating`).
    async fn round_robin(&self, label: &str, path: &str, tokens: &[String]) -> anyhow::Result<()> {
        let name = label.trim_start_matches('/');
        let one_script = rotating(&self.dir, &format!("{name}_one.lua"), &tokens[..1])?;
        let all_script = rotating(&self.dir, &format!("{name}_{}.lua", tokens.len()), tokens)?;
        let one = run_wrk(self.url(path), one_script.clone()).await?;
        let reclaimed = self.reclaimed().await?;
        self.start_phase()?;
        let all = run_wrk(self.url(path), all_script).await?;
        let over = format!(
            "{label} round-robin over {} tenants",
            thousands(tokens.len())
        );
        let peaks = self.end_phase(&over)?;
        let reclaimed = self.reclaimed().await? - reclaimed;
        let one_after = run_wrk(self.url(path), one_script).await?;
        println!(
            "{over:<44} {all}  = {:.2}x one tenant; non-2xx {}; {reclaimed} reclaimed; {peaks}",
            all.rps / ((one.rps + one_after.rps) / 2.0),
            all.non_2xx
        );
        println!(
            "{:<44} {:>9.0} before, {:.0} after (req/s); non-2xx {} and {}",
            "  one tenant, same Lua script, around it",
            one.rps,
            one_after.rps,
            one.non_2xx,
            one_after.non_2xx
        );
        if all.errors + one.errors + one_after.errors > 0 {
            self.violation(format!(
                "{over}: wrk counted {} errors (non-2xx or socket errors), {} and {} over one \
                 tenant",
                all.errors, one.errors, one_after.errors
            ));
        }
        Ok(())
    }

    /// Idle connections the server has closed for another pool since it started, on every
    /// database server (`vigia_database_connections_reclaimed_total`).
    async fn reclaimed(&self) -> anyhow::Result<u64> {
        let text = expect(self.client.get(self.url("/metrics")).send().await?, 200)
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("vigia_database_connections_reclaimed_total"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum())
    }

    /// Prints the server's `vigia_database_*` metrics.
    async fn show_metrics(&self) -> anyhow::Result<()> {
        let text = expect(self.client.get(self.url("/metrics")).send().await?, 200)
            .await?
            .text()
            .await?;
        for line in text.lines().filter(|l| l.starts_with("vigia_database_")) {
            println!("{:<44} {line}", "  /metrics");
        }
        Ok(())
    }

    /// Forgets the highest counts seen so far.
    fn start_phase(&self) -> anyhow::Result<()> {
        for sampler in &self.samplers {
            sampler.take()?;
        }
        Ok(())
    }

    /// The highest count of each cluster since [`Self::start_phase`], as a line's tail. A
    /// count above the budget is marked there and recorded, to fail the benchmark at its end
    /// (the later phases still run, so one finding does not hide the others).
    fn end_phase(&self, phase: &str) -> anyhow::Result<String> {
        let mut shown = Vec::new();
        let mut total = 0;
        for sampler in &self.samplers {
            let tally = sampler.take()?;
            anyhow::ensure!(
                tally.samples > 0,
                "cluster {} was never sampled",
                sampler.name
            );
            if tally.over > 0 {
                shown.push(format!(
                    "{} {} BUDGET EXCEEDED in {} of {} samples",
                    sampler.name, tally.highest, tally.over, tally.samples
                ));
                self.violation(format!(
                    "{phase}: cluster {} counted up to {} client connections (budget {}) in {} \
                     of {} samples",
                    sampler.name, tally.highest, self.budget, tally.over, tally.samples
                ));
            } else {
                shown.push(format!("{} {}", sampler.name, tally.highest));
            }
            total += tally.highest;
        }
        let together = if self.samplers.len() > 1 {
            format!(", together {total}")
        } else {
            String::new()
        };
        Ok(format!(
            "highest connections {}{together} (budget {} each)",
            shown.join(", "),
            self.budget
        ))
    }

    fn violation(&self, what: String) {
        self.violations
            .lock()
            .expect("BUG: violations lock poisoned")
            .push(what);
    }

    /// An error naming the first few of `failures`, if any.
    fn no_failures(&self, what: &str, failures: &[String]) -> anyhow::Result<()> {
        for failure in failures.iter().take(5) {
            println!("{:<44} {failure}", "  failed:");
        }
        anyhow::ensure!(
            failures.is_empty(),
            "{} failures in {what}; see {}",
            failures.len(),
            self.dir.join("server.log").display()
        );
        Ok(())
    }
}

/// Counts a cluster's client connections every [`SAMPLE_EVERY`]; what it saw since it was
/// last asked.
struct Sampler {
    /// `A` or `B`.
    name: &'static str,
    tally: Arc<Mutex<Tally>>,
    task: tokio::task::JoinHandle<()>,
}

/// What a [`Sampler`] saw since it was last asked.
#[derive(Debug, Default)]
struct Tally {
    highest: usize,
    samples: usize,
    /// Samples above the budget.
    over: usize,
    /// Why the sampling stopped, if it did: a count it did not take is no evidence.
    failed: Option<String>,
}

impl Sampler {
    async fn start(name: &'static str, cluster: &PgCluster, budget: usize) -> anyhow::Result<Self> {
        let mut conn = PgConnection::connect(&format!("{}/postgres", cluster.url())).await?;
        let tally = Arc::new(Mutex::new(Tally::default()));
        let task = tokio::spawn({
            let tally = tally.clone();
            async move {
                let mut tick = tokio::time::interval(SAMPLE_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tick.tick().await;
                    let count = sqlx::query_scalar::<_, i64>(COUNT_CONNECTIONS)
                        .fetch_one(&mut conn)
                        .await;
                    let mut seen = tally.lock().expect("BUG: sampler lock poisoned");
                    match count {
                        Ok(count) => {
                            let count = usize::try_from(count).unwrap_or(0);
                            seen.highest = seen.highest.max(count);
                            seen.samples += 1;
                            seen.over += usize::from(count > budget);
                        }
                        Err(e) => {
                            seen.failed = Some(e.to_string());
                            return;
                        }
                    }
                }
            }
        });
        Ok(Self { name, tally, task })
    }

    /// What it saw since the last call; an error if it stopped.
    fn take(&self) -> anyhow::Result<Tally> {
        let mut tally = self.tally.lock().expect("BUG: sampler lock poisoned");
        if let Some(e) = &tally.failed {
            anyhow::bail!("the sampler of cluster {} stopped: {e}", self.name);
        }
        Ok(std::mem::take(&mut *tally))
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs `job` on every item, [`IN_FLIGHT`] at a time; each item's outcome (in no particular
/// order) and the seconds it all took.
async fn in_lanes<R, F, Fut>(
    items: &[String],
    job: F,
) -> anyhow::Result<(f64, Vec<(String, anyhow::Result<R>)>)>
where
    R: Send + 'static,
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<R>> + Send + 'static,
{
    let items = Arc::new(items.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let job = Arc::new(job);
    let started = Instant::now();
    let mut lanes = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (items, next, job) = (items.clone(), next.clone(), job.clone());
        lanes.spawn(async move {
            let mut outcomes = Vec::new();
            while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                outcomes.push((item.clone(), job(item.clone()).await));
            }
            outcomes
        });
    }
    let mut outcomes = Vec::with_capacity(items.len());
    while let Some(lane) = lanes.join_next().await {
        outcomes.extend(lane?);
    }
    Ok((started.elapsed().as_secs_f64(), outcomes))
}

/// The successes, and the failures described with their item.
fn sort_out<R>(outcomes: Vec<(String, anyhow::Result<R>)>) -> (Vec<R>, Vec<String>) {
    let mut done = Vec::with_capacity(outcomes.len());
    let mut failures = Vec::new();
    for (item, outcome) in outcomes {
        match outcome {
            Ok(r) => done.push(r),
            Err(e) => failures.push(format!("{item}: {e:#}")),
        }
    }
    (done, failures)
}

/// `resp` if its status is `status`; else an error with the status, `Retry-After` and the
/// start of the body.
async fn expect(resp: reqwest::Response, status: u16) -> anyhow::Result<reqwest::Response> {
    if resp.status().as_u16() == status {
        return Ok(resp);
    }
    let got = resp.status();
    let retry = resp
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .map(|v| format!(" (Retry-After {v})"))
        .unwrap_or_default();
    let body: String = resp
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    anyhow::bail!("{got}{retry}: {body}")
}

/// [`super::wrk`] with 64 connections and `script`, off the runtime's threads (the samplers
/// keep counting meanwhile).
async fn run_wrk(url: String, script: PathBuf) -> anyhow::Result<Wrk> {
    tokio::task::spawn_blocking(move || super::wrk(&url, 64, &[], Some(&script))).await?
}

/// `1,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
