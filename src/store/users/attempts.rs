//! An account's failed-login count and lock: reserved atomically per attempt before any hash
//! is computed, released when the attempt was refused unweighed, cleared by a success.

use crate::store::{
    Store, StoreError,
    audit::{NewAuditEvent, audited},
    with_conn,
};

/// Reserves one login attempt before the password is checked: atomically counts it in the
/// current window (a new window once the old one or a lock has expired) and refuses, by
/// returning no row, while the account is locked. Every SET expression sees the old row.
const RESERVE_ATTEMPT: &str = "UPDATE users SET \
     failed_logins = CASE WHEN failed_window_start IS NULL OR failed_window_start <= $1 \
         OR (locked_until IS NOT NULL AND locked_until <= $2) THEN 1 ELSE failed_logins + 1 END, \
     failed_window_start = CASE WHEN failed_window_start IS NULL OR failed_window_start <= $1 \
         OR (locked_until IS NOT NULL AND locked_until <= $2) THEN $2 ELSE failed_window_start END, \
     locked_until = CASE WHEN locked_until IS NOT NULL AND locked_until <= $2 THEN NULL ELSE locked_until END \
     WHERE id = $3 AND (locked_until IS NULL OR locked_until <= $2) \
     RETURNING failed_logins";
const LOCKED_UNTIL: &str = "SELECT locked_until FROM users WHERE id = $1";
const LOCK: &str = "UPDATE users SET locked_until = $1 WHERE id = $2";
/// Gives back an attempt reserved for a password that was never checked (hashing refused).
const RELEASE_ATTEMPT: &str = "UPDATE users SET failed_logins = failed_logins - 1 \
     WHERE id = $1 AND failed_logins > 0 AND locked_until IS NULL";
pub(in crate::store) const CLEAR_FAILURES: &str = "UPDATE users SET failed_logins = 0, failed_window_start = NULL, locked_until = NULL WHERE id = $1";

impl Store {
    /// Reserves a login attempt (see [`RESERVE_ATTEMPT`]): the attempt's number within the
    /// window, or `None` while the account is locked.
    pub async fn reserve_login_attempt(
        &self,
        user_id: i64,
        now: i64,
        window_seconds: i64,
    ) -> Result<Option<i64>, StoreError> {
        let count: Option<i64> = with_conn!(self, conn => sqlx::query_scalar(RESERVE_ATTEMPT)
            .bind(now - window_seconds)
            .bind(now)
            .bind(user_id)
            .fetch_optional(conn)
            .await?);
        Ok(count)
    }

    /// When the account's lock ends (Unix seconds), if it is locked.
    pub async fn locked_until(&self, user_id: i64) -> Result<Option<i64>, StoreError> {
        let until: Option<Option<i64>> = with_conn!(self, conn => sqlx::query_scalar(LOCKED_UNTIL)
            .bind(user_id)
            .fetch_optional(conn)
            .await?);
        Ok(until.flatten())
    }

    /// Locks the account until `until` (Unix seconds), recording `event`.
    pub async fn lock_user(
        &self,
        user_id: i64,
        until: i64,
        event: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        audited!(self, event, tx => sqlx::query(LOCK).bind(until).bind(user_id).execute(&mut *tx).await?.rows_affected())
    }

    /// Gives back an attempt [`Self::reserve_login_attempt`] reserved, when the password was
    /// never checked (the hashing queue refused it): a refusal is not a wrong guess.
    pub async fn release_login_attempt(&self, user_id: i64) -> Result<(), StoreError> {
        with_conn!(self, conn => sqlx::query(RELEASE_ATTEMPT)
            .bind(user_id)
            .execute(conn)
            .await
            .map(drop)?);
        Ok(())
    }

    /// Clears failed attempts and any lock, recording `event` (a successful login, an unlock).
    pub async fn clear_login_failures(
        &self,
        user_id: i64,
        event: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        audited!(self, event, tx => sqlx::query(CLEAR_FAILURES).bind(user_id).execute(&mut *tx).await?.rows_affected())
    }
}
