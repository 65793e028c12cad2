//! The audit trail: one append-only table per scope database (triggers refuse UPDATE and
//! DELETE). Security-relevant writes insert their audit row in the same transaction as the
//! change itself, so a change is never recorded without its record, nor the reverse.

use serde_json::Value;
use sqlx::{FromRow, types::Json};

use super::{Store, StoreError, with_conn};
pub use crate::domain::audit::{AuditEvent, AuditFilter, AuditType, NewAuditEvent};

/// A stored audit record as the database returns it.
#[derive(FromRow)]
struct AuditRow {
    id: i64,
    occurred_at: i64,
    event_type: String,
    actor_id: Option<i64>,
    actor_username: Option<String>,
    subject_id: Option<i64>,
    subject_username: Option<String>,
    client_addr: Option<String>,
    user_agent: Option<String>,
    trace: Option<String>,
    resource: Option<String>,
    details: Json<Value>,
}

impl From<AuditRow> for AuditEvent {
    fn from(row: AuditRow) -> Self {
        Self {
            id: row.id,
            occurred_at: row.occurred_at,
            event_type: row.event_type,
            actor_id: row.actor_id,
            actor_username: row.actor_username,
            subject_id: row.subject_id,
            subject_username: row.subject_username,
            client_addr: row.client_addr,
            user_agent: row.user_agent,
            trace: row.trace,
            resource: row.resource,
            details: row.details.0,
        }
    }
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

/// Runs `$body` (using `&mut *$tx`) and inserts the audit `$event` in one transaction; the
/// body yields the rows it affected, and none means `NotFound` (nothing is recorded then).
macro_rules! audited {
    ($store:expr, $event:expr, $tx:ident => $body:expr) => {
        $crate::store::with_conn!($store, conn => async {
            let mut $tx = sqlx::Connection::begin(conn).await?;
            let affected: u64 = $body;
            if affected == 0 {
                return Err($crate::store::StoreError::NotFound);
            }
            $crate::store::audit::insert_audit!(&mut *$tx, $event, $crate::store::audit::now_ms())?;
            $tx.commit().await?;
            Ok::<(), $crate::store::StoreError>(())
        }
        .await)
    };
}
pub(crate) use audited;

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
        let rows = with_conn!(self, conn => sqlx::query_as::<_, AuditRow>(LIST)
            .bind(filter.event_type.map(AuditType::as_str))
            .bind(user.as_deref())
            .bind(filter.since)
            .bind(filter.until)
            .bind(filter.before_id)
            .bind(filter.limit)
            .bind(filter.resource.as_deref())
            .fetch_all(conn)
            .await?);
        Ok(rows.into_iter().map(AuditEvent::from).collect())
    }
}
