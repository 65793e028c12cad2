//! What service clients do at the token endpoints: obtain tokens (the client-credentials grant,
//! RFC 6749 §4.4), ask whether a token is active (introspection, RFC 7662) and revoke one
//! (RFC 7009). A client authenticates with its ID and secret; only the secret's SHA-256 is
//! stored (see [`super::opaque`]). Creating, listing and revoking clients is account
//! administration (`accounts::clients`).

use std::{sync::Arc, time::Duration};

use serde_json::json;

use super::{
    Auth, Principal, RequestMeta, opaque,
    principal::anonymous_event,
    refresh::session_refusal,
    throttle::now,
    token::{Claims, ClientClaims, peek_tenant},
};
use crate::{
    domain::{Scope, is_client_id},
    error::Error,
    store::{
        audit::{AuditType, NewAuditEvent},
        clients::ServiceClient,
    },
    tenancy::{Registry, ScopeHandle},
};

/// A client-credentials grant's token.
#[derive(Debug)]
pub struct ClientGrant {
    pub access_token: String,
    pub expires_in: u64,
    /// The client's permissions, space-separated (the token's `scope`).
    pub scope: String,
}

/// What introspection found a token to be.
#[derive(Debug)]
pub enum Introspected {
    /// Expired, revoked, foreign, malformed or unknown: nothing more is said.
    Inactive,
    /// A user's access token, accepted as `/whoami` would accept it now, and what the user
    /// may do now.
    User {
        claims: Arc<Claims>,
        permissions: Vec<String>,
    },
    /// A service client's access token, its client still active.
    Client(ClientClaims),
    /// A refresh token, unspent, of a live session.
    Refresh {
        session_id: String,
        user_id: i64,
        username: String,
        /// When its session lapses, at the latest (Unix seconds).
        expires_at: i64,
    },
}

impl Auth {
    /// Checks service client credentials in `tenant`; a mismatch is recorded
    /// (`client_auth_failed`) and answers `invalid_client` whatever was wrong.
    pub async fn authenticate_client(
        &self,
        tenant: &ScopeHandle,
        client_id: &str,
        secret: &str,
        meta: &RequestMeta,
    ) -> Result<ServiceClient, Error> {
        let store = tenant.store().await?;
        // A malformed ID names no client: never looked up, never written as is.
        let (found, client_id) = if is_client_id(client_id) {
            (store.client(client_id).await?, client_id)
        } else {
            (None, "(malformed client_id)")
        };
        let reason = match &found {
            None => "unknown_client",
            Some(c) if c.revoked_at.is_some() => "revoked",
            Some(c) if !opaque::matches(secret, &c.secret_hash) => "bad_secret",
            Some(_) => "",
        };
        match found {
            Some(client) if reason.is_empty() => Ok(client),
            _ => {
                // Failures are written to the audit trail: at most the login rate per address.
                if let Some(addr) = meta.client {
                    self.throttle.hit(addr, now()).await.map_err(|wait| {
                        Error::TooManyRequests {
                            detail: "Too many failed client authentications from this address, \
                                     retry later"
                                .into(),
                            retry_after_seconds: wait,
                        }
                    })?;
                }
                let event = anonymous_event(
                    AuditType::ClientAuthFailed,
                    meta,
                    None,
                    client_id,
                    json!({"reason": reason}),
                );
                store.record_audit(&event).await?;
                Err(Error::InvalidClient)
            }
        }
    }

    /// The client-credentials grant: a token whose `sub` is the client and whose permissions
    /// are the client's. Recorded as the client's use (`client_token_issued`).
    pub async fn client_credentials(
        &self,
        registry: &Registry,
        scope: &Scope,
        client_id: &str,
        secret: &str,
        meta: &RequestMeta,
    ) -> Result<ClientGrant, Error> {
        let tenant = registry.resolve(scope).await?;
        let client = self
            .authenticate_client(&tenant, client_id, secret, meta)
            .await?;
        let idle = Duration::from_secs(u64::try_from(tenant.policy.session_idle).unwrap_or(0));
        let (access_token, claims) = self
            .tokens
            .issue_client(
                &tenant.key,
                &tenant.scope,
                &client.client_id,
                client.permissions.clone(),
                self.tokens.lifetime(idle),
            )
            .map_err(Error::Internal)?;
        let event = anonymous_event(
            AuditType::ClientTokenIssued,
            meta,
            None,
            &client.client_id,
            json!({"jti": claims.jti, "permissions": claims.permissions}),
        );
        let store = tenant.store().await?;
        store.client_used(&client.client_id, now(), &event).await?;
        Ok(ClientGrant {
            access_token,
            expires_in: claims.exp.saturating_sub(claims.iat),
            scope: claims.permissions.join(" "),
        })
    }

    /// Whether `token` is active in `tenant` now: a user's access token as a request with it
    /// would be judged (logouts, password changes, deactivations seen at once), a client's
    /// while its client is active, a refresh token while it may still be exchanged.
    pub async fn introspect(
        &self,
        registry: &Registry,
        tenant: &Arc<ScopeHandle>,
        token: &str,
        meta: &RequestMeta,
    ) -> Result<Introspected, Error> {
        if !token.contains('.') {
            return self.introspect_refresh(tenant, token).await;
        }
        if let Some(principal) = self.principal(registry, tenant, token, meta).await? {
            let user = &principal.user;
            return Ok(Introspected::User {
                permissions: tenant.roles.granted(&user.roles, &user.permissions),
                claims: principal.claims,
            });
        }
        Ok(match self.live_client_token(tenant, token).await? {
            Some(claims) => Introspected::Client(claims),
            None => Introspected::Inactive,
        })
    }

