//! Storage: one [`Store`] per database, over a SQLite or a Postgres pool chosen by the URL.
//! SQL lives here and in `migrations/` only. Queries are runtime-checked text identical on both
//! backends (`$N` placeholders work on both); where dialects differ, both versions sit side by
//! side in the same function. Callers get typed outcomes ([`StoreError`]), never sqlx errors.

pub mod audit;
pub mod budget;
pub mod files;
pub mod icsrs;
pub mod name_lockouts;
pub mod registry;
pub mod revocations;
pub mod users;

use std::{borrow::Cow, fmt, path::Path, str::FromStr, sync::Arc, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use sqlx::{
    ConnectOptions, Executor,
    migrate::Migrator,
    pool::PoolConnection,
    postgres::PgConnectOptions,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
    },
};

use self::budget::{Budgets, PgLease, PgPool};
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
    Unavailable(Arc<dyn std::error::Error + Send + Sync>),
    /// Every connection the server may have is busy (see [`budget`]); retry shortly.
    #[error("database busy: {0}")]
    Busy(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0:#}")]
    Other(Arc<anyhow::Error>),
}

impl StoreError {
    /// [`StoreError::Unavailable`] with a message of our own.
    pub fn unavailable(message: impl Into<String>) -> Self {
        let message: Box<dyn std::error::Error + Send + Sync> = message.into().into();
        Self::Unavailable(Arc::from(message))
    }
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

    fn sqlite_options(&self) -> Result<SqliteConnectOptions, StoreError> {
        SqliteConnectOptions::from_str(self.expose())
            .map_err(|e| StoreError::Invalid(format!("malformed SQLite URL: {e}")))
    }

    fn postgres_options(&self) -> Result<PgConnectOptions, StoreError> {
        PgConnectOptions::from_str(&postgres_driver_url(self.expose()))
            .map_err(|e| StoreError::Invalid(format!("malformed Postgres URL: {e}")))
    }

    /// Whether this is an in-memory SQLite database (`sqlite::memory:`, `?mode=memory`), which
    /// has no file; parsed as sqlx parses it.
    fn sqlite_in_memory(&self) -> bool {
        let rest = self
            .expose()
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let (database, query) = rest.split_once('?').unwrap_or((rest, ""));
        database == ":memory:" || query.split('&').any(|pair| pair == "mode=memory")
    }
}

/// Words that mark a query parameter's value as secret, matched case-insensitively within its
/// percent-decoded name: `password`, `sslpassword`, `passwd`, `pass`, `passfile`, `pwd`,
/// `secret`, `token`, `sslkey`, `api_key`, `auth`… `sslkey` is a file path to libpq but may be
/// an inline PEM private key to sqlx, so it is masked too.
const SECRET_WORDS: [&str; 7] = [
    "pass",
    "pwd",
    "secret",
    "token",
    "key",
    "auth",
    "credential",
];

/// Whether the query parameter `name` (as written, percent-encoded or not) names a secret.
pub fn is_secret_parameter(name: &str) -> bool {
    let name = percent_decode(name).to_lowercase();
    SECRET_WORDS.iter().any(|word| name.contains(word))
}

/// `s` with `+` as a space and `%XX` as the byte it encodes (as a query string is read);
/// invalid UTF-8 is replaced.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |i: usize| {
        bytes
            .get(i)
            .and_then(|&b| char::from(b).to_digit(16))
            .and_then(|d| u8::try_from(d).ok())
    };
    while i < bytes.len() {
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'+', _, _) => out.push(b' '),
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi * 16 + lo);
                i += 2;
            }
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// `raw` (a database or Redis URL) with its secrets replaced by `mask`, as
/// [`DatabaseUrl`]'s `Display` shows them (there with `***`).
pub fn masked_url(raw: &str, mask: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    write_masked(&mut out, raw, mask).expect("BUG: writing to a String cannot fail");
    out
}

/// Writes `raw` with its secrets masked: `scheme://user:***@host/db?sslmode=require&password=***`;
/// a fragment (no database URL needs one) is masked whole. The user information ends at the
/// last `@` of the whole text, so a password holding an unencoded `@`, `/`, `?` or `#` is
/// masked whole (a `@` in a query value only makes more of the URL masked, never less).
fn write_masked(f: &mut impl fmt::Write, raw: &str, mask: &str) -> fmt::Result {
    let rest = match raw.split_once("://") {
        Some((scheme, rest)) => {
            write!(f, "{scheme}://")?;
            match rest.rsplit_once('@') {
                Some((userinfo, after)) => {
                    match userinfo.split_once(':') {
                        Some((user, _password)) => write!(f, "{user}:{mask}@")?,
                        None => write!(f, "{userinfo}@")?,
                    }
                    after
                }
                None => rest,
            }
        }
        None => raw,
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, _)) => (rest, true),
        None => (rest, false),
    };
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    f.write_str(path)?;
    if let Some(query) = query {
        f.write_char('?')?;
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                f.write_char('&')?;
            }
            match pair.split_once('=') {
                Some((name, _value)) if is_secret_parameter(name) => write!(f, "{name}={mask}")?,
                _ => f.write_str(pair)?,
            }
        }
    }
    if fragment {
        write!(f, "#{mask}")?;
    }
    Ok(())
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

