//! The settings themselves: one struct per section of `vigia.toml`, the values they hold and
//! why, and the paths and durations derived from them.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

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
    /// The server's address as clients reach it (`https://auth.example.com`, no trailing
    /// slash): the base of every issuer URL. `None`: `http://` and the address listened on.
    pub public_url: Option<String>,
    /// How long a stopping server lets in-flight requests finish.
    pub shutdown_grace_seconds: u64,
    /// From the first byte of a request, how long its head (request line and headers) may
    /// take to arrive; then the connection is closed (slowloris).
    pub header_read_timeout_seconds: u64,
    /// How long a request's body may take to arrive once its head has (408 beyond).
    pub body_read_timeout_seconds: u64,
    /// A connection idle this long between requests (or whose client stopped reading) is
    /// closed. Keep it above the idle timeout of a load balancer's upstream connections.
    pub keep_alive_timeout_seconds: u64,
    /// Lets `serve` run `development` on a non-loopback `listen` address, which it otherwise
    /// refuses: development leaves the password reset open and seeds demo credentials.
    pub allow_development_on_network: bool,
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
    /// How tokens are signed: `EdDSA` (each scope's own Ed25519 key pair, public keys in its
    /// JWKS) or `HS256` (each scope's HMAC key derived from the secret).
    pub algorithm: JwtAlgorithm,
    /// The `aud` of every token; tokens with another audience are refused.
    pub audience: String,
}

/// `jwt.algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum JwtAlgorithm {
    /// Ed25519 signatures (RFC 8037): modules verify with public keys and hold no secret.
    EdDSA,
    /// HMAC-SHA256 with a derived key: whoever verifies can also sign.
    HS256,
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
    /// A session (a login's refresh-token family) ends when it has not been refreshed for
    /// this long: the automatic log-off of Annex 11. Access tokens live no longer than this
    /// either (`jwt.ttl_minutes` at most), so an idle client is logged off within it.
    pub session_idle_minutes: u32,
    /// A session ends this long after its login, however active: then the user logs in again.
    pub session_max_hours: u32,
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
    /// Connections per tenant pool on Postgres.
    pub postgres_max_connections: u32,
    /// Connections this process opens to one Postgres server (host and port), all tenant
    /// pools, the legacy pool and maintenance connections together: below the server's
    /// `max_connections` (100 on a stock install) divided by the replicas, with room for
    /// operators and migrations (see `store::budget`).
    pub postgres_connections_per_server: u32,
    /// A Postgres connection idle this long is closed, whatever its pool.
    pub postgres_idle_seconds: u64,
    pub acquire_timeout_seconds: u64,
    pub sqlite_busy_timeout_millis: u64,
}

impl Settings {
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

    /// `server.public_url`, or `http://` and `bound`, the address the server listens on (the
    /// port bound when `server.listen` asked for port 0).
    pub fn public_url(&self, bound: SocketAddr) -> String {
        match &self.server.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
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
