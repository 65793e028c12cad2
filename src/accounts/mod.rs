//! Account administration within the caller's own scope: listing and creating users,
//! assigning roles and permission overrides, activation, unlocking, and reading the audit
//! trail. Each flow demands its permission first (`users.view`, `users.manage`,
//! `audit.view`), and each change is recorded in the same transaction as itself, with the old
//! and new values.
//!
//! Every account change — create, roles, overrides, activate, deactivate, unlock, and a
//! password reset — obeys one rule, decided in [`authority()`](authority::authority) alone: the caller holds
//! `users.manage` after its overrides, every action the account holds, and every action of
//! each role and `true` override it assigns. `users.manage` alone is therefore no path to
//! more: a holder cannot mint an admin, promote itself through another account, or take over
//! an account that may do more than it may. Refusals are audited (`account_change_refused`).

mod authority;
mod clients;

use std::sync::Arc;

use serde_json::json;

pub use self::{
    authority::{Change, Refusal, authority},
    clients::{CreatedClient, create_client},
};
use crate::{
    auth::{Principal, RequestMeta, anonymous_event, identity::Identities, password::Hasher},
    domain::{Email, FullName, Password, Permission, Permissions, Roles, Scope, Username},
    error::{Error, TokenError},
    store::{
        audit::{AuditEvent, AuditFilter, AuditType},
        users::{NewUser, User, UserFilter},
    },
    tenancy::Registry,
};

