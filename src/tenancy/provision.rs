//! Provisioning: create a tenant's database, migrate it, optionally add its first user, and
//! register it — the registry file is written last, so the server never sees a tenant whose
//! database is not ready, and any failure undoes what was made.

use std::time::Duration;

use serde_json::json;

use super::{
    Source,
    file::{self, FileError, Incarnation, SecurityOverrides, TenantFile},
};
use crate::{
    config::{DatabaseSettings, RegistryKind, Settings, sqlite_url},
    domain::{
        Email, FullName, Invalid, Permissions, Role, Roles, TenantId, Username,
        icsr::{self, Age, CaseFields, CaseStatus, Patient, Reaction, Seriousness, Sex},
    },
    store::{
        self, DatabaseUrl, PoolLimits, PoolSettings, Provisioned, Store, StoreError,
        audit::{AuditType, NewAuditEvent},
        users::NewUser,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("tenant {0} already exists")]
    Exists(TenantId),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    File(FileError),
}

impl From<FileError> for ProvisionError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::Exists(id) => Self::Exists(id),
            other => Self::File(other),
        }
    }
}

/// What to provision.
#[derive(Debug)]
pub struct NewTenant {
    pub id: TenantId,
    /// `None`: a SQLite file under `<data_dir>/tenants/`.
    pub database_url: Option<String>,
    /// `None`: the ID.
    pub name: Option<String>,
    /// Created in the new database before the tenant is registered.
    pub first_user: Option<NewUser>,
    /// Who provisions, for the tenant's audit trail: `cli`, `api`, `demo`.
    pub via: &'static str,
}

/// Provisions `new` and returns its registry entry. On any failure nothing is left behind: a
/// database made here is dropped again and no file is written.
pub async fn create_tenant(
    settings: &Settings,
    pools: &PoolSettings,
    source: &Source,
    new: NewTenant,
) -> Result<TenantFile, ProvisionError> {
    if source.exists(&new.id).await? {
        return Err(ProvisionError::Exists(new.id));
    }
    let raw_url = new
        .database_url
        .unwrap_or_else(|| default_database_url(settings, &new.id));
    let url = DatabaseUrl::parse(&raw_url).map_err(|e| ProvisionError::Invalid(e.to_string()))?;
    let entry = TenantFile {
        database_url: raw_url,
        name: new.name.unwrap_or_else(|| new.id.to_string()),
        active: true,
        security: SecurityOverrides::default(),
        roles: Default::default(),
        incarnation: Some(Incarnation::random()),
    };
    let (store, provisioned) = store::create_database(&url, pools).await?;
    let mut provisioning = NewAuditEvent::by_operator(AuditType::TenantProvisioned, new.via);
    provisioning.details = json!({
        "via": new.via,
        "tenant": new.id.as_str(),
        "name": entry.name,
        "database": url.to_string(),
        "incarnation": entry.incarnation.map(|i| i.to_string()),
    });
    let mut outcome = store
        .record_audit(&provisioning)
        .await
        .map_err(ProvisionError::from);
    if let (Ok(()), Some(user)) = (&outcome, &new.first_user) {
        outcome = store
            .create_user(
                user,
                &NewAuditEvent::by_operator(AuditType::UserCreated, new.via),
            )
            .await
            .map(drop)
            .map_err(ProvisionError::from);
    }
    store.close().await;
    if outcome.is_ok() {
        outcome = source
            .register(&new.id, &entry)
            .await
            .map_err(ProvisionError::from);
    }
    if let Err(e) = outcome {
        if provisioned == Provisioned::Created {
            store::drop_database(&url, pools).await;
        }
        return Err(e);
    }
    Ok(entry)
}

/// Where a tenant's database goes when the operator names none: with a shared registry over a
/// Postgres legacy database, a database `vigia_<id>` on that same server (every replica can
/// reach it); otherwise a SQLite file under `data_dir`.
fn default_database_url(settings: &Settings, id: &TenantId) -> String {
    let sqlite = || sqlite_url(&settings.tenant_sqlite_dir().join(format!("{id}.db")));
    if settings.tenants.registry != RegistryKind::Database {
        return sqlite();
    }
    let legacy = settings.legacy_database_url();
    let legacy = secrecy::ExposeSecret::expose_secret(&legacy);
    let Some(rest) = legacy
        .strip_prefix("postgres://")
        .or_else(|| legacy.strip_prefix("postgresql://"))
    else {
        return sqlite();
    };
    // postgres://user:pw@host:5432/legacy?opts -> postgres://user:pw@host:5432/vigia_<id>?opts
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let query = path
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!(
        "postgres://{authority}/vigia_{}{query}",
        id.as_str().replace('-', "_")
    )
}

/// Opens a database, creating a missing SQLite file first (the legacy database's default
/// lives under `data_dir` and is made on first start).
pub async fn open_or_create(url: &DatabaseUrl, pools: &PoolSettings) -> Result<Store, StoreError> {
    match Store::open(url, pools).await {
        Ok(store) => Ok(store),
        Err(_) if url.backend() == store::Backend::Sqlite => store::create_database(url, pools)
            .await
            .map(|(store, _)| store),
        Err(e) => Err(e),
    }
}

