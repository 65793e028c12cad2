//! Prometheus metrics, served as text at `GET /metrics`. One [`Metrics`] per server (not a
//! global), so several servers in one test process never mix their counts.
//!
//! Labels are bounded: routes are poem-openapi operation IDs (or a fixed name for the few other
//! routes), never raw paths. No tenant ID appears in any series by default: the IDs name the
//! customers to whoever can scrape, and a series per tenant grows without bound with the
//! customer base. `metrics.per_tenant` labels the login and lockout counters by tenant for a
//! deployment that wants it (and whose Prometheus can hold a series per tenant).

use std::{
    collections::HashMap,
    sync::{PoisonError, RwLock, RwLockReadGuard},
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::{domain::Scope, store::budget::ServerUsage};

/// A read lock; a panic while holding the write lock leaves a whole map (an insert is one step).
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    tenant: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

/// A Postgres server (`host:port`): a handful per deployment, never a tenant.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerStateLabels {
    server: String,
    state: &'static str,
}

/// The connection budgets of the Postgres servers, as of the last scrape.
struct DatabaseServers {
    connections: Family<ServerStateLabels, Gauge>,
    budget: Family<ServerLabels, Gauge>,
    refused: Family<ServerLabels, Counter>,
    reclaimed: Family<ServerLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Login attempts: by outcome, or with `metrics.per_tenant` by tenant and outcome.
enum Logins {
    Total(Family<OutcomeLabels, Counter>),
    PerTenant(Family<LoginLabels, Counter>),
}

/// Account locks: one counter, or with `metrics.per_tenant` one per tenant.
enum Lockouts {
    Total(Counter),
    PerTenant(Family<TenantLabels, Counter>),
}

/// A request series' key: route, method, status.
type SeriesKey = (&'static str, &'static str, u16);

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    /// The count and latency series of each route, method and status seen, looked up with
    /// one cheap hash instead of two label-set lookups under SipHash (2% of a token check).
    /// Bounded as the labels are: routes and methods are fixed names, statuses few.
    series: RwLock<HashMap<SeriesKey, (Counter, Histogram), foldhash::fast::FixedState>>,
    logins: Logins,
    lockouts: Lockouts,
    pools: Gauge,
    hashing_queue: Gauge,
    shared_state_fallbacks: Counter,
    shared_state_degraded: Gauge,
    database_servers: DatabaseServers,
    /// One scrape at a time: each sets the gauges and catches the counters up from a
    /// snapshot, which two scrapes at once would do twice.
    scrape: std::sync::Mutex<()>,
}

/// What [`Metrics::encode`] reads at scrape time.
pub struct Snapshot {
    pub open_tenant_pools: u64,
    pub hashing_queue_depth: u64,
    /// Redis is configured and failed lately (its users fall back to in-process state).
    pub shared_state_degraded: bool,
    /// Each Postgres server's connection budget and its use.
    pub database_servers: Vec<ServerUsage>,
}

