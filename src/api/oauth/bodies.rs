//! The OAuth2 endpoints' forms and answers.

use poem_openapi::{ApiResponse, Object, payload::Json};
use serde::Deserialize;

use crate::api::dto::LoginUser;

/// A token request (`application/x-www-form-urlencoded`, RFC 6749 §4.3, §4.4, §6).
#[derive(Debug, Object, Deserialize)]
pub struct TokenForm {
    /// `password` (default), `refresh_token` or `client_credentials`.
    pub grant_type: Option<String>,
    /// Password grant: username or e-mail address, matched case-insensitively.
    pub username: Option<String>,
    /// Password grant: the user's password.
    pub password: Option<String>,
    /// Refresh grant: the refresh token (each works once).
    pub refresh_token: Option<String>,
    /// Not used: permissions come from the user's roles or the client's record.
    pub scope: Option<String>,
    /// Client-credentials grant without HTTP Basic: the client ID.
    pub client_id: Option<String>,
    /// Client-credentials grant without HTTP Basic: the client secret.
    pub client_secret: Option<String>,
}

/// An introspection or revocation request (RFC 7662 §2.1, RFC 7009 §2.1).
#[derive(Debug, Object, Deserialize)]
pub struct TokenReferenceForm {
    /// The access or refresh token.
    pub token: Option<String>,
    /// `access_token` or `refresh_token` (a hint only: both kinds are recognised).
    pub token_type_hint: Option<String>,
    /// With `client_secret_post`: the client ID.
    pub client_id: Option<String>,
    /// With `client_secret_post`: the client secret.
    pub client_secret: Option<String>,
}

/// A token endpoint's answer (RFC 6749 §5.1).
#[derive(Debug, Object)]
pub struct GrantResponse {
    /// The JWT access token.
    pub access_token: String,
    /// `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Password and refresh grants: the next refresh token (each works once).
    #[oai(skip_serializing_if_is_none)]
    pub refresh_token: Option<String>,
    /// Client-credentials grant: the client's permissions, space-separated.
    #[oai(skip_serializing_if_is_none)]
    pub scope: Option<String>,
    /// Password and refresh grants: the user, as `POST /api/v1/auth/login` returns it.
    #[oai(skip_serializing_if_is_none)]
    pub user: Option<LoginUser>,
}

/// What introspection says of a token (RFC 7662 §2.2). Only `active` when it is not.
#[derive(Debug, Default, Object)]
pub struct IntrospectionResponse {
    pub active: bool,
    /// `access_token` or `refresh_token`.
    #[oai(skip_serializing_if_is_none)]
    pub token_type: Option<String>,
    /// The user ID (as a string) or the client ID.
    #[oai(skip_serializing_if_is_none)]
    pub sub: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub username: Option<String>,
    /// For a client's token: the client.
    #[oai(skip_serializing_if_is_none)]
    pub client_id: Option<String>,
    /// What the token's holder may do, space-separated `module.action` names.
    #[oai(skip_serializing_if_is_none)]
    pub scope: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub exp: Option<u64>,
    #[oai(skip_serializing_if_is_none)]
    pub iat: Option<u64>,
    #[oai(skip_serializing_if_is_none)]
    pub iss: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub aud: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub jti: Option<String>,
    /// The session a user's token belongs to.
    #[oai(skip_serializing_if_is_none)]
    pub sid: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub tenant: Option<String>,
}

/// A body with a credential or about one; never cached.
#[derive(ApiResponse)]
pub enum GrantAnswer {
    /// The token.
    #[oai(status = 200)]
    Ok(
        Json<GrantResponse>,
        /// `no-store`.
        #[oai(header = "Cache-Control")]
        String,
        /// `no-cache`.
        #[oai(header = "Pragma")]
        String,
    ),
}

#[derive(ApiResponse)]
pub enum IntrospectionAnswer {
    /// Whether the token is active, and if so what it is.
    #[oai(status = 200)]
    Ok(
        Json<IntrospectionResponse>,
        /// `no-store`.
        #[oai(header = "Cache-Control")]
        String,
    ),
}
