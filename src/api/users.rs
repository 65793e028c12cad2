//! `/api/v1/users…`: a tenant's administrators manage its accounts. Every operation acts on
//! the caller's own scope (the one the token was verified for) and demands `users.view` or
//! `users.manage`; no change reaches beyond the caller's own authority (the rule of
//! `accounts::authority`); every change is audited with its old and new values.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use super::error::ApiError;
use super::{
    ApiTags, AppState,
    page::{Page, next_link},
    security::BearerAuth,
    tenant::XTenant,
};
use crate::{
    accounts::NewAccount,
    auth::Principal,
    domain::{
        Email, FullName, Password, PermissionMap, Permissions, Role, Roles, User, UserFilter,
        Username,
    },
    error::Error,
};

#[derive(Default)]
pub struct UsersApi;

/// An account as administrators see it.
#[derive(Debug, Object)]
pub struct UserResponse {
    /// User ID.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Display name.
    pub full_name: Option<String>,
    /// Primary role: `admin` when assigned, else the first assigned role.
    pub role: String,
    /// Roles in assignment order.
    pub roles: Vec<String>,
    /// The user's own overrides, as set through `PUT /api/v1/users/{id}/permissions`.
    pub permissions: PermissionMap,
    /// What the user may do: the roles' grants merged with the overrides (`/me` shows this).
    pub effective_permissions: PermissionMap,
    /// Whether the account may log in.
    pub is_active: bool,
    /// Associated employee ID from the HR module.
    pub empleado_id: Option<i64>,
    /// Until when (RFC 3339) logins are refused after repeated failures; absent when unlocked.
    pub locked_until: Option<String>,
}

impl UserResponse {
    pub fn new(admin: &Principal, user: User) -> Self {
        let effective = admin.handle.roles.effective(&user.roles, &user.permissions);
        let locked_until = user
            .locked_until
            .filter(|until| *until > time::OffsetDateTime::now_utc().unix_timestamp())
            .and_then(|until| super::dto::rfc3339(until.saturating_mul(1000)));
        Self {
            id: user.id,
            role: user.roles.primary().unwrap_or_default().to_owned(),
            roles: user.roles.names().to_vec(),
            permissions: super::dto::permission_map(&user.permissions),
            effective_permissions: effective,
            username: user.username.to_string(),
            email: user.email.to_string(),
            full_name: user.full_name.map(|n| n.to_string()),
            is_active: user.is_active,
            empleado_id: user.empleado_id,
            locked_until,
        }
    }
}

/// A new account.
#[derive(Debug, Object)]
pub struct CreateUserRequest {
    /// Login name: ASCII letters, digits, `.`, `_`, `-`.
    pub username: String,
    /// E-mail address (unique, case-insensitively).
    pub email: String,
    /// Display name.
    pub full_name: Option<String>,
    /// The initial password (the tenant's policy applies; at least 6 characters).
    #[oai(validator(min_length = 6, max_length = 1024))]
    pub password: String,
    /// Roles in assignment order; each must be `admin` or a role the tenant defines.
    pub roles: Vec<String>,
    /// Associated employee ID from the HR module.
    pub empleado_id: Option<i64>,
    /// Permission overrides: modules to actions to booleans. Default: none.
    pub permissions: Option<PermissionMap>,
    /// Whether the account may log in. Default: `true`.
    pub is_active: Option<bool>,
}

/// Roles to assign, replacing the current ones.
#[derive(Debug, Object)]
pub struct RolesRequest {
    /// Roles in assignment order (the first is `whoami`'s role).
    pub roles: Vec<String>,
}

/// Permission overrides to set, replacing the current ones.
#[derive(Debug, Object)]
pub struct PermissionsRequest {
    /// Modules to actions to booleans: `true` grants, `false` withdraws what a role grants.
    pub permissions: PermissionMap,
}

#[derive(ApiResponse)]
enum Created {
    /// Created.
    #[oai(status = 201)]
    Created(
        Json<UserResponse>,
        /// The new user's URL.
        #[oai(header = "Location")]
        String,
    ),
}

fn roles_of(names: Vec<String>) -> Result<Roles, Error> {
    let roles = names
        .iter()
        .map(|r| Role::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Roles::new(roles)?)
}

fn permissions_of(map: PermissionMap) -> Result<Permissions, Error> {
    let value = serde_json::to_value(map).map_err(|e| Error::Internal(e.into()))?;
    Ok(Permissions::parse(value)?)
}

