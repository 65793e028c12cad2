//! The bearer security scheme. It is declared as OAuth2's password flow so that Swagger UI's
//! Authorize dialog can log in through `POST /api/v1/auth/login`; the credential itself is the
//! `Authorization: Bearer <token>` header. The checker turns it into a [`Principal`]. Also
//! [`same_secret`], the one comparison of a bearer credential with a configured secret.

use std::{marker::PhantomData, net::IpAddr, sync::Arc};

use poem::{Request, RequestBody};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions, OAuthScopes, SecurityScheme, auth::Bearer,
    registry::Registry,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::{AppState, Caller, RequestContext, tenant};
use crate::{
    auth::{Principal, RequestMeta},
    domain::Permission,
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
#[allow(
    clippy::large_enum_variant,
    reason = "built once per request, never stored"
)]
pub enum OptionalBearerAuth {
    Bearer(BearerAuth),
    #[oai(fallback)]
    Anonymous,
}

/// The checker. It runs before the handler's parameters are extracted, so it asks for the
/// `X-Tenant` header itself, through the same [`tenant::requested`] as the handler's
/// extractor (which then reuses the parsed value).
async fn authenticate(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let state = state(req);
    let tenant = tenant::requested(req)?;
    let principal = state
        .auth
        .authenticate(&state.registry, tenant, &bearer.token, request_meta(req))
        .await
        .map_err(ApiError::from)?;
    if let Some(context) = req.extensions().get::<Arc<RequestContext>>() {
        let _ = context.caller.set(Caller {
            handle: principal.handle.clone(),
            claims: principal.claims.clone(),
        });
    }
    Ok(principal)
}

/// Whether a presented bearer credential is the configured secret (`admin.token`,
/// `metrics.token`), in constant time: both sides are hashed first, so the comparison runs over
/// equal lengths and its duration says nothing about the secret or how much of it matched.
pub fn same_secret(given: &str, expected: &SecretString) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.expose_secret().as_bytes());
    bool::from(given.ct_eq(&expected))
}

/// The client address (the peer, or with `security.trust_forwarded_for` the last
/// `X-Forwarded-For` entry, which the trusted load balancer appended) and user agent.
pub fn request_meta(req: &Request) -> RequestMeta {
    let trust_forwarded = state(req).settings.security.trust_forwarded_for;
    let forwarded = || {
        let header = req.headers().get("X-Forwarded-For")?.to_str().ok()?;
        header.rsplit(',').next()?.trim().parse::<IpAddr>().ok()
    };
    let peer = || req.remote_addr().as_socket_addr().map(|a| a.ip());
    let client = if trust_forwarded {
        forwarded().or_else(peer)
    } else {
        peer()
    };
    let user_agent = req
        .headers()
        .get(poem::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(256).collect());
    RequestMeta { client, user_agent }
}

fn state(req: &Request) -> &Arc<AppState> {
    req.data::<Arc<AppState>>()
        .expect("BUG: routes() attaches AppState to every request")
}

/// A permission a handler demands through [`Require`].
pub trait Demand: Send + Sync {
    const PERMISSION: Permission;
}

/// The guard: a valid token of an active user who holds `P::PERMISSION` (else 403 naming it).
/// In the spec it is the same `bearer` scheme as [`BearerAuth`].
pub struct Require<P: Demand>(pub Principal, PhantomData<P>);

impl<'a, P: Demand> ApiExtractor<'a> for Require<P> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        BearerAuth::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        BearerAuth::security_schemes()
    }

    async fn from_request(
        req: &'a Request,
        body: &mut RequestBody,
        param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let BearerAuth(principal) = BearerAuth::from_request(req, body, param_opts).await?;
        principal
            .require(P::PERMISSION)
            .map_err(|e| poem::Error::from(ApiError::from(e)))?;
        Ok(Self(principal, PhantomData))
    }
}

/// Declares marker types for [`Require`], one per permission.
macro_rules! demands {
    ($($name:ident => $permission:ident),+ $(,)?) => {$(
        #[doc = concat!("Demands `", stringify!($permission), "`.")]
        pub struct $name;
        impl Demand for $name {
            const PERMISSION: Permission = Permission::$permission;
        }
    )+};
}

demands!(
    IcsrView => ICSR_VIEW,
    IcsrEdit => ICSR_EDIT,
    IcsrDelete => ICSR_DELETE,
);
