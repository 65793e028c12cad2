//! The `vigia` command line. Every command reads the same configuration as the server
//! (`--config FILE`, else `./vigia.toml` when present, then `VIGIA__…` variables). Failures
//! print one line on stderr and exit non-zero, having changed nothing.

mod client;

use std::{
    io::{BufRead, Write},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::{
    api,
    auth::password::Hasher,
    config::{Loaded, Settings},
    domain::{Email, FullName, Password, Permissions, Role, Roles, Scope, TenantId, Username},
    startup::Application,
    store::{
        DatabaseUrl, PoolSettings, Store,
        audit::{AuditType, NewAuditEvent},
        users::NewUser,
    },
    telemetry,
    tenancy::{
        Source,
        provision::{self, NewTenant},
    },
};

/// Vigia identity core: the multi-tenant authentication server of the Vigia
/// pharmacovigilance platform.
#[derive(Debug, Parser)]
#[command(name = "vigia", version, propagate_version = true)]
struct Cli {
    /// Configuration file [default: ./vigia.toml when it exists]. Environment variables
    /// VIGIA__SECTION__KEY (e.g. VIGIA__SERVER__LISTEN) override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (in development, a first start creates the demo tenant
    /// acme-pharma with user juan.perez / SecurePass123).
    Serve,
    /// Register tenants and create their databases.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage service clients (OAuth2 client credentials) of a tenant.
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Apply pending migrations to the legacy database and every registered tenant.
    Migrate,
    /// Print the OpenAPI 3 document (JSON) to stdout.
    Openapi,
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration: every key, one per line, in declaration order, as
    /// `key = value  # origin`, where origin is `default`, `file <FILE>` or `env <VARIABLE>`
    /// (the last source that set it: defaults, then the file, then VIGIA__ variables). The
    /// output is TOML, stable for diffs, to keep as validation evidence. Secrets (jwt.secret,
    /// admin.token, metrics.token, any key named like a secret, passwords in the database and
    /// Redis URLs) print as "<redacted>", never their values. It refuses exactly what `serve`
    /// refuses (an unknown key, a malformed value, a failed check), so what it prints is what
    /// a server started with the same file and environment runs with. It opens no database.
    Show,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant: its database (a SQLite file under data_dir, or CREATE DATABASE on
    /// the Postgres server a postgres:// URL names), migrated, then its registry entry
    /// tenants/<ID>.toml. A running server serves it at once.
    Create {
        /// Tenant ID: a lowercase DNS label (a-z, 0-9, '-'; at most 63 characters).
        id: String,
        /// Where the tenant's data lives [default: sqlite://<data_dir>/tenants/<ID>.db].
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
        /// Display name [default: the ID].
        #[arg(long)]
        name: Option<String>,
    },
    /// List registered tenants: one line per tenant with id, backend and active flag.
    List,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user. The password is read from stdin (one line), e.g.
    /// `echo 'SecurePass123' | vigia user create --tenant acme-pharma --username ana
    /// --email ana@example.com --role qf --password-stdin`.
    Create(UserCreate),
}

#[derive(Debug, Args)]
struct UserCreate {
    /// Tenant ID [default: the legacy shared database].
    #[arg(long)]
    tenant: Option<String>,
    /// Login name: letters, digits, '.', '_' and '-' (unique, case-insensitively).
    #[arg(long)]
    username: String,
    /// E-mail address (unique, case-insensitively); also accepted at login.
    #[arg(long)]
    email: String,
    /// Display name.
    #[arg(long)]
    full_name: Option<String>,
    /// A role, e.g. admin, qf; repeat in assignment order. A user without roles cannot log in.
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
    /// Employee ID in the HR module.
    #[arg(long)]
    empleado_id: Option<i64>,
    /// Create the account inactive (it cannot log in).
    #[arg(long)]
    inactive: bool,
    /// Permissions as JSON, e.g. '{"icsr": {"view": true, "edit": false}}'.
    #[arg(long, value_name = "JSON")]
    permissions: Option<String>,
    /// Read the password from stdin (required: passwords never go on the command line).
    #[arg(long, required = true)]
    password_stdin: bool,
}

/// Runs the command line; the process exit code.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigia: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Openapi = cli.command {
        println!("{}", api::spec_json());
        return Ok(());
    }
    if let Command::Config(ConfigCommand::Show) = cli.command {
        let shown = Loaded::read(cli.config.as_deref())?.show();
        std::io::stdout()
            .lock()
            .write_all(shown.as_bytes())
            .context("writing to stdout")?;
        return Ok(());
    }
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => serve(settings).await,
        Command::Tenant(TenantCommand::Create {
            id,
            database_url,
            name,
        }) => tenant_create(&settings, &id, database_url, name).await,
        Command::Tenant(TenantCommand::List) => tenant_list(&settings).await,
        Command::User(UserCommand::Create(args)) => user_create(&settings, args).await,
        Command::Client(command) => client::run(&settings, command).await,
        Command::Migrate => migrate(&settings).await,
        Command::Openapi | Command::Config(_) => unreachable!("handled above"),
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let _log_writer = telemetry::init(settings.environment);
    let app = Application::build(settings).await?;
    let state = app.state();
    tracing::info!(
        environment = ?state.settings.environment,
        "listening on http://{}:{} (Swagger UI at /docs)",
        state.settings.server.listen.ip(),
        app.port()
    );
    app.run_until_stopped(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(term) => term,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: draining in-flight requests");
}

async fn tenant_create(
    settings: &Settings,
    id: &str,
    database_url: Option<String>,
    name: Option<String>,
) -> anyhow::Result<()> {
    let id = TenantId::parse(id).with_context(|| format!("invalid tenant id {id:?}"))?;
    let source = Source::open(settings).await?;
    let entry = provision::create_tenant(
        settings,
        &PoolSettings::from(&settings.database),
        &source,
        NewTenant {
            id: id.clone(),
            database_url,
            name,
            first_user: None,
            via: "cli",
        },
    )
    .await?;
    let url = DatabaseUrl::parse(&entry.database_url)?;
    println!("created tenant {id} ({}, {url})", url.backend());
    Ok(())
}

async fn tenant_list(settings: &Settings) -> anyhow::Result<()> {
    for (id, entry) in Source::open(settings).await?.list().await? {
        match entry {
            Ok(entry) => {
                let backend = DatabaseUrl::parse(&entry.database_url)
                    .map(|u| u.backend().to_string())
                    .unwrap_or_else(|_| "invalid-url".into());
                println!(
                    "{id}\t{backend}\t{}",
                    if entry.active { "active" } else { "inactive" }
                );
            }
            Err(e) => println!("{id}\tbroken\t{e}"),
        }
    }
    Ok(())
}

async fn user_create(settings: &Settings, args: UserCreate) -> anyhow::Result<()> {
    let roles = args
        .roles
        .iter()
        .map(|r| Role::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    let permissions = match &args.permissions {
        None => Permissions::default(),
        Some(json) => {
            Permissions::parse(serde_json::from_str(json).context("--permissions is not JSON")?)?
        }
    };
    let store = open_scope(settings, args.tenant.as_deref()).await?;
    let password = read_password_line(std::io::stdin().lock())?;
    let user = NewUser {
        username: Username::parse(&args.username)?,
        email: Email::parse(&args.email)?,
        full_name: args.full_name.as_deref().map(FullName::parse).transpose()?,
        password_hash: Hasher::new(&settings.argon2)?
            .hash(&Scope::Legacy, password)
            .await?,
        is_active: !args.inactive,
        empleado_id: args.empleado_id,
        permissions,
        roles: Roles::new(roles)?,
    };
    let created = store
        .create_user(
            &user,
            &NewAuditEvent::by_operator(AuditType::UserCreated, "cli"),
        )
        .await;
    store.close().await;
    let id = created?;
    let scope = args.tenant.as_deref().unwrap_or("legacy");
    println!("created user {id} ({}) in {scope}", user.username.as_str());
    Ok(())
}

/// Opens the database of `tenant`, or the legacy one.
async fn open_scope(settings: &Settings, tenant: Option<&str>) -> anyhow::Result<Store> {
    let pools = PoolSettings::from(&settings.database);
    let store = match tenant {
        None => {
            let url = DatabaseUrl::parse(settings.legacy_database_url().expose_secret())?;
            provision::open_or_create(&url, &pools).await?
        }
        Some(raw) => {
            let id = TenantId::parse(raw).with_context(|| format!("invalid tenant id {raw:?}"))?;
            let (entry, _) = Source::open(settings)
                .await?
                .read(&id)
                .await
                .map_err(|e| anyhow::anyhow!("tenant {id}: {e}"))?;
            Store::open(&DatabaseUrl::parse(&entry.database_url)?, &pools).await?
        }
    };
    Ok(store)
}

fn read_password_line(input: impl BufRead) -> anyhow::Result<Password> {
    let Some(line) = input.lines().next() else {
        bail!("--password-stdin: nothing on stdin");
    };
    let line = line.context("reading the password from stdin")?;
    Ok(Password::parse(
        line.trim_end_matches('\r').to_owned(),
        "password",
    )?)
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let mut failures = 0;
    let pools = PoolSettings::from(&settings.database);
    let legacy = open_scope(settings, None)
        .await
        .context("legacy database")?;
    legacy.close().await;
    println!("migrated legacy");
    for (id, entry) in Source::open(settings).await?.list().await? {
        let outcome = async {
            let entry = entry?;
            let store = Store::open(&DatabaseUrl::parse(&entry.database_url)?, &pools).await?;
            store.close().await;
            anyhow::Ok(())
        }
        .await;
        match outcome {
            Ok(()) => println!("migrated {id}"),
            Err(e) => {
                failures += 1;
                eprintln!("vigia: error: tenant {id}: {}", one_line(&e));
            }
        }
    }
    if failures > 0 {
        bail!("{failures} tenant(s) could not be migrated");
    }
    Ok(())
}
