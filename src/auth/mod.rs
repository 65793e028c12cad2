//! Authentication: who is asking, and may they.
//!
//! - [`password`]: argon2id on a bounded blocking pool, with a dummy hash for unknown users.
//! - [`token`]: HS256 tokens with the contract's claims, per-scope keys, RFC 8725 checks.
//! - [`throttle`]: per-address rate limit and the lockout mirror for unknown names.
//! - [`Auth`]: the flows the API calls — login, authenticate a bearer token, change and reset
//!   a password, log out, administer accounts — each deciding outcomes in an order that
//!   reveals nothing about an account before its password checked out, and each writing its
//!   audit record in the same transaction as its change.

pub mod accounts;
pub mod fair_queue;
pub mod password;
pub mod session;
pub mod throttle;
pub mod token;

use std::{net::IpAddr, sync::Arc, time::Duration};

use serde_json::{Value, json};

use self::{
    accounts::Change,
    password::Hasher,
    session::{BodyCache, Session},
    throttle::{AddressLimiter, now},
    token::{Claims, TokenError, TokenService, VerifiedTokens, peek_tenant},
};
use crate::{
    config::Settings,
    domain::{Email, LoginIdentifier, Password, Permission, PermissionMap, Scope, TenantId},
    error::Error,
    metrics::Metrics,
    store::{
        audit::{AuditType, NewAuditEvent},
        users::User,
    },
    tenancy::{Registry, TenancyError, Tenant},
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
    pub tenant: Arc<Tenant>,
    pub claims: Arc<Claims>,
    pub user: Arc<User>,
    pub meta: RequestMeta,
    /// What the token resolved to (the same tenant and user), with the rendered bodies.
    pub session: Arc<Session>,
}

impl Principal {
    /// The caller whose token with `claims` was accepted on `session`.
    fn on(session: &Arc<Session>, claims: Arc<Claims>, meta: RequestMeta) -> Self {
        Self {
            tenant: session.tenant.clone(),
            claims,
            user: session.user().clone(),
            meta,
            session: session.clone(),
        }
    }

    /// Whether the caller may do `permission` here (roles merged with their overrides).
    pub fn can(&self, permission: Permission) -> bool {
        self.tenant
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
        self.tenant
            .roles
            .effective(&self.user.roles, &self.user.permissions)
    }

    /// An audit record with this principal as actor.
    pub(crate) fn event(
        &self,
        event_type: AuditType,
        subject: Option<&User>,
        details: Value,
    ) -> NewAuditEvent {
        NewAuditEvent {
            event_type,
            actor_id: Some(self.user.id),
            actor_username: Some(self.user.username.clone()),
            subject_id: subject.map(|u| u.id),
            subject_username: subject.map(|u| u.username.clone()),
            client_addr: self.meta.client.map(|c| c.to_string()),
            user_agent: self.meta.user_agent.clone(),
            trace: Some(self.claims.trace.clone()),
            resource: None,
            details,
        }
    }
}

