//! Users and their ordered roles.

use serde_json::Value;
use sqlx::{FromRow, types::Json};
use time::OffsetDateTime;

use super::{
    Store, StoreError,
    audit::{NewAuditEvent, audited, insert_audit, now_ms},
    with_conn,
};
use crate::domain::{Email, FullName, LoginIdentifier, Permissions, Roles, Username};
pub use crate::domain::{NewUser, User, UserFilter};

#[derive(FromRow)]
struct UserRow {
    id: i64,
    username: String,
    email: String,
    full_name: Option<String>,
    password_hash: String,
    is_active: bool,
    empleado_id: Option<i64>,
    permissions: Json<Value>,
    token_version: i64,
    locked_until: Option<i64>,
    password_changed_at: Option<i64>,
}

/// The columns of [`UserRow`], spliced into each `SELECT` at compile time.
macro_rules! select_users {
    ($($tail:literal),+) => {
        concat!(
            "SELECT id, username, email, full_name, password_hash, is_active, empleado_id, permissions, ",
            "token_version, locked_until, password_changed_at FROM users ",
            $($tail),+
        )
    };
}

// `lower(col) = $1` with an ASCII-folded argument is served by the `users_*_ci` indexes on both
// backends (see `queries_use_the_case_insensitive_indexes`).
const BY_LOGIN: &str = select_users!("WHERE lower(username) = $1 OR lower(email) = $1 LIMIT 1");
const BY_ID: &str = select_users!("WHERE id = $1");
const BY_EMAIL: &str = select_users!("WHERE lower(email) = $1");
const ROLES: &str = "SELECT role FROM user_roles WHERE user_id = $1 ORDER BY position";
/// A new password: older tokens are revoked (version bump), lockout state is cleared.
const SET_PASSWORD: &str = "UPDATE users SET password_hash = $1, updated_at = $2, password_changed_at = $3, \
     token_version = token_version + 1, failed_logins = 0, failed_window_start = NULL, locked_until = NULL \
     WHERE id = $4";
/// The same password re-hashed at current parameters: tokens stay valid. Compare-and-set: only
/// while the stored hash is still the one that was verified ($3), so an upgrade computed from
/// an old password never undoes a change or reset that landed meanwhile.
const UPGRADE_HASH: &str =
    "UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3";
/// Activation changes revoke every token issued before them.
const SET_ACTIVE: &str = "UPDATE users SET is_active = $1, updated_at = $2, token_version = token_version + 1 WHERE id = $3";
const INSERT: &str = "INSERT INTO users \
     (username, email, full_name, password_hash, is_active, empleado_id, permissions, created_at, updated_at, password_changed_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) RETURNING id";
/// A page of users, newest first, with optional filters (see [`UserFilter`]).
const LIST: &str = select_users!(
    "WHERE (CAST($1 AS BOOLEAN) IS NULL OR is_active = $1) ",
    "AND (CAST($2 AS TEXT) IS NULL OR EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = users.id AND r.role = $2)) ",
    "AND (CAST($3 AS BIGINT) IS NULL OR id < $3) ",
    "ORDER BY id DESC LIMIT $4"
);
/// The roles of every user whose id lies in `[$1, $2]` (one page's), for one round trip.
const ROLES_IN_RANGE: &str = "SELECT user_id, role FROM user_roles WHERE user_id BETWEEN $1 AND $2 ORDER BY user_id, position";
const DELETE_ROLES: &str = "DELETE FROM user_roles WHERE user_id = $1";
/// New roles change what tokens claim: older tokens are revoked (version bump).
const ROLES_CHANGED: &str =
    "UPDATE users SET updated_at = $1, token_version = token_version + 1 WHERE id = $2";
const SET_PERMISSIONS: &str = "UPDATE users SET permissions = $1, updated_at = $2 WHERE id = $3";
const INSERT_ROLE: &str =
    "INSERT INTO user_roles (user_id, role, position, assigned_at) VALUES ($1, $2, $3, $4)";

