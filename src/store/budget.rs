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

use std::{
    collections::HashMap,
    fmt,
    ops::{Deref, DerefMut},
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleError, RecycleResult};
use sqlx::{Connection, postgres::PgConnectOptions, postgres::PgConnection};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError};

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
/// [`super::PoolSettings`] made from the configuration, shared by all its clones).
pub struct Budgets {
    per_server: usize,
    idle: Duration,
    wait: Duration,
    servers: Mutex<HashMap<String, Arc<Server>>>,
    /// Whether the task that closes idle connections runs (started with the first server).
    reaping: std::sync::Once,
    /// The clock of [`PoolInner::last_used`].
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

/// Closes, every second, the connections idle longer than `budgets.idle`; ends with the
/// budgets.
async fn reap(budgets: Weak<Budgets>) {
    let mut tick = tokio::time::interval(REAP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(budgets) = budgets.upgrade() else {
            return;
        };
        let servers: Vec<Arc<Server>> = budgets
            .servers
            .lock()
            .expect("BUG: budget lock poisoned")
            .values()
            .cloned()
            .collect();
        for server in servers {
            for pool in server.live_pools() {
                drop(
                    pool.pool
                        .retain(|_, metrics| metrics.last_used() < budgets.idle)
                        .removed,
                );
            }
        }
    }
}

/// A permit for one connection outside the pools, counted in use while held.
pub struct Permit {
    server: Arc<Server>,
    permit: Option<OwnedSemaphorePermit>,
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

/// One database server's budget and the pools that draw on it.
struct Server {
    label: String,
    limit: usize,
    /// One per connection this process may hold open to the server.
    permits: Arc<Semaphore>,
    in_use: AtomicUsize,
    /// Callers waiting in [`Server::room`]: a returned connection wakes them only then.
    waiting: AtomicUsize,
    /// Idle connections closed for waiters whose permits have not come back yet (the close
    /// runs in the background). A waiter closes another pool's idle connection only while
    /// these are fewer than the waiters, so one permit wanted closes one connection, however
    /// often its waiter wakes meanwhile.
    reclaiming: Arc<AtomicUsize>,
    /// Signalled when a connection goes back to its pool, idle (another pool may take it).
    returned: Notify,
    pools: Mutex<Vec<Weak<PoolInner>>>,
    wait: Duration,
    refused: AtomicU64,
    reclaimed: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
}

impl Server {
    fn usage(&self) -> ServerUsage {
        let open = self.limit - self.permits.available_permits().min(self.limit);
        let in_use = self.in_use.load(Ordering::Relaxed).min(open);
        ServerUsage {
            server: self.label.clone(),
            limit: self.limit,
            in_use,
            idle: open - in_use,
            refused: self.refused.load(Ordering::Relaxed),
            reclaimed: self.reclaimed.load(Ordering::Relaxed),
        }
    }

    /// The pools still alive (dropping the others from the list).
    fn live_pools(&self) -> Vec<Arc<PoolInner>> {
        let mut pools = self.pools.lock().expect("BUG: budget lock poisoned");
        pools.retain(|pool| pool.strong_count() > 0);
        pools.iter().filter_map(Weak::upgrade).collect()
    }

    /// Room for one more connection of `own` (a pool, or none for a maintenance connection):
    /// a free permit; else one of the pool's own connections come back idle meanwhile (reused
    /// as it is); else, for a pool with no connection open or after [`RECLAIM_GRACE`], a
    /// permit freed by closing the idle connection of the least recently used pool; else
    /// whichever comes first within `wait`.
    async fn room(&self, own: Option<&PoolInner>) -> Result<Room, StoreError> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => return Ok(Room::Permit(permit)),
            Err(TryAcquireError::Closed) => {
                unreachable!("BUG: a server's semaphore is never closed")
            }
            Err(TryAcquireError::NoPermits) => {}
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        let now = tokio::time::Instant::now();
        let deadline = now + self.wait;
        // A pool whose every connection is busy waits a little for one of them; a cold pool
        // (or a maintenance connection) takes another pool's idle connection at once.
        let grace = match own {
            Some(pool) if pool.pool.status().size > 0 => (now + RECLAIM_GRACE).min(deadline),
            _ => now,
        };
        loop {
            // Registered before looking, so a connection returned after the look wakes us.
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Ok(permit) = self.permits.clone().try_acquire_owned() {
                return Ok(Room::Permit(permit));
            }
            if let Some(conn) = own.and_then(PoolInner::take_idle) {
                return Ok(Room::Own(conn));
            }
            let now = tokio::time::Instant::now();
            if now >= grace
                && self.reclaiming.load(Ordering::SeqCst) < self.waiting.load(Ordering::SeqCst)
                && self.reclaim_idle()
            {
                self.reclaimed.fetch_add(1, Ordering::Relaxed);
            }
            let wake = if now < grace { grace } else { deadline };
            tokio::select! {
                permit = self.permits.clone().acquire_owned() => {
                    return Ok(Room::Permit(
                        permit.expect("BUG: a server's semaphore is never closed"),
                    ));
                }
                () = &mut returned => {}
                () = tokio::time::sleep_until(wake) => {
                    if wake < deadline {
                        continue;
                    }
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    self.warn_exhausted();
                    return Err(StoreError::Busy(format!(
                        "every connection to database server {} is busy",
                        self.label
                    )));
                }
            }
        }
    }

