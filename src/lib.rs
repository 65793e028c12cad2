//! Vigia identity core: the multi-tenant authentication server of the Vigia pharmacovigilance
//! platform. Every other Vigia module trusts the tokens issued here.
//!
//! The layers, from the edge inwards; an arrow is "may import", and none points back up
//! (`tests/api/layers.rs` fails on one that does):
//!
//! ```text
//!   cli, startup ──► api ──► accounts, icsrs ──► auth ──► error ──► tenancy ──► store ──► domain
//!   (poem only in cli, startup and api)
//!   beside them, for every layer that needs them: config → domain; cluster (Redis) → config;
//!   metrics → store; telemetry → config
//! ```
//!
//! - [`cli`]: the `vigia` command line (serve, tenant, user, migrate, openapi, config show).
//! - [`startup`]: [`startup::Application`] builds the services, binds first, then serves until
//!   told to stop; [`startup::connections`] is the HTTP/1.1 connection loop with its header
//!   and keep-alive deadlines.
//! - [`api`]: the poem-openapi handlers, the bearer security scheme, the `X-Tenant` header, each
//!   tenant as an OpenID Connect issuer (discovery, JWKS, token endpoint), the spec, and the one
//!   mapping of errors to HTTP ([`api::error`]).
//! - The services, peers with one shape (a struct built once, methods taking the caller's
//!   [`auth::Principal`]): [`auth`] (log in, check a token, change one's password, log out;
//!   argon2id on a bounded pool shared fairly between tenants, tokens with `iss` and `aud`, the
//!   identity caches and throttling), [`accounts`] (account administration, password reset,
//!   the audit trail) and [`icsrs`] (cases: permission checks, optimistic concurrency,
//!   audited writes). They return [`error::Error`].
//! - [`tenancy`]: the registry that maps a [`domain::Scope`] (legacy or a tenant) to its
//!   handle — keys (per-scope Ed25519 pairs or HMAC keys derived from the secret), policy, role
//!   grants and pool — with bounded caches; provisioning and the development demo.
//! - [`store`]: `Store` over SQLite or Postgres pools (Postgres connections within one budget
//!   per database server, `store::budget`); one module per aggregate; migrations. Rows become
//!   domain values here and nowhere else.
//! - [`domain`]: values parsed once at the boundary (`TenantId`, `Email`, the `User`, role
//!   grants and permissions, audit records, ICSR fields); nothing in it knows HTTP or SQL.
//! - [`config`]: layered settings (`vigia.toml`, then `VIGIA__SECTION__KEY`); unknown keys
//!   refused; where each value came from; secrets redacted. [`cluster`]: the replicas' shared
//!   state in Redis. [`telemetry`]: the log line format, the access line, the batched writer;
//!   [`metrics`]: the Prometheus registry.

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
