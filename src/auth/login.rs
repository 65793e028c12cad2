//! Logging in and changing one's own password: the two flows that check a password, each
//! reserving its attempt atomically before any hash is computed and counting a wrong guess
//! toward the account's lockout.

use std::sync::Arc;

use serde_json::json;

use super::{Auth, Principal, RequestMeta, password, principal::anonymous_event, throttle::now};
use crate::{
    domain::{LoginIdentifier, Password, Scope},
    error::Error,
    store::{
        audit::{AuditType, NewAuditEvent},
        users::User,
    },
    tenancy::{Registry, ScopeHandle},
};

/// A successful login.
#[derive(Debug)]
pub struct Login {
    pub access_token: String,
    pub user: User,
    /// Seconds the access token is valid for.
    pub expires_in: u64,
    /// The session's refresh token (absent where a grant opens no session).
    pub refresh_token: Option<String>,
}

/// A login's outcome as a metrics label.
fn login_outcome<T>(result: &Result<T, Error>) -> &'static str {
    match result {
        Ok(_) => "succeeded",
        Err(Error::BadCredentials) => "bad_credentials",
        Err(Error::TooManyRequests { .. }) => "throttled",
        Err(Error::Forbidden(_)) => "forbidden",
        Err(Error::Unavailable { .. }) => "unavailable",
        Err(_) => "error",
    }
}

/// The refusal of a locked account (or name), for `wait` more seconds.
fn locked(wait: i64) -> Error {
    Error::TooManyRequests {
        detail: "Too many failed login attempts, retry later".into(),
        retry_after_seconds: wait.max(1),
    }
}

impl Auth {
    /// Checks a username-or-e-mail and password in `scope` (which the registry resolves, as
    /// for a token: one way to go from a request's tenant to its handle); issues a token. The
    /// outcome is counted in the metrics once the scope is known to be served (so unknown
    /// tenant IDs never become metric labels).
    pub async fn login(
        &self,
        registry: &Registry,
        scope: &Scope,
        login: &LoginIdentifier,
        password: Password,
        meta: &RequestMeta,
    ) -> Result<Login, Error> {
        let tenant = registry.resolve(scope).await?;
        let outcome = self.check_password(&tenant, login, password, meta).await;
        self.metrics.login(scope, login_outcome(&outcome));
        outcome
    }

    /// [`Self::login`] in a served scope.
    ///
    /// Order: the address's rate limit; then one attempt is reserved atomically (per account
    /// in its database, per unknown name in the same database's `login_name_failures`) *before* any hash is computed, so parallel
    /// attempts can never get more tries than the threshold; a locked name answers 429 without
    /// hashing, whether or not an account exists. Only once the password checked out may the
    /// answer speak of the account (inactive, no roles, expired password).
    async fn check_password(
        &self,
        tenant: &Arc<ScopeHandle>,
        login: &LoginIdentifier,
        password: Password,
        meta: &RequestMeta,
    ) -> Result<Login, Error> {
        let now = now();
        if let Some(addr) = meta.client {
            self.throttle
                .hit(addr, now)
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
        let unknown_name = login.folded();
        let attempt = match user_id {
            Some(id) => {
                store
                    .reserve_login_attempt(id, now, policy.lockout_window)
                    .await?
            }
            None => {
                store
                    .reserve_name_attempt(unknown_name, now, policy.lockout_window)
                    .await?
            }
        };
        let threshold = i64::from(policy.lockout_threshold);
        let Some(attempt) = attempt.filter(|n| *n <= threshold) else {
            let until = match user_id {
                Some(id) => store.locked_until(id).await?,
                None => store.name_locked_until(unknown_name).await?,
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
                    None => store.release_name_attempt(unknown_name).await?,
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

        let succeeded = anonymous_event(
            AuditType::LoginSucceeded,
            meta,
            Some(user.id),
            &user.username,
            json!({}),
        );
        // Clears the failed attempts, opens the session and records the login, at once.
        let (access_token, claims, refresh_token) =
            self.open_session(tenant, &store, &user, succeeded).await?;
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
        Ok(Login {
            access_token,
            user,
            expires_in: claims.exp.saturating_sub(claims.iat),
            refresh_token: Some(refresh_token),
        })
    }

    /// Locks `name` (an account, or an unknown name) after `failures` failed attempts, records
    /// it and raises the alert log line.
    async fn lock(
        &self,
        tenant: &ScopeHandle,
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
                self.identities.forget_user(&tenant.scope, id).await;
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
        tenant: Arc<ScopeHandle>,
        user: &User,
        password: Password,
        mut event: NewAuditEvent,
    ) {
        let hasher = self.hasher.clone();
        let identities = self.identities.clone();
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
                    identities.forget_user(&tenant.scope, user_id).await;
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
        new.check_new(
            principal.handle.policy.password_min_length,
            &user.username,
            &user.email,
            "new_password",
        )?;
        // A wrong current password is a failed login of the account (a stolen token must not
        // allow unlimited guesses): the attempt is reserved before any hash, as at login.
        let tenant = &principal.handle;
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
        self.identities
            .forget_user(&tenant.scope, principal.user.id)
            .await;
        Ok(())
    }
}
