//! What holds a permit of a server's budget, and what counts a connection in use: a
//! maintenance connection's [`Permit`], a pooled connection ([`Budgeted`]) and the lease of one
//! ([`PgLease`]). A permit goes back only [`EXIT_MARGIN`] after its connection has closed
//! ([`release_later`]).

use std::{
    fmt,
    ops::{Deref, DerefMut},
    sync::Arc,
};

use deadpool::managed::Object;
use sqlx::{Connection, postgres::PgConnection};
use tokio::sync::OwnedSemaphorePermit;

use super::{
    CLOSE_TIMEOUT, EXIT_MARGIN,
    pool::Connector,
    server::{Reclaim, Server},
};

/// A permit for one connection outside the pools, counted in use while held.
pub struct Permit {
    pub(super) server: Arc<Server>,
    pub(super) permit: Option<OwnedSemaphorePermit>,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Permit").field(&self.server.label).finish()
    }
}

impl Drop for Permit {
    /// Counted out at once, given back after [`EXIT_MARGIN`] (the connection has just closed).
    fn drop(&mut self) {
        self.server.returned();
        release_later(self.permit.take());
    }
}

/// Drops `held` (a permit, and what counts with it) after [`EXIT_MARGIN`], in the background:
/// the caller does not wait for PostgreSQL to count the closed backend out. Without a runtime
/// left, at once.
fn release_later<T: Send + 'static>(held: T) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            tokio::time::sleep(EXIT_MARGIN).await;
            drop(held);
        });
    }
}

/// An open connection and its permit; dropping it closes the connection (politely, in the
/// background) and only then releases the permit.
pub struct Budgeted {
    pub(super) conn: Option<PgConnection>,
    pub(super) permit: Option<OwnedSemaphorePermit>,
    /// Set when the connection is closed for a waiting pool: counted until the permit is
    /// released (declared after `permit`, so dropped after it).
    pub(super) reclaim: Option<Reclaim>,
}

impl Budgeted {
    /// Closes the connection now; the permit follows after [`EXIT_MARGIN`], without making
    /// the caller (shutdown, provisioning) wait for it.
    pub(super) async fn close(mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close()).await;
        }
        release_later((self.permit.take(), self.reclaim.take()));
    }
}

impl Deref for Budgeted {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn
            .as_ref()
            .expect("BUG: a connection is taken only when dropped")
    }
}

impl DerefMut for Budgeted {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("BUG: a connection is taken only when dropped")
    }
}

impl Drop for Budgeted {
    fn drop(&mut self) {
        let (Some(conn), permit, reclaim) =
            (self.conn.take(), self.permit.take(), self.reclaim.take())
        else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close()).await;
                    release_later((permit, reclaim));
                });
            }
            // No runtime left to say goodbye on: the socket just closes.
            Err(_) => drop((conn, permit, reclaim)),
        }
    }
}

/// A connection leased from a [`PgPool`](super::PgPool).
pub struct PgLease {
    pub(super) object: Option<Object<Connector>>,
    pub(super) server: Arc<Server>,
}

impl Deref for PgLease {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.object
            .as_ref()
            .expect("BUG: a lease is emptied only when dropped")
    }
}

impl DerefMut for PgLease {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.object
            .as_mut()
            .expect("BUG: a lease is emptied only when dropped")
    }
}

impl Drop for PgLease {
    fn drop(&mut self) {
        // Back in its pool first, then announced, so a waiter that wakes finds it there.
        drop(self.object.take());
        self.server.returned();
    }
}
