//! Service clients (the OAuth2 client-credentials grant): kept with the SHA-256 of their
//! secret and the permissions they may hold. A revoked client stays, for the audit trail.

pub use crate::domain::ServiceClient;

use super::{
    Store, StoreError,
    audit::{NewAuditEvent, audited, insert_audit, now_ms},
    with_conn,
};

/// The columns of [`ServiceClient`], spliced into each `SELECT` at compile time.
macro_rules! select_clients {
    ($tail:literal) => {
        concat!(
            "SELECT client_id, name, secret_hash, permissions, created_by, created_at, ",
            "last_used_at, revoked_at FROM service_clients ",
            $tail
        )
    };
}

const BY_ID: &str = select_clients!("WHERE client_id = $1");
const LIST: &str = select_clients!("ORDER BY created_at, client_id");
const INSERT: &str = "INSERT INTO service_clients \
     (client_id, name, secret_hash, permissions, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
const REVOKE: &str =
    "UPDATE service_clients SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL";
const USED: &str = "UPDATE service_clients SET last_used_at = $1 WHERE client_id = $2";

/// A stored client's row.
#[derive(Debug, sqlx::FromRow)]
struct ClientRow {
    client_id: String,
    name: String,
    secret_hash: String,
    /// Space-separated `module.action` names.
    permissions: String,
    created_by: String,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl From<ClientRow> for ServiceClient {
    fn from(row: ClientRow) -> Self {
        Self {
            client_id: row.client_id,
            name: row.name,
            secret_hash: row.secret_hash,
            permissions: row
                .permissions
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            created_by: row.created_by,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
        }
    }
}

impl Store {
    /// Stores `client` (its `last_used_at` and `revoked_at` are ignored), recording `event`
    /// in the same transaction.
    pub async fn create_client(
        &self,
        client: &ServiceClient,
        event: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        with_conn!(self, conn => async {
            let mut tx = sqlx::Connection::begin(conn).await?;
            sqlx::query(INSERT)
                .bind(&client.client_id)
                .bind(&client.name)
                .bind(&client.secret_hash)
                .bind(client.permissions.join(" "))
                .bind(&client.created_by)
                .bind(client.created_at)
                .execute(&mut *tx)
                .await?;
            insert_audit!(&mut *tx, event, now_ms())?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        }
        .await)
    }

    pub async fn client(&self, client_id: &str) -> Result<Option<ServiceClient>, StoreError> {
        let row = with_conn!(self, conn => sqlx::query_as::<_, ClientRow>(BY_ID)
            .bind(client_id)
            .fetch_optional(conn)
            .await?);
        Ok(row.map(Into::into))
    }

    /// Every client, revoked ones included, oldest first.
    pub async fn list_clients(&self) -> Result<Vec<ServiceClient>, StoreError> {
        let rows = with_conn!(self, conn => sqlx::query_as::<_, ClientRow>(LIST)
            .fetch_all(conn)
            .await?);
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Revokes a client, recording `event`; `NotFound` when no such client is active.
    pub async fn revoke_client(
        &self,
        client_id: &str,
        now: i64,
        event: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        audited!(self, event, tx => sqlx::query(REVOKE)
            .bind(now)
            .bind(client_id)
            .execute(&mut *tx)
            .await?
            .rows_affected())
    }

    /// Notes that the client obtained a token, recording `event`.
    pub async fn client_used(
        &self,
        client_id: &str,
        now: i64,
        event: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        audited!(self, event, tx => sqlx::query(USED)
            .bind(now)
            .bind(client_id)
            .execute(&mut *tx)
            .await?
            .rows_affected())
    }
}
