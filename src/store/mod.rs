//! Storage: one [`Store`] per database, over a SQLite or a Postgres pool chosen by the URL.
//! SQL lives here and in `migrations/` only. Queries are runtime-checked text identical on both
//! backends (`$N` placeholders work on both); where dialects differ, both versions sit side by
//! side in the same function. Callers get typed outcomes ([`StoreError`]), never sqlx errors.

pub mod audit;
pub mod icsrs;
pub mod name_lockouts;
pub mod registry;
pub mod revocations;
pub mod users;

use std::{fmt, str::FromStr, sync::Arc, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use sqlx::{
    ConnectOptions, Executor,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPool, PgPoolOptions},
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
    },
};

use crate::config::DatabaseSettings;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// The embedded migrators, for the test that checks both list the same versions.
pub fn migrators() -> [(&'static str, &'static Migrator); 2] {
    [
        ("sqlite", &SQLITE_MIGRATIONS),
        ("postgres", &POSTGRES_MIGRATIONS),
    ]
}

/// What went wrong in storage, in the terms a caller can act on. Cheap to clone, so one
/// failure can be handed to every caller that waited on the same pool opening.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule refused the write; the message names what clashed.
    #[error("{0}")]
    Conflict(String),
    /// The database could not be reached or did not answer in time.
    #[error("database unavailable: {0}")]
    Unavailable(Arc<sqlx::Error>),
    #[error("{0}")]
    Invalid(String),
    #[error("{0:#}")]
    Other(Arc<anyhow::Error>),
}

impl From<anyhow::Error> for StoreError {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(Arc::new(e))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(Arc::new(err)),
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                Self::Conflict("already exists".into())
            }
            other => anyhow::Error::new(other).into(),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        match err {
            sqlx::migrate::MigrateError::Execute(e) => e.into(),
            other => anyhow::Error::new(other).context("migrating").into(),
        }
    }
}

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

/// A database URL (`sqlite://…` or `postgres://…`). It may hold a password: `Debug` and
/// `Display` mask it.
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

    fn sqlite_options(&self) -> Result<SqliteConnectOptions, StoreError> {
        SqliteConnectOptions::from_str(self.expose())
            .map_err(|e| StoreError::Invalid(format!("malformed SQLite URL: {e}")))
    }

    fn postgres_options(&self) -> Result<PgConnectOptions, StoreError> {
        PgConnectOptions::from_str(self.expose())
            .map_err(|e| StoreError::Invalid(format!("malformed Postgres URL: {e}")))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = self.expose();
        // scheme://user:password@host… -> scheme://user:***@host…
        if let Some((scheme, rest)) = raw.split_once("://")
            && let Some((userinfo, host)) = rest.split_once('@')
            && let Some((user, _password)) = userinfo.split_once(':')
        {
            return write!(f, "{scheme}://{user}:***@{host}");
        }
        f.write_str(raw)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// Pool sizing and timeouts, from `[database]`.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub sqlite_max_connections: u32,
    pub postgres_max_connections: u32,
    pub acquire_timeout: Duration,
    pub sqlite_busy_timeout: Duration,
    /// Connections idle this long are closed, so an idle tenant holds nothing open.
    pub idle_timeout: Duration,
}

