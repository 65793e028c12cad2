//! Refresh-token families ("sessions"): one per login, its tokens rotated one for the next.
//! Tokens are kept as their SHA-256 only. Times are Unix seconds.

use super::{
    Store, StoreError,
    audit::{NewAuditEvent, insert_audit, now_ms},
    users::CLEAR_FAILURES,
    with_conn,
};

const INSERT_SESSION: &str = "INSERT INTO refresh_sessions \
     (id, user_id, user_version, created_at, expires_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $4)";
/// Inserts refresh token `$token` of family `$session` at `$now` through `$tx` (a transaction).
macro_rules! insert_token {
    ($tx:expr, $session:expr, $token:expr, $now:expr) => {{
        let token: &NewRefreshToken<'_> = $token;
        sqlx::query(INSERT_TOKEN)
            .bind(token.hash)
            .bind($session)
            .bind($now)
            .bind(token.access_jti)
            .bind(token.access_expires_at)
            .execute(&mut *$tx)
            .await
    }};
}

const INSERT_TOKEN: &str = "INSERT INTO refresh_tokens \
     (token_hash, session_id, issued_at, access_jti, access_expires_at) VALUES ($1, $2, $3, $4, $5)";
/// Housekeeping at each login: the user's families past their absolute lifetime go (their
/// tokens with them), so the table holds live and recently ended families only.
const PRUNE_TOKENS: &str = "DELETE FROM refresh_tokens WHERE session_id IN \
     (SELECT id FROM refresh_sessions WHERE user_id = $1 AND expires_at < $2)";
const PRUNE_SESSIONS: &str = "DELETE FROM refresh_sessions WHERE user_id = $1 AND expires_at < $2";
const LOOKUP: &str = "SELECT t.session_id, t.used_at, s.user_id, s.user_version, s.expires_at, \
     s.last_used_at, s.ended_at FROM refresh_tokens t JOIN refresh_sessions s ON s.id = t.session_id \
     WHERE t.token_hash = $1";
/// Spends a token: compare-and-set, so of two concurrent presentations one wins.
const SPEND: &str =
    "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL";
const TOUCH: &str =
    "UPDATE refresh_sessions SET last_used_at = $1 WHERE id = $2 AND ended_at IS NULL";
const END: &str = "UPDATE refresh_sessions SET ended_at = $1, end_reason = $2 \
     WHERE id = $3 AND ended_at IS NULL";
const LIVE_ACCESS: &str = "SELECT t.access_jti, t.access_expires_at, s.user_id FROM refresh_tokens t \
     JOIN refresh_sessions s ON s.id = t.session_id WHERE t.session_id = $1 AND t.access_expires_at >= $2";
const REVOKE_ACCESS: &str = "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (jti) DO NOTHING";

/// A new family, as a login opens it.
#[derive(Debug)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: i64,
    /// The user's `token_version` now: the family ends when it moves.
    pub user_version: i64,
    pub now: i64,
    /// The absolute end of the family.
    pub expires_at: i64,
}

/// A refresh token to store, with the access token issued beside it.
#[derive(Debug)]
pub struct NewRefreshToken<'a> {
    /// SHA-256 of the token, hex.
    pub hash: &'a str,
    pub access_jti: &'a str,
    pub access_expires_at: i64,
}

/// A stored refresh token and its family.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshRecord {
    pub session_id: String,
    /// When it was rotated; a spent token presented again is a reuse.
    pub used_at: Option<i64>,
    pub user_id: i64,
    pub user_version: i64,
    /// The family's absolute end.
    pub expires_at: i64,
    /// The family's last login or refresh, from which its idle timeout runs.
    pub last_used_at: i64,
    pub ended_at: Option<i64>,
}

/// An access token a family issued, still alive, as an ended family revokes it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LiveAccess {
    pub access_jti: String,
    pub access_expires_at: i64,
    pub user_id: i64,
}

impl Store {
    /// A successful login: clears the user's failed attempts and lock, opens its session with
    /// the first token (after dropping the user's lapsed sessions) and records `event`, in one
    /// transaction.
    pub async fn record_login(
        &self,
        session: &NewSession<'_>,
        token: &NewRefreshToken<'_>,
        event: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        with_conn!(self, conn => async {
            let mut tx = sqlx::Connection::begin(conn).await?;
            for prune in [PRUNE_TOKENS, PRUNE_SESSIONS] {
                sqlx::query(prune).bind(session.user_id).bind(session.now).execute(&mut *tx).await?;
            }
            sqlx::query(INSERT_SESSION)
                .bind(session.id)
                .bind(session.user_id)
                .bind(session.user_version)
                .bind(session.now)
                .bind(session.expires_at)
                .execute(&mut *tx)
                .await?;
            insert_token!(tx, session.id, token, session.now)?;
            sqlx::query(CLEAR_FAILURES).bind(session.user_id).execute(&mut *tx).await?;
            insert_audit!(&mut *tx, event, now_ms())?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        }
        .await)
    }

    /// The refresh token whose SHA-256 is `hash`, with its family.
    pub async fn refresh_record(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
        Ok(
            with_conn!(self, conn => sqlx::query_as::<_, RefreshRecord>(LOOKUP)
            .bind(hash)
            .fetch_optional(conn)
            .await?),
        )
    }

    /// Spends the token `spent` of family `session_id` and stores `next` in its place,
    /// recording `event`, in one transaction. `false`, and nothing written, when `spent` was
    /// spent meanwhile (a concurrent presentation: a reuse) or the family ended.
    pub async fn rotate_refresh(
        &self,
        session_id: &str,
        spent: &str,
        next: &NewRefreshToken<'_>,
        now: i64,
        event: &NewAuditEvent,
    ) -> Result<bool, StoreError> {
        with_conn!(self, conn => async {
            let mut tx = sqlx::Connection::begin(conn).await?;
            let spent = sqlx::query(SPEND).bind(now).bind(spent).execute(&mut *tx).await?;
            let touched = sqlx::query(TOUCH).bind(now).bind(session_id).execute(&mut *tx).await?;
            if spent.rows_affected() != 1 || touched.rows_affected() != 1 {
                return Ok(false);
            }
            insert_token!(tx, session_id, next, now)?;
            insert_audit!(&mut *tx, event, now_ms())?;
            tx.commit().await?;
            Ok::<bool, StoreError>(true)
        }
        .await)
    }

    /// Ends family `session_id` for `reason` and revokes the access tokens it issued that are
    /// still alive, recording `event` when given, in one transaction; the tokens revoked (for
    /// the in-memory lists). `None`, and nothing written (not even `event`), when the family
    /// had already ended.
    pub async fn end_session(
        &self,
        session_id: &str,
        reason: &str,
        now: i64,
        event: Option<&NewAuditEvent>,
    ) -> Result<Option<Vec<LiveAccess>>, StoreError> {
        with_conn!(self, conn => async {
            let mut tx = sqlx::Connection::begin(conn).await?;
            let ended = sqlx::query(END)
                .bind(now)
                .bind(reason)
                .bind(session_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if ended != 1 {
                return Ok(None);
            }
            let live = sqlx::query_as::<_, LiveAccess>(LIVE_ACCESS)
                .bind(session_id)
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
            for access in &live {
                sqlx::query(REVOKE_ACCESS)
                    .bind(&access.access_jti)
                    .bind(access.user_id)
                    .bind(access.access_expires_at)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(event) = event {
                insert_audit!(&mut *tx, event, now_ms())?;
            }
            tx.commit().await?;
            Ok::<Option<Vec<LiveAccess>>, StoreError>(Some(live))
        }
        .await)
    }
}
