//! A PostgreSQL cluster of its own, for a test or a benchmark that needs a server whose
//! connection limit nobody else draws on (or a second server): `initdb` and `pg_ctl` from
//! Debian's binaries, run as the `postgres` user, on a free port, in a temporary directory;
//! stopped and removed when dropped. Shared by `tests/api` and `benches/load.rs`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// A running cluster; `url()` is its `postgres://postgres@127.0.0.1:PORT` base.
pub struct PgCluster {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
}

/// The newest installed `/usr/lib/postgresql/N/bin` holding `initdb`.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Runs `program` of `bin` as the `postgres` user (we may be root, whom `initdb` refuses).
fn as_postgres(bin: &Path, program: &str, args: &[&str]) -> std::io::Result<std::process::Output> {
    let program = bin.join(program);
    let mut command = if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    command
        .args(args)
        .stdin(Stdio::null())
        .current_dir("/tmp")
        .output()
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl PgCluster {
    /// Starts a fresh cluster with `max_connections` (a stock install has 100); `None` when
    /// PostgreSQL's server binaries are not installed (a test then fails saying so).
    pub fn start(max_connections: u32) -> Option<std::io::Result<Self>> {
        let bin = postgres_bin()?;
        Some(Self::start_with(bin, max_connections))
    }

    /// [`Self::start`] for a test that must run: panics naming what to install when the
    /// binaries are missing, or why the cluster did not start.
    #[allow(
        dead_code,
        reason = "the benchmark includes this file and skips instead"
    )]
    pub fn start_for_test(max_connections: u32) -> Self {
        Self::start(max_connections)
            .expect(
                "PostgreSQL's server binaries (initdb, pg_ctl) are not installed under \
                 /usr/lib/postgresql/N/bin: install them (Debian: apt-get install postgresql)",
            )
            .expect("a PostgreSQL cluster of the test's own starts")
    }

    fn start_with(bin: PathBuf, max_connections: u32) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("vigia-pg-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir)?;
        let chown = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status();
        if !matches!(chown, Ok(s) if s.success()) && running_as_root() {
            return Err(std::io::Error::other(
                "could not hand the cluster directory to postgres",
            ));
        }
        let data = dir.join("data");
        let data_str = data.to_str().expect("BUG: temp paths are UTF-8");
        let out = as_postgres(
            &bin,
            "initdb",
            &[
                "-D",
                data_str,
                "-U",
                "postgres",
                "--auth=trust",
                "-N",
                "-E",
                "UTF8",
            ],
        )?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(std::io::Error::other(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let mut cluster = Self { bin, dir, port: 0 };
        // A port found free may be taken before the server binds it: try a few.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections={max_connections} \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                cluster.dir.display()
            );
            let log = cluster.dir.join("server.log");
            let out = as_postgres(
                &cluster.bin,
                "pg_ctl",
                &[
                    "-D",
                    data_str,
                    "-o",
                    &options,
                    "-l",
                    log.to_str().expect("BUG: temp paths are UTF-8"),
                    "-w",
                    "-t",
                    "30",
                    "start",
                ],
            )?;
            if out.status.success() {
                cluster.port = port;
                return Ok(cluster);
            }
            last_error = std::fs::read_to_string(&log).unwrap_or_default();
        }
        Err(std::io::Error::other(format!(
            "the cluster did not start: {last_error}"
        )))
    }

    /// `postgres://postgres@127.0.0.1:PORT`, without a database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.port != 0 {
            let data = self.dir.join("data");
            let _ = as_postgres(
                &self.bin,
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().expect("BUG: temp paths are UTF-8"),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
