//! Authentication: who is asking, and may they.
//!
//! - [`password`]: argon2id on a bounded blocking pool, with a dummy hash for unknown users.
//! - [`token`]: HS256 tokens with the contract's claims, per-scope keys, RFC 8725 checks.
//! - [`identity`]: what the process remembers of users and logouts, across replicas.
//! - [`session`]: what an accepted token resolved to, reused while nothing under it changed.
//! - [`throttle`]: the per-address login rate limit, in this process or shared in Redis.
//! - [`Auth`]: the flows of one's own credentials — log in ([`login`]), authenticate a bearer
//!   token, change one's password, log out — each deciding outcomes in an order that reveals
//!   nothing about an account before its password checked out, and each writing its audit
//!   record in the same transaction as its change. Account administration is its peer
//!   service, `accounts`.

pub mod clients;
pub mod fair_queue;
pub mod identity;
pub mod login;
pub mod opaque;
pub mod password;
pub mod principal;
mod refresh;
pub mod session;
pub mod throttle;
pub mod token;
pub mod verified;

use std::{sync::Arc, time::Duration};

use serde_json::json;

use self::{
    identity::Identities,
    password::Hasher,
    session::Session,
    throttle::Throttle,
    token::{TokenError, TokenService, peek_tenant},
    verified::{VerifiedToken, VerifiedTokens},
};
pub use self::{
    login::Login,
    principal::{Principal, RequestMeta, anonymous_event},
};
use crate::{
    config::Settings,
    domain::{Scope, TenantId},
    error::Error,
    metrics::Metrics,
    store::audit::AuditType,
    tenancy::{Registry, TenancyError},
};

/// Logins, token checks, one's own password and logout.
pub struct Auth {
    pub hasher: Hasher,
    pub tokens: TokenService,
    verified: VerifiedTokens,
    identities: Arc<Identities>,
    throttle: Throttle,
    metrics: Arc<Metrics>,
}

