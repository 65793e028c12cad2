//! The bearer security scheme. It is declared as OAuth2's password flow so that Swagger UI's
//! Authorize dialog can log in through `POST /api/v1/auth/login`; the credential itself is the
//! `Authorization: Bearer <token>` header. The checker turns it into a [`Principal`].

use std::sync::Arc;

use poem::Request;
use poem_openapi::{OAuthScopes, SecurityScheme, auth::Bearer};

use super::AppState;
use crate::{
    auth::Principal,
    domain::{Scope, TenantId},
    error::{ApiError, Error},
};

/// OAuth2 scopes: Vigia authorises by role and permission, not by scope.
#[derive(OAuthScopes)]
pub enum Scopes {
    /// Everything the user's roles allow (the only scope; may be omitted).
    #[oai(rename = "vigia")]
    Vigia,
}

/// A valid access token of an active user.
#[derive(SecurityScheme)]
#[oai(
    rename = "bearer",
    ty = "oauth2",
    flows(password(token_url = "/api/v1/auth/login", scopes = "Scopes")),
    checker = "authenticate"
)]
pub struct BearerAuth(pub Principal);

/// Either a valid token or none at all (endpoints open in development).
#[derive(SecurityScheme)]
pub enum OptionalBearerAuth {
    Bearer(BearerAuth),
    #[oai(fallback)]
    Anonymous,
}

async fn authenticate(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let state = state(req);
    let tenant = header_tenant(req)?;
    state
        .auth
        .authenticate(&state.registry, tenant, &bearer.token)
        .await
        .map_err(|e| ApiError::from(e).into())
}

fn state(req: &Request) -> &Arc<AppState> {
    req.data::<Arc<AppState>>()
        .expect("BUG: routes() attaches AppState to every request")
}

/// The `X-Tenant` header as a tenant ID, `None` when absent; malformed is 422.
pub fn header_tenant(req: &Request) -> Result<Option<TenantId>, ApiError> {
    match req.headers().get("X-Tenant") {
        None => Ok(None),
        Some(value) => parse_tenant(value.to_str().ok()).map(Some),
    }
}

/// Parses a raw `X-Tenant` value (`None`: not valid UTF-8).
pub fn parse_tenant(raw: Option<&str>) -> Result<TenantId, ApiError> {
    let invalid = |why: String| ApiError::from(Error::Validation(format!("X-Tenant: {why}")));
    let raw = raw.ok_or_else(|| invalid("must be ASCII".into()))?;
    TenantId::parse(raw).map_err(|e| invalid(e.0))
}

/// The scope an `X-Tenant` header value names: a tenant, or legacy when absent.
pub fn scope_of(raw: Option<&str>) -> Result<Scope, ApiError> {
    Ok(match raw {
        None => Scope::Legacy,
        Some(raw) => Scope::Tenant(parse_tenant(Some(raw))?),
    })
}
