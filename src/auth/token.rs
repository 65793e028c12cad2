//! Access tokens: JWTs with the contract's claims, signed with the scope's own key (Ed25519 by
//! default, or the derived HMAC key; see `tenancy::keys`). Each scope is an issuer:
//! `iss` is `{server.public_url}/tenants/{ID}` (the legacy scope: `{server.public_url}`), and
//! every token carries `aud` (`jwt.audience`).
//!
//! Verification follows RFC 8725: the algorithm is pinned to `jwt.algorithm` (the header's `alg`
//! never chooses), the key is the one of the scope the request names, every claim must be
//! present, `exp` is enforced with a small leeway, `aud` must be ours, and `iss` and the
//! `tenant` claim must name that same scope. The
//! only thing read before the signature is checked is the unverified `tenant` claim, and only to
//! choose which key to try ([`peek_tenant`]).

use std::{
    hash::{BuildHasher, BuildHasherDefault, Hasher},
    sync::{Arc, OnceLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};

use super::session::Session;
pub use crate::error::TokenError;
use crate::{
    config::JwtAlgorithm,
    domain::{Scope, TenantId},
    store::users::User,
    tenancy::{Incarnation, SigningKey},
};

/// The contract's claims. Every field is required when decoding (`tenant` may be null).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id, as a string.
    pub sub: String,
    pub uid: i64,
    pub username: String,
    pub email: String,
    /// Primary role at issue time (admin first).
    pub role: String,
    pub roles: Vec<String>,
    /// The tenant ID; null in legacy mode.
    pub tenant: Option<String>,
    /// Correlates this login's requests in logs and audit records.
    pub trace: String,
    pub iat: u64,
    pub exp: u64,
    /// Unique token id (for revocation lists).
    pub jti: String,
    /// The user's token version at issue; a password change or reset, or a deactivation,
    /// bumps it and so revokes every older token.
    pub ver: i64,
    /// The issuer: the scope's URL (see [`TokenService::issuer`]).
    pub iss: String,
    /// The audience (`jwt.audience`).
    pub aud: String,
    /// What the user may do at issue time, as `module.action` names (the scope's role grants
    /// and the user's overrides), for modules that authorise from the token alone. This
    /// server never reads it: it decides on the live record.
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// What tokens look like here: algorithm, lifetime, audience and issuers.
pub struct TokenSettings {
    pub algorithm: JwtAlgorithm,
    pub ttl: Duration,
    /// Clock skew tolerated on `exp` and `iat`.
    pub leeway: Duration,
    pub audience: String,
    /// `server.public_url`, without a trailing slash.
    pub public_url: String,
}

pub struct TokenService {
    algorithm: JwtAlgorithm,
    ttl: Duration,
    leeway: u64,
    audience: String,
    public_url: String,
    validation: Validation,
}

impl TokenService {
    pub fn new(settings: TokenSettings) -> Self {
        let algorithm = match settings.algorithm {
            JwtAlgorithm::EdDSA => Algorithm::EdDSA,
            JwtAlgorithm::HS256 => Algorithm::HS256,
        };
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = settings.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        Self {
            algorithm: settings.algorithm,
            ttl: settings.ttl,
            leeway: settings.leeway.as_secs(),
            audience: settings.audience,
            public_url: settings.public_url,
            validation,
        }
    }

    /// `scope`'s issuer URL: `{server.public_url}/tenants/{ID}`, or `{server.public_url}` for
    /// the legacy scope.
    pub fn issuer(&self, scope: &Scope) -> String {
        match scope {
            Scope::Tenant(id) => format!("{}/tenants/{id}", self.public_url),
            Scope::Legacy => self.public_url.clone(),
        }
    }

    /// `server.public_url`: the base of every issuer URL.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The JWS `alg` tokens are signed with.
    pub fn algorithm_name(&self) -> &'static str {
        match self.algorithm {
            JwtAlgorithm::EdDSA => "EdDSA",
            JwtAlgorithm::HS256 => "HS256",
        }
    }

    /// Issues a token for `user` in `scope`, who may do `permissions` there; the token and its
    /// claims.
    pub fn issue(
        &self,
        key: &SigningKey,
        scope: &Scope,
        user: &User,
        permissions: Vec<String>,
    ) -> Result<(String, Claims), anyhow::Error> {
        let iat = now();
        let claims = Claims {
            sub: user.id.to_string(),
            uid: user.id,
            username: user.username.to_string(),
            email: user.email.to_string(),
            role: user.roles.primary().unwrap_or_default().to_owned(),
            roles: user.roles.names().to_vec(),
            tenant: scope.tenant().map(ToString::to_string),
            trace: new_trace(),
            iat,
            exp: iat + self.ttl.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
            ver: user.token_version,
            iss: self.issuer(scope),
            aud: self.audience.clone(),
            permissions,
        };
        let token = key.sign(&claims)?;
        Ok((token, claims))
    }

    /// Verifies `token` with `scope`'s key and returns its claims.
    pub fn verify(
        &self,
        key: &SigningKey,
        scope: &Scope,
        token: &str,
    ) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let decoding = header
            .kid
            .as_deref()
            .and_then(|kid| key.verifying(kid))
            .ok_or(TokenError::Invalid)?;
        let data = jsonwebtoken::decode::<Claims>(token, decoding, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidToken
                | ErrorKind::Base64(_)
                | ErrorKind::Json(_)
                | ErrorKind::Utf8(_) => TokenError::Malformed,
                _ => TokenError::Invalid,
            },
        )?;
        let claims = data.claims;
        let tenant_matches = claims.tenant.as_deref() == scope.tenant().map(|t| t.as_str());
        let issued_in_past = claims.iat <= now() + self.leeway;
        if !tenant_matches
            || !issued_in_past
            || claims.sub != claims.uid.to_string()
            || claims.iss != self.issuer(scope)
        {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }
}

