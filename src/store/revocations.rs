//! Tokens revoked by logout, kept until they would have expired. The server loads the live ones
//! when it opens a scope's database and checks them in memory.

use super::{
    Store, StoreError,
    audit::{NewAuditEvent, insert_audit, now_ms},
    with_conn,
};

const INSERT: &str = "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING";
const PURGE: &str = "DELETE FROM revoked_tokens WHERE expires_at < $1";
const LIVE: &str = "SELECT jti FROM revoked_tokens WHERE expires_at >= $1";

impl Store {
    /// Revokes token `jti` of `user_id` until `expires_at` (Unix seconds), recording `event`.
    pub async fn revoke_token(
        &self,
        jti: &str,
        user_id: i64,
        expires_at: i64,
        event: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        with_conn!(self, conn => async {
            let mut tx = sqlx::Connection::begin(conn).await?;
            sqlx::query(INSERT).bind(jti).bind(user_id).bind(expires_at).execute(&mut *tx).await?;
            insert_audit!(&mut *tx, event, now_ms())?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        }
        .await)
    }

    /// The revoked tokens still alive at `now` (Unix seconds), after dropping expired ones.
    pub async fn live_revocations(&self, now: i64) -> Result<Vec<String>, StoreError> {
        let jtis = with_conn!(self, conn => {
            sqlx::query(PURGE).bind(now).execute(&mut *conn).await?;
            sqlx::query_scalar(LIVE).bind(now).fetch_all(conn).await?
        });
        Ok(jtis)
    }
}
