//! Storage: one [`Store`] per database, over a SQLite or a Postgres pool chosen by the URL.
//! SQL lives here and in `migrations/` only. Queries are runtime-checked text identical on both
//! backends (`$N` placeholders work on both); where dialects differ, both versions sit side by
//! side in the same function. Callers get typed outcomes ([`StoreError`]), never sqlx errors.
//!
//! The files: [`error`] the outcomes, [`url`] the database URL and what of it may be shown,
//! [`pool`] opening pools and migrating, [`provision`] creating and dropping whole databases,
//! [`budget`] the Postgres connections per server; then one module per aggregate.

pub mod audit;
pub mod budget;
pub mod clients;
mod error;
pub mod files;
pub mod icsrs;
pub mod name_lockouts;
mod pool;
mod provision;
pub mod registry;
pub mod revocations;
pub mod sessions;
mod url;
pub mod users;

#[cfg(test)]
mod tests;

use sqlx::{Executor, pool::PoolConnection, sqlite::SqlitePool};

use self::budget::{PgLease, PgPool};
pub use self::{
    error::StoreError,
    pool::{PoolLimits, PoolSettings, migrators},
    provision::{Provisioned, create_database, drop_database},
    url::{Backend, DatabaseUrl},
};
pub use crate::domain::url_secrets::{is_secret_parameter, masked_url};

#[cfg(test)]
pub(crate) use self::tests::CapturedLog;

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
