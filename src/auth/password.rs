//! Password hashing: argon2id (RustCrypto) at configurable cost (OWASP default: 19 MiB, t=2,
//! p=1), run off the async executor on a fixed set of hashing threads (one per core by default).
//!
//! Each hash holds ~19 MiB while it runs, so both the running jobs (`workers`, one per core by
//! default) and the waiting ones (`queue`) are bounded; past the bound the caller gets
//! [`HashError::Busy`] (HTTP 503 + `Retry-After`) instead of unbounded memory. The queue is
//! shared fairly between scopes ([`super::fair_queue`]): one tenant's flood of logins cannot
//! push another tenant's logins out. An unknown user
//! is verified against a dummy hash of the same parameters, so a miss costs what a hit costs.

use std::sync::Arc;

use super::fair_queue::{FairQueue, Full, Task};
use crate::{
    config::Argon2Settings,
    domain::{Password, Scope},
    error::Error,
};
use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher, Version,
    password_hash::phc::{Output, ParamsString, Salt},
};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing thread is busy and the queue is full.
    #[error("password hashing is saturated")]
    Busy,
    #[error("password hashing failed: {0}")]
    Internal(String),
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

/// The result of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCheck {
    pub matches: bool,
    /// The stored hash uses other parameters than the configured ones: rehash now.
    pub needs_rehash: bool,
}

#[derive(Clone)]
pub struct Hasher {
    params: Params,
    /// Verified against when the user does not exist.
    dummy_hash: Arc<str>,
    /// The hashing threads and their queue, shared fairly between scopes.
    workers: Arc<Workers>,
}

/// The hashing threads: a fixed set, each holding one argon2 working buffer (`MEMORY`) for its
/// lifetime. On tokio's blocking pool, whichever thread ran a job allocated 19 MiB and each
/// allocator arena kept a copy (measured: ~400 MB resident after a login load). They stop
/// when the last `Hasher` clone is dropped.
struct Workers(Arc<FairQueue<Scope>>);

impl Drop for Workers {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// A hashing job and where its caller waits for the result.
struct Job<F, T> {
    work: F,
    done: tokio::sync::oneshot::Sender<Result<T, HashError>>,
}

impl<F, T> Task for Job<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>) -> Box<dyn FnOnce() + Send> {
        let output = (self.work)();
        let done = self.done;
        Box::new(move || {
            let _ = done.send(Ok(output));
        })
    }

    fn refuse(self: Box<Self>) {
        let _ = self.done.send(Err(HashError::Busy));
    }

    fn abandoned(&self) -> bool {
        self.done.is_closed()
    }
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
        let queue = FairQueue::start("vigia-hash", workers, workers + settings.queue)?;
        Ok(Self {
            params,
            dummy_hash,
            workers: Arc::new(Workers(queue)),
        })
    }

    /// Hashes admitted and not finished: running, or queued for a hashing thread.
    pub fn in_flight(&self) -> usize {
        self.workers.0.in_flight()
    }

    /// Hashes a new password (PHC string), in `scope`'s share of the hashing threads.
    pub async fn hash(&self, scope: &Scope, password: Password) -> Result<String, HashError> {
        let params = self.params.clone();
        self.run(scope, move || {
            with_memory(|memory| hash_in(memory, &params, password.as_bytes()))
        })
        .await?
        .map_err(HashError::Internal)
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is no user, in
    /// `scope`'s share of the hashing threads.
    pub async fn verify(
        &self,
        scope: &Scope,
        password: Password,
        stored: Option<&str>,
    ) -> Result<PasswordCheck, HashError> {
        let known = stored.is_some();
        let stored: Arc<str> = stored.map_or_else(|| self.dummy_hash.clone(), Arc::from);
        let params = self.params.clone();
        self.run(scope, move || {
            let Ok(hash) = PasswordHash::new(&stored) else {
                tracing::error!("a stored password hash is not a valid PHC string");
                return PasswordCheck {
                    matches: false,
                    needs_rehash: false,
                };
            };
            let matches = with_memory(|memory| verify_in(memory, password.as_bytes(), &hash));
            let current = hash.algorithm == argon2::ARGON2ID_IDENT
                && Params::try_from(&hash).is_ok_and(|p| {
                    p.m_cost() == params.m_cost()
                        && p.t_cost() == params.t_cost()
                        && p.p_cost() == params.p_cost()
                });
            PasswordCheck {
                matches: matches && known,
                needs_rehash: matches && known && !current,
            }
        })
        .await
    }

    /// Runs `work` on a hashing thread once admitted to `scope`'s share of the queue.
    async fn run<T: Send + 'static>(
        &self,
        scope: &Scope,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.workers
            .0
            .submit(scope, Box::new(Job { work, done }))
            .map_err(|Full| HashError::Busy)?;
        result
            .await
            .map_err(|_| HashError::Internal("a hashing job was lost".into()))?
    }
}

