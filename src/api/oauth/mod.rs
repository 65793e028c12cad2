//! Each issuer's OAuth2 endpoints, under `{issuer}/oauth2/`: `token` (the password,
//! refresh-token and client-credentials grants, RFC 6749), `introspect` (RFC 7662, for
//! service clients) and `revoke` (RFC 7009). Errors follow RFC 6749 §5.2
//! (`{"error", "error_description"}`, with the `detail` every error here has).
//!
//! Client credentials come as HTTP Basic (`client_secret_basic`) or as the form's
//! `client_id` and `client_secret` (`client_secret_post`); client IDs and secrets use only
//! URL-safe characters, so neither needs decoding.

use std::sync::Arc;

use poem::{
    Request,
    web::{
        Data,
        headers::{Authorization, HeaderMapExt, authorization::Basic},
    },
};
use poem_openapi::{
    OpenApi,
    param::Path,
    payload::{Form, Json},
};

use self::bodies::{
    GrantAnswer, GrantResponse, IntrospectionAnswer, IntrospectionResponse, TokenForm,
    TokenReferenceForm,
};
use super::{
    ApiTags, AppState,
    discovery::{issuer_handle, tenant_scope},
    dto::{SuccessResponse, TokenResponse},
    error::OAuthError,
    security::request_meta,
};
use crate::{
    auth::{
        RequestMeta,
        clients::{ClientGrant, Introspected},
    },
    domain::{LoginIdentifier, Password, Scope},
    error::Error,
};

mod bodies;

#[derive(Default)]
pub struct OAuthApi;

#[OpenApi(tag = "ApiTags::Discovery")]
impl OAuthApi {
    /// Tenant issuer: token endpoint
    ///
    /// OAuth2 grants for the tenant in the path: `password` (the same form and checks as
    /// `POST /api/v1/auth/login`, no `X-Tenant` needed), `refresh_token` (rotating: each
    /// refresh token works once, and a spent one presented again ends its session) and
    /// `client_credentials` (a service client, with HTTP Basic or `client_secret_post`).
    /// Errors follow RFC 6749 §5.2.
    #[oai(
        path = "/tenants/:tenant/oauth2/token",
        method = "post",
        operation_id = "token"
    )]
    async fn token(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        /// Tenant identifier.
        tenant: Path<String>,
        form: Form<TokenForm>,
    ) -> Result<GrantAnswer, OAuthError> {
        let scope = tenant_scope(&tenant.0)?;
        grant(&state, req, &scope, form.0).await
    }

    /// Tenant issuer: token introspection
    ///
    /// RFC 7662, for a service client of the tenant (HTTP Basic): whether `token` (an access
    /// or refresh token) is active now. Logouts, password changes, deactivations and revoked
    /// clients show at once; an expired, revoked, malformed or other tenant's token is
    /// `{"active": false}`.
    #[oai(
        path = "/tenants/:tenant/oauth2/introspect",
        method = "post",
        operation_id = "introspect"
    )]
    async fn introspect(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        /// Tenant identifier.
        tenant: Path<String>,
        form: Form<TokenReferenceForm>,
    ) -> Result<IntrospectionAnswer, OAuthError> {
        let scope = tenant_scope(&tenant.0)?;
        introspect(&state, req, &scope, form.0).await
    }

    /// Tenant issuer: token revocation
    ///
    /// RFC 7009: revokes an access token (as a logout: its session ends too) or a refresh
    /// token (its session and the access tokens it issued). A service client may revoke any
    /// token of the tenant (HTTP Basic); without client credentials, whoever holds a token may
    /// revoke it. An unknown or already dead token answers the same 200.
    #[oai(
        path = "/tenants/:tenant/oauth2/revoke",
        method = "post",
        operation_id = "revoke"
    )]
    async fn revoke(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        /// Tenant identifier.
        tenant: Path<String>,
        form: Form<TokenReferenceForm>,
    ) -> Result<Json<SuccessResponse>, OAuthError> {
        let scope = tenant_scope(&tenant.0)?;
        revoke(&state, req, &scope, form.0).await
    }

    /// Legacy issuer: token endpoint
    ///
    /// As the tenant's, in the legacy database.
    #[oai(path = "/oauth2/token", method = "post", operation_id = "legacy_token")]
    async fn legacy_token(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        form: Form<TokenForm>,
    ) -> Result<GrantAnswer, OAuthError> {
        grant(&state, req, &Scope::Legacy, form.0).await
    }

    /// Legacy issuer: token introspection
    #[oai(
        path = "/oauth2/introspect",
        method = "post",
        operation_id = "legacy_introspect"
    )]
    async fn legacy_introspect(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        form: Form<TokenReferenceForm>,
    ) -> Result<IntrospectionAnswer, OAuthError> {
        introspect(&state, req, &Scope::Legacy, form.0).await
    }

    /// Legacy issuer: token revocation
    #[oai(
        path = "/oauth2/revoke",
        method = "post",
        operation_id = "legacy_revoke"
    )]
    async fn legacy_revoke(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        form: Form<TokenReferenceForm>,
    ) -> Result<Json<SuccessResponse>, OAuthError> {
        revoke(&state, req, &Scope::Legacy, form.0).await
    }
}

/// A required form field, or `invalid_request` naming it.
fn required(value: Option<String>, name: &str) -> Result<String, OAuthError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::bad_request("invalid_request", format!("{name} is required")))
}

/// The client's credentials: HTTP Basic, else the form's `client_id` and `client_secret`.
fn client_credentials(
    req: &Request,
    client_id: Option<String>,
    client_secret: Option<String>,
) -> Option<(String, String)> {
    if let Some(basic) = req.headers().typed_get::<Authorization<Basic>>() {
        return Some((basic.username().to_owned(), basic.password().to_owned()));
    }
    Some((client_id?, client_secret?))
}