    /// Closes one idle connection of the least recently used pool that has one; whether it
    /// found one. The permit comes back once the connection has closed; until then the
    /// connection counts in [`Server::reclaiming`].
    fn reclaim_idle(&self) -> bool {
        let mut pools = self.live_pools();
        pools.sort_by_key(|pool| pool.last_used.load(Ordering::Relaxed));
        for pool in pools {
            if let Some(mut conn) = pool.take_idle() {
                self.reclaiming.fetch_add(1, Ordering::SeqCst);
                conn.reclaim = Some(Reclaim(self.reclaiming.clone()));
                drop(conn);
                return true;
            }
        }
        false
    }

    fn warn_exhausted(&self) {
        let mut last = self.last_warning.lock().expect("BUG: budget lock poisoned");
        if last.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        tracing::warn!(
            server = %self.label,
            budget = self.limit,
            refused_since_start = self.refused.load(Ordering::Relaxed),
            "every connection of the database server's budget is busy: requests wait, then get 503 \
             (raise database.postgres_connections_per_server if the server allows more)"
        );
    }

    fn returned(&self) {
        self.in_use.fetch_sub(1, Ordering::Relaxed);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.returned.notify_waiters();
        }
    }
}

/// Counts a reclaimed connection in [`Server::reclaiming`] until its permit is released.
struct Reclaim(Arc<AtomicUsize>);

