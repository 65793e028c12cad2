//! Account administration within the caller's own scope: listing and creating users,
//! assigning roles and permission overrides, activation, unlocking, and reading the audit
//! trail. Each flow demands its permission first (`users.view`, `users.manage`,
//! `audit.view`), and each change is recorded in the same transaction as itself, with the old
//! and new values.
//!
//! Every account change — create, roles, overrides, activate, deactivate, unlock, and the
//! password reset of `auth` — obeys one rule, decided in [`authority`] alone: the caller holds
//! `users.manage` after its overrides, every action the account holds, and every action of
//! each role and `true` override it assigns. `users.manage` alone is therefore no path to
//! more: a holder cannot mint an admin, promote itself through another account, or take over
//! an account that may do more than it may. Refusals are audited (`account_change_refused`).

use serde_json::{Value, json};

use super::{Auth, Principal, check_policy};
use crate::{
    domain::{Email, FullName, Holder, Password, Permission, Permissions, Role, Roles, Username},
    error::Error,
    store::{
        audit::{AuditEvent, AuditFilter, AuditType},
        users::{NewUser, User, UserFilter},
    },
};

/// One account change, as the rule of account administration ([`authority`]) weighs it.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// What is done, as the audit trail names it: `create_user`, `set_roles`,
    /// `set_permissions`, `activate`, `deactivate`, `unlock`, `reset_password`.
    pub action: &'static str,
    /// The account as it is now; `None` before it is looked up, and for a creation.
    pub target: Option<&'a User>,
    /// The roles the account is to hold, when the change assigns roles.
    pub roles: Option<&'a Roles>,
    /// The overrides the account is to have, when the change sets them.
    pub overrides: Option<&'a Value>,
}

impl<'a> Change<'a> {
    /// `action`, before the account is looked up: only `users.manage` is weighed.
    pub fn new(action: &'static str) -> Self {
        Self {
            action,
            target: None,
            roles: None,
            overrides: None,
        }
    }

    /// `action` on `target` as it is now.
    pub fn on(action: &'static str, target: &'a User) -> Self {
        Self {
            target: Some(target),
            ..Self::new(action)
        }
    }
}

/// Why [`authority`] refused a change.
#[derive(Debug)]
pub struct Refusal {
    /// The 403's detail.
    pub detail: String,
    /// The actions the caller lacks, for the audit trail.
    pub missing: Vec<String>,
}

/// The rule of account administration, decided here and nowhere else. The caller, weighed
/// after its overrides, must hold:
/// 1. `users.manage`;
/// 2. every action the account it changes holds (its roles' grants and `true` overrides: see
///    [`RoleGrants::lacking`](crate::domain::RoleGrants::lacking)), whatever the change;
/// 3. every action of each role it assigns, role by role;
/// 4. every action it sets `true` in the account's overrides;
/// 5. and, to grant the `admin` role or change an administrator, the `admin` role itself with
///    nothing withdrawn (`admin` means every action, named or not).
///
/// A detail names the actions missing only where the caller could read them anyway: its own
/// request's overrides always; a role's or the account's only with `users.view`, which shows
/// every account's effective permissions.
pub fn authority(caller: &Principal, change: &Change<'_>) -> Result<(), Refusal> {
    if !caller.can(Permission::USERS_MANAGE) {
        return Err(Refusal {
            detail: format!("Missing permission: {}", Permission::USERS_MANAGE),
            missing: vec![Permission::USERS_MANAGE.to_string()],
        });
    }
    let grants = &caller.tenant.roles;
    let own = Holder {
        roles: &caller.user.roles,
        overrides: &caller.user.permissions,
    };
    let readable = caller.can(Permission::USERS_VIEW);
    let refuse = |what: String, missing: Vec<String>, listed: bool| {
        let detail = if listed {
            format!("{what} ({})", missing.join(", "))
        } else {
            what
        };
        Err(Refusal { detail, missing })
    };
    if let Some(target) = change.target {
        let holder = Holder {
            roles: &target.roles,
            overrides: &target.permissions,
        };
        let missing = grants.lacking(own, holder);
        if !missing.is_empty() {
            let what = "Cannot change this user: they hold actions you lack".to_owned();
            return refuse(what, missing, readable);
        }
    }
    for role in change.roles.map_or(&[][..], Roles::names) {
        let alone = Roles::from_stored(vec![role.clone()]);
        let holder = Holder {
            roles: &alone,
            overrides: &Value::Null,
        };
        let missing = grants.lacking(own, holder);
        if !missing.is_empty() {
            let what = format!("Cannot grant role {role}: it holds actions you lack");
            return refuse(what, missing, readable);
        }
    }
    if let Some(overrides) = change.overrides {
        let holder = Holder {
            roles: &Roles::default(),
            overrides,
        };
        let missing = grants.lacking(own, holder);
        if !missing.is_empty() {
            return refuse(
                "Cannot grant permissions you lack".to_owned(),
                missing,
                true,
            );
        }
    }
    // `admin` holds every action, also those no catalogue names yet and those other modules
    // decide on the token's `role` claim alone: only an administrator with nothing withdrawn
    // grants it or changes an administrator's account.
    let touches_admin = change.target.is_some_and(|t| t.roles.contains(Role::ADMIN))
        || change.roles.is_some_and(|r| r.contains(Role::ADMIN));
    let unrestricted_admin =
        caller.user.roles.contains(Role::ADMIN) && !withdraws_anything(&caller.user.permissions);
    if touches_admin && !unrestricted_admin {
        return Err(Refusal {
            detail: "Only an administrator with no permission withdrawn may grant the admin role \
                     or change an administrator's account"
                .to_owned(),
            missing: vec![Role::ADMIN.to_owned()],
        });
    }
    Ok(())
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
        self.authorise(admin, &Change::new("create_user")).await?;
        known_roles(admin, &account.roles)?;
        let overrides = Value::Object(account.permissions.as_map().clone());
        let change = Change {
            roles: Some(&account.roles),
            overrides: Some(&overrides),
            ..Change::new("create_user")
        };
        self.authorise(admin, &change).await?;
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
        self.authorise(admin, &Change::new("set_permissions"))
            .await?;
        not_oneself(admin, user_id, "permissions")?;
        let user = self.target(admin, user_id).await?;
        let new = permissions.as_map().clone();
        let overrides = Value::Object(new.clone());
        let change = Change {
            overrides: Some(&overrides),
            ..Change::on("set_permissions", &user)
        };
        self.authorise(admin, &change).await?;
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
        self.authorise(admin, &Change::new("unlock")).await?;
        let user = self.target(admin, user_id).await?;
        self.authorise(admin, &Change::on("unlock", &user)).await?;
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
        caller.tenant.store().await?.record_audit(&event).await?;
        tracing::warn!(
            alert = "account_change_refused",
            scope = %caller.tenant.scope,
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
            .tenant
            .store()
            .await?
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| Error::NotFound("User not found".into()))
    }
}

/// Administrators change other people's authority, never their own (four eyes).
/// Whether stored overrides (`{module: {action: bool}}`) set any action `false`.
fn withdraws_anything(overrides: &Value) -> bool {
    overrides.as_object().is_some_and(|modules| {
        modules.values().any(|actions| {
            actions
                .as_object()
                .is_some_and(|a| a.values().any(|v| v == &Value::Bool(false)))
        })
    })
}

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
