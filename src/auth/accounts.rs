//! Account administration within the caller's own scope: listing and creating users,
//! assigning roles and permission overrides, activation, unlocking, and reading the audit
//! trail. Each flow demands its permission first (`users.view`, `users.manage`,
//! `audit.view`), and each change is recorded in the same transaction as itself, with the old
//! and new values.

use serde_json::{Value, json};

use super::{Auth, Principal, check_policy, permissions::Permission};
use crate::{
    domain::{Email, FullName, Password, Permissions, Roles, Username},
    error::Error,
    store::{
        audit::{AuditEvent, AuditFilter, AuditType},
        users::{NewUser, User, UserFilter},
    },
};

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

impl Auth {
    /// Users of the caller's scope, newest first.
    pub async fn list_users(
        &self,
        admin: &Principal,
        filter: &UserFilter,
    ) -> Result<Vec<User>, Error> {
        admin.require(Permission::USERS_VIEW)?;
        Ok(admin.tenant.store().await?.list_users(filter).await?)
    }

    /// One user of the caller's scope.
    pub async fn user(&self, admin: &Principal, user_id: i64) -> Result<User, Error> {
        admin.require(Permission::USERS_VIEW)?;
        self.target(admin, user_id).await
    }

    /// Creates a user in the caller's scope; 409 when the username or e-mail is taken.
    pub async fn create_user(&self, admin: &Principal, account: NewAccount) -> Result<User, Error> {
        admin.require(Permission::USERS_MANAGE)?;
        known_roles(admin, &account.roles)?;
        check_policy(
            &admin.tenant,
            account.username.as_str(),
            account.email.as_str(),
            &account.password,
            "password",
        )?;
        let password_hash = self
            .hasher
            .hash(&admin.tenant.scope, account.password)
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
        let store = admin.tenant.store().await?;
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
        admin.require(Permission::USERS_MANAGE)?;
        not_oneself(admin, user_id, "roles")?;
        known_roles(admin, &roles)?;
        let user = self.target(admin, user_id).await?;
        if user.roles == roles {
            return Ok(user);
        }
        let event = admin.event(
            AuditType::UserRolesChanged,
            Some(&user),
            json!({"old": user.roles.names(), "new": roles.names()}),
        );
        let store = admin.tenant.store().await?;
        store.set_roles(user.id, &roles, &event).await?;
        admin.tenant.forget_user(user.id).await;
        self.target(admin, user_id).await
    }

    /// Replaces a user's permission overrides (see `auth::permissions`).
    pub async fn set_permissions(
        &self,
        admin: &Principal,
        user_id: i64,
        permissions: Permissions,
    ) -> Result<User, Error> {
        admin.require(Permission::USERS_MANAGE)?;
        not_oneself(admin, user_id, "permissions")?;
        let user = self.target(admin, user_id).await?;
        let new = permissions.as_map().clone();
        if user.permissions == Value::Object(new.clone()) {
            return Ok(user);
        }
        let event = admin.event(
            AuditType::UserPermissionsChanged,
            Some(&user),
            json!({"old": user.permissions, "new": new}),
        );
        let store = admin.tenant.store().await?;
        store.set_permissions(user.id, &permissions, &event).await?;
        admin.tenant.forget_user(user.id).await;
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
        admin.require(Permission::USERS_MANAGE)?;
        if !active && user_id == admin.user.id {
            return Err(Error::Validation(
                "an administrator cannot deactivate their own account".into(),
            ));
        }
        let user = self.target(admin, user_id).await?;
        let kind = if active {
            AuditType::UserActivated
        } else {
            AuditType::UserDeactivated
        };
        admin
            .tenant
            .store()
            .await?
            .set_active(user.id, active, &admin.event(kind, Some(&user), json!({})))
            .await?;
        admin.tenant.forget_user(user.id).await;
        Ok(User {
            is_active: active,
            ..user
        })
    }

    /// Lifts a lockout before it ends by itself.
    pub async fn unlock(&self, admin: &Principal, user_id: i64) -> Result<User, Error> {
        admin.require(Permission::USERS_MANAGE)?;
        let user = self.target(admin, user_id).await?;
        let event = admin.event(
            AuditType::UserUnlocked,
            Some(&user),
            json!({"was_locked_until": user.locked_until}),
        );
        admin
            .tenant
            .store()
            .await?
            .clear_login_failures(user.id, &event)
            .await?;
        admin.tenant.forget_user(user.id).await;
        Ok(User {
            locked_until: None,
            ..user
        })
    }

    /// The audit trail of the admin's own scope.
    pub async fn audit_events(
        &self,
        admin: &Principal,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEvent>, Error> {
        admin.require(Permission::AUDIT_VIEW)?;
        Ok(admin.tenant.store().await?.audit_events(filter).await?)
    }

    async fn target(&self, admin: &Principal, user_id: i64) -> Result<User, Error> {
        admin
            .tenant
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
    let grants = &admin.tenant.roles;
    match roles.names().iter().find(|r| !grants.knows(r)) {
        None => Ok(()),
        Some(unknown) => Err(Error::Validation(format!(
            "unknown role {unknown:?}; this tenant knows {}",
            grants.names().collect::<Vec<_>>().join(", ")
        ))),
    }
}
