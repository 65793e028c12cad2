//! The audit trail: one append-only table per scope database (triggers refuse UPDATE and
//! DELETE). Security-relevant writes insert their audit row in the same transaction as the
//! change itself, so a change is never recorded without its record, nor the reverse.

use serde_json::Value;
use sqlx::{FromRow, types::Json};

use super::{Store, StoreError, with_conn};

/// What happened. The names are stable: alerting and reports match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditType {
    LoginSucceeded,
    LoginFailed,
    AccountLocked,
    Logout,
    PasswordChanged,
    PasswordReset,
    PasswordRehashed,
    UserCreated,
    UserActivated,
    UserDeactivated,
    UserUnlocked,
    UserRolesChanged,
    UserPermissionsChanged,
    AccountChangeRefused,
    TokenRefused,
    IcsrCreated,
    IcsrUpdated,
    IcsrDeleted,
    TenantProvisioned,
    TenantActivated,
    TenantDeactivated,
}

impl AuditType {
    pub const ALL: [AuditType; 21] = [
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::AccountLocked,
        Self::Logout,
        Self::PasswordChanged,
        Self::PasswordReset,
        Self::PasswordRehashed,
        Self::UserCreated,
        Self::UserActivated,
        Self::UserDeactivated,
        Self::UserUnlocked,
        Self::UserRolesChanged,
        Self::UserPermissionsChanged,
        Self::AccountChangeRefused,
        Self::TokenRefused,
        Self::IcsrCreated,
        Self::IcsrUpdated,
        Self::IcsrDeleted,
        Self::TenantProvisioned,
        Self::TenantActivated,
        Self::TenantDeactivated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::AccountLocked => "account_locked",
            Self::Logout => "logout",
            Self::PasswordChanged => "password_changed",
            Self::PasswordReset => "password_reset",
            Self::PasswordRehashed => "password_rehashed",
            Self::UserCreated => "user_created",
            Self::UserActivated => "user_activated",
            Self::UserDeactivated => "user_deactivated",
            Self::UserUnlocked => "user_unlocked",
            Self::UserRolesChanged => "user_roles_changed",
            Self::UserPermissionsChanged => "user_permissions_changed",
            Self::AccountChangeRefused => "account_change_refused",
            Self::TokenRefused => "token_refused",
            Self::IcsrCreated => "icsr_created",
            Self::IcsrUpdated => "icsr_updated",
            Self::IcsrDeleted => "icsr_deleted",
            Self::TenantProvisioned => "tenant_provisioned",
            Self::TenantActivated => "tenant_activated",
            Self::TenantDeactivated => "tenant_deactivated",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }
}

/// Who did what to whom, from where. Built by the auth flows; stored as is.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub event_type: AuditType,
    pub actor_id: Option<i64>,
    pub actor_username: Option<String>,
    pub subject_id: Option<i64>,
    /// For a failed login, the name that was attempted (it may belong to nobody).
    pub subject_username: Option<String>,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
    /// The token's `trace` (for a login, the trace of the token issued).
    pub trace: Option<String>,
    /// The record concerned, when it is not a user: `icsr:42`.
    pub resource: Option<String>,
    pub details: Value,
}

impl NewAuditEvent {
    /// A record of an operator's action (the CLI, provisioning): no token, so no actor; `via`
    /// names the path.
    pub fn by_operator(event_type: AuditType, via: &str) -> Self {
        Self {
            event_type,
            actor_id: None,
            actor_username: None,
            subject_id: None,
            subject_username: None,
            client_addr: None,
            user_agent: None,
            trace: None,
            resource: None,
            details: serde_json::json!({ "via": via }),
        }
    }
}

/// A stored audit record.
#[derive(Debug, Clone, FromRow)]
pub struct AuditEvent {
    pub id: i64,
    /// Unix time in milliseconds, UTC.
    pub occurred_at: i64,
    pub event_type: String,
    pub actor_id: Option<i64>,
    pub actor_username: Option<String>,
    pub subject_id: Option<i64>,
    pub subject_username: Option<String>,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
    pub trace: Option<String>,
    pub resource: Option<String>,
    pub details: Json<Value>,
}

/// Which records to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Username (case-insensitive) as actor or subject.
    pub user: Option<String>,
    pub event_type: Option<AuditType>,
    /// Inclusive lower bound, Unix milliseconds.
    pub since: Option<i64>,
    /// Exclusive upper bound, Unix milliseconds.
    pub until: Option<i64>,
    /// The record concerned, e.g. `icsr:42`.
    pub resource: Option<String>,
    /// Keyset cursor: only records with a smaller id.
    pub before_id: Option<i64>,
    pub limit: i64,
}

pub(super) const INSERT_AUDIT: &str = "INSERT INTO audit_events \
     (occurred_at, event_type, actor_id, actor_username, subject_id, subject_username, client_addr, user_agent, trace, details, resource) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

const LIST: &str = "SELECT id, occurred_at, event_type, actor_id, actor_username, subject_id, subject_username, \
     client_addr, user_agent, trace, resource, details FROM audit_events \
     WHERE (CAST($1 AS TEXT) IS NULL OR event_type = $1) \
       AND (CAST($2 AS TEXT) IS NULL OR lower(actor_username) = $2 OR lower(subject_username) = $2) \
       AND (CAST($3 AS BIGINT) IS NULL OR occurred_at >= $3) \
       AND (CAST($4 AS BIGINT) IS NULL OR occurred_at < $4) \
       AND (CAST($5 AS BIGINT) IS NULL OR id < $5) \
       AND (CAST($7 AS TEXT) IS NULL OR resource = $7) \
     ORDER BY id DESC LIMIT $6";

/// Inserts `$event` through executor `$exec` (a connection or `&mut *tx`) at `$now` (Unix ms).
macro_rules! insert_audit {
    ($exec:expr, $event:expr, $now:expr) => {{
        let event: &$crate::store::audit::NewAuditEvent = $event;
        sqlx::query($crate::store::audit::INSERT_AUDIT)
            .bind($now)
            .bind(event.event_type.as_str())
            .bind(event.actor_id)
            .bind(event.actor_username.as_deref())
            .bind(event.subject_id)
            .bind(event.subject_username.as_deref())
            .bind(event.client_addr.as_deref())
            .bind(event.user_agent.as_deref())
            .bind(event.trace.as_deref())
            .bind(sqlx::types::Json(&event.details))
            .bind(event.resource.as_deref())
            .execute($exec)
            .await
    }};
}
pub(crate) use insert_audit;

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

impl Store {
    /// Appends one record.
    pub async fn record_audit(&self, event: &NewAuditEvent) -> Result<(), StoreError> {
        let now = now_ms();
        with_conn!(self, conn => insert_audit!(conn, event, now).map(drop)?);
        Ok(())
    }

    /// Records matching `filter`, newest first.
    pub async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let user = filter.user.as_deref().map(str::to_ascii_lowercase);
        let rows = with_conn!(self, conn => sqlx::query_as::<_, AuditEvent>(LIST)
            .bind(filter.event_type.map(AuditType::as_str))
            .bind(user.as_deref())
            .bind(filter.since)
            .bind(filter.until)
            .bind(filter.before_id)
            .bind(filter.limit)
            .bind(filter.resource.as_deref())
            .fetch_all(conn)
            .await?);
        Ok(rows)
    }
}
