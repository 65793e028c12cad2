//! Per-scope signing keys. Every scope (a tenant registration, or the legacy database) has
//! its own keys, derived from a server secret with HKDF-SHA256 (RFC 5869; empty salt, the
//! secret as input key material, 32 bytes out), so every replica derives the same keys and no
//! key store exists. The info string names the scope and the registration's identity (see
//! [`Incarnation`]): a token signed for one scope, or for an earlier registration of the same
//! ID, never verifies under another's key, even if a claim check were missed.
//!
//! - `EdDSA` (`jwt.algorithm`, the default): the 32 bytes are the seed of the scope's Ed25519
//!   key pair (RFC 8032), info `vigia:jwt:ed25519:tenant:<ID>:<incarnation>` (`…:tenant:<ID>`
//!   for an entry written before incarnations existed, `vigia:jwt:ed25519:legacy`). The public
//!   keys are published in the scope's JWKS; `kid` is the RFC 7638 thumbprint of the public key.
//! - `HS256` (contract): the 32 bytes are the HMAC key, info `vigia:jwt:tenant:<ID>:<incarnation>`
//!   (`vigia:jwt:tenant:<ID>`, `vigia:jwt:legacy`); `kid` is an identifier of the secret
//!   (8 bytes of its own HKDF output with info `vigia:jwt:kid`, revealing nothing).
//!
//! Rotation: `jwt.secret` may list several secrets. The first signs; all verify (and, with
//! `EdDSA`, all are published). Each token's header carries `kid`, so verification tries
//! exactly one key.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use hkdf::Hkdf;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey,
    jwk::{
        AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, OctetKeyPairParameters,
        OctetKeyPairType, ThumbprintHash,
    },
};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

use super::file::Incarnation;
use crate::{config::JwtAlgorithm, domain::Scope};

/// The server secrets (`jwt.secret`), newest first, and the algorithm their keys sign with.
#[derive(Clone)]
pub struct ServerSecret {
    secrets: Arc<Vec<SecretSlice<u8>>>,
    algorithm: JwtAlgorithm,
}

impl ServerSecret {
    /// A single secret, signing with `EdDSA`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self::rotating(vec![bytes])
    }

    /// Several secrets: the first signs, every one verifies.
    pub fn rotating(secrets: Vec<Vec<u8>>) -> Self {
        assert!(
            !secrets.is_empty(),
            "BUG: at least one server secret is configured"
        );
        Self {
            secrets: Arc::new(secrets.into_iter().map(SecretSlice::from).collect()),
            algorithm: JwtAlgorithm::EdDSA,
        }
    }

    /// The same secrets, signing with `algorithm` (`jwt.algorithm`).
    pub fn signing_with(mut self, algorithm: JwtAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The HS256 `kid` of the signing (first) secret, as token headers carry it.
    pub fn kid(&self) -> String {
        key_id(self.first())
    }

    /// The 32-byte HS256 key of `scope` (registered as `incarnation`) under the signing (first)
    /// secret.
    pub fn derive(&self, scope: &Scope, incarnation: Option<Incarnation>) -> [u8; 32] {
        derive(self.first(), "vigia:jwt", scope, incarnation)
    }

    fn first(&self) -> &[u8] {
        self.secrets[0].expose_secret()
    }
}

fn hkdf(secret: &[u8], info: &[u8]) -> [u8; 32] {
    let mut okm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&[]), secret)
        .expand(info, &mut okm)
        .expect("BUG: 32 bytes is a valid HKDF-SHA256 output length");
    okm
}

/// 32 bytes of `secret` for `scope`, under the info prefix `vigia:jwt` (HS256) or
/// `vigia:jwt:ed25519`.
fn derive(
    secret: &[u8],
    prefix: &str,
    scope: &Scope,
    incarnation: Option<Incarnation>,
) -> [u8; 32] {
    let info = match (scope, incarnation) {
        (Scope::Legacy, _) => format!("{prefix}:legacy"),
        (Scope::Tenant(id), None) => format!("{prefix}:tenant:{id}"),
        (Scope::Tenant(id), Some(incarnation)) => format!("{prefix}:tenant:{id}:{incarnation}"),
    };
    hkdf(secret, info.as_bytes())
}

/// The `kid` of an HS256 secret: 8 bytes of its own HKDF output (info `vigia:jwt:kid`), in hex.
fn key_id(secret: &[u8]) -> String {
    hkdf(secret, b"vigia:jwt:kid")[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ServerSecret({} secrets, {:?})",
            self.secrets.len(),
            self.algorithm
        )
    }
}

/// A scope's public key as its JWKS publishes it (Ed25519, RFC 8037).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The RFC 7638 thumbprint of the key (base64url SHA-256).
    pub kid: String,
    /// The 32-byte public key, base64url without padding.
    pub x: String,
}

/// A scope's keys, ready to sign and verify (derived once per tenant handle).
pub struct SigningKey {
    pub(crate) algorithm: Algorithm,
    pub(crate) kid: String,
    pub(crate) encoding: EncodingKey,
    /// One per configured secret, by `kid`.
    verifying: Vec<(String, DecodingKey)>,
    /// With `EdDSA`, the public key of every secret, the signing one first; with `HS256`,
    /// none (an HMAC key is never published).
    pub public: Vec<PublicKey>,
}

