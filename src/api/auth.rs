//! `/api/v1/auth/*`: the five endpoints of the Vigia auth API.

use std::sync::Arc;

use poem::{
    Request,
    web::{
        Data,
        headers::{Authorization, HeaderMapExt, authorization::Basic},
    },
};
use poem_openapi::{
    ApiResponse, OpenApi,
    payload::{Form, Json},
};

use super::error::ApiError;
use super::{
    ApiTags, AppState,
    dto::{
        ChangePasswordRequest, LoginForm, MeResponse, ResetPasswordRequest, ResetPasswordResponse,
        SuccessResponse, TokenResponse, WhoAmIResponse,
    },
    rendered::{self, Rendered},
    security::{BearerAuth, OptionalBearerAuth, request_meta},
    tenant::{RequiredTenant, XTenant},
};
use crate::{
    accounts::ResetBy,
    config::Environment,
    domain::{Email, LoginIdentifier, Password, Scope, TenantId},
    error::Error,
};

#[derive(Default)]
pub struct AuthApi;

/// The OAuth2 password grant (RFC 6749 4.3) in `scope`: the login of `/api/v1/auth/login`
/// (each issuer's token endpoint has its own, with the other grants: see `oauth`).
async fn password_grant(
    state: &AppState,
    req: &Request,
    scope: &Scope,
    form: LoginForm,
) -> Result<LoginResponse, ApiError> {
    if form.grant_type.as_deref().is_some_and(|g| g != "password") {
        return Err(Error::Validation("grant_type must be \"password\"".into()).into());
    }
    let login = LoginIdentifier::parse(&form.username)?;
    let password = Password::parse(form.password, "password")?;
    let outcome = state
        .auth
        .login(&state.registry, scope, &login, password, &request_meta(req))
        .await?;
    let body = TokenResponse::new(outcome);
    Ok(LoginResponse::Ok(
        Json(body),
        "no-store".into(),
        "no-cache".into(),
    ))
}

/// The scope a login names: the `X-Tenant` header, else the OAuth2 client ID (form field
/// `client_id`, else the user name of `Authorization: Basic`), else the legacy database.
fn login_scope(header: XTenant, req: &Request, client_id: Option<&str>) -> Result<Scope, ApiError> {
    if let XTenant(Some(tenant)) = header {
        return Ok(Scope::Tenant(tenant));
    }
    let basic = req
        .headers()
        .typed_get::<Authorization<Basic>>()
        .map(|auth| auth.username().to_owned());
    let client_id = client_id.filter(|c| !c.is_empty()).map(str::to_owned);
    match client_id.or(basic).filter(|c| !c.is_empty()) {
        None => Ok(Scope::Legacy),
        Some(raw) => TenantId::parse(&raw)
            .map(Scope::Tenant)
            .map_err(|e| Error::Validation(format!("client_id (the tenant): {}", e.0)).into()),
    }
}

/// A token response; never cached by browsers or proxies.
#[derive(ApiResponse)]
enum LoginResponse {
    /// Logged in.
    #[oai(status = 200)]
    Ok(
        Json<TokenResponse>,
        /// `no-store`: the body holds a credential.
        #[oai(header = "Cache-Control")]
        String,
        /// `no-cache`, for HTTP/1.0 caches.
        #[oai(header = "Pragma")]
        String,
    ),
}

