//! The one place an error becomes HTTP: [`ApiError`] (documented in the spec for every
//! operation) from the services' [`Error`], and [`framework_error`] for what the framework
//! itself refuses (parse failures, unknown routes). Every error body is `{"detail": "..."}`;
//! a 401 carries `WWW-Authenticate: Bearer`; a 500 logs its cause and says nothing about it.

use poem::{IntoResponse, Response, http::StatusCode};
use poem_openapi::{ApiResponse, Object, payload::Json};

use crate::{domain::Invalid, error::Error};

/// The body of every error response.
#[derive(Debug, Object)]
#[oai(rename = "Error")]
pub struct Problem {
    /// Human-readable reason.
    pub detail: String,
}

const BEARER: &str = "Bearer";

/// Every error status an operation can answer, as the spec documents it.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// Bad credentials, or a missing, malformed, expired or foreign token.
    #[oai(status = 401)]
    Unauthorized(
        Json<Problem>,
        /// Always `Bearer`.
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
    /// Inactive user or tenant, a user without roles, or a missing privilege.
    #[oai(status = 403)]
    Forbidden(Json<Problem>),
    /// Unknown user (reset-password) or unknown tenant.
    #[oai(status = 404)]
    NotFound(Json<Problem>),
    /// The resource already exists.
    #[oai(status = 409)]
    Conflict(Json<Problem>),
    /// Validation failed: missing or short fields, wrong content type, malformed `X-Tenant`.
    #[oai(status = 422)]
    Unprocessable(Json<Problem>),
    /// Too many login attempts: from this address, or against this name (locked). Retry after
    /// `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(
        Json<Problem>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        i64,
    ),
    /// An internal fault; the body names no internals.
    #[oai(status = 500)]
    Internal(Json<Problem>),
    /// Temporarily unable to serve (hashing saturated, database unreachable).
    #[oai(status = 503)]
    Unavailable(
        Json<Problem>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
    ),
}

fn problem(detail: impl Into<String>) -> Json<Problem> {
    Json(Problem {
        detail: detail.into(),
    })
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let detail = e.to_string();
        match e {
            Error::BadCredentials
            | Error::NotAuthenticated
            | Error::WrongPassword
            | Error::Token(_)
            | Error::InvalidGrant(_)
            | Error::InvalidClient => Self::Unauthorized(problem(detail), BEARER.into()),
            Error::Forbidden(_) => Self::Forbidden(problem(detail)),
            Error::NotFound(_) => Self::NotFound(problem(detail)),
            Error::Conflict(_) => Self::Conflict(problem(detail)),
            Error::Validation(_) => Self::Unprocessable(problem(detail)),
            Error::TooManyRequests {
                retry_after_seconds,
                ..
            } => Self::TooManyRequests(problem(detail), retry_after_seconds),
            Error::Unavailable {
                retry_after_seconds,
                ..
            } => Self::Unavailable(problem(detail), retry_after_seconds),
            Error::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                Self::Internal(problem(detail))
            }
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        Error::from(e).into()
    }
}

/// Turns every error that did not come from our handlers (request parse failures, a missing
/// bearer token, unknown routes, wrong methods) into the same `{"detail": ...}` shape, with the
/// contract's status: parse and content-type failures are 422.
pub fn framework_error(err: poem::Error) -> Response {
    // Keep the operation that failed, for the request metrics.
    let operation = err.data::<poem_openapi::OperationId>().copied();
    let mut response = match operation {
        // The OAuth2 endpoints answer a body they cannot read as RFC 6749 5.2 does.
        Some(id) if OAUTH_OPERATIONS.contains(&id.0) && is_unreadable(&err) => {
            OAuthError::bad_request("invalid_request", err.to_string()).into_response()
        }
        _ => error_response(err),
    };
    if let Some(operation) = operation {
        response.set_data(operation);
    }
    response
}

/// The operations of `api::oauth`, whose errors are RFC 6749's.
const OAUTH_OPERATIONS: [&str; 6] = [
    "token",
    "introspect",
    "revoke",
    "legacy_token",
    "legacy_introspect",
    "legacy_revoke",
];

/// A request the framework could not parse (a missing or wrong content type, a malformed body).
fn is_unreadable(err: &poem::Error) -> bool {
    !err.is_from_response()
        && matches!(
            err.status(),
            StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE
        )
}