async fn grant(
    state: &AppState,
    req: &Request,
    scope: &Scope,
    form: TokenForm,
) -> Result<GrantAnswer, OAuthError> {
    // As for introspection and revocation: an unknown or inactive tenant is no issuer (404).
    issuer_handle(state, scope).await?;
    let meta = request_meta(req);
    let auth = &state.auth;
    let body = match form.grant_type.as_deref().unwrap_or("password") {
        "password" => {
            let login = LoginIdentifier::parse(&required(form.username, "username")?)?;
            let password = Password::parse(required(form.password, "password")?, "password")?;
            let outcome = auth
                .login(&state.registry, scope, &login, password, &meta)
                .await?;
            user_grant(TokenResponse::new(outcome))
        }
        "refresh_token" => {
            let presented = required(form.refresh_token, "refresh_token")?;
            let outcome = auth
                .refresh(&state.registry, scope, &presented, &meta)
                .await?;
            user_grant(TokenResponse::new(outcome))
        }
        "client_credentials" => {
            let (id, secret) = client_credentials(req, form.client_id, form.client_secret)
                .ok_or(Error::InvalidClient)?;
            let ClientGrant {
                access_token,
                expires_in,
                scope: permissions,
            } = auth
                .client_credentials(&state.registry, scope, &id, &secret, &meta)
                .await?;
            GrantResponse {
                access_token,
                token_type: "bearer".into(),
                expires_in,
                refresh_token: None,
                scope: Some(permissions),
                user: None,
            }
        }
        other => {
            return Err(OAuthError::bad_request(
                "unsupported_grant_type",
                format!(
                    "grant_type {other:?} is not supported: use password, refresh_token or \
                     client_credentials"
                ),
            ));
        }
    };
    Ok(GrantAnswer::Ok(
        Json(body),
        "no-store".into(),
        "no-cache".into(),
    ))
}

fn user_grant(token: TokenResponse) -> GrantResponse {
    GrantResponse {
        access_token: token.access_token,
        token_type: token.token_type,
        expires_in: token.expires_in,
        refresh_token: token.refresh_token,
        scope: None,
        user: Some(token.user),
    }
}

/// The service client the request authenticates as: `invalid_client` when its credentials
/// do not hold, `None` when it brings none.
async fn client(
    state: &AppState,
    req: &Request,
    handle: &crate::tenancy::ScopeHandle,
    form: &mut TokenReferenceForm,
    meta: &RequestMeta,
) -> Result<Option<String>, OAuthError> {
    let Some((id, secret)) =
        client_credentials(req, form.client_id.take(), form.client_secret.take())
    else {
        return Ok(None);
    };
    let client = state
        .auth
        .authenticate_client(handle, &id, &secret, meta)
        .await?;
    Ok(Some(client.client_id))
}

async fn introspect(
    state: &AppState,
    req: &Request,
    scope: &Scope,
    mut form: TokenReferenceForm,
) -> Result<IntrospectionAnswer, OAuthError> {
    let handle = issuer_handle(state, scope).await?;
    let meta = request_meta(req);
    if client(state, req, &handle, &mut form, &meta)
        .await?
        .is_none()
    {
        return Err(Error::InvalidClient.into());
    }
    let token = required(form.token, "token")?;
    let found = state
        .auth
        .introspect(&state.registry, &handle, &token, &meta)
        .await?;
    let body = match found {
        Introspected::Inactive => IntrospectionResponse::default(),
        Introspected::User {
            claims,
            permissions,
        } => IntrospectionResponse {
            active: true,
            token_type: Some("access_token".into()),
            sub: Some(claims.sub.clone()),
            username: Some(claims.username.clone()),
            // What the user may do now, not what the token said at issue.
            scope: Some(permissions.join(" ")),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            iss: Some(claims.iss.clone()),
            aud: Some(claims.aud.clone()),
            jti: Some(claims.jti.clone()),
            sid: claims.sid.clone(),
            tenant: claims.tenant.clone(),
            client_id: None,
        },
        Introspected::Client(claims) => IntrospectionResponse {
            active: true,
            token_type: Some("access_token".into()),
            scope: Some(claims.permissions.join(" ")),
            sub: Some(claims.sub),
            client_id: Some(claims.client_id),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            iss: Some(claims.iss),
            aud: Some(claims.aud),
            jti: Some(claims.jti),
            tenant: claims.tenant,
            ..IntrospectionResponse::default()
        },
        Introspected::Refresh {
            session_id,
            user_id,
            username,
            expires_at,
        } => IntrospectionResponse {
            active: true,
            token_type: Some("refresh_token".into()),
            sub: Some(user_id.to_string()),
            username: Some(username),
            exp: u64::try_from(expires_at).ok(),
            iss: Some(state.auth.tokens.issuer(scope)),
            sid: Some(session_id),
            tenant: scope.tenant().map(ToString::to_string),
            ..IntrospectionResponse::default()
        },
    };
    Ok(IntrospectionAnswer::Ok(Json(body), "no-store".into()))
}

async fn revoke(
    state: &AppState,
    req: &Request,
    scope: &Scope,
    mut form: TokenReferenceForm,
) -> Result<Json<SuccessResponse>, OAuthError> {
    let handle = issuer_handle(state, scope).await?;
    let meta = request_meta(req);
    let revoker = client(state, req, &handle, &mut form, &meta).await?;
    let token = required(form.token, "token")?;
    state
        .auth
        .revoke(&state.registry, &handle, &token, revoker.as_deref(), &meta)
        .await?;
    Ok(Json(SuccessResponse { success: true }))
}
