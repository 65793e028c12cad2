//! Settings: defaults, then an optional `vigia.toml` (or `--config FILE`), then environment
//! variables `VIGIA__SECTION__KEY`, which win. Secrets are [`SecretString`]s: their `Debug`
//! prints a placeholder, so a settings dump in a log never shows them.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Which kind of deployment this is; it changes defaults, never the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Local work: a generated JWT secret, the demo tenant on first run, readable logs.
    Development,
    /// Real users: a configured secret of 32+ bytes is required, nothing is seeded.
    Production,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub environment: Environment,
    /// Runtime state: SQLite files, the generated development secret.
    pub data_dir: PathBuf,
    pub server: ServerSettings,
    pub tenants: TenantSettings,
    pub legacy: LegacySettings,
    pub jwt: JwtSettings,
    pub security: SecuritySettings,
    pub argon2: Argon2Settings,
    pub database: DatabaseSettings,
    pub admin: AdminSettings,
    pub redis: RedisSettings,
    pub metrics: MetricsSettings,
}

/// The operators' provisioning API (`/api/v1/admin/tenants`).
#[derive(Debug, Clone, Deserialize)]
pub struct AdminSettings {
    /// The operator token those endpoints take as `Authorization: Bearer`; without one they
    /// do not exist (404). At least 32 characters.
    pub token: Option<SecretString>,
}

/// State several replicas share: login throttling, lockouts of unknown names, revocations and
/// cache invalidations. Without a URL it all stays in-process.
#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    /// `redis://host:6379/0`.
    pub url: Option<SecretString>,
    pub pool_size: usize,
    /// Prefix of every key and channel (several deployments may share one Redis).
    pub key_prefix: String,
}

/// What `/metrics` shows, and to whom.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    /// Label login and lockout counters with the tenant ID. Off by default: the IDs name the
    /// customers, and each tenant adds series (100,000 tenants, 100,000 series per outcome).
    pub per_tenant: bool,
    /// The bearer token a scraper must present (at least 32 characters); without one
    /// `/metrics` is open to whoever reaches it.
    pub token: Option<SecretString>,
}