/// Who resets a password (`POST /api/v1/auth/reset-password`).
#[derive(Debug, Clone, Copy)]
pub enum ResetBy<'a> {
    /// Where the endpoint is open (development): anyone; a token, when one came, names the
    /// actor in the audit trail and is not weighed.
    Open(Option<&'a Principal>),
    /// Where it is not (production): a user of the tenant, held to the rule of account
    /// administration (see [`accounts::authority`]).
    Administrator(&'a Principal),
}

/// A successful login.
#[derive(Debug)]
pub struct Login {
    pub access_token: String,
    pub user: User,
}

pub struct Auth {
    pub hasher: Hasher,
    pub tokens: TokenService,
    verified: VerifiedTokens,
    bodies: BodyCache,
    addresses: AddressLimiter,
    metrics: Arc<Metrics>,
}

/// The refusal of a locked account (or name), for `wait` more seconds.
fn locked(wait: i64) -> Error {
    Error::TooManyRequests {
        detail: "Too many failed login attempts, retry later".into(),
        retry_after_seconds: wait.max(1),
    }
}

/// An audit record of an anonymous request about `subject`.
fn anonymous_event(
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

impl Auth {
    pub fn new(
        settings: &Settings,
        hasher: Hasher,
        tokens: TokenService,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            hasher,
            tokens,
            verified: VerifiedTokens::new(
                100_000,
                Duration::from_secs(settings.jwt.leeway_seconds),
            ),
            bodies: BodyCache::new(
                settings.tenants.handle_cache_capacity,
                Duration::from_millis(settings.security.user_cache_millis),
            ),
            addresses: AddressLimiter::new(settings.security.login_attempts_per_ip_per_minute),
            metrics,
        }
    }

    /// Checks a username-or-e-mail and password in `tenant`; issues a token.
    ///
    /// Order: the address's rate limit; then one attempt is reserved atomically (per account
    /// in its database, per unknown name in the same database's `login_name_failures`) *before* any hash is computed, so parallel
    /// attempts can never get more tries than the threshold; a locked name answers 429 without
    /// hashing, whether or not an account exists. Only once the password checked out may the
    /// answer speak of the account (inactive, no roles, expired password).
    pub async fn login(
        &self,
        tenant: &Arc<Tenant>,
        login: &LoginIdentifier,
        password: Password,
        meta: &RequestMeta,
    ) -> Result<Login, Error> {
        let now = now();
        if let Some(addr) = meta.client {
            self.hit_address(tenant, addr, now)
                .await
                .map_err(|wait| Error::TooManyRequests {
                    detail: "Too many login attempts from this address, retry later".into(),
                    retry_after_seconds: wait,
                })?;
        }
        let policy = &tenant.policy;
        let store = tenant.store().await?;
        let user = store.user_by_login(login).await?;
        let user_id = user.as_ref().map(|u| u.id);
        let name = user
            .as_ref()
            .map_or(login.folded(), |u| u.username.as_str())
            .to_owned();
        let phantom = login.folded();
        let attempt = match user_id {
            Some(id) => {
                store
                    .reserve_login_attempt(id, now, policy.lockout_window)
                    .await?
            }
            None => {
                store
                    .reserve_name_attempt(phantom, now, policy.lockout_window)
                    .await?
            }
        };
        let threshold = i64::from(policy.lockout_threshold);
        let Some(attempt) = attempt.filter(|n| *n <= threshold) else {
            let until = match user_id {
                Some(id) => store.locked_until(id).await?,
                None => store.name_locked_until(phantom).await?,
            };
            let until = until.unwrap_or(now + policy.lockout_duration);
            let event = anonymous_event(
                AuditType::LoginFailed,
                meta,
                user_id,
                &name,
                json!({"reason": "locked"}),
            );
            store.record_audit(&event).await?;
            return Err(locked(until - now));
        };

        let stored = user.as_ref().map(|u| u.password_hash.as_str());
        let verified = match self
            .hasher
            .verify(&tenant.scope, password.clone(), stored)
            .await
        {
            Ok(verified) => verified,
            // Refused (503) before the password was checked: not a wrong guess, so the
            // attempt is given back (a flood must not lock out the users it delays).
            Err(e) => {
                match user_id {
                    Some(id) => store.release_login_attempt(id).await?,
                    None => store.release_name_attempt(phantom).await?,
                }
                return Err(e.into());
            }
        };
        let Some(user) = user.filter(|_| verified.matches) else {
            let event = anonymous_event(
                AuditType::LoginFailed,
                meta,
                user_id,
                &name,
                json!({"reason": "bad_credentials", "attempt": attempt}),
            );
            store.record_audit(&event).await?;
            if attempt >= threshold {
                self.lock(tenant, user_id, &name, attempt, now, meta)
                    .await?;
            }
            return Err(Error::BadCredentials);
        };

        let refuse = |reason: &str, detail: &str| {
            let event = anonymous_event(
                AuditType::LoginFailed,
                meta,
                Some(user.id),
                &name,
                json!({"reason": reason}),
            );
            (event, Error::Forbidden(detail.to_owned()))
        };
        let max_age = i64::from(policy.password_max_age_days) * 86_400;
        let refusal = if !user.is_active {
            Some(refuse("inactive", "Inactive user"))
        } else if user.roles.is_empty() {
            Some(refuse("no_roles", "User has no roles assigned"))
        } else if max_age > 0 && user.password_changed_at.is_none_or(|at| now - at > max_age) {
            Some(refuse(
                "password_expired",
                "Password has expired; ask an administrator to reset it",
            ))
        } else {
            None
        };
        if let Some((event, error)) = refusal {
            store.record_audit(&event).await?;
            return Err(error);
        }

        let (access_token, claims) = self
            .tokens
            .issue(&tenant.key, &tenant.scope, &user)
            .map_err(Error::Internal)?;
        if verified.needs_rehash {
            let mut event = anonymous_event(
                AuditType::PasswordRehashed,
                meta,
                Some(user.id),
                &user.username,
                json!({}),
            );
            event.trace = Some(claims.trace.clone());
            self.rehash_in_background(tenant.clone(), &user, password, event);
        }
        let mut event = anonymous_event(
            AuditType::LoginSucceeded,
            meta,
            Some(user.id),
            &user.username,
            json!({}),
        );
        event.trace = Some(claims.trace);
        store.clear_login_failures(user.id, &event).await?;
        Ok(Login { access_token, user })
    }

    /// Locks `name` (an account, or an unknown name) after `failures` failed attempts, records
    /// it and raises the alert log line.
    async fn lock(
        &self,
        tenant: &Tenant,
        user_id: Option<i64>,
        name: &str,
        failures: i64,
        now: i64,
        meta: &RequestMeta,
    ) -> Result<(), Error> {
        let until = now + tenant.policy.lockout_duration;
        let event = anonymous_event(
            AuditType::AccountLocked,
            meta,
            user_id,
            name,
            json!({"failures": failures, "locked_until": until}),
        );
        match user_id {
            Some(id) => {
                tenant.store().await?.lock_user(id, until, &event).await?;
                tenant.forget_user(id).await;
            }
            None => {
                let store = tenant.store().await?;
                store.lock_name(name, until).await?;
                store.record_audit(&event).await?;
                // Housekeeping where names are written: spent windows and locks go.
                store
                    .prune_name_failures(now, tenant.policy.lockout_window)
                    .await?;
            }
        }
        self.metrics.lockout(&tenant.scope);
        // Part 11 §11.300(d): report attempted misuse "in an immediate and urgent manner".
        tracing::warn!(
            alert = "account_locked",
            scope = %tenant.scope,
            username = name,
            client = ?meta.client,
            failures,
            locked_until = until,
            "SECURITY ALERT: account locked after repeated failed logins"
        );
        Ok(())
    }

    /// Upgrades the hash a login just verified, made with older parameters, to the configured
    /// ones; a failure only costs the upgrade. The store replaces only that very hash
    /// (compare-and-set): a password change or reset that lands while the new hash is computed
    /// wins, and the upgrade is dropped. An upgrade that applied is recorded as `event`
    /// (`password_rehashed`, with the old and new parameters) in the same transaction.
    fn rehash_in_background(
        &self,
        tenant: Arc<Tenant>,
        user: &User,
        password: Password,
        mut event: NewAuditEvent,
    ) {
        let hasher = self.hasher.clone();
        let user_id = user.id;
        let verified = user.password_hash.clone();
        tokio::spawn(async move {
            let outcome = async {
                let hash = hasher.hash(&tenant.scope, password).await?;
                event.details = json!({
                    "old": password::describe(&verified),
                    "new": password::describe(&hash),
                });
                let store = tenant.store().await?;
                let applied = store
                    .upgrade_password_hash(user_id, &verified, &hash, &event)
                    .await?;
                if applied {
                    tenant.forget_user(user_id).await;
                }
                Ok::<bool, Error>(applied)
            }
            .await;
            match outcome {
                Ok(true) => {}
                Ok(false) => tracing::info!(
                    user_id,
                    "password hash not upgraded: the password changed since it was verified"
                ),
                Err(e) => tracing::warn!(user_id, error = %e, "could not upgrade a password hash"),
            }
        });
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
            && session.still_valid(&seen.claims.jti)
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
        seen: Option<Arc<token::Verified>>,
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
        tenant.load_revocations().await?;
        // The handle was just confirmed current: a session on it may only need its dates.
        if let Some(seen) = &seen
            && let Some(session) = seen.session()
            && Arc::ptr_eq(&session.tenant, &tenant)
            && session.still_valid(&claims.jti)
        {
            return Ok(Principal::on(session, claims, meta));
        }
        let snapshot = tenant.user_snapshot(claims.uid).await?;
        // Read before the `jti` is checked: a revocation after this moves it.
        let revocations = tenant.revocation_epoch();
        let reason = match &snapshot {
            None => Some("user_deleted"),
            Some(s) if !s.user.is_active => Some("user_inactive"),
            Some(s) if s.user.token_version != claims.ver => Some("credentials_changed"),
            Some(_) if tenant.is_revoked(&claims.jti) => Some("logged_out"),
            Some(_) => None,
        };
        match (snapshot, reason) {
            (Some(snapshot), None) => {
                let session = Arc::new(Session::new(
                    tenant.clone(),
                    snapshot,
                    revocations,
                    &self.bodies,
                ));
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

    /// Counts a login attempt from `addr` (an IPv6 client by its /64; in Redis when replicas
    /// share it, in this process while Redis is unreachable); `Err(wait)` when over the limit.
    async fn hit_address(&self, tenant: &Tenant, addr: IpAddr, now: i64) -> Result<(), i64> {
        let Some(redis) = tenant.redis() else {
            return self.addresses.hit(addr, now);
        };
        let key = throttle::limit_key(addr).to_string();
        let count = match redis.hit_address(&key, now.div_euclid(60)).await {
            Ok(count) => count,
            // Redis is shared state, not a condition of logging in: while it is unreachable
            // each replica counts alone (a weaker limit, still a limit).
            Err(_) => {
                self.metrics.shared_state_fallback();
                return self.addresses.hit(addr, now);
            }
        };
        if count > self.addresses.per_minute() {
            Err((60 - now.rem_euclid(60)).max(1))
        } else {
            Ok(())
        }
    }

    /// Changes the caller's password after checking the current one; every earlier token of
    /// the caller, the presented one included, is revoked.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: Password,
        new: Password,
    ) -> Result<(), Error> {
        if current.as_bytes() == new.as_bytes() {
            return Err(Error::Validation(
                "new_password must differ from current_password".into(),
            ));
        }
        let user = &principal.user;
        check_policy(
            &principal.tenant,
            &user.username,
            &user.email,
            &new,
            "new_password",
        )?;
        // A wrong current password is a failed login of the account (a stolen token must not
        // allow unlimited guesses): the attempt is reserved before any hash, as at login.
        let tenant = &principal.tenant;
        let policy = &tenant.policy;
        let store = tenant.store().await?;
        let now = now();
        let attempt = store
            .reserve_login_attempt(user.id, now, policy.lockout_window)
            .await?;
        let threshold = i64::from(policy.lockout_threshold);
        let Some(attempt) = attempt.filter(|n| *n <= threshold) else {
            let until = store.locked_until(user.id).await?;
            let until = until.unwrap_or(now + policy.lockout_duration);
            let details = json!({"reason": "locked", "via": "change_password"});
            store
                .record_audit(&principal.event(AuditType::LoginFailed, Some(user), details))
                .await?;
            return Err(locked(until - now));
        };
        let verified = match self
            .hasher
            .verify(&tenant.scope, current, Some(&user.password_hash))
            .await
        {
            Ok(verified) => verified,
            Err(e) => {
                store.release_login_attempt(user.id).await?;
                return Err(e.into());
            }
        };
        if !verified.matches {
            let details =
                json!({"reason": "bad_credentials", "via": "change_password", "attempt": attempt});
            store
                .record_audit(&principal.event(AuditType::LoginFailed, Some(user), details))
                .await?;
            if attempt >= threshold {
                self.lock(
                    tenant,
                    Some(user.id),
                    &user.username,
                    attempt,
                    now,
                    &principal.meta,
                )
                .await?;
            }
            return Err(Error::WrongPassword);
        }
        let hash = self.hasher.hash(&tenant.scope, new).await?;
        let event = principal.event(AuditType::PasswordChanged, Some(&principal.user), json!({}));
        // Also clears the failed attempts, this one included.
        store.set_password(principal.user.id, &hash, &event).await?;
        tenant.forget_user(principal.user.id).await;
        Ok(())
    }

    /// Sets the password of the user with `email` in `tenant`, on behalf of `by`. Revokes the
    /// user's tokens.
    pub async fn reset_password(
        &self,
        tenant: &Tenant,
        email: &Email,
        new: Password,
        by: ResetBy<'_>,
        meta: &RequestMeta,
    ) -> Result<User, Error> {
        const ACTION: &str = "reset_password";
        if let ResetBy::Administrator(admin) = by {
            // The API verified the token with this tenant's key; a caller of another scope
            // never administers it, whoever calls this.
            if admin.tenant.scope != tenant.scope {
                return Err(TokenError::Invalid.into());
            }
            self.authorise(admin, &Change::new(ACTION)).await?;
        }
        let user = tenant
            .store()
            .await?
            .user_by_email(email)
            .await?
            .ok_or_else(|| Error::NotFound("User not found".into()))?;
        if let ResetBy::Administrator(admin) = by {
            // One's own password is changed knowing it (change-password, which counts wrong
            // guesses): a stolen token must not set a new one without it.
            if user.id == admin.user.id {
                return Err(Error::Validation(
                    "use change-password to change your own password".into(),
                ));
            }
            self.authorise(admin, &Change::on(ACTION, &user)).await?;
        }
        check_policy(tenant, &user.username, &user.email, &new, "new_password")?;
        let hash = self.hasher.hash(&tenant.scope, new).await?;
        let actor = match by {
            ResetBy::Administrator(admin) | ResetBy::Open(Some(admin)) => Some(admin),
            ResetBy::Open(None) => None,
        };
        let event = match actor {
            Some(actor) => actor.event(AuditType::PasswordReset, Some(&user), json!({})),
            None => anonymous_event(
                AuditType::PasswordReset,
                meta,
                Some(user.id),
                &user.username,
                json!({"actor": "anonymous (development)"}),
            ),
        };
        tenant
            .store()
            .await?
            .set_password(user.id, &hash, &event)
            .await?;
        tenant.forget_user(user.id).await;
        Ok(user)
    }

    /// Revokes the presented token until it expires.
    pub async fn logout(&self, principal: &Principal) -> Result<(), Error> {
        let claims = &principal.claims;
        let expires_at = i64::try_from(claims.exp).unwrap_or(i64::MAX);
        let event = principal.event(
            AuditType::Logout,
            Some(&principal.user),
            json!({"jti": claims.jti}),
        );
        principal
            .tenant
            .store()
            .await?
            .revoke_token(&claims.jti, claims.uid, expires_at, &event)
            .await?;
        principal.tenant.remember_revoked(claims.jti.clone()).await;
        Ok(())
    }
}

/// The scope's password policy for a new password of `user`: long enough, and not the
/// username or the e-mail address.
fn check_policy(
    tenant: &Tenant,
    username: &str,
    email: &str,
    password: &Password,
    field: &str,
) -> Result<(), Error> {
    check_new_password(
        tenant.policy.password_min_length,
        username,
        email,
        password,
        field,
    )
}

/// A new password of at least `min` characters that is not the username or e-mail address.
pub fn check_new_password(
    min: usize,
    username: &str,
    email: &str,
    password: &Password,
    field: &str,
) -> Result<(), Error> {
    let text = String::from_utf8_lossy(password.as_bytes()).to_lowercase();
    if text.chars().count() < min {
        return Err(Error::Validation(format!(
            "{field} must be at least {min} characters"
        )));
    }
    if text == username.to_lowercase() || text == email.to_lowercase() {
        return Err(Error::Validation(format!(
            "{field} must not be the username or e-mail address"
        )));
    }
    Ok(())
}
