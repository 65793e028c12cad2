//! Postgres connections within each database server's limit.
//!
//! A database per tenant means a pool per tenant, and one Postgres server accepts only
//! `max_connections` (100 on a stock install) from everyone. Pools that each keep their own
//! connections until they are evicted exhaust a server long before the pool cache is full,
//! and then a tenant that worked a minute ago fails because others were touched since. So:
//!
//! - Every connection this process opens to a server holds one permit of that server's
//!   budget (`database.postgres_connections_per_server`; servers are told apart
//!   by host and port, or socket directory and port), tenant pools and the legacy pool alike,
//!   and so do the maintenance connections that create and drop databases. The permit is
//!   released only after the connection has said goodbye (or failed to) and PostgreSQL has had
//!   time to count its backend out, so the server does not see more than the budget from
//!   this process.
//! - A connection idle for `database.postgres_idle_seconds` is closed (checked every second),
//!   whatever happens to the pool that holds it: a cached pool costs the server nothing while
//!   its tenant is quiet.
//! - A pool that needs a connection while the budget is spent closes the idle connection of
//!   the server's least recently used pool and takes its permit. Only when every connection
//!   of the server is busy does a request wait, at most `database.acquire_timeout_seconds`,
//!   and then gets [`StoreError::Busy`] (503 + `Retry-After`); that is logged at most every
//!   ten seconds per server.
//!
//! The pools are deadpool pools of single sqlx connections (sqlx's own pool cannot tell when
//! it closes a connection, so it cannot account for one); SQLite keeps sqlx's pool.
//!
//! The files: this one holds [`Budgets`], the budgets of every server this process talks to;
//! [`server`] one server's accounting (permits, waiters, reclaiming idle connections);
//! [`pool`] the budgeted Postgres pool ([`PgPool`]); [`lease`] what holds a permit (a pooled
//! connection, a lease, a maintenance permit); [`reaper`] the task that closes idle connections.

mod lease;
mod pool;
mod reaper;
mod server;

#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use deadpool::managed;
use sqlx::postgres::PgConnectOptions;
use tokio::sync::{Notify, Semaphore};

pub use self::{
    lease::{Budgeted, Permit, PgLease},
    pool::PgPool,
};
use self::{
    pool::{Connector, PoolInner},
    reaper::reap,
    server::{Room, Server},
};
use super::StoreError;

/// How long a permit stays taken after its connection said goodbye: PostgreSQL counts the
/// backend until its process has exited (measured: up to ~100 ms after sqlx's `close`), and the
/// budget is what the server sees.
const EXIT_MARGIN: Duration = Duration::from_millis(250);
/// How long a goodbye to the server may take before the socket is just dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long opening one connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often idle connections are looked for.
const REAP_EVERY: Duration = Duration::from_secs(1);
/// How long a pool that has connections, all busy, waits for one of its own to come back
/// before it closes another pool's idle connection: its own usually come back within a
/// query's time, and a reconnect costs both pools more than that.
const RECLAIM_GRACE: Duration = Duration::from_millis(20);
/// At most one "budget exhausted" warning per server this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The budgets of every Postgres server this process talks to. One per process (per
/// [`PoolSettings`](crate::store::PoolSettings) made from the configuration, shared by all
/// its clones).
pub struct Budgets {
    per_server: usize,
    idle: Duration,
    wait: Duration,
    servers: Mutex<HashMap<String, Arc<Server>>>,
    /// Whether the task that closes idle connections runs (started with the first server).
    reaping: std::sync::Once,
    /// The clock of [`PoolInner::last_used`](pool::PoolInner::last_used).
    epoch: Instant,
}

impl fmt::Debug for Budgets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budgets")
            .field("per_server", &self.per_server)
            .field("idle", &self.idle)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

/// What `/metrics` shows of one server: no tenant in sight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUsage {
    /// `host:port` (or `socket-directory:port`).
    pub server: String,
    pub limit: usize,
    /// Connections handed out to a query right now.
    pub in_use: usize,
    /// Open connections not in use (and ones being opened).
    pub idle: usize,
    /// Requests that waited the whole bounded time and were refused, since start.
    pub refused: u64,
    /// Idle connections closed to make room for another pool, since start.
    pub reclaimed: u64,
}