/// Where the tenant registry lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistryKind {
    /// `tenants.dir`: one TOML file per tenant.
    Files,
    /// The `tenant_registry` table of the legacy database, shared by every replica.
    Database,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// How long a stopping server lets in-flight requests finish.
    pub shutdown_grace_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TenantSettings {
    /// The registry: one `<ID>.toml` per tenant.
    pub dir: PathBuf,
    /// `files` (the default, `dir`) or `database` (the legacy database's `tenant_registry`).
    pub registry: RegistryKind,
    /// Most tenant databases held open at once (each holds file descriptors or connections).
    pub pool_cache_capacity: u64,
    /// Most tenant handles (keys, policy; no open files) kept in memory.
    pub handle_cache_capacity: u64,
    /// A tenant's pool idle this long is closed.
    pub pool_idle_seconds: u64,
    /// How long "no such tenant" is remembered, so a burst of unknown IDs costs no disk reads.
    pub negative_cache_millis: u64,
    /// How often a cached tenant's file is checked for changes (e.g. `active = false`).
    pub recheck_millis: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LegacySettings {
    /// `None` means `sqlite://<data_dir>/legacy.db`.
    pub database_url: Option<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JwtSettings {
    /// `None` in development means a random secret generated once under `data_dir`. Several
    /// secrets (a TOML list, or one comma-separated string): the first signs, all verify.
    pub secret: Option<JwtSecrets>,
    pub ttl_minutes: u64,
    /// Clock skew tolerated on `exp`.
    pub leeway_seconds: u64,
}

/// `jwt.secret` as written: one string (possibly comma-separated) or a list.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum JwtSecrets {
    One(SecretString),
    Many(Vec<SecretString>),
}

impl JwtSecrets {
    /// The secrets, newest (signing) first; empty entries dropped.
    pub fn list(&self) -> Vec<Vec<u8>> {
        let raw: Vec<&str> = match self {
            JwtSecrets::One(s) => s.expose_secret().split(',').collect(),
            JwtSecrets::Many(v) => v.iter().map(|s| s.expose_secret()).collect(),
        };
        raw.into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
            .collect()
    }
}

impl std::fmt::Debug for JwtSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtSecrets([{} redacted])", self.list().len())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SecuritySettings {
    /// Failed logins within the window that lock an account.
    pub lockout_threshold: u32,
    pub lockout_window_minutes: u32,
    /// How long a lock lasts; then the account unlocks by itself.
    pub lockout_minutes: u32,
    /// Login attempts per client address per minute, all accounts together.
    pub login_attempts_per_ip_per_minute: u32,
    /// Shortest new password, in characters (at least 6, the API document's minimum).
    pub password_min_length: usize,
    /// Passwords older than this must be reset before logging in; 0 = no aging (ASVS 2.1.10).
    pub password_max_age_days: u32,
    /// How long a user record is served from memory. Every write through this process drops
    /// it at once, and through another replica within milliseconds (a Redis event), so this
    /// bounds only changes made behind the server's back (SQL by hand) or events missed while
    /// Redis was down. Short values make every active tenant's users re-read through its
    /// pool that often: with many tenants, that is pool churn (measured in the README).
    pub user_cache_millis: u64,
    /// Take the client address from the last `X-Forwarded-For` entry (only behind a trusted
    /// load balancer that sets it).
    pub trust_forwarded_for: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Argon2Settings {
    /// Memory cost in KiB (OWASP: 19456).
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashing threads; 0 = one per core.
    pub workers: usize,
    /// Hash jobs allowed to wait for a thread; past it, logins get 503 + Retry-After.
    pub queue: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// Connections per tenant pool on SQLite. SQLite writes one transaction at a time anyway;
    /// more connections add read parallelism within one tenant but also threads, page caches
    /// and file descriptors per open pool (sqlx opens a second connection whenever a query
    /// follows another before the first connection is back in the pool).
    pub sqlite_max_connections: u32,
    /// Connections per tenant pool on Postgres (one server accepts a few hundred in total).
    pub postgres_max_connections: u32,
    pub acquire_timeout_seconds: u64,
    pub sqlite_busy_timeout_millis: u64,
}

/// The defaults of every key, in the file format an operator writes.
const DEFAULTS: &str = r#"
environment = "development"
data_dir = "./data"

[server]
listen = "127.0.0.1:8000"
shutdown_grace_seconds = 20

[tenants]
dir = "./tenants"
registry = "files"
pool_cache_capacity = 256
handle_cache_capacity = 100000
pool_idle_seconds = 600
negative_cache_millis = 1000
recheck_millis = 2000

[legacy]

[jwt]
ttl_minutes = 480
leeway_seconds = 30

[security]
lockout_threshold = 5
lockout_window_minutes = 15
lockout_minutes = 15
login_attempts_per_ip_per_minute = 60
password_min_length = 6
password_max_age_days = 0
user_cache_millis = 300000
trust_forwarded_for = false

[argon2]
memory_kib = 19456
iterations = 2
parallelism = 1
workers = 0
queue = 64

[admin]

[redis]
pool_size = 16
key_prefix = "vigia"

[database]
sqlite_max_connections = 1
postgres_max_connections = 5
acquire_timeout_seconds = 5
sqlite_busy_timeout_millis = 5000

[metrics]
per_tenant = false
"#;

impl Settings {
    /// Loads defaults, then `file` (or `./vigia.toml` when present), then the environment.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        builder = match file {
            Some(path) => builder.add_source(config::File::from(path).required(true)),
            None => builder.add_source(config::File::with_name("vigia.toml").required(false)),
        };
        builder = builder.add_source(
            config::Environment::with_prefix("VIGIA")
                .separator("__")
                .try_parsing(true),
        );
        Self::from_config(builder.build().context("reading the configuration")?)
    }

    /// Defaults with the given overrides (`("server.listen", "127.0.0.1:0")`, …); used by tests
    /// and tools that must not read the working directory or the environment.
    pub fn from_overrides(overrides: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        for (key, value) in overrides {
            builder = builder.set_override(*key, *value)?;
        }
        Self::from_config(builder.build()?)
    }

    fn from_config(config: config::Config) -> anyhow::Result<Self> {
        let settings: Settings = config
            .try_deserialize()
            .context("the configuration has a missing or malformed key")?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> anyhow::Result<()> {
        if let Some(secrets) = &self.jwt.secret
            && secrets.list().is_empty()
        {
            bail!("jwt.secret is empty");
        }
        if self.environment == Environment::Production {
            let secrets = self
                .jwt
                .secret
                .as_ref()
                .map(JwtSecrets::list)
                .unwrap_or_default();
            if secrets.is_empty() || secrets.iter().any(|s| s.len() < 32) {
                bail!(
                    "production needs jwt.secret (VIGIA__JWT__SECRET): every secret at least 32 bytes"
                );
            }
        }
        if self.security.password_min_length < crate::domain::Password::MIN_CHARS {
            bail!(
                "security.password_min_length must be at least {}",
                crate::domain::Password::MIN_CHARS
            );
        }
        if self.security.lockout_threshold == 0 {
            bail!("security.lockout_threshold must be positive");
        }
        if let Some(token) = &self.admin.token
            && token.expose_secret().len() < 32
        {
            bail!("admin.token must be at least 32 characters");
        }
        if let Some(token) = &self.metrics.token
            && token.expose_secret().len() < 32
        {
            bail!("metrics.token must be at least 32 characters");
        }
        if self.jwt.ttl_minutes == 0 {
            bail!("jwt.ttl_minutes must be positive");
        }
        if self.tenants.pool_cache_capacity == 0 {
            bail!("tenants.pool_cache_capacity must be positive");
        }
        Ok(())
    }

    /// The legacy shared database, defaulting to a SQLite file under `data_dir`.
    pub fn legacy_database_url(&self) -> SecretString {
        match &self.legacy.database_url {
            Some(url) => url.clone(),
            None => sqlite_url(&self.data_dir.join("legacy.db")).into(),
        }
    }

    /// Where `vigia tenant create` puts a tenant's SQLite file when no URL is given.
    pub fn tenant_sqlite_dir(&self) -> PathBuf {
        self.data_dir.join("tenants")
    }

    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.jwt.ttl_minutes * 60)
    }
}

