//! Sessions and refresh tokens (RFC 6749 §6, RFC 9700 §4.14.2). Each login opens a session:
//! a family of refresh tokens, each good for one refresh, which hands out the next. The
//! access tokens it issues carry its id as `sid`.
//!
//! A session ends when:
//! - a spent refresh token is presented again (reuse: someone holds a copy), which also
//!   revokes every live access token of the family and raises a security alert;
//! - its user logs out with one of its access tokens;
//! - the user's token version moves (password change or reset, deactivation, role change):
//!   checked at each refresh, so it needs no write on those paths;
//! - it lapses: not refreshed for the tenant's `session_idle_minutes`, or older than its
//!   `session_max_hours`.

use std::{sync::Arc, time::Duration};

use serde_json::json;

use super::{
    Auth, Login, RequestMeta, opaque,
    principal::anonymous_event,
    throttle::now,
    token::{Claims, Issue},
};
use crate::{
    domain::Scope,
    error::Error,
    store::{
        Store,
        audit::AuditType,
        sessions::{LiveAccess, NewRefreshToken, NewSession, RefreshRecord},
        users::User,
    },
    tenancy::{Registry, ScopeHandle},
};

/// The one answer to a refresh token that does not hold, whatever the reason (RFC 6749 §5.2).
fn invalid_grant() -> Error {
    Error::InvalidGrant("Refresh token is invalid, expired or revoked".into())
}

impl Auth {
    /// Issues `user`'s access token in a new session, and the session's first refresh token.
    pub(super) async fn open_session(
        &self,
        tenant: &ScopeHandle,
        store: &Store,
        user: &User,
    ) -> Result<(String, Claims, String), Error> {
        let now = now();
        let sid = uuid::Uuid::new_v4().to_string();
        let expires_at = now + tenant.policy.session_max;
        let (access, claims) = self.issue_access(tenant, user, &sid, expires_at - now)?;
        let refresh = opaque::generate();
        let session = NewSession {
            id: &sid,
            user_id: user.id,
            user_version: user.token_version,
            now,
            expires_at,
        };
        let token = NewRefreshToken {
            hash: &opaque::fingerprint(&refresh),
            access_jti: &claims.jti,
            access_expires_at: i64::try_from(claims.exp).unwrap_or(i64::MAX),
        };
        store.open_session(&session, &token).await?;
        Ok((access, claims, refresh))
    }

    /// `user`'s access token in session `sid`, which ends in `remaining` seconds at the latest:
    /// the token outlives neither the session nor its idle timeout.
    fn issue_access(
        &self,
        tenant: &ScopeHandle,
        user: &User,
        sid: &str,
        remaining: i64,
    ) -> Result<(String, Claims), Error> {
        let seconds = |s: i64| Duration::from_secs(u64::try_from(s).unwrap_or(0));
        let idle = seconds(tenant.policy.session_idle.min(remaining));
        let issue = Issue {
            lifetime: self.tokens.lifetime(idle),
            sid: Some(sid.to_owned()),
        };
        let permissions = tenant.roles.granted(&user.roles, &user.permissions);
        self.tokens
            .issue(&tenant.key, &tenant.scope, user, permissions, issue)
            .map_err(Error::Internal)
    }