/// Pool sizing and timeouts, from `[database]`, and the connection budgets of the Postgres
/// servers: clones share them, so make one per process ([`PoolSettings::from`]) and pass it
/// around.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub sqlite_max_connections: u32,
    pub postgres_max_connections: u32,
    pub acquire_timeout: Duration,
    pub sqlite_busy_timeout: Duration,
    /// SQLite connections idle this long are closed, so an idle tenant holds no file open
    /// (Postgres connections: `database.postgres_idle_seconds`, in [`Budgets`]).
    pub idle_timeout: Duration,
    pub budgets: Arc<Budgets>,
}

impl From<&DatabaseSettings> for PoolSettings {
    fn from(s: &DatabaseSettings) -> Self {
        let acquire_timeout = Duration::from_secs(s.acquire_timeout_seconds.max(1));
        Self {
            sqlite_max_connections: s.sqlite_max_connections.max(1),
            postgres_max_connections: s.postgres_max_connections.max(1),
            acquire_timeout,
            sqlite_busy_timeout: Duration::from_millis(s.sqlite_busy_timeout_millis),
            idle_timeout: Duration::from_secs(60),
            budgets: Budgets::new(
                usize::try_from(s.postgres_connections_per_server).unwrap_or(usize::MAX),
                Duration::from_secs(s.postgres_idle_seconds),
                acquire_timeout,
            ),
        }
    }
}

/// An open database: a cheap-to-clone handle on its pool.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One connection of a [`Store`], for one unit of work.
pub(crate) enum Lease {
    Sqlite(PoolConnection<sqlx::Sqlite>),
    Postgres(PgLease),
}

/// Runs `$body` with `$conn` bound to a connection (`&mut SqliteConnection` or
/// `&mut PgConnection`) leased from `$store` for the body's duration: the same generic sqlx
/// code, compiled once per backend. A body that uses `$conn` twice reborrows (`&mut *$conn`).
macro_rules! with_conn {
    ($store:expr, $conn:ident => $body:expr) => {
        match $store.lease().await? {
            $crate::store::Lease::Sqlite(mut lease) => {
                let $conn = &mut *lease;
                $body
            }
            $crate::store::Lease::Postgres(mut lease) => {
                let $conn = &mut *lease;
                $body
            }
        }
    };
}
pub(crate) use with_conn;

impl Store {
    /// Opens a pool on an existing database (SQLite files are not created here: a missing
    /// tenant file is an error, not a fresh empty tenant) and applies pending migrations.
    pub async fn open(url: &DatabaseUrl, settings: &PoolSettings) -> Result<Self, StoreError> {
        let store = Self::connect(url, settings).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens a pool on an existing, already migrated database. On Postgres no connection is
    /// opened until one is needed.
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
                let max = usize::try_from(settings.postgres_max_connections).unwrap_or(1);
                Store::Postgres(settings.budgets.pool(options, max))
            }
        })
    }

    /// A connection for one unit of work (see [`with_conn!`]).
    pub(crate) async fn lease(&self) -> Result<Lease, StoreError> {
        Ok(match self {
            Store::Sqlite(pool) => Lease::Sqlite(pool.acquire().await?),
            Store::Postgres(pool) => Lease::Postgres(pool.lease().await?),
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
        match self.lease().await? {
            Lease::Sqlite(mut conn) => {
                SQLITE_MIGRATIONS
                    .run_direct(None, &mut *conn, false)
                    .await?
            }
            Lease::Postgres(mut conn) => {
                POSTGRES_MIGRATIONS
                    .run_direct(None, &mut *conn, false)
                    .await?
            }
        }
        Ok(())
    }

    /// One round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_conn!(self, conn => conn.execute("SELECT 1").await.map(drop)?);
        Ok(())
    }

    /// Closes every connection now (used by commands and shutdown; the server otherwise lets
    /// an evicted tenant's pool close when its last in-flight request drops it).
    pub async fn close(&self) {
        match self {
            Store::Sqlite(pool) => pool.close().await,
            Store::Postgres(pool) => pool.close().await,
        }
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
/// SQLite: creates the file 0600 (and its missing directories 0700, see [`files`]); an existing
/// file is refused, so provisioning never adopts a stray database by accident. Postgres: `CREATE DATABASE` through the server's
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
            let io_error = |e: std::io::Error, what: &Path| {
                StoreError::from(
                    anyhow::Error::new(e).context(format!("creating {}", what.display())),
                )
            };
            if !url.sqlite_in_memory() {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    files::create_private_dir_all(dir).map_err(|e| io_error(e, dir))?;
                }
                // Created here, 0600, before SQLite opens it (SQLite would make it 0644).
                match files::create_private_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Err(StoreError::Conflict(format!(
                            "database file {} already exists",
                            path.display()
                        )));
                    }
                    Err(e) => return Err(io_error(e, path)),
                }
            }
            Provisioned::Created
        }
        Backend::Postgres => {
            let options = url.postgres_options()?;
            let name = postgres_database_name(&options)?;
            let _permit = settings.budgets.permit(&options).await?;
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
                drop_database(url, settings).await;
            }
            return Err(e);
        }
    };
    if let Err(e) = store.migrate().await {
        store.close().await;
        if provisioned == Provisioned::Created {
            drop_database(url, settings).await;
        }
        return Err(e);
    }
    Ok((store, provisioned))
}

