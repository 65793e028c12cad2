//! Building and running the server: [`Application::build`] binds the listener first (port 0
//! in tests) and reports the real port; [`Application::run_until_stopped`] serves until the
//! shutdown future resolves, then drains in-flight requests for the configured grace period.
//! [`connections`] is the HTTP/1.1 connection loop with its header and keep-alive deadlines.

pub mod connections;

use std::{future::Future, io::Write, path::Path, sync::Arc, time::Duration};

use anyhow::Context;

use crate::{
    accounts::Accounts,
    api::{self, AppState, rendered::BodyCache},
    auth::{
        Auth,
        identity::Identities,
        password::Hasher,
        throttle::Throttle,
        token::{TokenService, TokenSettings},
    },
    cluster::Redis,
    config::{Environment, Settings},
    domain::{Email, Password, Scope, TenantId},
    icsrs::Icsrs,
    metrics::Metrics,
    store::{
        DatabaseUrl, PoolSettings, Store,
        audit::{AuditType, NewAuditEvent},
        files::{self, DirAccess},
    },
    tenancy::{
        Registry, ServerSecret, Source,
        provision::{self, DEMO_PASSWORD, DEMO_TENANT, NewTenant},
    },
};

pub struct Application {
    listener: tokio::net::TcpListener,
    port: u16,
    state: Arc<AppState>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.check_serving()?;
        // Asked before anything below writes to data_dir.
        let first_start = settings.environment == Environment::Development
            && provision::is_first_start(&settings);
        private_data_dir(&settings)?;
        let secret = server_secret(&settings)?.signing_with(settings.jwt.algorithm);
        let hasher = Hasher::new(&settings.argon2)?;
        if first_start {
            seed_demo(&settings, &hasher).await?;
        }
        let redis = Redis::connect(&settings.redis).await?;
        let registry = Registry::new(&settings, secret, redis.clone()).await?;
        let identities = Arc::new(Identities::new(&settings, redis.clone()));
        // The legacy database is read at start (its logouts): a broken one stops the start.
        identities
            .load_revocations(registry.legacy())
            .await
            .map_err(|e| {
                let url = &registry.legacy().database_url;
                anyhow::anyhow!("reading the legacy database {url}: {e}")
            })?;
        let listener = tokio::net::TcpListener::bind(settings.server.listen)
            .await
            .with_context(|| format!("binding {}", settings.server.listen))?;
        let bound = listener.local_addr()?;
        let port = bound.port();
        let tokens = TokenService::new(TokenSettings {
            algorithm: settings.jwt.algorithm,
            ttl: settings.token_ttl(),
            leeway: Duration::from_secs(settings.jwt.leeway_seconds),
            audience: settings.jwt.audience.clone(),
            public_url: settings.public_url(bound),
        });
        let metrics = Arc::new(Metrics::new(settings.metrics.per_tenant));
        let throttle = Throttle::new(
            settings.security.login_attempts_per_ip_per_minute,
            redis.clone(),
            metrics.clone(),
        );
        let accounts = Accounts::new(hasher.clone(), identities.clone());
        let auth = Auth::new(
            &settings,
            hasher,
            tokens,
            identities.clone(),
            throttle,
            metrics.clone(),
        );
        let bodies = BodyCache::new(
            settings.tenants.handle_cache_capacity,
            Duration::from_millis(settings.security.user_cache_millis),
        );
        let state = Arc::new(AppState {
            settings,
            registry,
            auth,
            accounts,
            icsrs: Icsrs::new(),
            redis,
            bodies,
            metrics,
        });
        if let Some(redis) = &state.redis {
            // Another replica's change: a tenant entry for the registry, a user or a logout for
            // the identity caches.
            // Held weakly: the subscription outlives no server.
            let (changed, identities) = (Arc::downgrade(&state), identities);
            redis
                .subscribe(move |event| {
                    let (changed, identities) = (changed.upgrade(), identities.clone());
                    async move {
                        identities.apply(&event);
                        if let Some(state) = changed {
                            state.registry.apply(&event).await;
                        }
                    }
                })
                .await
                .context("subscribing to replica events in Redis")?;
        }
        Ok(Self {
            listener,
            port,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests
    /// finish within `server.shutdown_grace_seconds`.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let server = &self.state.settings.server;
        let grace = Duration::from_secs(server.shutdown_grace_seconds);
        let deadlines = connections::Deadlines {
            header_read: Duration::from_secs(server.header_read_timeout_seconds),
            keep_alive: Duration::from_secs(server.keep_alive_timeout_seconds),
        };
        let state = self.state.clone();
        let app = api::routes(self.state);
        let outcome = connections::serve(self.listener, app, deadlines, shutdown, grace).await;
        state.registry.close().await;
        tracing::info!("stopped: in-flight requests drained, database pools closed");
        outcome
    }
}

/// Creates `data_dir` 0700, or tightens an existing one that group or others may enter (it
/// holds SQLite databases with password hashes); says so in the log, or warns when it cannot.
fn private_data_dir(settings: &Settings) -> anyhow::Result<()> {
    let dir = &settings.data_dir;
    let access = files::ensure_private_dir(dir)
        .with_context(|| format!("creating data_dir {}", dir.display()))?;
    match access {
        DirAccess::Private => {}
        DirAccess::Tightened { was } => tracing::warn!(
            data_dir = %dir.display(),
            was = %format_args!("{was:04o}"),
            "data_dir was open to other users: its mode is now 0700 (it holds password hashes)"
        ),
        DirAccess::Open { mode, error } => tracing::warn!(
            data_dir = %dir.display(),
            mode = %format_args!("{mode:04o}"),
            error = %error,
            "data_dir is open to other users and could not be made 0700: make it private to \
             the service's user (files Vigia creates in it are 0600 regardless)"
        ),
    }
    Ok(())
}

/// The server secret: `jwt.secret`, or in development a random one generated on first start
/// and kept in `<data_dir>/jwt-secret` (mode 0600).
fn server_secret(settings: &Settings) -> anyhow::Result<ServerSecret> {
    if let Some(secrets) = &settings.jwt.secret {
        return Ok(ServerSecret::rotating(secrets.list()));
    }
    anyhow::ensure!(
        settings.environment == Environment::Development,
        "jwt.secret is required outside development"
    );
    let path = settings.data_dir.join("jwt-secret");
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 32 => {
            return Ok(ServerSecret::new(text.trim().as_bytes().to_vec()));
        }
        Ok(_) => anyhow::bail!(
            "{} holds less than 32 bytes; remove it to generate a new one",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let secret: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    write_private(&path, &secret)?;
    tracing::info!(path = %path.display(), "generated a development JWT secret");
    Ok(ServerSecret::new(secret.into_bytes()))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// The API document's example, so its curl and Python examples work on a first run.
async fn seed_demo(settings: &Settings, hasher: &Hasher) -> anyhow::Result<()> {
    let password = Password::parse(DEMO_PASSWORD.into(), "password")?;
    let user = provision::demo_user(hasher.hash(&Scope::Legacy, password).await?)?;
    let tenant = NewTenant {
        id: TenantId::parse(DEMO_TENANT)?,
        database_url: None,
        name: Some("ACME Pharma (demo)".into()),
        first_user: Some(user),
        via: "demo",
    };
    let source = Source::Files(settings.tenants.dir.clone());
    let pools = PoolSettings::from(&settings.database);
    let entry = provision::create_tenant(settings, &pools, &source, tenant).await?;
    let url = DatabaseUrl::parse(&entry.database_url)?;
    let store = Store::open(&url, &pools).await?;
    let juan = store
        .user_by_email(&Email::parse("juan.perez@example.com")?)
        .await?
        .context("the demo user was just created")?;
    for case in provision::demo_cases()? {
        store
            .create_icsr(&case, juan.id, |icsr| NewAuditEvent {
                resource: Some(format!("icsr:{}", icsr.id)),
                ..NewAuditEvent::by_operator(AuditType::IcsrCreated, "demo")
            })
            .await?;
    }
    store.close().await;
    tracing::info!(
        tenant = DEMO_TENANT,
        username = "juan.perez",
        "first development start: created demo tenant acme-pharma with user juan.perez \
         (juan.perez@example.com, password SecurePass123)"
    );
    Ok(())
}
