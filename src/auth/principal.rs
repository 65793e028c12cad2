//! Who is asking: the [`Principal`] an accepted token stands for, where the request came from
//! ([`RequestMeta`]), and the audit records they leave.

use std::{net::IpAddr, sync::Arc};

use serde_json::Value;

use super::{session::Session, token::Claims};
use crate::{
    domain::{Permission, PermissionMap},
    error::Error,
    store::{
        audit::{AuditType, NewAuditEvent},
        users::User,
    },
    tenancy::ScopeHandle,
};

/// Where a request came from, for rate limits and the audit trail.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub client: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// The authenticated caller of a request.
#[derive(Debug)]
pub struct Principal {
    /// The scope the token belongs to (a tenant, or the legacy database).
    pub handle: Arc<ScopeHandle>,
    pub claims: Arc<Claims>,
    pub user: Arc<User>,
    pub meta: RequestMeta,
    /// What the token resolved to (the same tenant and user).
    pub session: Arc<Session>,
}

impl Principal {
    /// The caller whose token with `claims` was accepted on `session`.
    pub(super) fn on(session: &Arc<Session>, claims: Arc<Claims>, meta: RequestMeta) -> Self {
        Self {
            handle: session.handle.clone(),
            claims,
            user: session.user().clone(),
            meta,
            session: session.clone(),
        }
    }

    /// Whether the caller may do `permission` here (roles merged with their overrides).
    pub fn can(&self, permission: Permission) -> bool {
        self.handle
            .roles
            .allows(&self.user.roles, &self.user.permissions, permission)
    }

    /// 403 naming `permission` unless the caller holds it.
    pub fn require(&self, permission: Permission) -> Result<(), Error> {
        if self.can(permission) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "Missing permission: {permission}"
            )))
        }
    }

    /// The caller's full permissions object, as `/me` shows it.
    pub fn permissions(&self) -> PermissionMap {
        self.handle
            .roles
            .effective(&self.user.roles, &self.user.permissions)
    }

    /// An audit record with this principal as actor.
    pub fn event(
        &self,
        event_type: AuditType,
        subject: Option<&User>,
        details: Value,
    ) -> NewAuditEvent {
        NewAuditEvent {
            event_type,
            actor_id: Some(self.user.id),
            actor_username: Some(self.user.username.to_string()),
            subject_id: subject.map(|u| u.id),
            subject_username: subject.map(|u| u.username.to_string()),
            client_addr: self.meta.client.map(|c| c.to_string()),
            user_agent: self.meta.user_agent.clone(),
            trace: Some(self.claims.trace.clone()),
            resource: None,
            details,
        }
    }
}

/// An audit record of an anonymous request about `subject`.
pub fn anonymous_event(
    event_type: AuditType,
    meta: &RequestMeta,
    subject_id: Option<i64>,
    subject_username: &str,
    details: Value,
) -> NewAuditEvent {
    NewAuditEvent {
        event_type,
        actor_id: None,
        actor_username: None,
        subject_id,
        subject_username: Some(subject_username.to_owned()),
        client_addr: meta.client.map(|c| c.to_string()),
        user_agent: meta.user_agent.clone(),
        trace: None,
        resource: None,
        details,
    }
}
