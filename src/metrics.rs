//! Prometheus metrics, served as text at `GET /metrics`. One [`Metrics`] per server (not a
//! global), so several servers in one test process never mix their counts.
//!
//! Labels are bounded: routes are poem-openapi operation IDs (or a fixed name for the few other
//! routes), never raw paths; tenants appear only on login counters.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

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
struct TenantLabels {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    logins: Family<LoginLabels, Counter>,
    lockouts: Family<TenantLabels, Counter>,
    pools: Gauge,
    hashing_queue: Gauge,
}

/// What [`Metrics::encode`] reads at scrape time.
pub struct Snapshot {
    pub open_tenant_pools: u64,
    pub hashing_queue_depth: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
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
            logins,
            lockouts,
            pools,
            hashing_queue,
        }
    }

    /// Counts one answered request.
    pub fn request(&self, route: &'static str, method: &'static str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route, method })
            .observe(seconds);
    }

    /// Counts one login attempt's outcome (`succeeded`, `bad_credentials`, `locked`, …).
    pub fn login(&self, tenant: &str, outcome: &'static str) {
        self.logins
            .get_or_create(&LoginLabels {
                tenant: tenant.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Counts one account lock.
    pub fn lockout(&self, tenant: &str) {
        self.lockouts
            .get_or_create(&TenantLabels {
                tenant: tenant.to_owned(),
            })
            .inc();
    }

    /// The text exposition format, with the gauges set from `snapshot`.
    pub fn encode(&self, snapshot: Snapshot) -> String {
        self.pools
            .set(i64::try_from(snapshot.open_tenant_pools).unwrap_or(i64::MAX));
        self.hashing_queue
            .set(i64::try_from(snapshot.hashing_queue_depth).unwrap_or(i64::MAX));
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("BUG: writing to a String cannot fail");
        text
    }
}
