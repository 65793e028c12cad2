//! Password hashing: argon2id (RustCrypto) at configurable cost (OWASP default: 19 MiB, t=2,
//! p=1), run off the async executor on a bounded set of blocking threads.
//!
//! Each hash holds ~19 MiB while it runs, so both the running jobs (`workers`, one per core by
//! default) and the waiting ones (`queue`) are bounded; past the bound the caller gets
//! [`HashError::Busy`] (HTTP 503 + `Retry-After`) instead of unbounded memory. An unknown user
//! is verified against a dummy hash of the same parameters, so a miss costs what a hit costs.

use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use tokio::sync::Semaphore;

use crate::{config::Argon2Settings, domain::Password};

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing thread is busy and the queue is full.
    #[error("password hashing is saturated")]
    Busy,
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// The result of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub matches: bool,
    /// The stored hash uses other parameters than the configured ones: rehash now.
    pub needs_rehash: bool,
}

#[derive(Clone)]
pub struct Hasher {
    params: Params,
    /// Verified against when the user does not exist.
    dummy_hash: Arc<str>,
    /// Permits for jobs running or waiting (`workers + queue`).
    admitted: Arc<Semaphore>,
    /// Permits for jobs running (`workers`).
    running: Arc<Semaphore>,
}

impl Hasher {
    /// Builds the hasher; computes the dummy hash once (one hash's worth of CPU).
    pub fn new(settings: &Argon2Settings) -> anyhow::Result<Self> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let workers = match settings.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let dummy_hash = hash_now(&params, uuid::Uuid::new_v4().as_bytes())
            .map_err(|e| anyhow::anyhow!(e))?
            .into();
        Ok(Self {
            params,
            dummy_hash,
            admitted: Arc::new(Semaphore::new(workers + settings.queue)),
            running: Arc::new(Semaphore::new(workers)),
        })
    }

    /// Hashes a new password (PHC string).
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        let params = self.params.clone();
        self.run(move || hash_now(&params, password.as_bytes()))
            .await?
            .map_err(HashError::Internal)
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is no user.
    pub async fn verify(
        &self,
        password: Password,
        stored: Option<&str>,
    ) -> Result<Verified, HashError> {
        let known = stored.is_some();
        let stored: Arc<str> = stored.map_or_else(|| self.dummy_hash.clone(), Arc::from);
        let params = self.params.clone();
        self.run(move || {
            let Ok(hash) = PasswordHash::new(&stored) else {
                tracing::error!("a stored password hash is not a valid PHC string");
                return Verified {
                    matches: false,
                    needs_rehash: false,
                };
            };
            let matches = Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok();
            let current = hash.algorithm == argon2::ARGON2ID_IDENT
                && Params::try_from(&hash).is_ok_and(|p| {
                    p.m_cost() == params.m_cost()
                        && p.t_cost() == params.t_cost()
                        && p.p_cost() == params.p_cost()
                });
            Verified {
                matches: matches && known,
                needs_rehash: matches && known && !current,
            }
        })
        .await
    }

    /// Runs `job` on a blocking thread once admitted; the permits travel with the job, so an
    /// abandoned request cannot let more hashes run than the bound.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| HashError::Busy)?;
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Internal("hasher closed".into()))?;
        tokio::task::spawn_blocking(move || {
            let out = job();
            drop((running, admitted));
            out
        })
        .await
        .map_err(|e| HashError::Internal(e.to_string()))
    }
}

fn hash_now(params: &Params, password: &[u8]) -> Result<String, String> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2Settings {
        Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            workers: 1,
            queue: 1,
        }
    }

    fn pw(s: &str) -> Password {
        Password::parse(s.into(), "password").expect("valid")
    }

    #[tokio::test]
    async fn hashes_verify_and_report_stale_parameters() {
        let hasher = Hasher::new(&cheap()).expect("hasher");
        let hash = hasher.hash(pw("SecurePass123")).await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        let ok = hasher
            .verify(pw("SecurePass123"), Some(&hash))
            .await
            .expect("verify");
        assert_eq!(
            ok,
            Verified {
                matches: true,
                needs_rehash: false
            }
        );
        let bad = hasher
            .verify(pw("WrongPass123"), Some(&hash))
            .await
            .expect("verify");
        assert!(!bad.matches);
        let unknown = hasher
            .verify(pw("SecurePass123"), None)
            .await
            .expect("verify");
        assert!(!unknown.matches);

        let stronger = Hasher::new(&Argon2Settings {
            memory_kib: 128,
            ..cheap()
        })
        .expect("hasher");
        let stale = stronger
            .verify(pw("SecurePass123"), Some(&hash))
            .await
            .expect("verify");
        assert_eq!(
            stale,
            Verified {
                matches: true,
                needs_rehash: true
            }
        );
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_instead_of_waiting() {
        let hasher = Hasher::new(&cheap()).expect("hasher");
        // Hold both admission permits (1 worker + 1 queued) as running jobs would.
        let _a = hasher.admitted.clone().try_acquire_owned().expect("permit");
        let _b = hasher.admitted.clone().try_acquire_owned().expect("permit");
        assert!(matches!(
            hasher.hash(pw("SecurePass123")).await,
            Err(HashError::Busy)
        ));
    }
}
