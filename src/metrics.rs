//! Prometheus metrics, served as text at `GET /metrics`. One [`Metrics`] per server (not a
//! global), so several servers in one test process never mix their counts.
//!
//! Labels are bounded: routes are poem-openapi operation IDs (or a fixed name for the few other
//! routes), never raw paths. No tenant ID appears in any series by default: the IDs name the
//! customers to whoever can scrape, and a series per tenant grows without bound with the
//! customer base. `metrics.per_tenant` labels the login and lockout counters by tenant for a
//! deployment that wants it (and whose Prometheus can hold a series per tenant).

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::domain::Scope;

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

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    logins: Logins,
    lockouts: Lockouts,
    pools: Gauge,
    hashing_queue: Gauge,
    shared_state_fallbacks: Counter,
    shared_state_degraded: Gauge,
}

/// What [`Metrics::encode`] reads at scrape time.
pub struct Snapshot {
    pub open_tenant_pools: u64,
    pub hashing_queue_depth: u64,
    /// Redis is configured and failed lately (its users fall back to in-process state).
    pub shared_state_degraded: bool,
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
            shared_state_fallbacks,
            shared_state_degraded,
        }
    }

    /// Counts one login attempt counted in-process because Redis was unreachable.
    pub fn shared_state_fallback(&self) {
        self.shared_state_fallbacks.inc();
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
        self.pools
            .set(i64::try_from(snapshot.open_tenant_pools).unwrap_or(i64::MAX));
        self.hashing_queue
            .set(i64::try_from(snapshot.hashing_queue_depth).unwrap_or(i64::MAX));
        self.shared_state_degraded
            .set(i64::from(snapshot.shared_state_degraded));
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
