//! The budgeted Postgres pool: a deadpool pool of single sqlx connections whose [`Connector`]
//! opens each connection only with room in the server's budget, and [`PgPool`], the handle a
//! `Store` holds.

use std::{
    fmt,
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
};

use deadpool::managed::{self, Metrics, PoolError, RecycleError, RecycleResult};
use sqlx::{
    Connection,
    postgres::{PgConnectOptions, PgConnection},
};

use super::{
    Budgets, CONNECT_TIMEOUT, StoreError,
    lease::{Budgeted, PgLease},
    server::{Room, Server},
};

/// Opens connections for one pool, each holding a permit of the server's budget.
pub(super) struct Connector {
    pub(super) options: PgConnectOptions,
    pub(super) server: Arc<Server>,
    /// The pool this connects for (to reuse its connections that come back while it waits).
    pub(super) own: Weak<PoolInner>,
}

impl managed::Manager for Connector {
    type Type = Budgeted;
    type Error = StoreError;

    async fn create(&self) -> Result<Budgeted, StoreError> {
        let own = self.own.upgrade();
        let permit = match self.server.room(own.as_deref()).await? {
            Room::Permit(permit) => permit,
            Room::Own(conn) => return Ok(conn),
        };
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&self.options))
            .await
            .map_err(|_| StoreError::unavailable("connecting to the database timed out"))??;
        Ok(Budgeted {
            conn: Some(conn),
            permit: Some(permit),
            reclaim: None,
        })
    }

    /// Pings before handing a connection out again, as sqlx's own pool does by default
    /// (`test_before_acquire`): one round trip that keeps a broken connection (a restarted
    /// server, a dropped socket) from failing a request; a failed ping closes it.
    async fn recycle(&self, conn: &mut Budgeted, _: &Metrics) -> RecycleResult<StoreError> {
        conn.ping()
            .await
            .map_err(|e| RecycleError::Backend(e.into()))
    }
}

pub(super) struct PoolInner {
    pub(super) pool: managed::Pool<Connector>,
    pub(super) server: Arc<Server>,
    /// When a connection was last asked for (ms of [`Budgets::now`]): the least recently
    /// used pool gives up its idle connection first.
    pub(super) last_used: AtomicU64,
    pub(super) budgets: Weak<Budgets>,
}

impl PoolInner {
    /// One idle connection taken out of the pool, if it has one.
    pub(super) fn take_idle(&self) -> Option<Budgeted> {
        let mut taken = false;
        self.pool
            .retain(|_, _| std::mem::replace(&mut taken, true))
            .removed
            .into_iter()
            .next()
    }
}

/// A tenant's (or the legacy database's) Postgres pool; cheap to clone.
#[derive(Clone)]
pub struct PgPool(pub(super) Arc<PoolInner>);

impl fmt::Debug for PgPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgPool")
            .field("server", &self.0.server.label)
            .field("status", &self.0.pool.status())
            .finish()
    }
}

impl PgPool {
    /// A connection for one unit of work; back to the pool when the lease drops.
    pub async fn lease(&self) -> Result<PgLease, StoreError> {
        if let Some(budgets) = self.0.budgets.upgrade() {
            self.0.last_used.store(budgets.now(), Ordering::Relaxed);
        }
        let object = self.0.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => e,
            PoolError::Timeout(_) => StoreError::Busy(format!(
                "every connection of this database's pool is busy (server {})",
                self.0.server.label
            )),
            PoolError::Closed => StoreError::unavailable("the database pool is closed"),
            other => StoreError::unavailable(other.to_string()),
        })?;
        self.0.server.in_use.fetch_add(1, Ordering::Relaxed);
        Ok(PgLease {
            object: Some(object),
            server: self.0.server.clone(),
        })
    }

    /// Closes the idle connections now and every other one when it comes back.
    pub async fn close(&self) {
        let idle = self.0.pool.retain(|_, _| false).removed;
        self.0.pool.close();
        for conn in idle {
            conn.close().await;
        }
    }
}