    /// The refresh grant: spends `presented` and issues a new access token and the next
    /// refresh token of its session, for the user as they are now.
    pub async fn refresh(
        &self,
        registry: &Registry,
        scope: &Scope,
        presented: &str,
        meta: &RequestMeta,
    ) -> Result<Login, Error> {
        let tenant = registry.resolve(scope).await?;
        let store = tenant.store().await?;
        let hash = opaque::fingerprint(presented);
        let record = store
            .refresh_record(&hash)
            .await?
            .ok_or_else(invalid_grant)?;
        if record.used_at.is_some() {
            return Err(self.reused(&tenant, &store, &record, meta).await?);
        }
        let now = now();
        let user = store.user_by_id(record.user_id).await?;
        let leeway = i64::try_from(self.tokens.leeway()).unwrap_or(0);
        let refusal = match &user {
            _ if record.ended_at.is_some() => Some("session_ended"),
            _ if now >= record.expires_at => Some("session_expired"),
            _ if now > record.last_used_at + tenant.policy.session_idle + leeway => {
                Some("session_idle")
            }
            None => Some("user_deleted"),
            Some(u) if !u.is_active => Some("user_inactive"),
            Some(u) if u.token_version != record.user_version => Some("credentials_changed"),
            Some(u) if u.roles.is_empty() => Some("no_roles"),
            Some(_) => None,
        };
        let name = user
            .as_ref()
            .map_or(String::new(), |u| u.username.to_string());
        let (Some(user), None) = (user, refusal) else {
            let reason = refusal.unwrap_or("user_deleted");
            let event = anonymous_event(
                AuditType::TokenRefused,
                meta,
                Some(record.user_id),
                &name,
                json!({"reason": reason, "sid": record.session_id, "grant": "refresh_token"}),
            );
            let revoked = store
                .end_session(&record.session_id, reason, now, Some(&event))
                .await?;
            self.forget_access(&tenant, revoked).await;
            return Err(invalid_grant());
        };
        let remaining = record.expires_at - now;
        let (access, claims) = self.issue_access(&tenant, &user, &record.session_id, remaining)?;
        let next = opaque::generate();
        let mut event = anonymous_event(
            AuditType::TokenRefreshed,
            meta,
            Some(user.id),
            &user.username,
            json!({"sid": record.session_id}),
        );
        event.trace = Some(claims.trace.clone());
        let token = NewRefreshToken {
            hash: &opaque::fingerprint(&next),
            access_jti: &claims.jti,
            access_expires_at: i64::try_from(claims.exp).unwrap_or(i64::MAX),
        };
        let rotated = store
            .rotate_refresh(&record.session_id, &hash, &token, now, &event)
            .await?;
        if !rotated {
            // Spent or ended meanwhile: a concurrent presentation is a reuse.
            return match store.refresh_record(&hash).await? {
                Some(record) if record.used_at.is_some() => {
                    Err(self.reused(&tenant, &store, &record, meta).await?)
                }
                _ => Err(invalid_grant()),
            };
        }
        Ok(Login {
            access_token: access,
            expires_in: claims.exp.saturating_sub(claims.iat),
            refresh_token: Some(next),
            user,
        })
    }

    /// A spent refresh token came back: someone else holds a copy. The whole family ends, its
    /// live access tokens are revoked, and the alert is raised. The error to answer with.
    async fn reused(
        &self,
        tenant: &Arc<ScopeHandle>,
        store: &Store,
        record: &RefreshRecord,
        meta: &RequestMeta,
    ) -> Result<Error, Error> {
        let user = store.user_by_id(record.user_id).await?;
        let event = anonymous_event(
            AuditType::RefreshTokenReused,
            meta,
            Some(record.user_id),
            user.as_ref().map_or("", |u| u.username.as_str()),
            json!({"sid": record.session_id, "spent_at": record.used_at}),
        );
        let revoked = store
            .end_session(&record.session_id, "reuse", now(), Some(&event))
            .await?;
        let access_tokens = revoked.len();
        self.forget_access(tenant, revoked).await;
        tracing::warn!(
            alert = "refresh_token_reused",
            scope = %tenant.scope,
            user_id = record.user_id,
            sid = %record.session_id,
            client = ?meta.client,
            access_tokens,
            "SECURITY ALERT: a spent refresh token was presented again; its session is ended"
        );
        Ok(invalid_grant())
    }

    /// Ends session `sid` (logout, revocation), revoking its live access tokens.
    pub(super) async fn end_session(
        &self,
        tenant: &ScopeHandle,
        sid: &str,
        reason: &str,
    ) -> Result<(), Error> {
        let store = tenant.store().await?;
        let revoked = store.end_session(sid, reason, now(), None).await?;
        self.forget_access(tenant, revoked).await;
        Ok(())
    }

    /// Adds access tokens an ended session revoked to the revocation lists (every replica's).
    pub(super) async fn forget_access(&self, tenant: &ScopeHandle, revoked: Vec<LiveAccess>) {
        for access in revoked {
            self.identities
                .remember_revoked(&tenant.scope, access.access_jti)
                .await;
        }
    }
}
