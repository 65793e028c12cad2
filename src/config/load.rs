//! Reading the settings: the defaults, then the file, then the environment, merged by
//! [`layers`](super::layers) and deserialized by [`keys`](super::keys), which refuses unknown
//! keys; [`Loaded`] keeps where each value came from.

use anyhow::bail;

use super::{
    Settings, keys,
    layers::{self, FileChoice, Layers, Origin},
    show,
};

/// The defaults of every key, in the file format an operator writes.
pub(super) const DEFAULTS: &str = r#"
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
algorithm = "EdDSA"
audience = "vigia"

[security]
lockout_threshold = 5
lockout_window_minutes = 15
lockout_minutes = 15
login_attempts_per_ip_per_minute = 60
password_min_length = 6
password_max_age_days = 0
session_idle_minutes = 480
session_max_hours = 24
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
}

/// Settings with the keys they declare and where each value came from: what `vigia config
/// show` prints.
pub struct Loaded {
    pub settings: Settings,
    pub(super) layers: Layers,
    /// Every key the settings declare, in declaration order.
    pub(super) keys: Vec<String>,
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
    pub(super) fn from_layers(layers: Layers) -> anyhow::Result<Self> {
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