fn error_response(err: poem::Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let message = err.to_string();
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::Unprocessable(problem(message)).into_response()
        }
        StatusCode::UNAUTHORIZED => ApiError::from(Error::NotAuthenticated).into_response(),
        StatusCode::NOT_FOUND => ApiError::NotFound(problem("Not found")).into_response(),
        status if status.is_server_error() => {
            tracing::error!(error = %message, "framework error");
            ApiError::Internal(problem("Internal server error")).into_response()
        }
        status => {
            let reason = status.canonical_reason().unwrap_or("Request refused");
            let mut r = Json(Problem {
                detail: reason.into(),
            })
            .into_response();
            r.set_status(status);
            r
        }
    }
}

/// The body of an OAuth2 endpoint's error (RFC 6749 §5.2), with the `detail` every error of
/// this API carries.
#[derive(Debug, Object)]
pub struct OAuthProblem {
    /// The RFC 6749 error code: `invalid_request`, `invalid_client`, `invalid_grant`,
    /// `unsupported_grant_type`, `temporarily_unavailable`, `server_error`.
    pub error: String,
    /// Human-readable reason.
    pub error_description: String,
    /// The same reason, as every error of this API gives it.
    pub detail: String,
}

/// Every error status of the OAuth2 endpoints (token, introspection, revocation).
#[derive(Debug, ApiResponse)]
pub enum OAuthError {
    /// `invalid_request` (a missing or malformed field), `invalid_grant` (bad credentials, an
    /// inactive user, a spent or expired refresh token) or `unsupported_grant_type`.
    #[oai(status = 400)]
    BadRequest(Json<OAuthProblem>),
    /// `invalid_client`: the client's credentials do not match an active client.
    #[oai(status = 401)]
    Unauthorized(
        Json<OAuthProblem>,
        /// `Basic realm="vigia"`: the client authenticates with HTTP Basic.
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
    /// No such issuer (unknown or inactive tenant).
    #[oai(status = 404)]
    NotFound(Json<OAuthProblem>),
    /// Too many attempts from this address, or against this account (locked).
    #[oai(status = 429)]
    TooManyRequests(
        Json<OAuthProblem>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        i64,
    ),
    /// An internal fault; the body names no internals.
    #[oai(status = 500)]
    Internal(Json<OAuthProblem>),
    /// Temporarily unable to serve.
    #[oai(status = 503)]
    Unavailable(
        Json<OAuthProblem>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
    ),
}

impl OAuthError {
    /// An error with RFC 6749 code `error`, at 400.
    pub fn bad_request(error: &str, description: impl Into<String>) -> Self {
        Self::BadRequest(oauth_problem(error, description.into()))
    }
}

fn oauth_problem(error: &str, description: String) -> Json<OAuthProblem> {
    Json(OAuthProblem {
        error: error.into(),
        detail: description.clone(),
        error_description: description,
    })
}

impl From<Error> for OAuthError {
    fn from(e: Error) -> Self {
        let detail = e.to_string();
        match e {
            Error::InvalidClient => Self::Unauthorized(
                oauth_problem("invalid_client", detail),
                "Basic realm=\"vigia\"".into(),
            ),
            Error::BadCredentials
            | Error::InvalidGrant(_)
            | Error::Forbidden(_)
            | Error::Token(_)
            | Error::NotAuthenticated
            | Error::WrongPassword => Self::bad_request("invalid_grant", detail),
            Error::Validation(_) | Error::Conflict(_) => {
                Self::bad_request("invalid_request", detail)
            }
            Error::NotFound(_) => Self::NotFound(oauth_problem("invalid_request", detail)),
            Error::TooManyRequests {
                retry_after_seconds,
                ..
            } => Self::TooManyRequests(
                oauth_problem("temporarily_unavailable", detail),
                retry_after_seconds,
            ),
            Error::Unavailable {
                retry_after_seconds,
                ..
            } => Self::Unavailable(
                oauth_problem("temporarily_unavailable", detail),
                retry_after_seconds,
            ),
            Error::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                Self::Internal(oauth_problem("server_error", detail))
            }
        }
    }
}

impl From<Invalid> for OAuthError {
    fn from(e: Invalid) -> Self {
        Error::from(e).into()
    }
}