#[OpenApi(prefix_path = "/api/v1/users", tag = "ApiTags::Users")]
impl UsersApi {
    /// List users
    ///
    /// The tenant's users, newest first; needs `users.view`. Filters combine. More pages: follow
    /// the `Link: <…>; rel="next"` header.
    #[oai(path = "/", method = "get", operation_id = "list_users")]
    #[allow(
        clippy::too_many_arguments,
        reason = "one parameter per documented query filter"
    )]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// Tenant identifier; taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
        /// Only active (`true`) or inactive (`false`) accounts.
        active: Query<Option<bool>>,
        /// Only holders of this role.
        role: Query<Option<String>>,
        /// Only users with a smaller ID (keyset cursor; see the `Link` header).
        before: Query<Option<i64>>,
        /// Page size, 1-200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<i64>>,
    ) -> Result<Page<UserResponse>, ApiError> {
        let role = role.0.map(|r| Role::parse(&r)).transpose()?;
        let limit = limit.0.unwrap_or(50);
        let filter = UserFilter {
            active: active.0,
            role: role.as_ref().map(|r| r.as_str().to_owned()),
            before_id: before.0,
            limit: limit + 1,
        };
        let users = state.accounts.list_users(&auth.0, &filter).await?;
        let mut query = Vec::new();
        if let Some(active) = active.0 {
            query.push(("active", active.to_string()));
        }
        if let Some(role) = role {
            query.push(("role", role.as_str().to_owned()));
        }
        Ok(next_link(
            users,
            limit,
            |u| u.id,
            "/api/v1/users",
            query,
            |u| UserResponse::new(&auth.0, u),
        ))
    }

    /// Create a user
    ///
    /// Needs `users.manage`, and every action of each role given and of each override set to
    /// `true` (403 naming what is lacking). 409 when the username or e-mail is taken.
    #[oai(path = "/", method = "post", operation_id = "create_user")]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// Tenant identifier; taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
        body: Json<CreateUserRequest>,
    ) -> Result<Created, ApiError> {
        let body = body.0;
        let account = NewAccount {
            username: Username::parse(&body.username)?,
            email: Email::parse(&body.email)?,
            full_name: body.full_name.as_deref().map(FullName::parse).transpose()?,
            password: Password::parse(body.password, "password")?,
            roles: roles_of(body.roles)?,
            empleado_id: body.empleado_id,
            permissions: match body.permissions {
                Some(map) => permissions_of(map)?,
                None => Permissions::default(),
            },
            is_active: body.is_active.unwrap_or(true),
        };
        let user = state.accounts.create_user(&auth.0, account).await?;
        let location = format!("/api/v1/users/{}", user.id);
        Ok(Created::Created(
            Json(UserResponse::new(&auth.0, user)),
            location,
        ))
    }

    /// Get a user
    ///
    /// Needs `users.view`.
    #[oai(path = "/:id", method = "get", operation_id = "get_user")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// User ID.
        id: Path<i64>,
        /// Tenant identifier; taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
    ) -> Result<Json<UserResponse>, ApiError> {
        let user = state.accounts.user(&auth.0, id.0).await?;
        Ok(Json(UserResponse::new(&auth.0, user)))
    }

    /// Assign roles
    ///
    /// Replaces the user's roles; needs `users.manage`, every action the user holds now (the
    /// grants of their roles, and their overrides set to `true`) and every action of each role
    /// given; not on one's own account. Tokens issued before claim the old roles, so they are
    /// revoked: the user logs in again.
    #[oai(path = "/:id/roles", method = "put", operation_id = "set_user_roles")]
    async fn set_roles(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// User ID.
        id: Path<i64>,
        /// Tenant identifier; taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
        body: Json<RolesRequest>,
    ) -> Result<Json<UserResponse>, ApiError> {
        let roles = roles_of(body.0.roles)?;
        let user = state.accounts.set_roles(&auth.0, id.0, roles).await?;
        Ok(Json(UserResponse::new(&auth.0, user)))
    }

    /// Set permission overrides
    ///
    /// Replaces the user's permission overrides; needs `users.manage`, every action the user
    /// holds now, and every action set to `true`; not on one's own account. Takes effect on
    /// the user's next request.
    #[oai(
        path = "/:id/permissions",
        method = "put",
        operation_id = "set_user_permissions"
    )]
    async fn set_permissions(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// User ID.
        id: Path<i64>,
        /// Tenant identifier; taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
        body: Json<PermissionsRequest>,
    ) -> Result<Json<UserResponse>, ApiError> {
        let permissions = permissions_of(body.0.permissions)?;
        let user = state
            .accounts
            .set_permissions(&auth.0, id.0, permissions)
            .await?;
        Ok(Json(UserResponse::new(&auth.0, user)))
    }

    /// Unlock an account
    ///
    /// Lifts a lockout (and forgets recent failed logins) before it ends by itself. Needs
    /// `users.manage` and every action the user holds.
    #[oai(path = "/:id/unlock", method = "post", operation_id = "unlock_user")]
    async fn unlock(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// User ID.
        id: Path<i64>,
        /// Tenant identifier; taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
    ) -> Result<Json<UserResponse>, ApiError> {
        let user = state.accounts.unlock(&auth.0, id.0).await?;
        Ok(Json(UserResponse::new(&auth.0, user)))
    }

    /// Deactivate an account
    ///
    /// The user can no longer log in, and every token issued to them is refused from the next
    /// request on. Needs `users.manage` and every action the user holds; not one's own
    /// account.
    #[oai(
        path = "/:id/deactivate",
        method = "post",
        operation_id = "deactivate_user"
    )]
    async fn deactivate(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// User ID.
        id: Path<i64>,
        /// Tenant identifier; taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
    ) -> Result<Json<UserResponse>, ApiError> {
        let user = state.accounts.set_active(&auth.0, id.0, false).await?;
        Ok(Json(UserResponse::new(&auth.0, user)))
    }

    /// Activate an account
    ///
    /// The user may log in again (tokens issued before a deactivation stay revoked). Needs
    /// `users.manage` and every action the user holds.
    #[oai(
        path = "/:id/activate",
        method = "post",
        operation_id = "activate_user"
    )]
    async fn activate(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// User ID.
        id: Path<i64>,
        /// Tenant identifier; taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
    ) -> Result<Json<UserResponse>, ApiError> {
        let user = state.accounts.set_active(&auth.0, id.0, true).await?;
        Ok(Json(UserResponse::new(&auth.0, user)))
    }
}
