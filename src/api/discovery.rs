//! Each scope is an OpenID Connect issuer: a tenant at `{server.public_url}/tenants/{ID}`, the
//! legacy database at `{server.public_url}`. Under each issuer: its discovery document
//! (`/.well-known/openid-configuration`, OpenID Connect Discovery 1.0), its public keys
//! (`/.well-known/jwks.json`, RFC 7517) and its OAuth2 endpoints (`/oauth2/token`,
//! `/oauth2/introspect`, `/oauth2/revoke`: see `oauth`). A module that verifies tokens needs only the
//! issuer URL: discovery names the JWKS, the JWKS holds the keys. An unknown or inactive
//! tenant has no issuer (404).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};

use super::{ApiTags, AppState, error::ApiError};
use crate::{
    domain::{Scope, TenantId},
    error::Error,
    tenancy::{ScopeHandle, TenancyError},
};

/// How long clients may cache a JWKS: keys change only when `jwt.secret` rotates, and a new
/// secret is listed (verifying) before it signs.
const JWKS_MAX_AGE_SECONDS: u32 = 300;

#[derive(Default)]
pub struct DiscoveryApi;

/// An issuer's OpenID Connect discovery document (the fields Vigia implements).
#[derive(Debug, Object)]
pub struct OpenIdConfiguration {
    /// The issuer: every token of this scope carries it as `iss`.
    pub issuer: String,
    /// The issuer's public keys (JWKS).
    pub jwks_uri: String,
    /// OAuth2 token endpoint: password, refresh-token and client-credentials grants.
    pub token_endpoint: String,
    /// Token introspection (RFC 7662), for service clients.
    pub introspection_endpoint: String,
    /// Token revocation (RFC 7009).
    pub revocation_endpoint: String,
    /// The signed-in user's profile (`GET /api/v1/auth/me`, with `sub`).
    pub userinfo_endpoint: String,
    pub grant_types_supported: Vec<String>,
    pub response_types_supported: Vec<String>,
    pub subject_types_supported: Vec<String>,
    /// The token signing algorithm (`jwt.algorithm`).
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// How clients authenticate at the token endpoint (`none`: the password and refresh
    /// grants need no client).
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    pub claims_supported: Vec<String>,
}

/// A public key (RFC 7517; Ed25519 per RFC 8037).
#[derive(Debug, Object)]
pub struct JsonWebKey {
    /// `OKP`.
    pub kty: String,
    /// `Ed25519`.
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    /// The RFC 7638 thumbprint; tokens name their key with it in the header's `kid`.
    pub kid: String,
    /// `sig`.
    #[oai(rename = "use")]
    pub key_use: String,
    /// `EdDSA`.
    pub alg: String,
}

/// An issuer's public keys: the signing key first, then those of older secrets that still
/// verify. Empty with `jwt.algorithm = "HS256"` (an HMAC key is never published).
#[derive(Debug, Object)]
pub struct JsonWebKeySet {
    pub keys: Vec<JsonWebKey>,
}

#[derive(ApiResponse)]
pub enum ConfigurationResponse {
    /// The discovery document.
    #[oai(status = 200)]
    Ok(Json<OpenIdConfiguration>),
}

#[derive(ApiResponse)]
pub enum KeysResponse {
    /// The public keys.
    #[oai(status = 200)]
    Ok(
        Json<JsonWebKeySet>,
        /// `public, max-age=300`: keys change only when the secrets rotate.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

#[OpenApi(tag = "ApiTags::Discovery")]
impl DiscoveryApi {
    /// Tenant issuer: OpenID Connect discovery
    ///
    /// The discovery document of the tenant's issuer `{server.public_url}/tenants/{tenant}`.
    /// 404 for an unknown or inactive tenant.
    #[oai(
        path = "/tenants/:tenant/.well-known/openid-configuration",
        method = "get",
        operation_id = "openid_configuration"
    )]
    async fn configuration(
        &self,
        state: Data<&Arc<AppState>>,
        /// Tenant identifier.
        tenant: Path<String>,
    ) -> Result<ConfigurationResponse, ApiError> {
        let scope = tenant_scope(&tenant.0)?;
        issuer_handle(&state, &scope).await?;
        Ok(configuration(&state, &scope))
    }

