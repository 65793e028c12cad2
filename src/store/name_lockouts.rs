//! Failed logins against names that match no account: the same atomic reservation and lock as
//! an account's (`users.rs`), in their own table, so that an unknown name locks exactly like a
//! known one, across restarts and replicas.

use super::{Store, StoreError, with_conn};

/// One attempt reserved in one statement (the rules of the users table's `RESERVE_ATTEMPT`):
/// a new name, an expired window or an expired lock starts a new window at 1; a locked name
/// reserves nothing and returns no row.
const RESERVE: &str = "INSERT INTO login_name_failures (name, failed_logins, failed_window_start, locked_until) \
     VALUES ($3, 1, $2, NULL) \
     ON CONFLICT (name) DO UPDATE SET \
     failed_logins = CASE WHEN login_name_failures.failed_window_start <= $1 \
         OR (login_name_failures.locked_until IS NOT NULL AND login_name_failures.locked_until <= $2) \
         THEN 1 ELSE login_name_failures.failed_logins + 1 END, \
     failed_window_start = CASE WHEN login_name_failures.failed_window_start <= $1 \
         OR (login_name_failures.locked_until IS NOT NULL AND login_name_failures.locked_until <= $2) \
         THEN $2 ELSE login_name_failures.failed_window_start END, \
     locked_until = NULL \
     WHERE login_name_failures.locked_until IS NULL OR login_name_failures.locked_until <= $2 \
     RETURNING failed_logins";
const RELEASE: &str = "UPDATE login_name_failures SET failed_logins = failed_logins - 1 \
     WHERE name = $1 AND failed_logins > 0 AND locked_until IS NULL";
const LOCKED_UNTIL: &str = "SELECT locked_until FROM login_name_failures WHERE name = $1";
const LOCK: &str = "UPDATE login_name_failures SET locked_until = $1 WHERE name = $2";
const PRUNE: &str = "DELETE FROM login_name_failures \
     WHERE (locked_until IS NULL OR locked_until <= $1) AND failed_window_start <= $2";

impl Store {
    /// Reserves a login attempt against `name`: the attempt's number within the window of
    /// `window_seconds`, or `None` while the name is locked.
    pub async fn reserve_name_attempt(
        &self,
        name: &str,
        now: i64,
        window_seconds: i64,
    ) -> Result<Option<i64>, StoreError> {
        let count: Option<i64> = with_conn!(self, conn => sqlx::query_scalar(RESERVE)
            .bind(now - window_seconds)
            .bind(now)
            .bind(name)
            .fetch_optional(conn)
            .await?);
        Ok(count)
    }

    /// Gives back an attempt reserved against `name` whose password was never checked.
    pub async fn release_name_attempt(&self, name: &str) -> Result<(), StoreError> {
        with_conn!(self, conn => sqlx::query(RELEASE)
            .bind(name)
            .execute(conn)
            .await
            .map(drop)?);
        Ok(())
    }

    /// When `name`'s lock ends, if it has one.
    pub async fn name_locked_until(&self, name: &str) -> Result<Option<i64>, StoreError> {
        let until: Option<Option<i64>> = with_conn!(self, conn => sqlx::query_scalar(LOCKED_UNTIL)
            .bind(name)
            .fetch_optional(conn)
            .await?);
        Ok(until.flatten())
    }

    /// Locks `name` until `until` (Unix seconds).
    pub async fn lock_name(&self, name: &str, until: i64) -> Result<(), StoreError> {
        with_conn!(self, conn => sqlx::query(LOCK)
            .bind(until)
            .bind(name)
            .execute(conn)
            .await
            .map(drop)?);
        Ok(())
    }

    /// Drops the names whose lock has ended and whose window opened over `max_window_seconds`
    /// ago: they count nothing any more.
    pub async fn prune_name_failures(
        &self,
        now: i64,
        max_window_seconds: i64,
    ) -> Result<(), StoreError> {
        with_conn!(self, conn => sqlx::query(PRUNE)
            .bind(now)
            .bind(now - max_window_seconds)
            .execute(conn)
            .await
            .map(drop)?);
        Ok(())
    }
}