impl From<&DatabaseSettings> for PoolSettings {
    fn from(s: &DatabaseSettings) -> Self {
        Self {
            sqlite_max_connections: s.sqlite_max_connections.max(1),
            postgres_max_connections: s.postgres_max_connections.max(1),
            acquire_timeout: Duration::from_secs(s.acquire_timeout_seconds.max(1)),
            sqlite_busy_timeout: Duration::from_millis(s.sqlite_busy_timeout_millis),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// An open database: a cheap-to-clone handle on its pool.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever typed pool `$store` holds: the same generic
/// sqlx code, compiled once per backend.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool) => $body,
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

impl Store {
    /// Opens a pool on an existing database (SQLite files are not created here: a missing
    /// tenant file is an error, not a fresh empty tenant) and applies pending migrations.
    pub async fn open(url: &DatabaseUrl, settings: &PoolSettings) -> Result<Self, StoreError> {
        let store = Self::connect(url, settings).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens a pool on an existing, already migrated database.
    pub async fn connect(url: &DatabaseUrl, settings: &PoolSettings) -> Result<Self, StoreError> {
        Self::connect_with(url, settings, false).await
    }

    async fn connect_with(
        url: &DatabaseUrl,
        settings: &PoolSettings,
        create: bool,
    ) -> Result<Self, StoreError> {
        Ok(match url.backend() {
            Backend::Sqlite => {
                let options = url
                    .sqlite_options()?
                    .create_if_missing(create)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(settings.sqlite_busy_timeout)
                    .foreign_keys(true)
                    // A tenant database is small and a process may hold hundreds open: keep
                    // each connection's page cache and prepared statements modest.
                    .pragma("cache_size", "-512")
                    .statement_cache_capacity(32)
                    .log_statements(tracing::log::LevelFilter::Trace);
                let pool = SqlitePoolOptions::new()
                    .max_connections(settings.sqlite_max_connections)
                    .min_connections(0)
                    .idle_timeout(settings.idle_timeout)
                    .acquire_timeout(settings.acquire_timeout)
                    .connect_with(options)
                    .await?;
                Store::Sqlite(pool)
            }
            Backend::Postgres => {
                let options = url
                    .postgres_options()?
                    .log_statements(tracing::log::LevelFilter::Trace);
                let pool = PgPoolOptions::new()
                    .max_connections(settings.postgres_max_connections)
                    .min_connections(0)
                    .idle_timeout(settings.idle_timeout)
                    .acquire_timeout(settings.acquire_timeout)
                    .connect_with(options)
                    .await?;
                Store::Postgres(pool)
            }
        })
    }

    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the embedded migrations of this backend that the database has not seen.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Store::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// One round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, pool => pool.execute("SELECT 1").await.map(drop)?);
        Ok(())
    }

    /// Closes every connection now (used by commands and shutdown; the server otherwise lets
    /// an evicted tenant's pool close when its last in-flight request drops it).
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}

/// Whether provisioning made the database or found it already there (and so must not remove
/// it when a later step fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioned {
    Created,
    Existing,
}

/// Creates the database `url` names and migrates it; returns the open store.
///
/// SQLite: creates the file (and its directory); an existing file is refused, so provisioning
/// never adopts a stray database by accident. Postgres: `CREATE DATABASE` through the server's
/// `postgres` maintenance database (it cannot run in a transaction); a database that already
/// exists is adopted as is (an operator may pre-create it where the service lacks `CREATEDB`).
pub async fn create_database(
    url: &DatabaseUrl,
    settings: &PoolSettings,
) -> Result<(Store, Provisioned), StoreError> {
    let provisioned = match url.backend() {
        Backend::Sqlite => {
            let options = url.sqlite_options()?;
            let path = options.get_filename();
            if path.exists() {
                return Err(StoreError::Conflict(format!(
                    "database file {} already exists",
                    path.display()
                )));
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::from(
                        anyhow::Error::new(e).context(format!("creating {}", dir.display())),
                    )
                })?;
            }
            Provisioned::Created
        }
        Backend::Postgres => {
            let options = url.postgres_options()?;
            let name = postgres_database_name(&options)?;
            let mut admin = options.database("postgres").connect().await?;
            // `name` passed `postgres_database_name`: only [A-Za-z0-9_-], so quoting is safe.
            let sql = format!("CREATE DATABASE \"{name}\"");
            let outcome = admin.execute(sqlx::AssertSqlSafe(sql)).await;
            let _ = sqlx::Connection::close(admin).await;
            match outcome {
                Ok(_) => Provisioned::Created,
                Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P04") => {
                    Provisioned::Existing
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let store = match Store::connect_with(url, settings, true).await {
        Ok(store) => store,
        Err(e) => {
            if provisioned == Provisioned::Created {
                drop_database(url).await;
            }
            return Err(e);
        }
    };
    if let Err(e) = store.migrate().await {
        store.close().await;
        if provisioned == Provisioned::Created {
            drop_database(url).await;
        }
        return Err(e);
    }
    Ok((store, provisioned))
}

/// Removes the database `url` names; best effort, for undoing a failed provisioning. Logs
/// what it could not remove.
pub async fn drop_database(url: &DatabaseUrl) {
    let result: Result<(), StoreError> = async {
        match url.backend() {
            Backend::Sqlite => {
                let path = url.sqlite_options()?.get_filename().to_path_buf();
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    match std::fs::remove_file(&file) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(anyhow::Error::new(e).into()),
                    }
                }
            }
            Backend::Postgres => {
                let options = url.postgres_options()?;
                let name = postgres_database_name(&options)?;
                let mut admin = options.database("postgres").connect().await?;
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                admin.execute(sqlx::AssertSqlSafe(sql)).await?;
                let _ = sqlx::Connection::close(admin).await;
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(database = %url, error = %e, "could not remove a database while undoing a failed step");
    }
}

/// The database name of a Postgres URL, restricted to `[A-Za-z0-9_-]{1,63}` because it is
/// spliced into `CREATE DATABASE` (identifiers cannot be bound as parameters).
fn postgres_database_name(options: &PgConnectOptions) -> Result<String, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_mask_their_password() {
        let url = DatabaseUrl::parse("postgres://vigia:hunter2@db:5432/acme").expect("valid");
        assert_eq!(url.to_string(), "postgres://vigia:***@db:5432/acme");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(url.backend(), Backend::Postgres);
    }

    #[test]
    fn urls_need_a_known_scheme_and_a_safe_database_name() {
        assert!(DatabaseUrl::parse("mysql://x/y").is_err());
        assert!(DatabaseUrl::parse("postgres://h/").is_err());
        assert!(DatabaseUrl::parse("postgres://h/a\"b").is_err());
        assert!(DatabaseUrl::parse("sqlite://./data/x.db").is_ok());
    }

    #[test]
    fn migrations_have_the_same_versions_on_both_backends() {
        let versions = |m: &Migrator| m.iter().map(|m| m.version).collect::<Vec<_>>();
        let [(_, sqlite), (_, postgres)] = migrators();
        assert!(!versions(sqlite).is_empty());
        assert_eq!(versions(sqlite), versions(postgres));
    }
}
