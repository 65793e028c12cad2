//! Vigia identity core: the multi-tenant authentication server of the Vigia pharmacovigilance
//! platform. Every other Vigia module trusts the tokens issued here.
//!
//! A guided tour, from the edge inwards (arrows point one way: `api` → `auth`, `tenancy` →
//! `store` → `domain`):
//!
//! - [`cli`]: the `vigia` command line (serve, tenant, user, migrate, openapi, config show).
//! - [`config`]: layered settings (`vigia.toml`, then `VIGIA__SECTION__KEY`); unknown keys
//!   refused; where each value came from; secrets redacted.
//! - [`startup`]: [`startup::Application`] binds first, then serves until told to stop;
//!   [`startup::connections`] is the HTTP/1.1 connection loop with its header and keep-alive
//!   deadlines.
//! - [`api`]: the poem-openapi handlers, the bearer security scheme and the spec.
//! - [`error`]: the one error type and its single mapping to HTTP `{"detail": …}` responses.
//! - [`auth`]: argon2id hashing on a bounded pool shared fairly between tenants, per-tenant
//!   HS256 keys, token issue/verify,
//!   the authenticated principal, permissions (role grants merged with user overrides) and
//!   account administration.
//! - [`icsrs`]: the ICSR flows: permission checks, optimistic concurrency, audited writes.
//! - [`tenancy`]: the registry that maps a [`tenancy::Scope`] (legacy or a tenant) to its
//!   database and keys, with bounded caches; provisioning and the development demo.
//! - [`store`]: `Store` over SQLite or Postgres pools (Postgres connections within one budget
//!   per database server, `store::budget`); one module per aggregate; migrations.
//! - [`domain`]: identifiers and values parsed once at the boundary (`TenantId`, `Email`, …).
//! - [`telemetry`]: tracing subscriber set-up; [`metrics`]: the Prometheus registry.

pub mod accounts;
pub mod api;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod error;
pub mod icsrs;
pub mod metrics;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tenancy;
