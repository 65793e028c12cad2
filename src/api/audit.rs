//! The audit trail of the caller's own scope (the one its token was verified for), for holders
//! of `audit.view`.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{Object, OpenApi, param::Query, payload::Json};
use serde_json::Value;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::error::ApiError;
use super::{ApiTags, AppState, security::BearerAuth, tenant::XTenant};
use crate::{
    domain::audit::{AuditEvent, AuditFilter, AuditType},
    error::Error,
};

#[derive(Default)]
pub struct AuditApi;

/// One audit record.
#[derive(Debug, Object)]
pub struct AuditEventResponse {
    /// Record ID; increases with time (the pagination cursor).
    pub id: i64,
    /// When it happened, RFC 3339, UTC.
    pub occurred_at: String,
    /// What happened: login_succeeded, login_failed, account_locked, logout, password_changed,
    /// password_reset, password_rehashed, user_created, user_activated, user_deactivated,
    /// user_unlocked, user_roles_changed, user_permissions_changed, account_change_refused,
    /// token_refused, token_refreshed, refresh_token_reused, client_created,
    /// client_revoked, client_token_issued, client_auth_failed, token_revoked,
    /// icsr_created, icsr_updated, icsr_deleted, tenant_provisioned, tenant_activated,
    /// tenant_deactivated.
    pub event_type: String,
    /// Who acted (absent for anonymous requests such as logins).
    pub actor_id: Option<i64>,
    pub actor_username: Option<String>,
    /// Whom it concerned; for a failed login, the name attempted.
    pub subject_id: Option<i64>,
    pub subject_username: Option<String>,
    /// The client's address.
    pub client_addr: Option<String>,
    /// The client's User-Agent.
    pub user_agent: Option<String>,
    /// The `trace` of the token involved.
    pub trace: Option<String>,
    /// The record concerned when it is not a user, e.g. `icsr:42`.
    pub resource: Option<String>,
    /// Event-specific facts (reason of a failure, lock end, …).
    pub details: Value,
}

impl From<AuditEvent> for AuditEventResponse {
    fn from(e: AuditEvent) -> Self {
        let at = super::dto::rfc3339(e.occurred_at).unwrap_or_default();
        Self {
            id: e.id,
            occurred_at: at,
            event_type: e.event_type,
            actor_id: e.actor_id,
            actor_username: e.actor_username,
            subject_id: e.subject_id,
            subject_username: e.subject_username,
            client_addr: e.client_addr,
            user_agent: e.user_agent,
            trace: e.trace,
            resource: e.resource,
            details: e.details,
        }
    }
}

/// A page of audit records, newest first.
#[derive(Debug, Object)]
pub struct AuditPage {
    pub items: Vec<AuditEventResponse>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

fn parse_time(raw: Option<&str>, field: &str) -> Result<Option<i64>, Error> {
    raw.map(|raw| {
        OffsetDateTime::parse(raw, &Rfc3339)
            .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
            .map_err(|_| {
                Error::Validation(format!(
                    "{field} must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z"
                ))
            })
    })
    .transpose()
}

#[OpenApi(tag = "ApiTags::Audit")]
impl AuditApi {
    /// Audit trail
    ///
    /// The scope's append-only audit records, newest first; needs `audit.view`. Filters
    /// combine; page with `before` = the previous page's `next_before`.
    #[oai(
        path = "/api/v1/audit-events",
        method = "get",
        operation_id = "audit_events"
    )]
    #[allow(
        clippy::too_many_arguments,
        reason = "one parameter per documented query filter"
    )]
    async fn audit_events(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// Tenant identifier, a lowercase DNS label (`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`);
        /// taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
        /// Username (case-insensitive), as actor or subject.
        user: Query<Option<String>>,
        /// Event type, e.g. `login_failed`.
        #[oai(name = "type")]
        event_type: Query<Option<String>>,
        /// Only records at or after this time (RFC 3339).
        since: Query<Option<String>>,
        /// Only records before this time (RFC 3339).
        until: Query<Option<String>>,
        /// Only records about this record, e.g. `icsr:42`.
        resource: Query<Option<String>>,
        /// Only records with a smaller ID (keyset cursor).
        before: Query<Option<i64>>,
        /// Page size, 1-200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<i64>>,
    ) -> Result<Json<AuditPage>, ApiError> {
        let event_type = event_type
            .0
            .as_deref()
            .map(|t| {
                AuditType::parse(t)
                    .ok_or_else(|| Error::Validation(format!("unknown event type {t:?}")))
            })
            .transpose()?;
        let limit = limit.0.unwrap_or(50);
        let filter = AuditFilter {
            user: user.0,
            event_type,
            since: parse_time(since.0.as_deref(), "since")?,
            until: parse_time(until.0.as_deref(), "until")?,
            resource: resource.0,
            before_id: before.0,
            limit: limit + 1,
        };
        let mut events = state.accounts.audit_events(&auth.0, &filter).await?;
        let more = events.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_before = if more {
            events.last().map(|e| e.id)
        } else {
            None
        };
        Ok(Json(AuditPage {
            items: events.into_iter().map(Into::into).collect(),
            next_before,
        }))
    }
}
