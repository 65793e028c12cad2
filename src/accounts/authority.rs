//! The one rule of account administration: what a caller may change, decided here alone.

use serde_json::Value;

use crate::{
    auth::Principal,
    domain::{Holder, Permission, Permissions, Role, Roles},
    store::users::User,
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
    pub overrides: Option<&'a Permissions>,
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
    let grants = &caller.handle.roles;
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
            overrides: &Permissions::default(),
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

/// Whether stored overrides (`{module: {action: bool}}`) set any action `false`.
fn withdraws_anything(overrides: &Permissions) -> bool {
    overrides.as_map().values().any(|actions| {
        actions
            .as_object()
            .is_some_and(|a| a.values().any(|v| v == &Value::Bool(false)))
    })
}
