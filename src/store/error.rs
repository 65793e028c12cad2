//! [`StoreError`]: what went wrong in storage, in the terms a caller can act on; sqlx and
//! migration errors are turned into it here, so no caller ever looks at one.

use std::sync::Arc;

/// What went wrong in storage, in the terms a caller can act on. Cheap to clone, so one
/// failure can be handed to every caller that waited on the same pool opening.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule refused the write; the message names what clashed.
    #[error("{0}")]
    Conflict(String),
    /// The database could not be reached or did not answer in time.
    #[error("database unavailable: {0}")]
    Unavailable(Arc<dyn std::error::Error + Send + Sync>),
    /// Every connection the server may have is busy (see [`budget`](super::budget)); retry shortly.
    #[error("database busy: {0}")]
    Busy(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0:#}")]
    Other(Arc<anyhow::Error>),
}

impl StoreError {
    /// [`StoreError::Unavailable`] with a message of our own.
    pub fn unavailable(message: impl Into<String>) -> Self {
        let message: Box<dyn std::error::Error + Send + Sync> = message.into().into();
        Self::Unavailable(Arc::from(message))
    }
}

impl From<anyhow::Error> for StoreError {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(Arc::new(e))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(Arc::new(err)),
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                Self::Conflict("already exists".into())
            }
            other => anyhow::Error::new(other).into(),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        match err {
            sqlx::migrate::MigrateError::Execute(e) => e.into(),
            other => anyhow::Error::new(other).context("migrating").into(),
        }
    }
}