/// `sqlite://<path>` for a filesystem path (relative paths stay relative to the working
/// directory, as `data_dir` is).
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_contract() {
        let s = Settings::from_overrides(&[]).expect("defaults parse");
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(s.environment, Environment::Development);
        assert_eq!(s.jwt.ttl_minutes, 480);
        assert_eq!(s.security.lockout_threshold, 5);
        assert_eq!(s.argon2.memory_kib, 19456);
        assert_eq!(
            s.legacy_database_url().expose_secret(),
            "sqlite://./data/legacy.db"
        );
    }

    #[test]
    fn production_refuses_a_short_or_missing_secret() {
        assert!(Settings::from_overrides(&[("environment", "production")]).is_err());
        assert!(
            Settings::from_overrides(&[("environment", "production"), ("jwt.secret", "short")])
                .is_err()
        );
        let long = "x".repeat(32);
        assert!(
            Settings::from_overrides(&[("environment", "production"), ("jwt.secret", &long)])
                .is_ok()
        );
        let rotated_short = format!("{long},short");
        assert!(
            Settings::from_overrides(&[
                ("environment", "production"),
                ("jwt.secret", &rotated_short)
            ])
            .is_err(),
            "every listed secret must be long enough"
        );
    }

    #[test]
    fn the_example_configuration_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/vigia.example.toml");
        let text = std::fs::read_to_string(path).expect("example config");
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .add_source(config::File::from_str(&text, config::FileFormat::Toml))
            .set_override("jwt.secret", "x".repeat(32))
            .and_then(|b| b.build())
            .and_then(|c| c.try_deserialize())
            .expect("the example is valid");
        assert_eq!(settings.environment, Environment::Production);
        settings
            .check()
            .expect("the example passes the production checks");
    }

    #[test]
    fn a_short_metrics_token_is_refused() {
        let err = Settings::from_overrides(&[("metrics.token", "too-short")])
            .expect_err("a 9-character token is refused");
        assert!(err.to_string().contains("metrics.token"), "{err:#}");
        assert!(Settings::from_overrides(&[("metrics.token", &"t".repeat(32))]).is_ok());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = Settings::from_overrides(&[("jwt.secret", "super-secret-value-0123456789abcdef")])
            .expect("parses");
        assert!(!format!("{s:?}").contains("super-secret-value"));
    }
}