/// A stored hash's algorithm, version and cost (`m` KiB, `t` passes, `p` lanes), for the audit
/// trail of an upgrade: never its salt or output.
pub fn describe(phc: &str) -> Value {
    let Ok(hash) = PasswordHash::new(phc) else {
        return json!({"algorithm": "unparseable"});
    };
    let params = Params::try_from(&hash).ok();
    json!({
        "algorithm": hash.algorithm.as_str(),
        "version": hash.version,
        "m": params.as_ref().map(Params::m_cost),
        "t": params.as_ref().map(Params::t_cost),
        "p": params.as_ref().map(Params::p_cost),
    })
}

fn hash_now(params: &Params, password: &[u8]) -> Result<String, String> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

thread_local! {
    /// Each hashing thread's argon2 working memory, allocated once and reused, so hashing
    /// neither page-faults 19 MiB per password nor leaves copies in allocator arenas.
    static MEMORY: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn with_memory<T>(f: impl FnOnce(&mut Vec<Block>) -> T) -> T {
    MEMORY.with(|memory| f(&mut memory.borrow_mut()))
}

/// What argon2's `hash_password` does, in `memory`: a random salt, argon2id v1.3 at `params`,
/// the PHC string.
fn hash_in(memory: &mut Vec<Block>, params: &Params, password: &[u8]) -> Result<String, String> {
    let salt = Salt::generate();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    memory.resize(params.block_count(), Block::default());
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, &salt, &mut out, &mut memory[..])
        .map_err(|e| e.to_string())?;
    let hash = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| e.to_string())?,
        salt: Some(salt),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(hash.to_string())
}

/// What argon2's `verify_password` does, in `memory`: recompute with the stored algorithm,
/// version, parameters and salt, and compare the outputs in constant time (`Output`'s `==`).
fn verify_in(memory: &mut Vec<Block>, password: &[u8], hash: &PasswordHash) -> bool {
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(hash.algorithm.as_str()),
        Params::try_from(hash),
    ) else {
        return false;
    };
    let Ok(version) = hash
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    memory.resize(params.block_count(), Block::default());
    let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password,
        salt,
        &mut out,
        &mut memory[..],
    );
    computed.is_ok() && Output::new(&out).is_ok_and(|out| out == *expected)
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
        let hash = hasher
            .hash(&Scope::Legacy, pw("SecurePass123"))
            .await
            .expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        let ok = hasher
            .verify(&Scope::Legacy, pw("SecurePass123"), Some(&hash))
            .await
            .expect("verify");
        assert_eq!(
            ok,
            PasswordCheck {
                matches: true,
                needs_rehash: false
            }
        );
        let bad = hasher
            .verify(&Scope::Legacy, pw("WrongPass123"), Some(&hash))
            .await
            .expect("verify");
        assert!(!bad.matches);
        let unknown = hasher
            .verify(&Scope::Legacy, pw("SecurePass123"), None)
            .await
            .expect("verify");
        assert!(!unknown.matches);

        let stronger = Hasher::new(&Argon2Settings {
            memory_kib: 128,
            ..cheap()
        })
        .expect("hasher");
        let stale = stronger
            .verify(&Scope::Legacy, pw("SecurePass123"), Some(&hash))
            .await
            .expect("verify");
        assert_eq!(
            stale,
            PasswordCheck {
                matches: true,
                needs_rehash: true
            }
        );
    }

    #[tokio::test]
    async fn a_description_names_the_parameters_and_nothing_of_the_hash() {
        let hasher = Hasher::new(&cheap()).expect("hasher");
        let hash = hasher
            .hash(&Scope::Legacy, pw("SecurePass123"))
            .await
            .expect("hash");
        let described = describe(&hash);
        assert_eq!(
            described,
            json!({"algorithm": "argon2id", "version": 19, "m": 64, "t": 1, "p": 1})
        );
        let salt_and_output = hash.rsplit('$').take(2).collect::<Vec<_>>();
        for part in salt_and_output {
            assert!(!described.to_string().contains(part));
        }
        assert_eq!(describe("not a hash"), json!({"algorithm": "unparseable"}));
    }

    #[test]
    fn hashing_in_reused_memory_agrees_with_the_argon2_crate() {
        use argon2::PasswordVerifier;
        let params = Params::new(64, 1, 1, None).expect("params");
        let mut memory = Vec::new();
        let ours = hash_in(&mut memory, &params, b"SecurePass123").expect("hash");
        let theirs = hash_now(&params, b"SecurePass123").expect("hash");
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let ours = PasswordHash::new(&ours).expect("PHC");
        let theirs = PasswordHash::new(&theirs).expect("PHC");
        assert!(argon.verify_password(b"SecurePass123", &ours).is_ok());
        assert!(verify_in(&mut memory, b"SecurePass123", &theirs));
        assert!(verify_in(&mut memory, b"SecurePass123", &ours));
        assert!(!verify_in(&mut memory, b"SecurePass124", &theirs));
        // The memory is reused, whatever it held before.
        assert!(verify_in(
            &mut vec![Block::default(); 64],
            b"SecurePass123",
            &ours
        ));
    }
}
