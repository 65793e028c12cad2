//! Opening pools: [`PoolSettings`] (sizes, timeouts and the Postgres connection budgets, made
//! once per process from plain [`PoolLimits`]), [`Store::open`] / [`Store::connect`], and the
//! embedded migrations of each backend.

use std::{sync::Arc, time::Duration};

use sqlx::{
    ConnectOptions,
    migrate::Migrator,
    sqlite::{SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use super::{Backend, DatabaseUrl, Lease, Store, StoreError, budget::Budgets};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// The embedded migrators, for the test that checks both list the same versions.
pub fn migrators() -> [(&'static str, &'static Migrator); 2] {
    [
        ("sqlite", &SQLITE_MIGRATIONS),
        ("postgres", &POSTGRES_MIGRATIONS),
    ]
}

/// Pool sizing and timeouts, from `[database]`, and the connection budgets of the Postgres
/// servers: clones share them, so make one per process ([`PoolSettings::new`]) and pass it
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

/// The pool limits as the configuration states them (`[database]`); [`PoolSettings::new`]
/// applies the floors. Plain values, so the store needs no knowledge of the configuration.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    /// Connections per tenant pool on SQLite (at least 1).
    pub sqlite_max_connections: u32,
    /// Connections per tenant pool on Postgres (at least 1).
    pub postgres_max_connections: u32,
    /// Connections this process opens to one Postgres server, all pools together.
    pub postgres_connections_per_server: u32,
    /// A Postgres connection idle this long is closed, whatever its pool.
    pub postgres_idle: Duration,
    /// How long a caller waits for a connection (at least 1 s).
    pub acquire_timeout: Duration,
    pub sqlite_busy_timeout: Duration,
}

impl PoolSettings {
    /// Settings for `limits`, with a fresh set of connection budgets (one per process).
    pub fn new(limits: PoolLimits) -> Self {
        let acquire_timeout = limits.acquire_timeout.max(Duration::from_secs(1));
        Self {
            sqlite_max_connections: limits.sqlite_max_connections.max(1),
            postgres_max_connections: limits.postgres_max_connections.max(1),
            acquire_timeout,
            sqlite_busy_timeout: limits.sqlite_busy_timeout,
            idle_timeout: Duration::from_secs(60),
            budgets: Budgets::new(
                usize::try_from(limits.postgres_connections_per_server).unwrap_or(usize::MAX),
                limits.postgres_idle,
                acquire_timeout,
            ),
        }
    }
}

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

    pub(super) async fn connect_with(
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
}
