//! Switches on the test groups that need a service or tool this machine may not have. Each
//! `VIGIA_TEST_…` variable, set and not blank, turns on its `cfg` flag; the tests of a group
//! whose flag is off carry `#[ignore = "needs …"]`, so a plain `cargo test` reports them as
//! ignored with the reason instead of passing them unrun. Changing a variable rebuilds the crate
//! (the flags are compile-time), which is what makes `cargo test` notice.

/// The variable that switches each group on, and the `cfg` flag it sets.
const GROUPS: [(&str, &str); 4] = [
    // A PostgreSQL server to create test databases on (every `…::postgres` test, the connection
    // budget, PgBouncer, the replicas).
    ("VIGIA_TEST_POSTGRES_URL", "vigia_test_postgres"),
    // A Redis (login throttling in Redis, the replicas, the Redis outage).
    ("VIGIA_TEST_REDIS_URL", "vigia_test_redis"),
    // python3 with `requests` (the API document's Python client).
    ("VIGIA_TEST_PYTHON", "vigia_test_python"),
    // node, `npm ci --prefix tests/browser` and Debian's chromium (Swagger UI in a browser).
    ("VIGIA_TEST_BROWSER", "vigia_test_browser"),
];

fn main() {
    for (variable, flag) in GROUPS {
        println!("cargo::rustc-check-cfg=cfg({flag})");
        println!("cargo::rerun-if-env-changed={variable}");
        // As the tests read it: blank counts as unset.
        let on = std::env::var_os(variable)
            .is_some_and(|value| !value.to_string_lossy().trim().is_empty());
        if on {
            println!("cargo::rustc-cfg={flag}");
        }
    }
}