impl Auth {
    pub fn new(
        settings: &Settings,
        hasher: Hasher,
        tokens: TokenService,
        identities: Arc<Identities>,
        throttle: Throttle,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            hasher,
            tokens,
            verified: VerifiedTokens::new(
                100_000,
                Duration::from_secs(settings.jwt.leeway_seconds),
            ),
            identities,
            throttle,
            metrics,
        }
    }

    /// Resolves the scope (the `X-Tenant` header, else the token's unverified `tenant` claim,
    /// used only to pick the key), verifies the token with that scope's key, and checks it
    /// against the user's current state: deleted, deactivated, credentials changed since
    /// (token version) or logged out (`jti`) all refuse it.
    ///
    /// A token accepted before, on a session nothing has changed under, is accepted again
    /// at the cost of one lookup (see [`session`]).
    pub async fn authenticate(
        &self,
        registry: &Registry,
        header_tenant: Option<TenantId>,
        token: &str,
        meta: RequestMeta,
    ) -> Result<Principal, Error> {
        let seen = self.verified.get(header_tenant.as_ref(), token);
        if let Some(seen) = &seen
            && let Some(session) = seen.session()
            && session.still_valid(&self.identities, &seen.claims.jti)
        {
            return Ok(Principal::on(session, seen.claims.clone(), meta));
        }
        // Boxed: the hot path's future stays small (see `Registry::tenant`).
        Box::pin(self.resolve(registry, header_tenant, seen, token, meta)).await
    }

    /// [`Self::authenticate`] when the token has no session still valid.
    async fn resolve(
        &self,
        registry: &Registry,
        header_tenant: Option<TenantId>,
        seen: Option<Arc<VerifiedToken>>,
        token: &str,
        meta: RequestMeta,
    ) -> Result<Principal, Error> {
        let from_header = header_tenant.is_some();
        let scope = match (&seen, &header_tenant) {
            (Some(seen), _) => seen.scope.clone(),
            (None, Some(id)) => Scope::Tenant(id.clone()),
            (None, None) => match peek_tenant(token)? {
                None => Scope::Legacy,
                Some(raw) => Scope::Tenant(TenantId::parse(&raw).map_err(|_| TokenError::Invalid)?),
            },
        };
        let tenant = match registry.resolve(&scope).await {
            Ok(tenant) => tenant,
            // An unverified claim naming no tenant says nothing but "bad token".
            Err(TenancyError::Unknown) if !from_header => return Err(TokenError::Invalid.into()),
            Err(e) => return Err(e.into()),
        };
        let claims = match &seen {
            Some(seen) if seen.incarnation == tenant.incarnation => seen.claims.clone(),
            // Never verified, or verified under an earlier registration of this tenant ID.
            _ => Arc::new(self.tokens.verify(&tenant.key, &scope, token)?),
        };
        // Only now, with the signature checked, may the request open the tenant's database.
        self.identities.load_revocations(&tenant).await?;
        // The handle was just confirmed current: a session on it may only need its dates.
        if let Some(seen) = &seen
            && let Some(session) = seen.session()
            && Arc::ptr_eq(&session.handle, &tenant)
            && session.still_valid(&self.identities, &claims.jti)
        {
            return Ok(Principal::on(session, claims, meta));
        }
        let snapshot = self.identities.user_snapshot(&tenant, claims.uid).await?;
        // Read before the `jti` is checked: a revocation after this moves it.
        let revocations = self.identities.revocation_epoch();
        let reason = match &snapshot {
            None => Some("user_deleted"),
            Some(s) if !s.user.is_active => Some("user_inactive"),
            Some(s) if s.user.token_version != claims.ver => Some("credentials_changed"),
            Some(_) if self.identities.is_revoked(&tenant.scope, &claims.jti) => Some("logged_out"),
            Some(_) => None,
        };
        match (snapshot, reason) {
            (Some(snapshot), None) => {
                let session = Arc::new(Session::new(tenant.clone(), snapshot, revocations));
                self.verified.insert(
                    seen.as_deref(),
                    header_tenant,
                    token,
                    scope,
                    claims.clone(),
                    session.clone(),
                );
                Ok(Principal::on(&session, claims, meta))
            }
            (snapshot, reason) => {
                let user = snapshot.map(|s| s.user);
                let mut event = anonymous_event(
                    AuditType::TokenRefused,
                    &meta,
                    Some(claims.uid),
                    user.as_ref().map_or(&claims.username, |u| &u.username),
                    json!({"reason": reason, "jti": claims.jti}),
                );
                event.trace = Some(claims.trace.clone());
                // Boxed: the hot path's future stays small (see `Registry::tenant`).
                Box::pin(async { tenant.store().await?.record_audit(&event).await }).await?;
                Err(TokenError::Revoked.into())
            }
        }
    }

    /// Revokes the presented token until it expires, and ends its session (see [`refresh`]).
    pub async fn logout(&self, principal: &Principal) -> Result<(), Error> {
        let claims = &principal.claims;
        let event = principal.event(
            AuditType::Logout,
            Some(&principal.user),
            json!({"jti": claims.jti, "sid": claims.sid}),
        );
        self.end_access(principal, &event).await
    }

    /// Revokes `principal`'s token until it expires and ends its session, recording `event`.
    pub(crate) async fn end_access(
        &self,
        principal: &Principal,
        event: &crate::store::audit::NewAuditEvent,
    ) -> Result<(), Error> {
        let claims = &principal.claims;
        let expires_at = i64::try_from(claims.exp).unwrap_or(i64::MAX);
        principal
            .handle
            .store()
            .await?
            .revoke_token(&claims.jti, claims.uid, expires_at, event)
            .await?;
        self.identities
            .remember_revoked(&principal.handle.scope, claims.jti.clone())
            .await;
        if let Some(sid) = &claims.sid {
            self.end_session(&principal.handle, sid, "logout").await?;
        }
        Ok(())
    }
}
