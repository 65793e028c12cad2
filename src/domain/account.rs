//! [`User`]: a user account as every layer above the store sees it, each field already a
//! domain value. The store maps its rows to it; the API maps it to its response bodies.

use super::{Email, FullName, Permissions, Roles, Username};

/// A user account, with its roles in assignment order.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub username: Username,
    pub email: Email,
    pub full_name: Option<FullName>,
    /// PHC string (`$argon2id$v=19$m=…`); never leaves the server.
    pub password_hash: String,
    pub is_active: bool,
    pub empleado_id: Option<i64>,
    /// The user's own overrides of their roles' grants.
    pub permissions: Permissions,
    pub roles: Roles,
    /// Tokens issued with an older version are revoked.
    pub token_version: i64,
    /// Unix seconds; the account refuses logins until then.
    pub locked_until: Option<i64>,
    /// Unix seconds; when the password was last set.
    pub password_changed_at: Option<i64>,
}

/// A user to create, every field already parsed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: Username,
    pub email: Email,
    pub full_name: Option<FullName>,
    pub password_hash: String,
    pub is_active: bool,
    pub empleado_id: Option<i64>,
    pub permissions: Permissions,
    pub roles: Roles,
}

/// Which users to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub active: Option<bool>,
    pub role: Option<String>,
    /// Keyset cursor: only users with a smaller id.
    pub before_id: Option<i64>,
    pub limit: i64,
}