    /// The user `token` authenticates in `tenant` now, as a request would be judged; `None`
    /// for any other token (a client's, another scope's, a dead one).
    async fn principal(
        &self,
        registry: &Registry,
        tenant: &ScopeHandle,
        token: &str,
        meta: &RequestMeta,
    ) -> Result<Option<Principal>, Error> {
        // A legacy request names no tenant, and `authenticate` would follow the token's own
        // claim into that tenant: a tenant's token is no token of the legacy issuer.
        if tenant.scope == Scope::Legacy && !matches!(peek_tenant(token), Ok(None)) {
            return Ok(None);
        }
        let header = tenant.scope.tenant().cloned();
        match self
            .authenticate(registry, header, token, meta.clone())
            .await
        {
            Ok(principal) if principal.handle.scope == tenant.scope => Ok(Some(principal)),
            Ok(_) => Ok(None),
            // The server could not judge it: not an answer about the token.
            Err(e @ (Error::Unavailable { .. } | Error::Internal(_))) => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// The claims of `token` if it is a live token of an active client of `tenant`.
    async fn live_client_token(
        &self,
        tenant: &ScopeHandle,
        token: &str,
    ) -> Result<Option<ClientClaims>, Error> {
        let Ok(claims) = self.tokens.verify_client(&tenant.key, &tenant.scope, token) else {
            return Ok(None);
        };
        self.identities.load_revocations(tenant).await?;
        if self.identities.is_revoked(&tenant.scope, &claims.jti) {
            return Ok(None);
        }
        let store = tenant.store().await?;
        let active = store
            .client(&claims.client_id)
            .await?
            .is_some_and(|c| c.revoked_at.is_none());
        Ok(active.then_some(claims))
    }

    async fn introspect_refresh(
        &self,
        tenant: &ScopeHandle,
        token: &str,
    ) -> Result<Introspected, Error> {
        let store = tenant.store().await?;
        let Some(record) = store.refresh_record(&opaque::fingerprint(token)).await? else {
            return Ok(Introspected::Inactive);
        };
        let now = now();
        let leeway = i64::try_from(self.tokens.leeway()).unwrap_or(0);
        let user = store.user_by_id(record.user_id).await?;
        let refusal = session_refusal(&record, user.as_ref(), &tenant.policy, now, leeway);
        let (Some(user), None, None) = (user, refusal, record.used_at) else {
            return Ok(Introspected::Inactive);
        };
        Ok(Introspected::Refresh {
            expires_at: record
                .expires_at
                .min(record.last_used_at + tenant.policy.session_idle),
            session_id: record.session_id,
            user_id: user.id,
            username: user.username.to_string(),
        })
    }

    /// Revokes `token` in `tenant` (RFC 7009): a user's access token as a logout would (its
    /// session ends too), a client's access token, or a refresh token (its session ends; a
    /// spent one is a reuse). `revoker` is the client that asked, if one authenticated.
    /// Anything else, or a token already dead, is left as it is: the answer is the same.
    pub async fn revoke(
        &self,
        registry: &Registry,
        tenant: &Arc<ScopeHandle>,
        token: &str,
        revoker: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<(), Error> {
        let revoked_by = revoker.unwrap_or("the token's holder");
        let store = tenant.store().await?;
        if !token.contains('.') {
            let Some(record) = store.refresh_record(&opaque::fingerprint(token)).await? else {
                return Ok(());
            };
            if record.used_at.is_some() {
                return self.reused(tenant, &store, &record, meta).await;
            }
            let user = store.user_by_id(record.user_id).await?;
            let event = anonymous_event(
                AuditType::TokenRevoked,
                meta,
                Some(record.user_id),
                user.as_ref().map_or("", |u| u.username.as_str()),
                json!({"sid": record.session_id, "token_type": "refresh_token", "revoked_by": revoked_by}),
            );
            let ended = store
                .end_session(&record.session_id, "revoked", now(), Some(&event))
                .await?;
            self.forget_access(tenant, ended).await;
            return Ok(());
        }
        if let Some(principal) = self.principal(registry, tenant, token, meta).await? {
            let details = json!({
                "jti": principal.claims.jti,
                "sid": principal.claims.sid,
                "token_type": "access_token",
                "revoked_by": revoked_by,
            });
            let event = NewAuditEvent {
                actor_id: None,
                actor_username: None,
                ..principal.event(AuditType::TokenRevoked, Some(&principal.user), details)
            };
            return self.end_access(&principal, &event).await;
        }
        let Some(claims) = self.live_client_token(tenant, token).await? else {
            return Ok(());
        };
        let event = anonymous_event(
            AuditType::TokenRevoked,
            meta,
            None,
            &claims.client_id,
            json!({"jti": claims.jti, "client_id": claims.client_id, "revoked_by": revoked_by}),
        );
        let expires_at = i64::try_from(claims.exp).unwrap_or(i64::MAX);
        // Client tokens belong to no user: user id 0, which no account has.
        store
            .revoke_token(&claims.jti, 0, expires_at, &event)
            .await?;
        self.identities
            .remember_revoked(&tenant.scope, claims.jti)
            .await;
        Ok(())
    }
}