#[OpenApi(prefix_path = "/api/v1/auth", tag = "ApiTags::Auth")]
impl AuthApi {
    /// Log in
    ///
    /// Authenticates a user and returns a JWT access token. The body is an OAuth2 password
    /// form; `username` takes a username or an e-mail address, matched case-insensitively.
    /// An unknown user and a wrong password both answer 401; 403 (inactive user, no roles) is
    /// only ever given once the password has checked out.
    ///
    /// The tenant is the `X-Tenant` header. Clients that cannot set headers, such as this
    /// page's **Authorize** dialog, name it in the form's `client_id` instead (or as the user
    /// name of HTTP Basic client credentials); the token then carries the tenant, and later
    /// calls need no `X-Tenant`. With neither, the legacy shared database is used.
    #[oai(path = "/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        /// Tenant identifier, a lowercase DNS label (`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`).
        /// If not provided, the form's `client_id` names the tenant; with neither, the legacy
        /// shared database is used.
        #[oai(name = "X-Tenant")]
        tenant: XTenant,
        form: Form<LoginForm>,
    ) -> Result<LoginResponse, ApiError> {
        let form = form.0;
        let scope = login_scope(tenant, req, form.client_id.as_deref())?;
        password_grant(&state, req, &scope, form).await
    }

    /// Current user
    ///
    /// The authenticated user's full profile, with the permissions the server enforces. It is
    /// served from memory and reflects every change to the user or the tenant's roles.
    #[oai(path = "/me", method = "get", operation_id = "me")]
    async fn me(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// Tenant identifier, a lowercase DNS label (`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`);
        /// taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
    ) -> Result<Rendered<MeResponse>, ApiError> {
        Ok(rendered::me(&state.bodies, &auth.0))
    }

    /// Who am I
    ///
    /// A lighter version of `/me`; `role` is the first assigned role.
    #[oai(path = "/whoami", method = "get", operation_id = "whoami")]
    async fn whoami(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// Tenant identifier, a lowercase DNS label (`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`);
        /// taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
    ) -> Result<Rendered<WhoAmIResponse>, ApiError> {
        Ok(rendered::whoami(&state.bodies, &auth.0))
    }

    /// Change password
    ///
    /// Changes the authenticated user's password; `current_password` must match (401 if not).
    /// The new password follows the tenant's policy (minimum length, default 6; not the
    /// username or e-mail). Every token issued to the user before, this one included, is
    /// revoked: log in again with the new password.
    #[oai(
        path = "/change-password",
        method = "post",
        operation_id = "change_password"
    )]
    async fn change_password(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// Tenant identifier, a lowercase DNS label (`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`);
        /// taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
        body: Json<ChangePasswordRequest>,
    ) -> Result<Json<SuccessResponse>, ApiError> {
        let body = body.0;
        let current = Password::parse(body.current_password, "current_password")
            .map_err(|_| Error::WrongPassword)?;
        let new = Password::parse(body.new_password, "new_password")?;
        state.auth.change_password(&auth.0, current, new).await?;
        Ok(Json(SuccessResponse { success: true }))
    }

    /// Reset a user's password
    ///
    /// Sets the password of the user with `email` in the tenant `X-Tenant` names (required).
    /// In `development` this endpoint is open; in `production` it needs the bearer token of a
    /// user of that same tenant who holds `users.manage` and every action the target user
    /// holds (the grants of their roles, and their overrides set to `true`), as an `admin` with
    /// all its permissions does. Always audited; the user's tokens are revoked and any lockout
    /// is cleared.
    #[oai(
        path = "/reset-password",
        method = "post",
        operation_id = "reset_password"
    )]
    async fn reset_password(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        auth: OptionalBearerAuth,
        /// Tenant identifier (required for this endpoint), a lowercase DNS label
        /// (`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`).
        #[oai(name = "X-Tenant")]
        RequiredTenant(tenant_id): RequiredTenant,
        body: Json<ResetPasswordRequest>,
    ) -> Result<Json<ResetPasswordResponse>, ApiError> {
        let scope = Scope::Tenant(tenant_id.clone());
        let actor = match &auth {
            OptionalBearerAuth::Bearer(BearerAuth(principal)) => Some(principal),
            OptionalBearerAuth::Anonymous => None,
        };
        // In production the caller is weighed by the rule of account administration. Its
        // token was verified with the key of the X-Tenant scope, so it belongs to this very
        // tenant.
        let by = match (state.settings.environment, actor) {
            (Environment::Production, None) => return Err(Error::NotAuthenticated.into()),
            (Environment::Production, Some(principal)) => ResetBy::Administrator(principal),
            (_, actor) => ResetBy::Open(actor),
        };
        let body = body.0;
        let email = Email::parse(&body.email)?;
        let new = Password::parse(body.new_password, "new_password")?;
        let meta = request_meta(req);
        let user = state
            .accounts
            .reset_password(&state.registry, &scope, &email, new, by, &meta)
            .await?;
        Ok(Json(ResetPasswordResponse {
            email: user.email.to_string(),
            tenant: tenant_id.to_string(),
            success: true,
        }))
    }

    /// Log out
    ///
    /// Revokes the presented token until it would have expired; other tokens of the user stay
    /// valid.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// Tenant identifier, a lowercase DNS label (`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`);
        /// taken from the token when not provided.
        #[oai(name = "X-Tenant")]
        _tenant: XTenant,
    ) -> Result<Json<SuccessResponse>, ApiError> {
        state.auth.logout(&auth.0).await?;
        Ok(Json(SuccessResponse { success: true }))
    }
}
