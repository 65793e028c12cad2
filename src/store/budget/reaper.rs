//! The reaper: one task per [`Budgets`], closing every second the connections idle longer
//! than `database.postgres_idle_seconds`, whatever pool holds them.

use std::sync::{Arc, Weak};

use super::{Budgets, REAP_EVERY, server::Server};

/// Closes, every second, the connections idle longer than `budgets.idle`; ends with the
/// budgets.
pub(super) async fn reap(budgets: Weak<Budgets>) {
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
