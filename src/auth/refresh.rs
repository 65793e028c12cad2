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

use std::time::Duration;

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
        audit::{AuditType, NewAuditEvent},
        sessions::{LiveAccess, NewRefreshToken, NewSession, RefreshRecord},
        users::User,
    },
    tenancy::{Registry, ScopeHandle, SecurityPolicy},
};

/// The one answer to a refresh token that does not hold, whatever the reason (RFC 6749 §5.2).
fn invalid_grant() -> Error {
    Error::InvalidGrant("Refresh token is invalid, expired or revoked".into())
}

/// Why an unspent refresh token of `record`'s session may not be exchanged now (`None`: it
/// may), for `user` as stored now: the one rule refresh and introspection share. `leeway`
/// (seconds) is the clock skew tolerated on the idle timeout.
pub(super) fn session_refusal(
    record: &RefreshRecord,
    user: Option<&User>,
    policy: &SecurityPolicy,
    now: i64,
    leeway: i64,
) -> Option<&'static str> {
    let max_age = i64::from(policy.password_max_age_days) * 86_400;
    match user {
        _ if record.ended_at.is_some() => Some("session_ended"),
        _ if now >= record.expires_at => Some("session_expired"),
        _ if now > record.last_used_at + policy.session_idle + leeway => Some("session_idle"),
        None => Some("user_deleted"),
        Some(u) if !u.is_active => Some("user_inactive"),
        Some(u) if u.token_version != record.user_version => Some("credentials_changed"),
        Some(u) if u.roles.is_empty() => Some("no_roles"),
        Some(u) if max_age > 0 && u.password_changed_at.is_none_or(|at| now - at > max_age) => {
            Some("password_expired")
        }
        Some(_) => None,
    }
}

impl Auth {
    /// A login of `user`: issues its access token in a new session, and the session's first
    /// refresh token; the user's failed attempts are cleared and `event` (the login, completed
    /// with the token's `trace`) recorded in the same transaction.
    pub(super) async fn open_session(
        &self,
        tenant: &ScopeHandle,
        store: &Store,
        user: &User,
        mut event: NewAuditEvent,
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
        event.trace = Some(claims.trace.clone());
        store.record_login(&session, &token, &event).await?;
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
        let Some(record) = store.refresh_record(&hash).await? else {
            return Err(self.refused_grant(meta).await);
        };
        if record.used_at.is_some() {
            self.reused(&tenant, &store, &record, meta).await?;
            return Err(self.refused_grant(meta).await);
        }
        let now = now();
        let user = store.user_by_id(record.user_id).await?;
        let leeway = i64::try_from(self.tokens.leeway()).unwrap_or(0);
        let refusal = session_refusal(&record, user.as_ref(), &tenant.policy, now, leeway);
        let (Some(user), None) = (user.clone(), refusal) else {
            let reason = refusal.unwrap_or("user_deleted");
            let name = user.as_ref().map_or("", |u| u.username.as_str());
            let event = anonymous_event(
                AuditType::TokenRefused,
                meta,
                Some(record.user_id),
                name,
                json!({"reason": reason, "sid": record.session_id, "grant": "refresh_token"}),
            );
            // Recorded once, when it ends the session; later attempts write nothing.
            let ended = store
                .end_session(&record.session_id, reason, now, Some(&event))
                .await?;
            self.forget_access(&tenant, ended).await;
            return Err(self.refused_grant(meta).await);
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
            if let Some(record) = store.refresh_record(&hash).await?
                && record.used_at.is_some()
            {
                self.reused(&tenant, &store, &record, meta).await?;
            }
            return Err(self.refused_grant(meta).await);
        }
        Ok(Login {
            access_token: access,
            expires_in: claims.exp.saturating_sub(claims.iat),
            refresh_token: Some(next),
            user,
        })
    }

    /// A refresh grant that does not hold. Each costs the address one of its login attempts a
    /// minute, so dead or made-up tokens cannot be presented at speed.
    async fn refused_grant(&self, meta: &RequestMeta) -> Error {
        if let Some(addr) = meta.client
            && let Err(wait) = self.throttle.hit(addr, now()).await
        {
            return Error::TooManyRequests {
                detail: "Too many refused refresh tokens from this address, retry later".into(),
                retry_after_seconds: wait,
            };
        }
        invalid_grant()
    }

    /// A spent refresh token came back: someone else holds a copy. The whole family ends, its
    /// live access tokens are revoked, and the alert is raised — once: when the family had
    /// already ended, nothing more is written.
    pub(super) async fn reused(
        &self,
        tenant: &ScopeHandle,
        store: &Store,
        record: &RefreshRecord,
        meta: &RequestMeta,
    ) -> Result<(), Error> {
        if record.ended_at.is_some() {
            return Ok(());
        }
        let user = store.user_by_id(record.user_id).await?;
        let event = anonymous_event(
            AuditType::RefreshTokenReused,
            meta,
            Some(record.user_id),
            user.as_ref().map_or("", |u| u.username.as_str()),
            json!({"sid": record.session_id, "spent_at": record.used_at}),
        );
        let Some(revoked) = store
            .end_session(&record.session_id, "reuse", now(), Some(&event))
            .await?
        else {
            return Ok(());
        };
        let access_tokens = revoked.len();
        self.forget_access(tenant, Some(revoked)).await;
        tracing::warn!(
            alert = "refresh_token_reused",
            scope = %tenant.scope,
            user_id = record.user_id,
            sid = %record.session_id,
            client = ?meta.client,
            access_tokens,
            "SECURITY ALERT: a spent refresh token was presented again; its session is ended"
        );
        Ok(())
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
    pub(super) async fn forget_access(
        &self,
        tenant: &ScopeHandle,
        revoked: Option<Vec<LiveAccess>>,
    ) {
        for access in revoked.into_iter().flatten() {
            self.identities
                .remember_revoked(&tenant.scope, access.access_jti)
                .await;
        }
    }
}