/// The store's pool settings from the configuration's `[database]` section, made where the
/// settings meet the store (the store knows nothing of the configuration, nor it of the store):
/// `PoolSettings::from(&settings.database)`.
impl From<&DatabaseSettings> for PoolSettings {
    fn from(s: &DatabaseSettings) -> Self {
        PoolSettings::new(PoolLimits {
            sqlite_max_connections: s.sqlite_max_connections,
            postgres_max_connections: s.postgres_max_connections,
            postgres_connections_per_server: s.postgres_connections_per_server,
            postgres_idle: Duration::from_secs(s.postgres_idle_seconds),
            acquire_timeout: Duration::from_secs(s.acquire_timeout_seconds),
            sqlite_busy_timeout: Duration::from_millis(s.sqlite_busy_timeout_millis),
        })
    }
}

/// The demo tenant of a first development start.
pub const DEMO_TENANT: &str = "acme-pharma";
/// The API document's example user's password.
pub const DEMO_PASSWORD: &str = "SecurePass123";

/// The API document's example user (`juan.perez`), with an already hashed password.
pub fn demo_user(password_hash: String) -> Result<NewUser, Invalid> {
    Ok(NewUser {
        username: Username::parse("juan.perez")?,
        email: Email::parse("juan.perez@example.com")?,
        full_name: Some(FullName::parse("Juan Pérez García")?),
        password_hash,
        is_active: true,
        empleado_id: Some(456),
        permissions: Permissions::parse(json!({
            "icsr": {"view": true, "edit": true, "delete": true},
            "reports": {"view": true, "generate": true}
        }))?,
        roles: Roles::new(vec![Role::parse("admin")?, Role::parse("qf")?])?,
    })
}

/// The demo tenant's sample cases, so `GET /api/v1/icsrs` shows something on a first run.
pub fn demo_cases() -> Result<Vec<CaseFields>, Invalid> {
    let received = |d: &str| icsr::parse_receipt_date(d);
    Ok(vec![
        CaseFields {
            safety_report_id: "ES-ACME-2026-000001".into(),
            receipt_date: received("2026-01-12")?,
            seriousness_criteria: vec![Seriousness::Hospitalisation],
            patient: Patient::new(
                Some("MLR"),
                Some(Age::parse(67, "year")?),
                Some(Sex::Female),
            )?,
            suspect_product: "Amoxicillin 500 mg capsules".into(),
            reactions: vec![Reaction::new("Anaphylactic reaction", Some(10002198))?],
            narrative: "A 67-year-old woman developed an anaphylactic reaction 20 minutes after \
                        the first dose; treated with epinephrine and admitted overnight."
                .into(),
            status: CaseStatus::InReview,
        },
        CaseFields {
            safety_report_id: "ES-ACME-2026-000002".into(),
            receipt_date: received("2026-02-03")?,
            seriousness_criteria: vec![],
            patient: Patient::new(Some("JPG"), Some(Age::parse(34, "year")?), Some(Sex::Male))?,
            suspect_product: "Ibuprofen 600 mg tablets".into(),
            reactions: vec![Reaction::new("Dyspepsia", Some(10013946))?],
            narrative: "Mild dyspepsia on the second day of treatment; resolved on stopping."
                .into(),
            status: CaseStatus::Draft,
        },
    ])
}

/// Whether this is a first development start: no tenant registered and nothing under
/// `data_dir` yet, with the registry in files (a shared registry is never seeded). Must be
/// asked before anything writes to `data_dir`.
pub fn is_first_start(settings: &Settings) -> bool {
    if settings.tenants.registry != crate::config::RegistryKind::Files {
        return false;
    }
    let data_empty = match std::fs::read_dir(&settings.data_dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => true,
    };
    data_empty && file::is_empty(&settings.tenants.dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_overrides(pairs).expect("settings")
    }

    #[test]
    fn a_shared_registry_on_postgres_puts_new_tenants_on_the_same_server() {
        let id = TenantId::parse("globex-pharma").expect("valid");
        let shared = settings(&[
            ("tenants.registry", "database"),
            (
                "legacy.database_url",
                "postgres://vigia:pw@db:5432/vigia?sslmode=require",
            ),
        ]);
        assert_eq!(
            default_database_url(&shared, &id),
            "postgres://vigia:pw@db:5432/vigia_globex_pharma?sslmode=require"
        );
        let files = settings(&[("legacy.database_url", "postgres://vigia:pw@db:5432/vigia")]);
        assert!(default_database_url(&files, &id).starts_with("sqlite://"));
        let sqlite_legacy = settings(&[("tenants.registry", "database")]);
        assert!(default_database_url(&sqlite_legacy, &id).starts_with("sqlite://"));
    }
}
