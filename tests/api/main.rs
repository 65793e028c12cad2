//! Black-box tests: each starts the real server on a random port over a fresh temporary data
//! directory and talks HTTP to it. The whole suite runs on SQLite, and again on Postgres when
//! `VIGIA_TEST_POSTGRES_URL` names a server (see `helpers.rs`). A test whose service or tool is
//! not switched on by its `VIGIA_TEST_…` variable is built ignored, with the reason (`build.rs`).

mod account_authority;
mod budget;
mod cli;
mod config;
mod connections;
mod demo;
mod discovery;
mod errors;
mod helpers;
mod icsrs;
mod layers;
mod login;
mod observability;
mod operations;
mod passwords;
#[path = "../support/pg_cluster.rs"]
mod pg_cluster;
mod pgbouncer;
mod replicas;
mod resource_server;
mod scale;
mod security;
mod seed_client;
mod service_clients;
mod sessions;
mod shared_state;
mod spec;
mod swagger_ui;
mod tenancy;
mod tokens;
mod users;
