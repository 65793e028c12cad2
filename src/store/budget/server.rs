//! One database server's budget: its permits, the callers waiting for one, and the reclaiming
//! of another pool's idle connection when the budget is spent ([`Server::room`]).

use std::{
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::{LOG_EVERY, RECLAIM_GRACE, ServerUsage, StoreError, lease::Budgeted, pool::PoolInner};

/// One database server's budget and the pools that draw on it.
pub(super) struct Server {
    pub(super) label: String,
    pub(super) limit: usize,
    /// One per connection this process may hold open to the server.
    pub(super) permits: Arc<Semaphore>,
    pub(super) in_use: AtomicUsize,
    /// Callers waiting in [`Server::room`]: a returned connection wakes them only then.
    pub(super) waiting: AtomicUsize,
    /// Idle connections closed for waiters whose permits have not come back yet (the close
    /// runs in the background). A waiter closes another pool's idle connection only while
    /// these are fewer than the waiters, so one permit wanted closes one connection, however
    /// often its waiter wakes meanwhile.
    pub(super) reclaiming: Arc<AtomicUsize>,
    /// Signalled when a connection goes back to its pool, idle (another pool may take it).
    pub(super) returned: Notify,
    pub(super) pools: Mutex<Vec<Weak<PoolInner>>>,
    pub(super) wait: Duration,
    pub(super) refused: AtomicU64,
    pub(super) reclaimed: AtomicU64,
    pub(super) last_warning: Mutex<Option<Instant>>,
}

impl Server {
    pub(super) fn usage(&self) -> ServerUsage {
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
    pub(super) fn live_pools(&self) -> Vec<Arc<PoolInner>> {
        let mut pools = self.pools.lock().expect("BUG: budget lock poisoned");
        pools.retain(|pool| pool.strong_count() > 0);
        pools.iter().filter_map(Weak::upgrade).collect()
    }

    /// Room for one more connection of `own` (a pool, or none for a maintenance connection):
    /// a free permit; else one of the pool's own connections come back idle meanwhile (reused
    /// as it is); else, for a pool with no connection open or after [`RECLAIM_GRACE`], a
    /// permit freed by closing the idle connection of the least recently used pool; else
    /// whichever comes first within `wait`.
    pub(super) async fn room(&self, own: Option<&PoolInner>) -> Result<Room, StoreError> {
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

    pub(super) fn returned(&self) {
        self.in_use.fetch_sub(1, Ordering::Relaxed);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.returned.notify_waiters();
        }
    }
}

/// Counts a reclaimed connection in [`Server::reclaiming`] until its permit is released.
pub(super) struct Reclaim(pub(super) Arc<AtomicUsize>);

impl Drop for Reclaim {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What [`Server::room`] found.
pub(super) enum Room {
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