/// Recently verified tokens, so that a token presented again costs one hash lookup instead of
/// base64, JSON and an HMAC. Keyed by a randomly keyed hash of `X-Tenant` and the token's
/// signature segment (unique per token: it is an HMAC over the rest; hashing the whole token
/// cost a quarter of a token check); a hit is confirmed by comparing header and token in full,
/// so a crafted token sharing a signature only misses, and only accepted tokens are ever
/// inserted. `exp` is checked on every use. Revocation is not
/// cached here: the caller still checks the user's token version and the revoked `jti`s.
pub struct VerifiedTokens {
    cache: moka::sync::Cache<u64, Arc<VerifiedToken>, BuildHasherDefault<KeyIsHash>>,
    /// Randomly keyed per process: a client cannot aim two tokens at one key. foldhash, not
    /// SipHash: a collision costs only a cache miss (hits are compared in full), and SipHash
    /// over the signature was 2% of a token check.
    hasher: foldhash::fast::RandomState,
    leeway: u64,
}

/// A token that verified for `scope` when presented with the `X-Tenant` header `header`.
pub struct VerifiedToken {
    header: Option<TenantId>,
    token: Box<str>,
    pub scope: Scope,
    pub claims: Arc<Claims>,
    /// The registration of the tenant whose key verified the claims: a tenant ID registered
    /// again has another key, so the claims must be verified afresh.
    pub incarnation: Option<Incarnation>,
    /// What the token last resolved to, once it was accepted.
    session: OnceLock<Arc<Session>>,
}

impl VerifiedToken {
    /// What the token last resolved to, when it was accepted before.
    pub fn session(&self) -> Option<&Arc<Session>> {
        self.session.get()
    }
}