    /// Tenant issuer: public keys (JWKS)
    ///
    /// The keys that verify the tenant's tokens. 404 for an unknown or inactive tenant.
    #[oai(
        path = "/tenants/:tenant/.well-known/jwks.json",
        method = "get",
        operation_id = "jwks"
    )]
    async fn keys(
        &self,
        state: Data<&Arc<AppState>>,
        /// Tenant identifier.
        tenant: Path<String>,
    ) -> Result<KeysResponse, ApiError> {
        let scope = tenant_scope(&tenant.0)?;
        let handle = issuer_handle(&state, &scope).await?;
        Ok(keys(&handle))
    }

    /// Legacy issuer: OpenID Connect discovery
    ///
    /// The discovery document of the legacy database's issuer `{server.public_url}`.
    #[oai(
        path = "/.well-known/openid-configuration",
        method = "get",
        operation_id = "legacy_openid_configuration"
    )]
    async fn legacy_configuration(
        &self,
        state: Data<&Arc<AppState>>,
    ) -> Result<ConfigurationResponse, ApiError> {
        issuer_handle(&state, &Scope::Legacy).await?;
        Ok(configuration(&state, &Scope::Legacy))
    }

    /// Legacy issuer: public keys (JWKS)
    #[oai(
        path = "/.well-known/jwks.json",
        method = "get",
        operation_id = "legacy_jwks"
    )]
    async fn legacy_keys(&self, state: Data<&Arc<AppState>>) -> Result<KeysResponse, ApiError> {
        let handle = issuer_handle(&state, &Scope::Legacy).await?;
        Ok(keys(&handle))
    }
}

/// The scope of a tenant ID in a path: a malformed one names no issuer (404).
pub(super) fn tenant_scope(raw: &str) -> Result<Scope, Error> {
    TenantId::parse(raw)
        .map(Scope::Tenant)
        .map_err(|_| Error::NotFound("Unknown tenant".into()))
}

/// The handle of an issuer's scope; an inactive tenant is no issuer (404, not 403).
pub(super) async fn issuer_handle(
    state: &AppState,
    scope: &Scope,
) -> Result<Arc<ScopeHandle>, Error> {
    match state.registry.resolve(scope).await {
        Ok(handle) => Ok(handle),
        Err(TenancyError::Inactive) => Err(Error::NotFound("Unknown tenant".into())),
        Err(other) => Err(Error::from(other)),
    }
}

fn configuration(state: &AppState, scope: &Scope) -> ConfigurationResponse {
    let issuer = state.auth.tokens.issuer(scope);
    let base = state.auth.tokens.public_url();
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
    ConfigurationResponse::Ok(Json(OpenIdConfiguration {
        jwks_uri: format!("{issuer}/.well-known/jwks.json"),
        token_endpoint: format!("{issuer}/oauth2/token"),
        introspection_endpoint: format!("{issuer}/oauth2/introspect"),
        revocation_endpoint: format!("{issuer}/oauth2/revoke"),
        userinfo_endpoint: format!("{base}/api/v1/auth/me"),
        grant_types_supported: strings(&["password", "refresh_token", "client_credentials"]),
        response_types_supported: strings(&["token"]),
        subject_types_supported: strings(&["public"]),
        id_token_signing_alg_values_supported: vec![state.auth.tokens.algorithm_name().into()],
        token_endpoint_auth_methods_supported: strings(&[
            "client_secret_basic",
            "client_secret_post",
            "none",
        ]),
        introspection_endpoint_auth_methods_supported: strings(&[
            "client_secret_basic",
            "client_secret_post",
        ]),
        revocation_endpoint_auth_methods_supported: strings(&[
            "client_secret_basic",
            "client_secret_post",
            "none",
        ]),
        claims_supported: strings(&[
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "jti",
            "uid",
            "username",
            "email",
            "role",
            "roles",
            "tenant",
            "trace",
            "ver",
            "permissions",
            "sid",
            "client_id",
        ]),
        issuer,
    }))
}

fn keys(handle: &ScopeHandle) -> KeysResponse {
    let keys = handle
        .key
        .public
        .iter()
        .map(|key| JsonWebKey {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: key.x.clone(),
            kid: key.kid.clone(),
            key_use: "sig".into(),
            alg: "EdDSA".into(),
        })
        .collect();
    KeysResponse::Ok(
        Json(JsonWebKeySet { keys }),
        format!("public, max-age={JWKS_MAX_AGE_SECONDS}"),
    )
}