fn user_of(row: UserRow, roles: Vec<String>) -> User {
    User {
        id: row.id,
        username: Username::from_stored(row.username),
        email: Email::from_stored(row.email),
        full_name: row.full_name.map(FullName::from_stored),
        password_hash: row.password_hash,
        is_active: row.is_active,
        empleado_id: row.empleado_id,
        permissions: Permissions::from_stored(row.permissions.0),
        roles: Roles::from_stored(roles),
        token_version: row.token_version,
        locked_until: row.locked_until,
        password_changed_at: row.password_changed_at,
    }
}

impl Store {
    /// Users matching `filter`, newest first, with their roles.
    pub async fn list_users(&self, filter: &UserFilter) -> Result<Vec<User>, StoreError> {
        let rows = with_conn!(self, conn => sqlx::query_as::<_, UserRow>(LIST)
            .bind(filter.active)
            .bind(filter.role.as_deref())
            .bind(filter.before_id)
            .bind(filter.limit)
            .fetch_all(conn)
            .await?);
        let (Some(last), Some(first)) = (rows.last(), rows.first()) else {
            return Ok(Vec::new());
        };
        let roles: Vec<(i64, String)> = with_conn!(self, conn => sqlx::query_as(ROLES_IN_RANGE)
            .bind(last.id)
            .bind(first.id)
            .fetch_all(conn)
            .await?);
        let mut by_user: std::collections::HashMap<i64, Vec<String>> = Default::default();
        for (user_id, role) in roles {
            by_user.entry(user_id).or_default().push(role);
        }
        Ok(rows
            .into_iter()
            .map(|row| {
                let roles = by_user.remove(&row.id).unwrap_or_default();
                user_of(row, roles)
            })
            .collect())
    }

    /// Replaces the user's roles (revoking their tokens, which claim the old ones), recording
    /// `event`.
    pub async fn set_roles(
        &self,
        user_id: i64,
        roles: &Roles,
        event: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc();
        audited!(self, event, tx => {
            let affected = sqlx::query(ROLES_CHANGED)
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(DELETE_ROLES).bind(user_id).execute(&mut *tx).await?;
            for (position, role) in roles.names().iter().enumerate() {
                sqlx::query(INSERT_ROLE)
                    .bind(user_id)
                    .bind(role)
                    .bind(i32::try_from(position).unwrap_or(i32::MAX))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            affected
        })
    }

    /// Replaces the user's permission overrides, recording `event`.
    pub async fn set_permissions(
        &self,
        user_id: i64,
        permissions: &Permissions,
        event: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc();
        audited!(self, event, tx => sqlx::query(SET_PERMISSIONS)
            .bind(Json(permissions.as_map()))
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected())
    }

    /// The user whose username or e-mail matches, case-insensitively.
    pub async fn user_by_login(&self, login: &LoginIdentifier) -> Result<Option<User>, StoreError> {
        let row = with_conn!(self, conn => sqlx::query_as::<_, UserRow>(BY_LOGIN)
            .bind(login.folded())
            .fetch_optional(conn)
            .await?);
        self.with_roles(row).await
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let row = with_conn!(self, conn => sqlx::query_as::<_, UserRow>(BY_ID)
            .bind(id)
            .fetch_optional(conn)
            .await?);
        self.with_roles(row).await
    }

    pub async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let row = with_conn!(self, conn => sqlx::query_as::<_, UserRow>(BY_EMAIL)
            .bind(email.as_str().to_ascii_lowercase())
            .fetch_optional(conn)
            .await?);
        self.with_roles(row).await
    }

    async fn with_roles(&self, row: Option<UserRow>) -> Result<Option<User>, StoreError> {
        let Some(row) = row else { return Ok(None) };
        let roles: Vec<String> = with_conn!(self, conn => sqlx::query_scalar(ROLES)
            .bind(row.id)
            .fetch_all(conn)
            .await?);
        Ok(Some(user_of(row, roles)))
    }

