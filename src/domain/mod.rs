//! Values parsed once at the boundary. Each newtype has a private field and one `parse`
//! constructor, so a value of the type is valid by construction; nothing here knows about
//! HTTP or SQL.

mod account;
pub mod audit;
mod client;
pub mod icsr;
mod password;
mod permissions;
mod tenant_id;
pub mod url_secrets;
mod user;

pub use account::{NewUser, User, UserFilter};
pub use client::{ClientName, PermissionNames, ServiceClient, is_client_id};
pub use password::Password;
pub use permissions::{Holder, Permission, PermissionMap, RoleDefinitions, RoleGrants};
pub use tenant_id::{Scope, TenantId};
pub use user::{Email, FullName, LoginIdentifier, Permissions, Role, Roles, Username};

/// Why a value was refused; the message is shown to the client as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
