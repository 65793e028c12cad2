//! Settings: defaults, then an optional `vigia.toml` (or `--config FILE`), then environment
//! variables `VIGIA__SECTION__KEY`, which win. Secrets are [`SecretString`]s: their `Debug`
//! prints a placeholder, so a settings dump in a log never shows them.
//!
//! A key that no settings struct declares (`[securty]`, `listn = …`, `VIGIA__SECURTY__X`) is
//! refused with one line naming it and where it was written, rather than ignored: the known
//! keys are learnt from the structs themselves ([`keys`]), the origin of each value from the
//! sources read one by one ([`layers`]). [`Loaded`] keeps both, for `vigia config show`
//! ([`show`]).

mod keys;
mod layers;
mod show;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::bail;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use layers::Origin;
use layers::{FileChoice, Layers};

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

/// The defaults of every key, in the file format an operator writes.
const DEFAULTS: &str = r#"
environment = "development"
data_dir = "./data"

[server]
listen = "127.0.0.1:8000"
shutdown_grace_seconds = 20
header_read_timeout_seconds = 10
body_read_timeout_seconds = 30
keep_alive_timeout_seconds = 75
allow_development_on_network = false

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
postgres_connections_per_server = 80
postgres_idle_seconds = 10
acquire_timeout_seconds = 5
sqlite_busy_timeout_millis = 5000

[metrics]
per_tenant = false
"#;

