//! The values that make up a user account. Usernames and e-mail addresses are ASCII and compare
//! case-insensitively: both backends fold ASCII case the same way (`lower()`), so one SQL text
//! and one index serve SQLite and Postgres alike.

use std::fmt;

use serde_json::{Map, Value};

use super::Invalid;

/// A login name: 1-64 characters of ASCII letters, digits, `.`, `_` and `-`. It never holds
/// `@`, so it can never be mistaken for an e-mail address at login.
#[derive(Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// A value read back from our own store, where only parsed values are written (and
    /// legacy rows are served as they are).
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if (1..=64).contains(&raw.len()) && raw.chars().all(ok) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid::new(
                "username must be 1-64 characters of letters, digits, '.', '_' and '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An e-mail address of plain ASCII shape `local@domain.tld`, at most 254 characters.
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// A value read back from our own store, where only parsed values are written (and
    /// legacy rows are served as they are).
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let err = || Invalid::new("email must be a valid e-mail address");
        if raw.len() > 254 || !raw.is_ascii() {
            return Err(err());
        }
        let (local, domain) = raw.split_once('@').ok_or_else(err)?;
        let local_ok = (1..=64).contains(&local.len())
            && local.chars().all(|c| {
                c.is_ascii_graphic()
                    && !matches!(
                        c,
                        '@' | '"' | '(' | ')' | ',' | ':' | ';' | '<' | '>' | '[' | '\\' | ']'
                    )
            });
        let domain_ok = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if local_ok && domain_ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(err())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a user typed in the login form's `username` field: a username or an e-mail address,
/// matched case-insensitively. Not validated further than its size: an odd value is simply
/// not found, at the same cost as a wrong password.
#[derive(Clone)]
pub struct LoginIdentifier(String);

impl LoginIdentifier {
    pub const MAX_BYTES: usize = 320;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.is_empty() {
            return Err(Invalid::new("username must not be empty"));
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(Invalid(format!(
                "username must be at most {} bytes",
                Self::MAX_BYTES
            )));
        }
        // No username or e-mail holds one, and Postgres refuses it in a query parameter.
        if raw.contains('\0') {
            return Err(Invalid::new("username must not contain NUL"));
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// The identifier with ASCII letters lower-cased, as the case-insensitive indexes hold it.
    pub fn folded(&self) -> &str {
        &self.0
    }
}

/// A person's display name; free text up to 200 characters, no control characters.
#[derive(Clone, PartialEq, Eq)]
pub struct FullName(String);

impl FullName {
    /// A value read back from our own store, where only parsed values are written (and
    /// legacy rows are served as they are).
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.chars().count() > 200 || raw.chars().any(char::is_control) {
            return Err(Invalid::new(
                "full_name must be at most 200 characters, without control characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A role name such as `admin`, `qf` or `evaluator`: `[a-z][a-z0-9_-]{0,31}`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Role(String);

impl Role {
    pub const ADMIN: &'static str = "admin";

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let mut chars = raw.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok =
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if first_ok && rest_ok && raw.len() <= 32 {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid(format!(
                "role {raw:?} must be 1-32 characters of a-z, 0-9, '_' and '-', starting with a letter"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Role names in the order they were assigned, without repeats.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roles(Vec<String>);

impl Roles {
    pub fn new(roles: Vec<Role>) -> Result<Self, Invalid> {
        let mut names: Vec<String> = Vec::with_capacity(roles.len());
        for role in roles {
            if names.iter().any(|n| n == role.as_str()) {
                return Err(Invalid(format!("role {:?} is given twice", role.as_str())));
            }
            names.push(role.0);
        }
        Ok(Self(names))
    }

    /// Roles as stored; trusted because only [`Roles::new`] ever wrote them.
    pub fn from_stored(names: Vec<String>) -> Self {
        Self(names)
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, role: &str) -> bool {
        self.0.iter().any(|r| r == role)
    }

    /// The contract's primary role for login and `/me`: `admin` when held, else the first.
    pub fn primary(&self) -> Option<&str> {
        if self.contains(Role::ADMIN) {
            Some(Role::ADMIN)
        } else {
            self.first()
        }
    }

    /// The first assigned role (`whoami`'s `role`).
    pub fn first(&self) -> Option<&str> {
        self.0.first().map(String::as_str)
    }
}

/// Per-user permissions: an object of modules to actions to booleans, e.g.
/// `{"icsr": {"view": true}, "reports": {"generate": false}}`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(transparent)]
pub struct Permissions(Map<String, Value>);

impl Permissions {
    pub fn parse(value: Value) -> Result<Self, Invalid> {
        let err = || {
            Invalid::new(
                "permissions must be a JSON object of modules to objects of actions to booleans",
            )
        };
        let Value::Object(modules) = value else {
            return Err(err());
        };
        for actions in modules.values() {
            let Value::Object(actions) = actions else {
                return Err(err());
            };
            if !actions.values().all(Value::is_boolean) {
                return Err(err());
            }
        }
        Ok(Self(modules))
    }

    /// Stored overrides; anything but an object (a legacy `null`) is none.
    pub fn from_stored(value: Value) -> Self {
        match value {
            Value::Object(map) => Self(map),
            _ => Self::default(),
        }
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

macro_rules! plain_debug {
    ($($ty:ident),*) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($ty), "({:?})"), self.0)
            }
        }
    )*};
}
plain_debug!(Username, Email, LoginIdentifier, FullName, Role);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usernames_are_plain_ascii_without_at_signs() {
        assert!(Username::parse("juan.perez").is_ok());
        assert!(Username::parse("Juan_Perez-2").is_ok());
        for bad in [
            "",
            "juan perez",
            "juan@perez",
            "juán",
            "a'--",
            &"x".repeat(65),
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_have_a_plain_shape() {
        assert!(Email::parse("juan.perez@example.com").is_ok());
        assert!(Email::parse("Juan.Perez+pv@sub.example.co").is_ok());
        for bad in [
            "",
            "juan",
            "juan@",
            "@example.com",
            "juan@example",
            "a b@x.com",
            "j@ex..com",
            "jüan@x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn login_identifiers_fold_ascii_case() {
        let id = LoginIdentifier::parse("Juan.Perez@Example.COM").expect("valid");
        assert_eq!(id.folded(), "juan.perez@example.com");
        assert!(LoginIdentifier::parse("").is_err());
    }

    #[test]
    fn primary_role_prefers_admin_then_the_first() {
        let roles = |names: &[&str]| {
            Roles::new(
                names
                    .iter()
                    .map(|n| Role::parse(n).expect("valid"))
                    .collect(),
            )
            .expect("no repeats")
        };
        assert_eq!(roles(&["qf", "admin"]).primary(), Some("admin"));
        assert_eq!(roles(&["qf", "admin"]).first(), Some("qf"));
        assert_eq!(roles(&["qf", "evaluator"]).primary(), Some("qf"));
        assert_eq!(roles(&[]).primary(), None);
        assert!(Roles::new(vec![Role::parse("qf").expect("valid"); 2]).is_err());
    }

    #[test]
    fn permissions_are_modules_of_boolean_actions() {
        assert!(Permissions::parse(json!({"icsr": {"view": true}})).is_ok());
        assert!(Permissions::parse(json!({})).is_ok());
        assert!(Permissions::parse(json!([])).is_err());
        assert!(Permissions::parse(json!({"icsr": true})).is_err());
        assert!(Permissions::parse(json!({"icsr": {"view": "yes"}})).is_err());
    }
}

/// The account's text values read as the strings they are (they are immutable once parsed).
macro_rules! read_as_str {
    ($($ty:ident),*) => {$(
        impl std::ops::Deref for $ty {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}

read_as_str!(Username, Email, FullName);