/// Who resets a password (`POST /api/v1/auth/reset-password`).
#[derive(Debug, Clone, Copy)]
pub enum ResetBy<'a> {
    /// Where the endpoint is open (development): anyone; a token, when one came, names the
    /// actor in the audit trail and is not weighed.
    Open(Option<&'a Principal>),
    /// Where it is not (production): a user of the tenant, held to the rule of account
    /// administration (see [`authority()`](authority::authority)).
    Administrator(&'a Principal),
}

/// Account administration within the caller's own scope.
pub struct Accounts {
    hasher: Hasher,
    identities: Arc<Identities>,
}

/// A user to create through the API, every field parsed.
#[derive(Debug)]
pub struct NewAccount {
    pub username: Username,
    pub email: Email,
    pub full_name: Option<FullName>,
    pub password: Password,
    pub roles: Roles,
    pub empleado_id: Option<i64>,
    pub permissions: Permissions,
    pub is_active: bool,
}

impl Accounts {
    pub fn new(hasher: Hasher, identities: Arc<Identities>) -> Self {
        Self { hasher, identities }
    }

    /// Users of the caller's scope, newest first.
    pub async fn list_users(
        &self,
        admin: &Principal,
        filter: &UserFilter,
    ) -> Result<Vec<User>, Error> {
        admin.require(Permission::USERS_VIEW)?;
        Ok(admin.handle.store().await?.list_users(filter).await?)
    }

    /// One user of the caller's scope.
    pub async fn user(&self, admin: &Principal, user_id: i64) -> Result<User, Error> {
        admin.require(Permission::USERS_VIEW)?;
        self.target(admin, user_id).await
    }

    /// Creates a user in the caller's scope; 409 when the username or e-mail is taken.
    pub async fn create_user(&self, admin: &Principal, account: NewAccount) -> Result<User, Error> {
        self.authorise(admin, &Change::new("create_user")).await?;
        known_roles(admin, &account.roles)?;
        let change = Change {
            roles: Some(&account.roles),
            overrides: Some(&account.permissions),
            ..Change::new("create_user")
        };
        self.authorise(admin, &change).await?;
        account.password.check_new(
            admin.handle.policy.password_min_length,
            account.username.as_str(),
            account.email.as_str(),
            "password",
        )?;
        let password_hash = self
            .hasher
            .hash(&admin.handle.scope, account.password)
            .await?;
        let user = NewUser {
            username: account.username,
            email: account.email,
            full_name: account.full_name,
            password_hash,
            is_active: account.is_active,
            empleado_id: account.empleado_id,
            permissions: account.permissions,
            roles: account.roles,
        };
        let event = admin.event(AuditType::UserCreated, None, json!({"via": "api"}));
        let store = admin.handle.store().await?;
        let id = store.create_user(&user, &event).await?;
        self.target(admin, id).await
    }

    /// Replaces a user's roles; their tokens, which claim the old roles, are revoked.
    pub async fn set_roles(
        &self,
        admin: &Principal,
        user_id: i64,
        roles: Roles,
    ) -> Result<User, Error> {
        self.authorise(admin, &Change::new("set_roles")).await?;
        not_oneself(admin, user_id, "roles")?;
        known_roles(admin, &roles)?;
        let user = self.target(admin, user_id).await?;
        let change = Change {
            roles: Some(&roles),
            ..Change::on("set_roles", &user)
        };
        self.authorise(admin, &change).await?;
        if user.roles == roles {
            return Ok(user);
        }
        let event = admin.event(
            AuditType::UserRolesChanged,
            Some(&user),
            json!({"old": user.roles.names(), "new": roles.names()}),
        );
        let store = admin.handle.store().await?;
        store.set_roles(user.id, &roles, &event).await?;
        self.identities
            .forget_user(&admin.handle.scope, user.id)
            .await;
        self.target(admin, user_id).await
    }

    /// Replaces a user's permission overrides (see `domain::permissions`).
    pub async fn set_permissions(
        &self,
        admin: &Principal,
        user_id: i64,
        permissions: Permissions,
    ) -> Result<User, Error> {
        self.authorise(admin, &Change::new("set_permissions"))
            .await?;
        not_oneself(admin, user_id, "permissions")?;
        let user = self.target(admin, user_id).await?;
        let change = Change {
            overrides: Some(&permissions),
            ..Change::on("set_permissions", &user)
        };
        self.authorise(admin, &change).await?;
        if user.permissions == permissions {
            return Ok(user);
        }
        let event = admin.event(
            AuditType::UserPermissionsChanged,
            Some(&user),
            json!({"old": user.permissions, "new": permissions}),
        );
        let store = admin.handle.store().await?;
        store.set_permissions(user.id, &permissions, &event).await?;
        self.identities
            .forget_user(&admin.handle.scope, user.id)
            .await;
        self.target(admin, user_id).await
    }

    /// Activates or deactivates a user of the admin's own tenant; deactivation revokes the
    /// user's tokens.
    pub async fn set_active(
        &self,
        admin: &Principal,
        user_id: i64,
        active: bool,
    ) -> Result<User, Error> {
        let action = if active { "activate" } else { "deactivate" };
        self.authorise(admin, &Change::new(action)).await?;
        if !active && user_id == admin.user.id {
            return Err(Error::Validation(
                "an administrator cannot deactivate their own account".into(),
            ));
        }
        let user = self.target(admin, user_id).await?;
        self.authorise(admin, &Change::on(action, &user)).await?;
        let kind = if active {
            AuditType::UserActivated
        } else {
            AuditType::UserDeactivated
        };
        admin
            .handle
            .store()
            .await?
            .set_active(user.id, active, &admin.event(kind, Some(&user), json!({})))
            .await?;
        self.identities
            .forget_user(&admin.handle.scope, user.id)
            .await;
        Ok(User {
            is_active: active,
            ..user
        })
    }

    /// Lifts a lockout before it ends by itself.
    pub async fn unlock(&self, admin: &Principal, user_id: i64) -> Result<User, Error> {
        self.authorise(admin, &Change::new("unlock")).await?;
        let user = self.target(admin, user_id).await?;
        self.authorise(admin, &Change::on("unlock", &user)).await?;
        let event = admin.event(
            AuditType::UserUnlocked,
            Some(&user),
            json!({"was_locked_until": user.locked_until}),
        );
        admin
            .handle
            .store()
            .await?
            .clear_login_failures(user.id, &event)
            .await?;
        self.identities
            .forget_user(&admin.handle.scope, user.id)
            .await;
        Ok(User {
            locked_until: None,
            ..user
        })
    }

    /// Sets the password of the user with `email` in `scope` (resolved by the registry, as
    /// logins and tokens are), on behalf of `by`. Revokes the user's tokens.
    pub async fn reset_password(
        &self,
        registry: &Registry,
        scope: &Scope,
        email: &Email,
        new: Password,
        by: ResetBy<'_>,
        meta: &RequestMeta,
    ) -> Result<User, Error> {
        const ACTION: &str = "reset_password";
        let tenant = &*registry.resolve(scope).await?;
        if let ResetBy::Administrator(admin) = by {
            // The API verified the token with this tenant's key; a caller of another scope
            // never administers it, whoever calls this.
            if admin.handle.scope != tenant.scope {
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
        new.check_new(
            tenant.policy.password_min_length,
            &user.username,
            &user.email,
            "new_password",
        )?;
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
        self.identities.forget_user(&tenant.scope, user.id).await;
        Ok(user)
    }

    /// The audit trail of the admin's own scope.
    pub async fn audit_events(
        &self,
        admin: &Principal,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEvent>, Error> {
        admin.require(Permission::AUDIT_VIEW)?;
        Ok(admin.handle.store().await?.audit_events(filter).await?)
    }

    /// [`authority`] over `change`; a refusal is recorded (`account_change_refused`: the
    /// action, the actions lacking) and raised as an alert line before it becomes a 403.
    pub(crate) async fn authorise(
        &self,
        caller: &Principal,
        change: &Change<'_>,
    ) -> Result<(), Error> {
        let Err(refusal) = authority(caller, change) else {
            return Ok(());
        };
        let event = caller.event(
            AuditType::AccountChangeRefused,
            change.target,
            json!({
                "action": change.action,
                "missing": refusal.missing,
                "roles": change.roles.map(Roles::names),
                "permissions": change.overrides,
            }),
        );
        caller.handle.store().await?.record_audit(&event).await?;
        tracing::warn!(
            alert = "account_change_refused",
            scope = %caller.handle.scope,
            actor = %caller.user.username,
            action = change.action,
            subject = change.target.map(|u| u.username.as_str()),
            missing = ?refusal.missing,
            "SECURITY ALERT: an account change beyond the caller's authority was refused"
        );
        Err(Error::Forbidden(refusal.detail))
    }

    async fn target(&self, admin: &Principal, user_id: i64) -> Result<User, Error> {
        admin
            .handle
            .store()
            .await?
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| Error::NotFound("User not found".into()))
    }
}

/// Administrators change other people's authority, never their own (four eyes).
fn not_oneself(admin: &Principal, user_id: i64, what: &str) -> Result<(), Error> {
    if user_id == admin.user.id {
        Err(Error::Validation(format!(
            "an administrator cannot change their own {what}"
        )))
    } else {
        Ok(())
    }
}

/// Every role must be `admin` or defined for the scope: a typo would grant nothing, silently.
fn known_roles(admin: &Principal, roles: &Roles) -> Result<(), Error> {
    let grants = &admin.handle.roles;
    match roles.names().iter().find(|r| !grants.knows(r)) {
        None => Ok(()),
        Some(unknown) => Err(Error::Validation(format!(
            "unknown role {unknown:?}; this tenant knows {}",
            grants.names().collect::<Vec<_>>().join(", ")
        ))),
    }
}