impl SigningKey {
    pub fn derive(secret: &ServerSecret, scope: &Scope, incarnation: Option<Incarnation>) -> Self {
        let all = secret.secrets.iter().map(|s| s.expose_secret());
        match secret.algorithm {
            JwtAlgorithm::HS256 => {
                let verifying: Vec<(String, DecodingKey)> = all
                    .map(|s| {
                        let key = derive(s, "vigia:jwt", scope, incarnation);
                        (key_id(s), DecodingKey::from_secret(&key))
                    })
                    .collect();
                Self {
                    algorithm: Algorithm::HS256,
                    kid: verifying[0].0.clone(),
                    encoding: EncodingKey::from_secret(&secret.derive(scope, incarnation)),
                    verifying,
                    public: Vec::new(),
                }
            }
            JwtAlgorithm::EdDSA => {
                let pairs: Vec<_> = all
                    .map(|s| {
                        let seed = derive(s, "vigia:jwt:ed25519", scope, incarnation);
                        ed25519_dalek::SigningKey::from_bytes(&seed)
                    })
                    .collect();
                let public: Vec<PublicKey> = pairs.iter().map(public_key).collect();
                let verifying = public
                    .iter()
                    .map(|p| {
                        let key = DecodingKey::from_ed_components(&p.x)
                            .expect("BUG: a base64url Ed25519 public key decodes");
                        (p.kid.clone(), key)
                    })
                    .collect();
                let der = pairs[0]
                    .to_pkcs8_der()
                    .expect("BUG: an Ed25519 key encodes as PKCS#8");
                Self {
                    algorithm: Algorithm::EdDSA,
                    kid: public[0].kid.clone(),
                    encoding: EncodingKey::from_ed_der(der.as_bytes()),
                    verifying,
                    public,
                }
            }
        }
    }

    /// `claims` as a JWS signed with this scope's signing key: header `alg` and `kid` set.
    pub fn sign(&self, claims: &impl serde::Serialize) -> jsonwebtoken::errors::Result<String> {
        let mut header = jsonwebtoken::Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }

    /// The verification key a token's `kid` names.
    pub(crate) fn verifying(&self, kid: &str) -> Option<&DecodingKey> {
        self.verifying
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, key)| key)
    }
}

/// The public half of `pair`, with its thumbprint as `kid`.
fn public_key(pair: &ed25519_dalek::SigningKey) -> PublicKey {
    let x = URL_SAFE_NO_PAD.encode(pair.verifying_key().as_bytes());
    PublicKey {
        kid: thumbprint(&x),
        x,
    }
}

/// The RFC 7638 thumbprint (SHA-256) of the Ed25519 public key `x`.
fn thumbprint(x: &str) -> String {
    let jwk = Jwk {
        common: CommonParameters::default(),
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: x.to_owned(),
        }),
    };
    jwk.thumbprint(ThumbprintHash::SHA256)
        .expect("BUG: an Ed25519 key has a thumbprint")
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
        let secrets = ServerSecret::rotating(vec![vec![1; 32], vec![2; 32]])
            .signing_with(JwtAlgorithm::HS256);
        let key = SigningKey::derive(&secrets, &Scope::Legacy, None);
        assert_eq!(key.kid, key_id(&[1; 32]));
        assert!(key.verifying(&key_id(&[1; 32])).is_some());
        assert!(key.verifying(&key_id(&[2; 32])).is_some());
        assert!(key.verifying(&key_id(&[3; 32])).is_none());
        assert_ne!(key_id(&[1; 32]), key_id(&[2; 32]));
    }

    #[test]
    fn thumbprints_are_rfc_7638_as_rfc_8037_computes_them() {
        // RFC 8037, appendix A.3.
        assert_eq!(
            thumbprint("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn ed25519_keys_are_the_rfc_8032_pair_of_the_derived_seed() {
        // The seed is the same HKDF as HS256's key, under its own info prefix; the public key
        // of RFC 8032's first test vector comes from its seed.
        let secret = b"correct horse battery staple 0123456789";
        let acme = Scope::Tenant(TenantId::parse("acme-pharma").expect("valid"));
        assert_eq!(
            derive(secret, "vigia:jwt:ed25519", &acme, None),
            hkdf(secret, b"vigia:jwt:ed25519:tenant:acme-pharma")
        );
        let seed: [u8; 32] = (0..32)
            .map(|i| {
                u8::from_str_radix(
                    &"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
                        [2 * i..2 * i + 2],
                    16,
                )
                .expect("hex")
            })
            .collect::<Vec<_>>()
            .try_into()
            .expect("32 bytes");
        let public = public_key(&ed25519_dalek::SigningKey::from_bytes(&seed));
        assert_eq!(
            hex(&URL_SAFE_NO_PAD.decode(&public.x).expect("base64url")),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }

    #[test]
    fn eddsa_keys_differ_per_scope_and_registration_and_publish_every_secret() {
        let secrets = ServerSecret::rotating(vec![vec![1; 32], vec![2; 32]]);
        let acme = Scope::Tenant(TenantId::parse("acme-pharma").expect("valid"));
        let key = SigningKey::derive(&secrets, &acme, None);
        assert_eq!(key.algorithm, Algorithm::EdDSA);
        assert_eq!(key.public.len(), 2);
        assert_eq!(key.kid, key.public[0].kid, "the first secret signs");
        assert!(key.public.iter().all(|p| key.verifying(&p.kid).is_some()));
        let again =
            Incarnation::try_from("0123456789abcdef0123456789abcdef".to_owned()).expect("valid");
        for other in [
            SigningKey::derive(&secrets, &Scope::Legacy, None),
            SigningKey::derive(&secrets, &acme, Some(again)),
        ] {
            assert_ne!(other.public, key.public);
        }
        let hs = SigningKey::derive(&secrets.signing_with(JwtAlgorithm::HS256), &acme, None);
        assert!(hs.public.is_empty(), "an HMAC key is never published");
    }
}
