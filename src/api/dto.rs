//! Request and response bodies, as the API document shapes them. Inputs are plain strings
//! here and become domain types in the handlers; outputs are built from stored users.

use poem_openapi::Object;
use serde::Deserialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    auth::{Login, Principal},
    domain::{PermissionMap, Permissions, User},
};

/// The OAuth2 password-grant form (`application/x-www-form-urlencoded`), as OAuth2 clients such
/// as Swagger UI's Authorize dialog send it.
#[derive(Debug, Object, Deserialize)]
pub struct LoginForm {
    /// Username or e-mail address; matched case-insensitively.
    pub username: String,
    /// The user's password (at least 6 characters).
    #[oai(validator(min_length = 6, max_length = 1024))]
    pub password: String,
    /// OAuth2 grant type; only `password` is accepted. Default: `password`.
    #[serde(default)]
    pub grant_type: Option<String>,
    /// OAuth2 scope (not used).
    #[serde(default)]
    pub scope: Option<String>,
    /// The tenant, for clients that cannot send the `X-Tenant` header (Swagger UI's Authorize
    /// dialog: put the tenant ID in `client_id`). Used only when `X-Tenant` is absent; HTTP
    /// Basic credentials with the tenant ID as user name work the same way.
    #[serde(default)]
    pub client_id: Option<String>,
    /// OAuth2 client secret (not used).
    #[serde(default)]
    pub client_secret: Option<String>,
}

/// The user summary returned with a token.
#[derive(Debug, Object)]
pub struct LoginUser {
    /// User ID within its tenant (or the legacy database).
    pub id: i64,
    /// Login name.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Primary role: `admin` when assigned, else the first assigned role.
    pub role: String,
    /// Every assigned role name, in assignment order.
    pub roles: Vec<String>,
}

/// A successful login.
#[derive(Debug, Object)]
pub struct TokenResponse {
    /// JWT access token (`EdDSA`, or `HS256` per `jwt.algorithm`), valid for
    /// `jwt.ttl_minutes` (default 480 minutes, 8 hours).
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires (RFC 6749 5.1): `jwt.ttl_minutes`, or the
    /// tenant's `session_idle_minutes` when shorter.
    pub expires_in: u64,
    /// Exchanges for a new access token at the issuer's token endpoint
    /// (`grant_type=refresh_token`), once: each refresh returns the next. Presenting a spent
    /// one ends the session.
    #[oai(skip_serializing_if_is_none)]
    pub refresh_token: Option<String>,
    /// The authenticated user.
    pub user: LoginUser,
}

impl TokenResponse {
    pub fn new(login: Login) -> Self {
        let Login {
            access_token,
            user,
            expires_in,
            refresh_token,
        } = login;
        let user = &user;
        Self {
            access_token,
            token_type: "bearer".into(),
            expires_in,
            refresh_token,
            user: LoginUser {
                id: user.id,
                username: user.username.to_string(),
                email: user.email.to_string(),
                role: primary_role(user),
                roles: user.roles.names().to_vec(),
            },
        }
    }
}

/// The authenticated user's full profile.
#[derive(Debug, Object)]
pub struct MeResponse {
    /// User ID within its tenant (or the legacy database).
    pub id: i64,
    /// E-mail address.
    pub email: String,
    /// Login name.
    pub username: String,
    /// Display name.
    pub full_name: Option<String>,
    /// Primary role: `admin` when assigned, else the first assigned role.
    pub role: String,
    /// Every assigned role name, in assignment order.
    pub roles: Vec<String>,
    /// What the user may do: modules to actions to booleans — the roles' grants (`admin`:
    /// everything) merged with the user's own overrides. Every action the server enforces is
    /// listed, `true` or `false`.
    pub permissions: PermissionMap,
    /// Whether the account is active.
    pub is_active: bool,
    /// Associated employee ID from the HR module.
    pub empleado_id: Option<i64>,
    /// The subject: the user ID as a string, as in the token's `sub` (this is the issuer's
    /// OpenID Connect userinfo endpoint).
    pub sub: String,
}

impl From<&Principal> for MeResponse {
    fn from(principal: &Principal) -> Self {
        let user = &principal.user;
        Self {
            id: user.id,
            email: user.email.to_string(),
            username: user.username.to_string(),
            full_name: user.full_name.as_ref().map(ToString::to_string),
            role: primary_role(user),
            roles: user.roles.names().to_vec(),
            permissions: principal.permissions(),
            is_active: user.is_active,
            empleado_id: user.empleado_id,
            sub: user.id.to_string(),
        }
    }
}

/// The authenticated user, without permissions.
#[derive(Debug, Object)]
pub struct WhoAmIResponse {
    /// User ID within its tenant (or the legacy database).
    pub id: i64,
    /// Login name.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Display name.
    pub full_name: Option<String>,
    /// The first assigned role.
    pub role: String,
    /// Every assigned role name, in assignment order.
    pub roles: Vec<String>,
    /// Associated employee ID from the HR module.
    pub empleado_id: Option<i64>,
}

impl From<&User> for WhoAmIResponse {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            username: user.username.to_string(),
            email: user.email.to_string(),
            full_name: user.full_name.as_ref().map(ToString::to_string),
            role: user.roles.first().unwrap_or_default().to_owned(),
            roles: user.roles.names().to_vec(),
            empleado_id: user.empleado_id,
        }
    }
}

/// A password change by its owner.
#[derive(Debug, Object)]
pub struct ChangePasswordRequest {
    /// The current password, for verification.
    pub current_password: String,
    /// The new password (at least 6 characters).
    #[oai(validator(min_length = 6, max_length = 1024))]
    pub new_password: String,
}

/// The operation succeeded.
#[derive(Debug, Object)]
pub struct SuccessResponse {
    /// Always `true` on success.
    pub success: bool,
}

/// A password reset of another user, by e-mail.
#[derive(Debug, Object)]
pub struct ResetPasswordRequest {
    /// E-mail address of the user whose password is reset (case-insensitive).
    pub email: String,
    /// The new password (at least 6 characters).
    #[oai(validator(min_length = 6, max_length = 1024))]
    pub new_password: String,
}

/// Whose password was reset, and where.
#[derive(Debug, Object)]
pub struct ResetPasswordResponse {
    /// E-mail of the user whose password was reset.
    pub email: String,
    /// Tenant where the operation was performed.
    pub tenant: String,
    /// Always `true` on success.
    pub success: bool,
}

/// A probe's answer.
#[derive(Debug, Object)]
pub struct HealthResponse {
    /// `ok`, or (readiness) `degraded` while the configured Redis is unreachable.
    pub status: String,
    /// Readiness with `redis.url` set: `ok` or `unreachable`.
    #[oai(skip_serializing_if_is_none)]
    pub shared_state: Option<String>,
}

fn primary_role(user: &User) -> String {
    user.roles.primary().unwrap_or_default().to_owned()
}

/// The stored permissions object as the typed map the spec documents (it was checked to be
/// modules of boolean actions when written).
/// Anything else (never written by this server) is left out rather than failing the request.
pub fn permission_map(overrides: &Permissions) -> PermissionMap {
    overrides
        .as_map()
        .iter()
        .filter_map(|(module, actions)| {
            let actions = actions
                .as_object()?
                .iter()
                .filter_map(|(action, allowed)| Some((action.clone(), allowed.as_bool()?)))
                .collect();
            Some((module.clone(), actions))
        })
        .collect()
}

/// Unix milliseconds as RFC 3339, UTC.
pub fn rfc3339(unix_ms: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()?
        .format(&Rfc3339)
        .ok()
}
