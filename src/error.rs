//! The one error type, [`Error`], and the one place it becomes HTTP: [`ApiError`] (documented
//! in the spec for every operation) and [`framework_error`] for what the framework itself
//! refuses (parse failures, unknown routes). Every error body is `{"detail": "..."}`; a 401
//! carries `WWW-Authenticate: Bearer`; a 500 logs its cause and says nothing about it.

use poem::{IntoResponse, Response, http::StatusCode};
use poem_openapi::{ApiResponse, Object, payload::Json};

use crate::{
    auth::{password::HashError, token::TokenError},
    domain::Invalid,
    store::StoreError,
    tenancy::{TenancyError, provision::ProvisionError},
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unknown user and wrong password answer alike.
    #[error("Incorrect username or password")]
    BadCredentials,
    #[error("Not authenticated")]
    NotAuthenticated,
    /// change-password's `current_password` does not match.
    #[error("Current password is incorrect")]
    WrongPassword,
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Validation(String),
    /// Rate-limited or locked out.
    #[error("{detail}")]
    TooManyRequests {
        detail: String,
        retry_after_seconds: i64,
    },
    #[error("{detail}")]
    Unavailable {
        detail: String,
        retry_after_seconds: u64,
    },
    #[error("Internal server error")]
    Internal(#[source] anyhow::Error),
}

impl From<Invalid> for Error {
    fn from(e: Invalid) -> Self {
        Self::Validation(e.0)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("Not found".into()),
            StoreError::Conflict(m) => Self::Conflict(m),
            StoreError::Invalid(m) => Self::Validation(m),
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Self::Unavailable {
                    detail: "Database unavailable, retry shortly".into(),
                    retry_after_seconds: 5,
                }
            }
            StoreError::Busy(cause) => {
                tracing::debug!(error = %cause, "database busy");
                Self::Unavailable {
                    detail: "Database busy, retry shortly".into(),
                    retry_after_seconds: 1,
                }
            }
            StoreError::Other(e) => Self::Internal(anyhow::anyhow!("{e:#}")),
        }
    }
}

impl From<TenancyError> for Error {
    fn from(e: TenancyError) -> Self {
        match e {
            TenancyError::Unknown => Self::NotFound("Unknown tenant".into()),
            TenancyError::Inactive => Self::Forbidden("Tenant is inactive".into()),
            TenancyError::Unavailable(cause) if matches!(*cause, StoreError::Busy(_)) => {
                (*cause).clone().into()
            }
            TenancyError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "tenant database unavailable");
                Self::Unavailable {
                    detail: "Tenant database unavailable, retry shortly".into(),
                    retry_after_seconds: 5,
                }
            }
            broken @ TenancyError::Broken(_) => Self::Internal(broken.into()),
        }
    }
}

impl From<HashError> for Error {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => Self::Unavailable {
                detail: "Too many logins in progress, retry shortly".into(),
                retry_after_seconds: 1,
            },
            HashError::Internal(m) => Self::Internal(anyhow::anyhow!(m)),
        }
    }
}

impl From<ProvisionError> for Error {
    fn from(e: ProvisionError) -> Self {
        match e {
            ProvisionError::Exists(id) => Self::Conflict(format!("tenant {id} already exists")),
            ProvisionError::Invalid(m) => Self::Validation(m),
            ProvisionError::Store(e) => e.into(),
            ProvisionError::File(e) => Self::Internal(e.into()),
        }
    }
}

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
            | Error::Token(_) => Self::Unauthorized(problem(detail), BEARER.into()),
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
    let mut response = error_response(err);
    if let Some(operation) = operation {
        response.set_data(operation);
    }
    response
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
