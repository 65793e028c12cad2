//! The audit trail's records as the services write and read them: what happened
//! ([`AuditType`]), a record to write ([`NewAuditEvent`]), a stored one ([`AuditEvent`]) and
//! which to list ([`AuditFilter`]). Where and how they are stored is `store::audit`.

use serde_json::Value;

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
    TokenRefreshed,
    RefreshTokenReused,
    ClientCreated,
    ClientRevoked,
    ClientTokenIssued,
    ClientAuthFailed,
    TokenRevoked,
    IcsrCreated,
    IcsrUpdated,
    IcsrDeleted,
    TenantProvisioned,
    TenantActivated,
    TenantDeactivated,
}

impl AuditType {
    pub const ALL: [AuditType; 28] = [
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
        Self::TokenRefreshed,
        Self::RefreshTokenReused,
        Self::ClientCreated,
        Self::ClientRevoked,
        Self::ClientTokenIssued,
        Self::ClientAuthFailed,
        Self::TokenRevoked,
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
            Self::TokenRefreshed => "token_refreshed",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::ClientCreated => "client_created",
            Self::ClientRevoked => "client_revoked",
            Self::ClientTokenIssued => "client_token_issued",
            Self::ClientAuthFailed => "client_auth_failed",
            Self::TokenRevoked => "token_revoked",
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
#[derive(Debug, Clone)]
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
    pub details: Value,
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