impl Budgets {
    /// `per_server` connections per server (at least one); connections idle for `idle` are
    /// closed; a request waits at most `wait` for one.
    pub fn new(per_server: usize, idle: Duration, wait: Duration) -> Arc<Self> {
        Arc::new(Self {
            per_server: per_server.max(1),
            idle: idle.max(Duration::from_secs(1)),
            wait,
            servers: Mutex::new(HashMap::new()),
            reaping: std::sync::Once::new(),
            epoch: Instant::now(),
        })
    }

    /// The budget of the server `options` point at.
    fn server(self: &Arc<Self>, options: &PgConnectOptions) -> Arc<Server> {
        let key = match options.get_socket() {
            Some(dir) => format!("{}:{}", dir.display(), options.get_port()),
            None => format!("{}:{}", options.get_host(), options.get_port()),
        };
        self.reaping.call_once(|| {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(reap(Arc::downgrade(self)));
            }
        });
        let mut servers = self.servers.lock().expect("BUG: budget lock poisoned");
        servers
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Server {
                    label: key,
                    limit: self.per_server,
                    permits: Arc::new(Semaphore::new(self.per_server)),
                    in_use: AtomicUsize::new(0),
                    waiting: AtomicUsize::new(0),
                    reclaiming: Arc::new(AtomicUsize::new(0)),
                    returned: Notify::new(),
                    pools: Mutex::new(Vec::new()),
                    wait: self.wait,
                    refused: AtomicU64::new(0),
                    reclaimed: AtomicU64::new(0),
                    last_warning: Mutex::new(None),
                })
            })
            .clone()
    }

    /// A pool of at most `max_size` connections to the database `options` name, within its
    /// server's budget. Opens nothing yet.
    pub fn pool(self: &Arc<Self>, options: PgConnectOptions, max_size: usize) -> PgPool {
        let server = self.server(&options);
        let inner = Arc::new_cyclic(|own| {
            let manager = Connector {
                options,
                server: server.clone(),
                own: own.clone(),
            };
            let pool = managed::Pool::builder(manager)
                .max_size(max_size.max(1))
                // The most recently returned connection is reused first, so the others age
                // and are closed when traffic drops.
                .queue_mode(managed::QueueMode::Lifo)
                .runtime(deadpool::Runtime::Tokio1)
                .wait_timeout(Some(self.wait))
                .recycle_timeout(Some(CLOSE_TIMEOUT))
                .build()
                .expect("BUG: a runtime is given, so timeouts are allowed");
            PoolInner {
                pool,
                server,
                last_used: AtomicU64::new(self.now()),
                budgets: Arc::downgrade(self),
            }
        });
        inner
            .server
            .pools
            .lock()
            .expect("BUG: budget lock poisoned")
            .push(Arc::downgrade(&inner));
        PgPool(inner)
    }

    /// A permit for one connection outside any pool (to the maintenance database, to create
    /// or drop a tenant's database), waited for like a pool's.
    pub async fn permit(
        self: &Arc<Self>,
        options: &PgConnectOptions,
    ) -> Result<Permit, StoreError> {
        let server = self.server(options);
        let Room::Permit(permit) = server.room(None).await? else {
            unreachable!("BUG: only a pool gets its own connection back");
        };
        server.in_use.fetch_add(1, Ordering::Relaxed);
        Ok(Permit {
            server,
            permit: Some(permit),
        })
    }

    /// Every server's figures, sorted by server.
    pub fn usage(&self) -> Vec<ServerUsage> {
        let servers: Vec<Arc<Server>> = self
            .servers
            .lock()
            .expect("BUG: budget lock poisoned")
            .values()
            .cloned()
            .collect();
        let mut usage: Vec<ServerUsage> = servers.iter().map(|s| s.usage()).collect();
        usage.sort_by(|a, b| a.server.cmp(&b.server));
        usage
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A PostgreSQL cluster of the tests' own (shared with `tests/` and `benches/`).
#[cfg(test)]
#[path = "../../../tests/support/pg_cluster.rs"]
mod pg_cluster;