impl VerifiedTokens {
    pub fn new(capacity: u64, leeway: Duration) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(Duration::from_secs(300))
                .build_with_hasher(BuildHasherDefault::default()),
            hasher: foldhash::fast::RandomState::default(),
            leeway: leeway.as_secs(),
        }
    }

    fn key(&self, header: Option<&TenantId>, token: &str) -> u64 {
        // A byte search: `rsplit('.')` went through the generic pattern searcher.
        let dot = token.bytes().rposition(|b| b == b'.');
        let signature = dot.map_or(token, |dot| &token[dot + 1..]);
        self.hasher.hash_one((header, signature))
    }

    /// The earlier verification of exactly this token and header, if it has not expired.
    pub fn get(&self, header: Option<&TenantId>, token: &str) -> Option<Arc<VerifiedToken>> {
        let hit = self.cache.get(&self.key(header, token))?;
        let same = hit.header.as_ref() == header && &*hit.token == token;
        (same && now() < hit.claims.exp + self.leeway).then_some(hit)
    }

    /// Remembers that `token` (with `header`) verified for `scope` and was accepted on
    /// `session`. `seen` is the entry [`Self::get`] returned, if any: its session is filled in
    /// place when empty, and the entry replaced when it holds a stale one.
    pub fn insert(
        &self,
        seen: Option<&VerifiedToken>,
        header: Option<TenantId>,
        token: &str,
        scope: Scope,
        claims: Arc<Claims>,
        session: Arc<Session>,
    ) {
        let session = match seen {
            Some(seen) => match seen.session.set(session) {
                Ok(()) => return,
                Err(session) => session,
            },
            None => session,
        };
        let key = self.key(header.as_ref(), token);
        let verified = VerifiedToken {
            header,
            token: token.into(),
            scope,
            claims,
            incarnation: session.handle.incarnation,
            session: OnceLock::from(session),
        };
        self.cache.insert(key, Arc::new(verified));
    }
}

/// The cache's keys are already randomly keyed hashes: the cache uses them as they are instead
/// of hashing them again.
#[derive(Default)]
struct KeyIsHash(u64);

impl Hasher for KeyIsHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed (below); any other input still hashes, if poorly.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