impl Drop for Reclaim {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What [`Server::room`] found.
enum Room {
    /// A permit for a new connection.
    Permit(OwnedSemaphorePermit),
    /// One of the asking pool's own connections, idle again: reused instead of a new one.
    Own(Budgeted),
}

/// Counts a caller in [`Server::room`] for as long as it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Opens connections for one pool, each holding a permit of the server's budget.
struct Connector {
    options: PgConnectOptions,
    server: Arc<Server>,
    /// The pool this connects for (to reuse its connections that come back while it waits).
    own: Weak<PoolInner>,
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

/// An open connection and its permit; dropping it closes the connection (politely, in the
/// background) and only then releases the permit.
pub struct Budgeted {
    conn: Option<PgConnection>,
    permit: Option<OwnedSemaphorePermit>,
    /// Set when the connection is closed for a waiting pool: counted until the permit is
    /// released (declared after `permit`, so dropped after it).
    reclaim: Option<Reclaim>,
}

impl Budgeted {
    /// Closes the connection now; the permit follows after [`EXIT_MARGIN`], without making
    /// the caller (shutdown, provisioning) wait for it.
    async fn close(mut self) {
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

struct PoolInner {
    pool: managed::Pool<Connector>,
    server: Arc<Server>,
    /// When a connection was last asked for (ms of [`Budgets::now`]): the least recently
    /// used pool gives up its idle connection first.
    last_used: AtomicU64,
    budgets: Weak<Budgets>,
}

impl PoolInner {
    /// One idle connection taken out of the pool, if it has one.
    fn take_idle(&self) -> Option<Budgeted> {
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
pub struct PgPool(Arc<PoolInner>);

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

/// A connection leased from a [`PgPool`].
pub struct PgLease {
    object: Option<Object<Connector>>,
    server: Arc<Server>,
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

/// A PostgreSQL cluster of the tests' own (shared with `tests/` and `benches/`).
#[cfg(test)]
#[path = "../../tests/support/pg_cluster.rs"]
mod pg_cluster;

#[cfg(test)]
mod tests {
    use std::{future::Future, pin::Pin, str::FromStr, task::Poll};

    use super::{pg_cluster::PgCluster, *};
    use crate::store::CapturedLog;

    fn server(host_port: &str) -> PgConnectOptions {
        PgConnectOptions::from_str(&format!("postgres://u@{host_port}/db")).expect("options")
    }

    #[test]
    fn permits_are_counted_per_server_and_an_exhausted_one_is_logged_once_per_period() {
        let log = CapturedLog::default();
        let _guard = tracing::subscriber::set_default(log.subscriber());
        // Paused time: the waits below pass as soon as nothing else can run.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let budgets = Budgets::new(2, Duration::from_secs(10), Duration::from_millis(20));
            let a = server("db-a:5432");
            let held = [
                budgets.permit(&a).await.expect("first"),
                budgets.permit(&a).await.expect("second"),
            ];
            // Another server (another port of the same host) has its own budget.
            let b = budgets
                .permit(&server("db-a:5433"))
                .await
                .expect("other server");
            for _ in 0..3 {
                let refused = budgets.permit(&a).await;
                assert!(matches!(refused, Err(StoreError::Busy(_))), "{refused:?}");
            }
            let usage = budgets.usage();
            assert_eq!(usage.len(), 2);
            assert_eq!(
                (
                    usage[0].server.as_str(),
                    usage[0].limit,
                    usage[0].in_use,
                    usage[0].refused
                ),
                ("db-a:5432", 2, 2, 3)
            );
            assert_eq!(
                (usage[1].server.as_str(), usage[1].in_use),
                ("db-a:5433", 1)
            );
            drop(held);
            drop(b);
            // Counted out at once, given back once PostgreSQL has counted the backends out.
            assert_eq!(budgets.usage()[0].in_use, 0);
            tokio::time::sleep(EXIT_MARGIN).await;
            let again = budgets.permit(&a).await.expect("a permit back");
            assert_eq!((budgets.usage()[0].in_use, budgets.usage()[0].idle), (1, 0));
            drop(again);
            assert_eq!(budgets.usage()[0].in_use, 0);
        });
        let text = log.text();
        assert_eq!(
            text.matches("database server's budget is busy").count(),
            1,
            "three refusals within ten seconds, one warning: {text}"
        );
        assert!(text.contains("db-a:5432"), "{text}");
    }

    /// Polls `future` once, without yielding to the runtime's other tasks.
    async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
    }

    #[tokio::test]
    #[cfg_attr(
        not(vigia_test_postgres),
        ignore = "needs VIGIA_TEST_POSTGRES_URL (the Postgres group): PostgreSQL's server binaries (initdb, pg_ctl) for a cluster of the test's own"
    )]
    async fn a_waiting_pool_closes_one_idle_connection_of_another_however_often_it_wakes() {
        let cluster = PgCluster::start(10)
            .expect(
                "PostgreSQL's server binaries (initdb, pg_ctl) are not installed under \
                 /usr/lib/postgresql/N/bin: install them (Debian: apt-get install postgresql)",
            )
            .expect("the cluster starts");
        let options =
            PgConnectOptions::from_str(&format!("{}/postgres", cluster.url())).expect("a URL");
        let budgets = Budgets::new(2, Duration::from_secs(60), Duration::from_secs(5));
        let (first, second) = (budgets.pool(options.clone(), 5), budgets.pool(options, 5));
        // The first pool holds the whole budget: one connection busy, one idle.
        let busy = first.lease().await.expect("a connection");
        drop(first.lease().await.expect("a connection"));

        // The second pool's caller closes the idle one for its permit and waits for the
        // goodbye (a task this test does not let run yet).
        let mut waiting = Box::pin(second.lease());
        assert!(poll_once(&mut waiting).await.is_pending());
        // The busy connection comes back and wakes the caller, the first permit still away.
        drop(busy);
        assert!(poll_once(&mut waiting).await.is_pending());

        assert_eq!(
            budgets.usage()[0].reclaimed,
            1,
            "one permit wanted, one closed"
        );
        assert_eq!(
            first.0.pool.status().available,
            1,
            "the returned one stays open"
        );
        let lease = waiting.await.expect("the reclaimed permit");
        let usage = &budgets.usage()[0];
        assert_eq!((usage.in_use, usage.idle), (1, 1));
        drop(lease);
    }
}