impl Settings {
    /// Loads defaults, then `file` (or `./vigia.toml` when present), then the environment.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        Ok(Loaded::read(file)?.settings)
    }

    /// Defaults with the given overrides (`("server.listen", "127.0.0.1:0")`, …); used by tests
    /// and tools that must not read the working directory or the environment. Unknown keys are
    /// refused here too.
    pub fn from_overrides(overrides: &[(&str, &str)]) -> anyhow::Result<Self> {
        let layers = Layers::read(DEFAULTS, FileChoice::Nothing, &[], overrides)?;
        Ok(Loaded::from_layers(layers)?.settings)
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
            if secrets.is_empty() {
                bail!(
                    "environment \"production\" needs a JWT secret: set VIGIA__JWT__SECRET (or \
                     jwt.secret) to 32 or more random bytes, e.g. `openssl rand -hex 32`"
                );
            }
            if secrets.iter().any(|s| s.len() < 32) {
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
        let server = &self.server;
        if server.header_read_timeout_seconds == 0
            || server.body_read_timeout_seconds == 0
            || server.keep_alive_timeout_seconds == 0
        {
            bail!("server.*_timeout_seconds must be positive");
        }
        if self.tenants.pool_cache_capacity == 0 {
            bail!("tenants.pool_cache_capacity must be positive");
        }
        if self.database.postgres_connections_per_server == 0
            || self.database.postgres_idle_seconds == 0
        {
            bail!(
                "database.postgres_connections_per_server and database.postgres_idle_seconds must be positive"
            );
        }
        Ok(())
    }

    /// The check only `serve` makes: `development` (an open password reset, demo credentials,
    /// a generated secret) is refused on a listen address other machines can reach, unless
    /// `server.allow_development_on_network` says that is meant. Not part of [`Settings::load`]:
    /// operators run the other commands (`tenant create`, `migrate`, …) with the server's
    /// configuration, listen address and all.
    pub fn check_serving(&self) -> anyhow::Result<()> {
        let listen = self.server.listen;
        if self.environment == Environment::Development
            && !listen.ip().to_canonical().is_loopback()
            && !self.server.allow_development_on_network
        {
            bail!(
                "refusing to serve environment \"development\" on {listen}, which is not a \
                 loopback address: development leaves the password reset open and seeds demo \
                 credentials. Set environment = \"production\" (VIGIA__ENVIRONMENT=production) \
                 with a jwt.secret of 32+ bytes (VIGIA__JWT__SECRET), or listen on 127.0.0.1, \
                 or set server.allow_development_on_network = true to accept the risk"
            );
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

/// Settings with the keys they declare and where each value came from: what `vigia config
/// show` prints.
pub struct Loaded {
    pub settings: Settings,
    layers: Layers,
    /// Every key the settings declare, in declaration order.
    keys: Vec<String>,
}

impl Loaded {
    /// What [`Settings::load`] reads, with the origin of every value.
    pub fn read(file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let file = match file {
            Some(path) => FileChoice::Given(path),
            None => FileChoice::WorkingDirectory,
        };
        Self::from_layers(Layers::read(DEFAULTS, file, &layers::environment()?, &[])?)
    }

    /// Deserializes the merged sources, refusing unknown keys first, then malformed values,
    /// then settings that fail [`Settings::check`].
    fn from_layers(layers: Layers) -> anyhow::Result<Self> {
        let (settings, seen) = keys::read::<Settings>(layers.merged.clone());
        if !seen.unknown.is_empty() {
            bail!(unknown_keys(&layers, &seen.unknown, &seen.leaves()));
        }
        let settings = settings.map_err(|e| match &e.key {
            Some(key) => anyhow::anyhow!(
                "invalid configuration key {key:?} ({}): {e}",
                layers.origin(key).place()
            ),
            None => anyhow::anyhow!("invalid configuration: {e}"),
        })?;
        settings.check()?;
        Ok(Self {
            settings,
            keys: seen.leaves(),
            layers,
        })
    }

    /// Every key the settings declare, in declaration order.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Where `key`'s value came from.
    pub fn origin(&self, key: &str) -> Origin {
        self.layers.origin(key)
    }

    /// The effective configuration as `vigia config show` prints it: one `key = value  #
    /// origin` line per key, secrets redacted.
    pub fn show(&self) -> String {
        show::render(self)
    }
}

/// One line naming every unknown key, where it was written, and the known key it may have
/// meant: `unknown configuration key "securty.lockout_threshold" (in vigia.toml; did you mean
/// "security.lockout_threshold"?)`.
fn unknown_keys(layers: &Layers, unknown: &[keys::Unknown], known: &[String]) -> String {
    let mut named = Vec::new();
    for entry in unknown {
        for key in layers.leaves_under(&entry.key) {
            let mut note = layers.origin(&key).place();
            let meant = entry
                .suggestion
                .as_ref()
                .map(|suggestion| format!("{suggestion}{}", &key[entry.key.len()..]))
                .filter(|meant| known.contains(meant));
            if let Some(meant) = meant {
                note.push_str(&format!("; did you mean {meant:?}?"));
            }
            named.push(format!("{key:?} ({note})"));
        }
    }
    let noun = if named.len() == 1 { "key" } else { "keys" };
    format!("unknown configuration {noun} {}", named.join(", "))
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
    fn serve_refuses_development_on_a_network_address_unless_allowed() {
        let check = |pairs: &[(&str, &str)]| {
            Settings::from_overrides(pairs)
                .expect("other commands accept it")
                .check_serving()
        };
        for listen in ["0.0.0.0:8000", "[::]:8000", "192.0.2.7:8000"] {
            let refused = check(&[("server.listen", listen)]).expect_err(listen);
            let text = refused.to_string();
            assert!(
                text.contains("environment = \"production\"")
                    && text.contains("VIGIA__JWT__SECRET")
                    && text.contains("server.allow_development_on_network")
                    && !text.contains('\n'),
                "{text}"
            );
            check(&[
                ("server.listen", listen),
                ("server.allow_development_on_network", "true"),
            ])
            .expect("allowed explicitly");
        }
        for listen in [
            "127.0.0.1:8000",
            "127.0.0.2:0",
            "[::1]:8000",
            "[::ffff:127.0.0.1]:8000",
        ] {
            check(&[("server.listen", listen)]).expect(listen);
        }
        let long = "x".repeat(32);
        check(&[
            ("environment", "production"),
            ("jwt.secret", &long),
            ("server.listen", "0.0.0.0:8000"),
        ])
        .expect("production may listen anywhere");
    }

    #[test]
    fn the_example_configuration_parses() {
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/vigia.example.toml"
        ));
        let secret = "x".repeat(32);
        let layers = Layers::read(
            DEFAULTS,
            FileChoice::Given(path),
            &[],
            &[("jwt.secret", &secret)],
        )
        .expect("the example reads");
        let loaded = Loaded::from_layers(layers)
            .expect("the example has no unknown key and passes the production checks");
        assert_eq!(loaded.settings.environment, Environment::Production);
    }

    fn loaded(env: &[(&str, &str)], overrides: &[(&str, &str)]) -> anyhow::Result<Loaded> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Loaded::from_layers(Layers::read(
            DEFAULTS,
            FileChoice::Nothing,
            &env,
            overrides,
        )?)
    }

    #[test]
    fn every_declared_key_is_known_set_or_not() {
        let loaded = loaded(&[], &[]).expect("defaults load");
        let keys = loaded.keys();
        // Optional keys nobody set are declared all the same.
        for key in [
            "legacy.database_url",
            "jwt.secret",
            "admin.token",
            "redis.url",
            "metrics.token",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
        }
        // Every key of the defaults is a declared key (a typo there would fail every load).
        let defaults: toml::Table = DEFAULTS.parse().expect("defaults are TOML");
        for (name, value) in &defaults {
            let leaves: Vec<String> = match value.as_table() {
                Some(section) => section.keys().map(|k| format!("{name}.{k}")).collect(),
                None => vec![name.clone()],
            };
            for leaf in leaves {
                assert!(keys.contains(&leaf), "{leaf} is not declared");
            }
        }
    }

    #[test]
    fn unknown_keys_are_refused_wherever_they_are_written() {
        let err = loaded(&[], &[("securty.lockout_threshold", "3")])
            .err()
            .expect("refused");
        assert_eq!(
            err.to_string(),
            "unknown configuration key \"securty.lockout_threshold\" (in an override; did you \
             mean \"security.lockout_threshold\"?)"
        );
        let err = loaded(&[("VIGIA__SERVER__LISTN", "127.0.0.1:1")], &[])
            .err()
            .expect("refused");
        assert_eq!(
            err.to_string(),
            "unknown configuration key \"server.listn\" (in environment variable \
             VIGIA__SERVER__LISTN; did you mean \"server.listen\"?)"
        );
    }

    #[test]
    fn a_malformed_value_is_named_with_where_it_was_written() {
        let err = loaded(&[("VIGIA__SERVER__LISTEN", "nowhere")], &[])
            .err()
            .expect("refused");
        assert_eq!(
            err.to_string(),
            "invalid configuration key \"server.listen\" (in environment variable \
             VIGIA__SERVER__LISTEN): invalid socket address syntax"
        );
        let err = loaded(&[], &[("security.lockout_threshold", "many")])
            .err()
            .expect("refused");
        assert!(
            err.to_string().starts_with(
                "invalid configuration key \"security.lockout_threshold\" (in an override): "
            ),
            "{err}"
        );
    }

    #[test]
    fn only_double_underscore_variables_are_configuration() {
        // Handed to the config crate as they are: its prefix is `vigia` + the `__` separator.
        let loaded = loaded(
            &[
                ("VIGIA_TEST_POSTGRES_URL", "postgres://nobody@127.0.0.1:1"),
                ("VIGIA_BIN", "/nonexistent"),
                ("VIGIA_SECURTY", "1"),
                ("vigia__security__lockout_threshold", "9"),
            ],
            &[],
        )
        .expect("single-underscore variables are ignored");
        assert_eq!(loaded.settings.security.lockout_threshold, 9);
        assert_eq!(
            loaded.origin("security.lockout_threshold"),
            Origin::Env("vigia__security__lockout_threshold".into())
        );
    }

    #[test]
    fn no_value_held_in_a_secret_type_is_ever_shown() {
        // Every declared key set to a distinctive value, one at a time; wherever the settings
        // keep it out of their Debug output (a secret type), `config show` must not print its
        // secret part either, whatever the key is called. The value is a URL with a password,
        // so the URLs shown with their password masked are held to it too. Keys whose type
        // refuses such a string are skipped.
        let keys = loaded(&[], &[]).expect("defaults load").keys().to_vec();
        let mut secret_typed = Vec::new();
        for key in &keys {
            let marker = format!("Marker-{}-0123456789abcdef", key.replace('.', "-"));
            let value = format!("postgres://user:{marker}@host/db");
            let Ok(loaded) = loaded(&[], &[(key, &value)]) else {
                continue;
            };
            if !format!("{:?}", loaded.settings).contains(&marker) {
                assert!(!loaded.show().contains(&marker), "{key} printed in clear");
                secret_typed.push(key.clone());
            }
        }
        for key in [
            "jwt.secret",
            "admin.token",
            "metrics.token",
            "legacy.database_url",
            "redis.url",
        ] {
            assert!(
                secret_typed.contains(&key.to_owned()),
                "{key} is not a secret type"
            );
        }
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
