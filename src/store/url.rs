//! [`DatabaseUrl`]: a `sqlite://…` or `postgres://…` URL checked once where it is given, which
//! shows itself with its secrets masked, and the connect options the drivers get from it.

use std::{borrow::Cow, fmt, str::FromStr};

use secrecy::{ExposeSecret, SecretString};
use sqlx::{postgres::PgConnectOptions, sqlite::SqliteConnectOptions};

use super::StoreError;
use crate::domain::url_secrets::{is_secret_parameter, percent_decode, write_masked};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// A database URL (`sqlite://…` or `postgres://…`). It may hold secrets: `Debug` and
/// `Display` mask the userinfo password and the value of every query parameter whose name
/// suggests a secret ([`is_secret_parameter`]), so the URL can be shown in logs, audit records
/// and the operators' API.
#[derive(Clone)]
pub struct DatabaseUrl {
    url: SecretString,
    backend: Backend,
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, StoreError> {
        let backend = if raw.starts_with("sqlite:") {
            Backend::Sqlite
        } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Invalid(
                "database_url must start with sqlite:// or postgres://".into(),
            ));
        };
        let url = Self {
            url: raw.to_owned().into(),
            backend,
        };
        // Parse once now, so a malformed URL is reported where it is given.
        match backend {
            Backend::Sqlite => {
                url.sqlite_options()?;
            }
            Backend::Postgres => {
                let options = url.postgres_options()?;
                postgres_database_name(&options)?;
            }
        }
        Ok(url)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL as written, password included: for files the operator owns, never for logs.
    pub fn expose(&self) -> &str {
        self.url.expose_secret()
    }

    pub(super) fn sqlite_options(&self) -> Result<SqliteConnectOptions, StoreError> {
        SqliteConnectOptions::from_str(self.expose())
            .map_err(|e| StoreError::Invalid(format!("malformed SQLite URL: {e}")))
    }

    pub(super) fn postgres_options(&self) -> Result<PgConnectOptions, StoreError> {
        PgConnectOptions::from_str(&postgres_driver_url(self.expose()))
            .map_err(|e| StoreError::Invalid(format!("malformed Postgres URL: {e}")))
    }

    /// Whether this is an in-memory SQLite database (`sqlite::memory:`, `?mode=memory`), which
    /// has no file; parsed as sqlx parses it.
    pub(super) fn sqlite_in_memory(&self) -> bool {
        let rest = self
            .expose()
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let (database, query) = rest.split_once('?').unwrap_or((rest, ""));
        database == ":memory:" || query.split('&').any(|pair| pair == "mode=memory")
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_masked(f, self.expose(), "***")
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// The parameters sqlx's Postgres driver understands (`sqlx-postgres` `options/parse.rs`);
/// besides these only `options[…]`.
const POSTGRES_PARAMETERS: [&str; 18] = [
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// The URL handed to the Postgres driver: without the secret-looking parameters it does not
/// understand (`sslpassword`, `passwd`, `PASSWORD`, `token`, …). It would ignore them anyway,
/// after logging their values in a warning.
fn postgres_driver_url(raw: &str) -> Cow<'_, str> {
    let Some((base, query)) = raw.split_once('?') else {
        return Cow::Borrowed(raw);
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let ignored = |pair: &&str| {
        let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
        let decoded = percent_decode(name);
        is_secret_parameter(name)
            && !POSTGRES_PARAMETERS.contains(&decoded.as_str())
            && !decoded.starts_with("options[")
    };
    if !query.split('&').any(|pair| ignored(&pair)) {
        return Cow::Borrowed(raw);
    }
    let kept: Vec<&str> = query.split('&').filter(|pair| !ignored(pair)).collect();
    let mut url = format!("{base}?{}", kept.join("&"));
    if let Some(fragment) = fragment {
        url.push('#');
        url.push_str(fragment);
    }
    Cow::Owned(url)
}

/// The database name of a Postgres URL, restricted to `[A-Za-z0-9_-]{1,63}` because it is
/// spliced into `CREATE DATABASE` (identifiers cannot be bound as parameters).
pub(super) fn postgres_database_name(options: &PgConnectOptions) -> Result<String, StoreError> {
    let name = options.get_database().unwrap_or_default();
    let ok = (1..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(name.to_owned())
    } else {
        Err(StoreError::Invalid(
            "a Postgres database_url must name its database: 1-63 characters of letters, digits, '_' and '-'".into(),
        ))
    }
}
