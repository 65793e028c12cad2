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

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};

pub use crate::error::TokenError;
use crate::{config::JwtAlgorithm, domain::Scope, store::users::User, tenancy::SigningKey};

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
    /// The session (refresh-token family) the token was issued in; logging out with the
    /// token ends it. Absent in tokens issued before sessions existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// The claims of a service client's token (the client-credentials grant): `sub` and
/// `client_id` name the client, `permissions` are the client's. No user claims: this server's
/// own user endpoints refuse it; other modules authorise from `permissions`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientClaims {
    pub sub: String,
    pub client_id: String,
    pub tenant: Option<String>,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    pub iss: String,
    pub aud: String,
    pub permissions: Vec<String>,
}

/// How long a user's token lives and the session it belongs to.
pub struct Issue {
    pub lifetime: Duration,
    pub sid: Option<String>,
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

    /// Clock skew tolerated, in seconds.
    pub fn leeway(&self) -> u64 {
        self.leeway
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

    /// How long a token lives where sessions idle out after `idle`: `jwt.ttl_minutes`, or
    /// less, so that an idle client is logged off within `idle`.
    pub fn lifetime(&self, idle: Duration) -> Duration {
        self.ttl.min(idle)
    }

    /// Issues a token for `user` in `scope`, who may do `permissions` there, valid for
    /// `lifetime` (see [`Self::lifetime`]), in session `sid`; the token and its claims.
    pub fn issue(
        &self,
        key: &SigningKey,
        scope: &Scope,
        user: &User,
        permissions: Vec<String>,
        issued: Issue,
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
            exp: iat + issued.lifetime.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
            ver: user.token_version,
            iss: self.issuer(scope),
            aud: self.audience.clone(),
            permissions,
            sid: issued.sid,
        };
        let token = key.sign(&claims)?;
        Ok((token, claims))
    }

    /// Issues a token for service client `client_id` in `scope`, who may do `permissions`.
    pub fn issue_client(
        &self,
        key: &SigningKey,
        scope: &Scope,
        client_id: &str,
        permissions: Vec<String>,
        lifetime: Duration,
    ) -> Result<(String, ClientClaims), anyhow::Error> {
        let iat = now();
        let claims = ClientClaims {
            sub: client_id.to_owned(),
            client_id: client_id.to_owned(),
            tenant: scope.tenant().map(ToString::to_string),
            iat,
            exp: iat + lifetime.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
            iss: self.issuer(scope),
            aud: self.audience.clone(),
            permissions,
        };
        let token = key.sign(&claims)?;
        Ok((token, claims))
    }

    /// Verifies a service client's `token` with `scope`'s key, as [`Self::verify`] does a
    /// user's.
    pub fn verify_client(
        &self,
        key: &SigningKey,
        scope: &Scope,
        token: &str,
    ) -> Result<ClientClaims, TokenError> {
        let claims: ClientClaims = self.decode(key, token)?;
        let tenant_matches = claims.tenant.as_deref() == scope.tenant().map(|t| t.as_str());
        if !tenant_matches
            || claims.iat > now() + self.leeway
            || claims.sub != claims.client_id
            || claims.iss != self.issuer(scope)
        {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }

    /// Checks `token`'s signature with `key` and the registered claims (`alg`, `exp`, `aud`);
    /// its claims.
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        key: &SigningKey,
        token: &str,
    ) -> Result<T, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let decoding = header
            .kid
            .as_deref()
            .and_then(|kid| key.verifying(kid))
            .ok_or(TokenError::Invalid)?;
        let data =
            jsonwebtoken::decode::<T>(token, decoding, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    ErrorKind::InvalidToken
                    | ErrorKind::Base64(_)
                    | ErrorKind::Json(_)
                    | ErrorKind::Utf8(_) => TokenError::Malformed,
                    _ => TokenError::Invalid,
                }
            })?;
        Ok(data.claims)
    }

    /// Verifies `token` with `scope`'s key and returns its claims.
    pub fn verify(
        &self,
        key: &SigningKey,
        scope: &Scope,
        token: &str,
    ) -> Result<Claims, TokenError> {
        let claims: Claims = match self.decode(key, token) {
            // Signed by this scope, and well formed, but a client's: say so.
            Err(TokenError::Malformed) if self.verify_client(key, scope, token).is_ok() => {
                return Err(TokenError::NotAUser);
            }
            other => other?,
        };
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

pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// 16 hex digits of randomness.
fn new_trace() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
