//! Settings: defaults, then an optional `vigia.toml` (or `--config FILE`), then environment
//! variables `VIGIA__SECTION__KEY`, which win. Secrets are
//! [`SecretString`](secrecy::SecretString)s: their `Debug` prints a placeholder, so a settings
//! dump in a log never shows them.
//!
//! A key that no settings struct declares (`[securty]`, `listn = …`, `VIGIA__SECURTY__X`) is
//! refused with one line naming it and where it was written, rather than ignored: the known
//! keys are learnt from the structs themselves ([`keys`]), the origin of each value from the
//! sources read one by one ([`layers`]). [`Loaded`] keeps both, for `vigia config show`
//! ([`show`]).
//!
//! The files: [`settings`] declares the sections and their types, [`load`] holds the defaults
//! and reads the sources into [`Loaded`], [`check`] refuses inconsistent settings.

mod check;
mod keys;
mod layers;
mod load;
mod settings;
mod show;

#[cfg(test)]
mod tests;

pub use layers::Origin;
pub use load::Loaded;
pub use settings::{
    AdminSettings, Argon2Settings, DatabaseSettings, Environment, JwtAlgorithm, JwtSecrets,
    JwtSettings, LegacySettings, MetricsSettings, RedisSettings, RegistryKind, SecuritySettings,
    ServerSettings, Settings, TenantSettings, sqlite_url,
};