impl Metrics {
    /// The registry; `per_tenant` (`metrics.per_tenant`) labels logins and lockouts by tenant.
    pub fn new(per_tenant: bool) -> Self {
        let mut registry = Registry::with_prefix("vigia");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route (operation ID), method and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer, by route and method",
            latency.clone(),
        );
        let (logins, lockouts) = if per_tenant {
            let logins = Family::<LoginLabels, Counter>::default();
            registry.register(
                "logins",
                "Login attempts by tenant (`legacy` for the shared database) and outcome",
                logins.clone(),
            );
            let lockouts = Family::<TenantLabels, Counter>::default();
            registry.register(
                "lockouts",
                "Accounts locked after repeated failed logins, by tenant",
                lockouts.clone(),
            );
            (Logins::PerTenant(logins), Lockouts::PerTenant(lockouts))
        } else {
            let logins = Family::<OutcomeLabels, Counter>::default();
            registry.register(
                "logins",
                "Login attempts by outcome, all tenants together",
                logins.clone(),
            );
            let lockouts = Counter::default();
            registry.register(
                "lockouts",
                "Accounts locked after repeated failed logins, all tenants together",
                lockouts.clone(),
            );
            (Logins::Total(logins), Lockouts::Total(lockouts))
        };
        let pools = Gauge::default();
        registry.register(
            "tenant_pools_open",
            "Tenant database pools open in this process",
            pools.clone(),
        );
        let hashing_queue = Gauge::default();
        registry.register(
            "hashing_queue_depth",
            "Password hashes admitted and not yet finished (running or queued)",
            hashing_queue.clone(),
        );
        let shared_state_fallbacks = Counter::default();
        registry.register(
            "shared_state_fallbacks",
            "Login attempts counted in this process alone because Redis was unreachable",
            shared_state_fallbacks.clone(),
        );
        let shared_state_degraded = Gauge::default();
        registry.register(
            "shared_state_degraded",
            "1 while the configured Redis is unreachable (throttling per replica), else 0",
            shared_state_degraded.clone(),
        );
        let database_servers = DatabaseServers {
            connections: Family::default(),
            budget: Family::default(),
            refused: Family::default(),
            reclaimed: Family::default(),
        };
        registry.register(
            "database_connections",
            "Connections this process holds open to each Postgres server, by state (in_use, idle)",
            database_servers.connections.clone(),
        );
        registry.register(
            "database_connection_budget",
            "Connections this process may open to each Postgres server \
             (database.postgres_connections_per_server)",
            database_servers.budget.clone(),
        );
        registry.register(
            "database_connections_refused",
            "Requests refused (503) after waiting for a connection while every connection of \
             the server's budget was busy",
            database_servers.refused.clone(),
        );
        registry.register(
            "database_connections_reclaimed",
            "Idle connections closed to give their place in the server's budget to another pool",
            database_servers.reclaimed.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "The running build (always 1)", build);
        Self {
            registry,
            requests,
            latency,
            series: RwLock::default(),
            logins,
            lockouts,
            pools,
            hashing_queue,
            shared_state_fallbacks,
            shared_state_degraded,
            database_servers,
            scrape: std::sync::Mutex::new(()),
        }
    }

    /// Counts one login attempt counted in-process because Redis was unreachable.
    pub fn shared_state_fallback(&self) {
        self.shared_state_fallbacks.inc();
    }

    /// Counts one answered request.
    pub fn request(&self, route: &'static str, method: &'static str, status: u16, seconds: f64) {
        let key = (route, method, status);
        let known = read(&self.series).get(&key).cloned();
        let (count, latency) = known.unwrap_or_else(|| {
            let series = (
                self.requests
                    .get_or_create(&RequestLabels {
                        route,
                        method,
                        status,
                    })
                    .clone(),
                self.latency
                    .get_or_create(&RouteLabels { route, method })
                    .clone(),
            );
            let mut known = self.series.write().unwrap_or_else(PoisonError::into_inner);
            known.entry(key).or_insert(series).clone()
        });
        count.inc();
        latency.observe(seconds);
    }

    /// Counts one login attempt's outcome (`succeeded`, `bad_credentials`, `locked`, …) in
    /// `scope`, a registered tenant or the legacy database.
    pub fn login(&self, scope: &Scope, outcome: &'static str) {
        match &self.logins {
            Logins::Total(family) => family.get_or_create(&OutcomeLabels { outcome }).inc(),
            Logins::PerTenant(family) => family
                .get_or_create(&LoginLabels {
                    tenant: tenant_label(scope),
                    outcome,
                })
                .inc(),
        };
    }

    /// Counts one account lock in `scope`.
    pub fn lockout(&self, scope: &Scope) {
        match &self.lockouts {
            Lockouts::Total(counter) => counter.inc(),
            Lockouts::PerTenant(family) => family
                .get_or_create(&TenantLabels {
                    tenant: tenant_label(scope),
                })
                .inc(),
        };
    }

    /// The text exposition format, with the gauges set from `snapshot`.
    pub fn encode(&self, snapshot: Snapshot) -> String {
        let _one_at_a_time = self
            .scrape
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.pools
            .set(i64::try_from(snapshot.open_tenant_pools).unwrap_or(i64::MAX));
        self.hashing_queue
            .set(i64::try_from(snapshot.hashing_queue_depth).unwrap_or(i64::MAX));
        self.shared_state_degraded
            .set(i64::from(snapshot.shared_state_degraded));
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let servers = &self.database_servers;
        for usage in snapshot.database_servers {
            for (state, n) in [("in_use", usage.in_use), ("idle", usage.idle)] {
                servers
                    .connections
                    .get_or_create(&ServerStateLabels {
                        server: usage.server.clone(),
                        state,
                    })
                    .set(gauge(n));
            }
            let server = ServerLabels {
                server: usage.server,
            };
            servers
                .budget
                .get_or_create(&server)
                .set(gauge(usage.limit));
            // The store counts since start; the counters catch up with it.
            for (counter, total) in [
                (&servers.refused, usage.refused),
                (&servers.reclaimed, usage.reclaimed),
            ] {
                let counter = counter.get_or_create(&server);
                counter.inc_by(total.saturating_sub(counter.get()));
            }
        }
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("BUG: writing to a String cannot fail");
        text
    }
}

/// A scope as a label value: the tenant ID, or `legacy`.
fn tenant_label(scope: &Scope) -> String {
    match scope {
        Scope::Legacy => "legacy".to_owned(),
        Scope::Tenant(id) => id.to_string(),
    }
}
