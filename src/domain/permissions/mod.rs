//! Authorisation: what a user may do, as `module.action` permissions.
//!
//! A user's permissions are their roles' grants merged with their own overrides:
//! - `admin` is granted every action of every module (it cannot be redefined);
//! - `qf` (pharmacist) has `icsr.view`, `icsr.edit`, `reports.view`, `reports.generate`;
//! - a tenant file's `[roles.<name>]` tables define further roles, or redefine `qf`;
//! - the user's stored `permissions` object overrides the result action by action: `true`
//!   grants, `false` withdraws (even from an admin).
//!
//! Handlers demand one [`Permission`] through a guard (see `api::security`); the `/me`
//! `permissions` object is [`RoleGrants::effective`] of the same inputs, so a client shows
//! exactly what the server enforces. [`RoleGrants::lacking`] compares two users' authority:
//! account administration (`accounts`) refuses any change that would reach beyond the
//! caller's own.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use serde_json::{Map, Value};

use super::{Invalid, Permissions, Role, Roles};

/// A tenant file's `[roles.<name>]` tables: role name to module to action to allowed.
pub type RoleDefinitions = BTreeMap<String, BTreeMap<String, BTreeMap<String, bool>>>;

/// Module name to action name to allowed, e.g. `{"icsr": {"view": true}}`.
pub type PermissionMap = BTreeMap<String, BTreeMap<String, bool>>;

/// One action on one module, e.g. `icsr.view`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    pub module: &'static str,
    pub action: &'static str,
}

impl Permission {
    pub const ICSR_VIEW: Self = Self::new("icsr", "view");
    pub const ICSR_EDIT: Self = Self::new("icsr", "edit");
    pub const ICSR_DELETE: Self = Self::new("icsr", "delete");
    pub const REPORTS_VIEW: Self = Self::new("reports", "view");
    pub const REPORTS_GENERATE: Self = Self::new("reports", "generate");
    pub const USERS_VIEW: Self = Self::new("users", "view");
    pub const USERS_MANAGE: Self = Self::new("users", "manage");
    pub const AUDIT_VIEW: Self = Self::new("audit", "view");

    /// Every permission this server knows; `/me` lists each of them, granted or not.
    pub const CATALOGUE: [Self; 8] = [
        Self::ICSR_VIEW,
        Self::ICSR_EDIT,
        Self::ICSR_DELETE,
        Self::REPORTS_VIEW,
        Self::REPORTS_GENERATE,
        Self::USERS_VIEW,
        Self::USERS_MANAGE,
        Self::AUDIT_VIEW,
    ];

    const fn new(module: &'static str, action: &'static str) -> Self {
        Self { module, action }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.module, self.action)
    }
}

/// The built-in `qf` (pharmacist) role's grants.
const QF: [Permission; 4] = [
    Permission::ICSR_VIEW,
    Permission::ICSR_EDIT,
    Permission::REPORTS_VIEW,
    Permission::REPORTS_GENERATE,
];

/// A user's authority as [`RoleGrants::lacking`] weighs it: their roles and their overrides.
#[derive(Clone, Copy, Debug)]
pub struct Holder<'a> {
    pub roles: &'a Roles,
    /// The user's overrides (`{"icsr": {"delete": false}}`); empty for none.
    pub overrides: &'a Permissions,
}

/// One scope's role definitions: role name to the permissions it grants (`admin` is implicit).
#[derive(Debug, Clone, PartialEq)]
pub struct RoleGrants(BTreeMap<String, Permissions>);

impl Default for RoleGrants {
    fn default() -> Self {
        let mut qf = Map::new();
        for p in QF {
            grant(&mut qf, p.module, p.action, true);
        }
        let qf = Permissions::parse(Value::Object(qf)).expect("BUG: the qf grants are valid");
        Self(BTreeMap::from([("qf".to_owned(), qf)]))
    }
}

fn grant(map: &mut Map<String, Value>, module: &str, action: &str, allowed: bool) {
    if let Value::Object(actions) = map
        .entry(module.to_owned())
        .or_insert_with(|| Value::Object(Map::new()))
    {
        actions.insert(action.to_owned(), Value::Bool(allowed));
    }
}

impl RoleGrants {
    /// The defaults with a tenant file's `[roles.<name>]` definitions (each replacing the
    /// role's default, if it has one).
    pub fn with_definitions(definitions: &RoleDefinitions) -> Result<Self, Invalid> {
        let mut grants = Self::default();
        for (name, modules) in definitions {
            let role = Role::parse(name)?;
            if role.as_str() == Role::ADMIN {
                return Err(Invalid::new(
                    "roles.admin cannot be redefined: admin holds every permission",
                ));
            }
            let value = serde_json::to_value(modules).expect("BUG: maps of booleans serialise");
            let permissions =
                Permissions::parse(value).map_err(|e| Invalid(format!("roles.{name}: {}", e.0)))?;
            grants.0.insert(name.clone(), permissions);
        }
        Ok(grants)
    }

