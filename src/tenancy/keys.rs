//! Per-scope signing keys (contract): HKDF-SHA256 (RFC 5869) with an empty salt, a server
//! secret as input key material and `vigia:jwt:tenant:<ID>:<incarnation>` as info (the
//! registration's identity, see [`Incarnation`]; `vigia:jwt:tenant:<ID>` for an entry written
//! before incarnations existed, `vigia:jwt:legacy` for the legacy scope), 32 bytes out. A token
//! signed for one scope, or for an earlier registration of the same ID, can never verify under
//! another's key, even if a claim check were missed; the raw secrets themselves sign nothing.
//!
//! Rotation: `jwt.secret` may list several secrets. The first signs; all verify. Each token's
//! header carries `kid`, an identifier of the secret (derived from it, revealing nothing), so
//! verification tries exactly one key.

use std::sync::Arc;

use hkdf::Hkdf;
use jsonwebtoken::{DecodingKey, EncodingKey};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

use super::file::Incarnation;
use crate::domain::Scope;

/// The server secrets (`jwt.secret`), newest first.
#[derive(Clone)]
pub struct ServerSecret(Arc<Vec<SecretSlice<u8>>>);

impl ServerSecret {
    /// A single secret.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self::rotating(vec![bytes])
    }

    /// Several secrets: the first signs, every one verifies.
    pub fn rotating(secrets: Vec<Vec<u8>>) -> Self {
        assert!(
            !secrets.is_empty(),
            "BUG: at least one server secret is configured"
        );
        Self(Arc::new(
            secrets.into_iter().map(SecretSlice::from).collect(),
        ))
    }

    /// The `kid` of the signing (first) secret, as token headers carry it.
    pub fn kid(&self) -> String {
        key_id(self.0[0].expose_secret())
    }

    /// The 32-byte HS256 key of `scope` (registered as `incarnation`) under the signing (first)
    /// secret.
    pub fn derive(&self, scope: &Scope, incarnation: Option<Incarnation>) -> [u8; 32] {
        derive(self.0[0].expose_secret(), scope, incarnation)
    }
}

fn hkdf(secret: &[u8], info: &[u8]) -> [u8; 32] {
    let mut okm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&[]), secret)
        .expand(info, &mut okm)
        .expect("BUG: 32 bytes is a valid HKDF-SHA256 output length");
    okm
}

fn derive(secret: &[u8], scope: &Scope, incarnation: Option<Incarnation>) -> [u8; 32] {
    match (scope, incarnation) {
        (Scope::Legacy, _) => hkdf(secret, b"vigia:jwt:legacy"),
        (Scope::Tenant(id), None) => hkdf(secret, format!("vigia:jwt:tenant:{id}").as_bytes()),
        (Scope::Tenant(id), Some(incarnation)) => hkdf(
            secret,
            format!("vigia:jwt:tenant:{id}:{incarnation}").as_bytes(),
        ),
    }
}

/// The `kid` of a secret: 8 bytes of its own HKDF output (info `vigia:jwt:kid`), in hex.
fn key_id(secret: &[u8]) -> String {
    hkdf(secret, b"vigia:jwt:kid")[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerSecret({} secrets)", self.0.len())
    }
}

/// A scope's HS256 keys, ready to sign and verify (derived once per tenant handle).
pub struct SigningKey {
    pub(crate) kid: String,
    pub(crate) encoding: EncodingKey,
    /// One per configured secret, by `kid`.
    verifying: Vec<(String, DecodingKey)>,
}

impl SigningKey {
    pub fn derive(secret: &ServerSecret, scope: &Scope, incarnation: Option<Incarnation>) -> Self {
        let verifying: Vec<(String, DecodingKey)> = secret
            .0
            .iter()
            .map(|s| {
                (
                    key_id(s.expose_secret()),
                    DecodingKey::from_secret(&derive(s.expose_secret(), scope, incarnation)),
                )
            })
            .collect();
        Self {
            kid: verifying[0].0.clone(),
            encoding: EncodingKey::from_secret(&secret.derive(scope, incarnation)),
            verifying,
        }
    }

    /// The verification key a token's `kid` names.
    pub(crate) fn verifying(&self, kid: &str) -> Option<&DecodingKey> {
        self.verifying
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, key)| key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantId;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn derivation_matches_an_independent_hkdf() {
        // Expected values computed with Python's hmac module (RFC 5869 by hand):
        // prk = HMAC-SHA256(key=b"", msg=ikm); okm = HMAC-SHA256(prk, info || 0x01)[:32].
        let secret = ServerSecret::new(b"correct horse battery staple 0123456789".to_vec());
        let acme = Scope::Tenant(TenantId::parse("acme-pharma").expect("valid"));
        assert_eq!(hex(&secret.derive(&acme, None)), ACME);
        assert_eq!(hex(&secret.derive(&Scope::Legacy, None)), LEGACY);
        let incarnation =
            Incarnation::try_from("0123456789abcdef0123456789abcdef".to_owned()).expect("valid");
        assert_eq!(
            hex(&secret.derive(&acme, Some(incarnation))),
            ACME_INCARNATION
        );
        assert_eq!(
            hex(&secret.derive(&Scope::Legacy, Some(incarnation))),
            LEGACY,
            "the legacy scope has no registration"
        );
    }

    const ACME: &str = "a5da4a2fb9afa18390d559ee8b958a3c8473c9a452081e99b3fe07ecdff489e6";
    /// info = b"vigia:jwt:tenant:acme-pharma:0123456789abcdef0123456789abcdef".
    const ACME_INCARNATION: &str =
        "94367bc5378e368984b46e548c3bf95617c695fff438a87287ff138d2333c105";
    const LEGACY: &str = "ea86d2da09216fe7016ff97d805b5a14a811fb476c7deaab41f29133a13e4977";

    #[test]
    fn every_secret_verifies_and_the_first_signs() {
        let secrets = ServerSecret::rotating(vec![vec![1; 32], vec![2; 32]]);
        let key = SigningKey::derive(&secrets, &Scope::Legacy, None);
        assert_eq!(key.kid, key_id(&[1; 32]));
        assert!(key.verifying(&key_id(&[1; 32])).is_some());
        assert!(key.verifying(&key_id(&[2; 32])).is_some());
        assert!(key.verifying(&key_id(&[3; 32])).is_none());
        assert_ne!(key_id(&[1; 32]), key_id(&[2; 32]));
    }
}