/// The unverified `tenant` claim, used only to choose the verification key when the request
/// names no tenant. `Ok(None)` is a legacy token (claim absent or null).
pub fn peek_tenant(token: &str) -> Result<Option<String>, TokenError> {
    #[derive(Deserialize)]
    struct Peek {
        #[serde(default)]
        tenant: Option<String>,
    }
    jsonwebtoken::dangerous::insecure_decode_claims::<Peek>(token)
        .map(|p| p.tenant)
        .map_err(|_| TokenError::Malformed)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// 16 hex digits of randomness.
fn new_trace() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::{Email, Permissions, Roles, TenantId, Username},
        tenancy::ServerSecret,
    };

    fn user() -> User {
        User {
            id: 123,
            username: Username::parse("juan.perez").expect("username"),
            email: Email::parse("juan.perez@example.com").expect("email"),
            full_name: None,
            password_hash: String::new(),
            is_active: true,
            empleado_id: Some(456),
            permissions: Permissions::default(),
            roles: Roles::from_stored(vec!["qf".into(), "admin".into()]),
            token_version: 3,
            locked_until: None,
            password_changed_at: None,
        }
    }

    fn acme() -> Scope {
        Scope::Tenant(TenantId::parse("acme-pharma").expect("valid"))
    }

    fn settings(algorithm: JwtAlgorithm, ttl: Duration) -> TokenSettings {
        TokenSettings {
            algorithm,
            ttl,
            leeway: Duration::from_secs(30),
            audience: "vigia".into(),
            public_url: "https://auth.example.com".into(),
        }
    }

    fn service(algorithm: JwtAlgorithm, ttl: Duration) -> TokenService {
        TokenService::new(settings(algorithm, ttl))
    }

    const BOTH: [JwtAlgorithm; 2] = [JwtAlgorithm::EdDSA, JwtAlgorithm::HS256];

    #[test]
    fn tokens_round_trip_with_the_contract_claims() {
        for algorithm in BOTH {
            let secret = ServerSecret::new(vec![7; 32]).signing_with(algorithm);
            let key = SigningKey::derive(&secret, &acme(), None);
            let tokens = service(algorithm, Duration::from_secs(480 * 60));
            let (token, _) = tokens
                .issue(&key, &acme(), &user(), vec![])
                .expect("signed");
            let header = jsonwebtoken::decode_header(&token).expect("a JWT");
            assert_eq!(
                (header.alg, header.kid),
                (key.algorithm, Some(key.kid.clone()))
            );
            let claims = tokens.verify(&key, &acme(), &token).expect("verifies");
            assert_eq!(claims.sub, "123");
            assert_eq!(claims.role, "admin");
            assert_eq!(claims.roles, ["qf", "admin"]);
            assert_eq!(claims.tenant.as_deref(), Some("acme-pharma"));
            assert_eq!(claims.exp - claims.iat, 480 * 60);
            assert_eq!(claims.ver, 3);
            assert_eq!(claims.iss, "https://auth.example.com/tenants/acme-pharma");
            assert_eq!(claims.aud, "vigia");
            assert_eq!(peek_tenant(&token), Ok(Some("acme-pharma".into())));
        }
    }

    #[test]
    fn another_audience_issuer_or_algorithm_is_refused() {
        let secret = ServerSecret::new(vec![7; 32]);
        let key = SigningKey::derive(&secret, &acme(), None);
        let tokens = service(JwtAlgorithm::EdDSA, Duration::from_secs(60));
        let (token, _) = tokens
            .issue(&key, &acme(), &user(), vec![])
            .expect("signed");
        let minute = Duration::from_secs(60);
        for elsewhere in [
            TokenSettings {
                audience: "reports".into(),
                ..settings(JwtAlgorithm::EdDSA, minute)
            },
            TokenSettings {
                public_url: "https://other.example.com".into(),
                ..settings(JwtAlgorithm::EdDSA, minute)
            },
        ] {
            let elsewhere = TokenService::new(elsewhere);
            assert_eq!(
                elsewhere.verify(&key, &acme(), &token),
                Err(TokenError::Invalid)
            );
        }
        // An HS256 server never accepts an EdDSA token, nor the reverse (RFC 8725 3.1).
        let hs_secret = secret.clone().signing_with(JwtAlgorithm::HS256);
        let hs_key = SigningKey::derive(&hs_secret, &acme(), None);
        let hs = service(JwtAlgorithm::HS256, Duration::from_secs(60));
        let (hs_token, _) = hs.issue(&hs_key, &acme(), &user(), vec![]).expect("signed");
        assert!(hs.verify(&hs_key, &acme(), &token).is_err());
        assert!(tokens.verify(&key, &acme(), &hs_token).is_err());
    }

    #[test]
    fn a_token_never_verifies_under_another_scope() {
        for algorithm in BOTH {
            let secret = ServerSecret::new(vec![7; 32]).signing_with(algorithm);
            let tokens = service(algorithm, Duration::from_secs(60));
            let other = Scope::Tenant(TenantId::parse("other").expect("valid"));
            let (token, _) = tokens
                .issue(
                    &SigningKey::derive(&secret, &acme(), None),
                    &acme(),
                    &user(),
                    vec![],
                )
                .expect("signed");
            for scope in [other, Scope::Legacy] {
                let key = SigningKey::derive(&secret, &scope, None);
                assert_eq!(
                    tokens.verify(&key, &scope, &token),
                    Err(TokenError::Invalid)
                );
            }
            // Secrets rotate: a token of the old secret verifies while it is still listed.
            let rotated =
                ServerSecret::rotating(vec![vec![8; 32], vec![7; 32]]).signing_with(algorithm);
            let key = SigningKey::derive(&rotated, &acme(), None);
            assert!(tokens.verify(&key, &acme(), &token).is_ok());
            let retired = SigningKey::derive(
                &ServerSecret::new(vec![8; 32]).signing_with(algorithm),
                &acme(),
                None,
            );
            assert_eq!(
                tokens.verify(&retired, &acme(), &token),
                Err(TokenError::Invalid)
            );
            // Even the right key refuses a token whose claim names another scope.
            let key = SigningKey::derive(&secret, &acme(), None);
            assert_eq!(
                tokens.verify(&key, &Scope::Legacy, &token),
                Err(TokenError::Invalid)
            );
        }
    }
}