    /// Whether `role` is the built-in admin or has a definition here.
    pub fn knows(&self, role: &str) -> bool {
        role == Role::ADMIN || self.0.contains_key(role)
    }

    /// Every known role name, `admin` first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(Role::ADMIN).chain(self.0.keys().map(String::as_str))
    }

    /// Whether a user with `roles` and `overrides` may do `permission`.
    pub fn allows(&self, roles: &Roles, overrides: &Permissions, permission: Permission) -> bool {
        self.decide(roles, overrides, permission.module, permission.action)
    }

    /// The override when there is one, else whether any of the roles grants it.
    fn decide(&self, roles: &Roles, overrides: &Permissions, module: &str, action: &str) -> bool {
        match lookup_map(overrides.as_map(), module, action) {
            Some(allowed) => allowed,
            None => self.role_grants(roles, module, action),
        }
    }

    /// Whether any of `roles` grants `module.action` (`admin` grants everything).
    fn role_grants(&self, roles: &Roles, module: &str, action: &str) -> bool {
        roles.contains(Role::ADMIN)
            || roles.names().iter().any(|role| {
                self.0.get(role).is_some_and(|granted| {
                    lookup_map(granted.as_map(), module, action) == Some(true)
                })
            })
    }

    /// The actions `holder` holds that `caller` may not do, as sorted `module.action` names.
    ///
    /// The caller is weighed by what it may do here, after its overrides. The holder holds
    /// every action one of its roles grants — even one an override withdraws here: its tokens
    /// claim the roles, and other Vigia modules trust the claim — and every action an override
    /// sets to `true`. `admin` holds every action of every module: those the catalogue, this
    /// scope's roles or either user's overrides name.
    pub fn lacking(&self, caller: Holder<'_>, holder: Holder<'_>) -> Vec<String> {
        let mut actions = BTreeSet::new();
        let mut mention = |module: &str, action: &str| {
            actions.insert((module.to_owned(), action.to_owned()));
        };
        for p in Permission::CATALOGUE {
            mention(p.module, p.action);
        }
        for granted in self.0.values() {
            for_each_action(granted.as_map(), &mut mention);
        }
        for overrides in [caller.overrides, holder.overrides] {
            for_each_action(overrides.as_map(), &mut mention);
        }
        actions
            .into_iter()
            .filter(|(module, action)| {
                let held = lookup_map(holder.overrides.as_map(), module, action) == Some(true)
                    || self.role_grants(holder.roles, module, action);
                held && !self.decide(caller.roles, caller.overrides, module, action)
            })
            .map(|(module, action)| format!("{module}.{action}"))
            .collect()
    }

    /// The `module.action` names a user with `roles` and `overrides` may do, sorted: what a
    /// token tells other modules (see [`Self::effective`]).
    pub fn granted(&self, roles: &Roles, overrides: &Permissions) -> Vec<String> {
        self.effective(roles, overrides)
            .into_iter()
            .flat_map(|(module, actions)| {
                actions
                    .into_iter()
                    .filter(|(_, allowed)| *allowed)
                    .map(move |(action, _)| format!("{module}.{action}"))
            })
            .collect()
    }

    /// The full permissions object of a user with `roles` and `overrides`: every action this
    /// server, the scope's roles or the overrides name, each `true` or `false`.
    pub fn effective(&self, roles: &Roles, overrides: &Permissions) -> PermissionMap {
        let mut map = PermissionMap::new();
        let mut mention = |module: &str, action: &str| {
            map.entry(module.to_owned())
                .or_default()
                .insert(action.to_owned(), false);
        };
        for p in Permission::CATALOGUE {
            mention(p.module, p.action);
        }
        for granted in self.0.values() {
            for_each_action(granted.as_map(), &mut mention);
        }
        for_each_action(overrides.as_map(), &mut mention);
        for (module, actions) in &mut map {
            for (action, allowed) in actions.iter_mut() {
                *allowed = self.decide(roles, overrides, module, action);
            }
        }
        map
    }
}

fn for_each_action(map: &Map<String, Value>, f: &mut impl FnMut(&str, &str)) {
    for (module, actions) in map {
        if let Some(actions) = actions.as_object() {
            for action in actions.keys() {
                f(module, action);
            }
        }
    }
}

fn lookup_map(map: &Map<String, Value>, module: &str, action: &str) -> Option<bool> {
    map.get(module)?.get(action)?.as_bool()
}

#[cfg(test)]
mod tests;