/// Removes the database `url` names; best effort, for undoing a failed provisioning. Logs
/// what it could not remove.
pub async fn drop_database(url: &DatabaseUrl, settings: &PoolSettings) {
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
                let _permit = settings.budgets.permit(&options).await?;
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

/// What a test's tracing subscriber wrote, to check what is logged.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct CapturedLog(Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl CapturedLog {
    /// A subscriber writing here (install it with `tracing::subscriber::set_default`).
    pub(crate) fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + use<> {
        let log = self.clone();
        tracing_subscriber::fmt()
            .with_writer(move || log.clone())
            .finish()
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("lock").clone()).expect("UTF-8")
    }
}

#[cfg(test)]
impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
    fn urls_mask_every_secret_in_their_query_and_userinfo() {
        let cases = [
            (
                "postgres://u:pw@h/db?password=s3cret",
                "postgres://u:***@h/db?password=***",
            ),
            (
                "postgres://u@h:5432/db?sslmode=require&PassWord=s3cret&application_name=vigia",
                "postgres://u@h:5432/db?sslmode=require&PassWord=***&application_name=vigia",
            ),
            // Percent-encoded names ("password", "token"), and '+' read as a space.
            (
                "postgres://h/db?pass%77ord=s3cret&%74oken=s3cret&ssl+password=s3cret",
                "postgres://h/db?pass%77ord=***&%74oken=***&ssl+password=***",
            ),
            (
                "postgresql://h/db?sslpassword=s3cret&passwd=s3cret&pass=s3cret&pwd=s3cret",
                "postgresql://h/db?sslpassword=***&passwd=***&pass=***&pwd=***",
            ),
            (
                "postgres://h/db?secret=s3cret&api_key=s3cret&sslkey=s3cret&auth=s3cret",
                "postgres://h/db?secret=***&api_key=***&sslkey=***&auth=***",
            ),
            // A password with an unencoded '@' (the userinfo ends at the last one).
            ("postgres://u:p@s3cret@h/db", "postgres://u:***@h/db"),
            ("postgres://u:%40s3cret@h/db", "postgres://u:***@h/db"),
            ("postgres://:s3cret@h/db", "postgres://:***@h/db"),
            ("postgres://h/db#password=s3cret", "postgres://h/db#***"),
            // Nothing secret: unchanged.
            (
                "postgres://u@h/db?sslmode=require&sslrootcert=/etc/ca.pem",
                "postgres://u@h/db?sslmode=require&sslrootcert=/etc/ca.pem",
            ),
            (
                "sqlite://./data/tenants/acme.db",
                "sqlite://./data/tenants/acme.db",
            ),
            ("sqlite:x.db?mode=rwc", "sqlite:x.db?mode=rwc"),
        ];
        for (raw, shown) in cases {
            let url = DatabaseUrl::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(url.to_string(), shown, "{raw}");
            assert!(!format!("{url:?}").contains("s3cret"), "{raw}");
        }
    }

    #[test]
    fn the_postgres_driver_never_sees_a_secret_it_would_ignore_and_log() {
        let log = CapturedLog::default();
        let subscriber = log.subscriber();
        let options = tracing::subscriber::with_default(subscriber, || {
            let url = DatabaseUrl::parse(
                "postgres://u@h/db?sslpassword=s3cret&PASSWORD=s3cret&token=s3cret\
                 &password=pw&sslmode=require&connect_timeout=5",
            )
            .expect("valid");
            url.postgres_options().expect("options")
        });
        let log = log.text();
        assert!(!log.contains("s3cret"), "{log}");
        // Parameters it knows are kept; one it ignores without a secret name is still reported.
        assert!(log.contains("connect_timeout"), "{log}");
        assert!(matches!(
            options.get_ssl_mode(),
            sqlx::postgres::PgSslMode::Require
        ));
        assert_eq!(options.get_database(), Some("db"));
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
