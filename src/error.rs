//! The services' error: what `auth`, `accounts` and `icsrs` return, in words a client may read.
//! The layers below each have their own ([`StoreError`], [`TenancyError`], [`ProvisionError`],
//! [`Invalid`]) and become an [`Error`] here; the one mapping to HTTP status and
//! `{"detail": …}` is `api::error`. Nothing here knows about HTTP.

use crate::{
    domain::Invalid,
    store::StoreError,
    tenancy::{TenancyError, provision::ProvisionError},
};

/// Why a token was refused (all are "not authenticated"; the message is safe to show).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("Token is malformed")]
    Malformed,
    #[error("Token has expired")]
    Expired,
    #[error("Could not validate credentials")]
    Invalid,
    /// Logged out, or issued before a password change, reset or deactivation.
    #[error("Token has been revoked")]
    Revoked,
    /// A service client's token, presented where a user's is needed.
    #[error("A service client's token names no user: this endpoint needs a user's token")]
    NotAUser,
}

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
    /// An OAuth2 grant that does not hold: an unknown, spent, expired or ended refresh token
    /// (RFC 6749 §5.2 `invalid_grant`).
    #[error("{0}")]
    InvalidGrant(String),
    /// A service client's credentials do not match an active client (`invalid_client`).
    #[error("Client authentication failed")]
    InvalidClient,
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