    /// Sets a new password (revoking older tokens) and records `event`, in one transaction;
    /// `NotFound` when the user is gone.
    pub async fn set_password(
        &self,
        user_id: i64,
        hash: &str,
        event: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc();
        audited!(self, event, tx => sqlx::query(SET_PASSWORD)
            .bind(hash)
            .bind(now)
            .bind(now.unix_timestamp())
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected())
    }

    /// Replaces the hash `verified` (the one a login just checked) with `hash`, the same
    /// password at the configured parameters, recording `event` in the same transaction.
    /// `false`, and nothing written, when the stored hash is no longer `verified` (the password
    /// was changed or reset since) or the user is gone.
    pub async fn upgrade_password_hash(
        &self,
        user_id: i64,
        verified: &str,
        hash: &str,
        event: &NewAuditEvent,
    ) -> Result<bool, StoreError> {
        with_conn!(self, conn => async {
            let mut tx = sqlx::Connection::begin(conn).await?;
            let applied = sqlx::query(UPGRADE_HASH)
                .bind(hash)
                .bind(user_id)
                .bind(verified)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if applied {
                insert_audit!(&mut *tx, event, now_ms())?;
                tx.commit().await?;
            }
            Ok(applied)
        }
        .await)
    }

    /// Activates or deactivates a user (revoking every token issued before), recording `event`.
    pub async fn set_active(
        &self,
        user_id: i64,
        active: bool,
        event: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc();
        audited!(self, event, tx => sqlx::query(SET_ACTIVE)
            .bind(active)
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected())
    }

    /// Creates a user and its roles in one transaction; `Conflict` when the username or the
    /// e-mail is taken (case-insensitively).
    ///
    /// Records `event` (who created it: an admin's token, or [`NewAuditEvent::by_operator`])
    /// in the same transaction, completed with the new user as subject and their roles.
    pub async fn create_user(
        &self,
        user: &NewUser,
        event: &NewAuditEvent,
    ) -> Result<i64, StoreError> {
        let now = OffsetDateTime::now_utc();
        let now_seconds = now.unix_timestamp();
        let permissions = Json(user.permissions.as_map());
        let result: Result<i64, StoreError> = with_conn!(self, conn => async {
            let mut tx = sqlx::Connection::begin(conn).await?;
            let id: i64 = sqlx::query_scalar(INSERT)
                .bind(user.username.as_str())
                .bind(user.email.as_str())
                .bind(user.full_name.as_ref().map(FullName::as_str))
                .bind(&user.password_hash)
                .bind(user.is_active)
                .bind(user.empleado_id)
                .bind(permissions)
                .bind(now)
                .bind(now_seconds)
                .fetch_one(&mut *tx)
                .await?;
            for (position, role) in user.roles.names().iter().enumerate() {
                sqlx::query(INSERT_ROLE)
                    .bind(id)
                    .bind(role)
                    .bind(i32::try_from(position).unwrap_or(i32::MAX))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut event = event.clone();
            event.subject_id = Some(id);
            event.subject_username = Some(user.username.as_str().to_owned());
            if let Value::Object(details) = &mut event.details {
                details.insert("roles".into(), user.roles.names().into());
                details.insert("is_active".into(), user.is_active.into());
                details.insert("permissions".into(), Value::Object(user.permissions.as_map().clone()));
            }
            insert_audit!(&mut *tx, &event, now_ms())?;
            tx.commit().await?;
            Ok(id)
        }.await);
        result.map_err(|e| match e {
            StoreError::Conflict(_) => {
                StoreError::Conflict("a user with that username or e-mail already exists".into())
            }
            other => other,
        })
    }
}

mod attempts;
pub(in crate::store) use attempts::CLEAR_FAILURES;
#[cfg(test)]
mod tests;
