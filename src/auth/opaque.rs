//! Opaque secrets: refresh tokens and service-client secrets. 256 random bits from the OS,
//! base64url; stored only as their SHA-256 (a fast hash suffices for a value nobody can guess,
//! and a use costs no argon2), compared in constant time.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A fresh secret: 32 bytes of OS randomness, base64url (43 characters).
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored of `secret`: its SHA-256, lowercase hex.
pub fn fingerprint(secret: &str) -> String {
    format!("{:x}", Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` is the one `stored` fingerprints, in constant time.
pub fn matches(secret: &str, stored: &str) -> bool {
    fingerprint(secret)
        .as_bytes()
        .ct_eq(stored.as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_fresh_and_only_their_own_fingerprint_matches() {
        let (a, b) = (generate(), generate());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        let stored = fingerprint(&a);
        assert_eq!(stored.len(), 64);
        assert!(matches(&a, &stored));
        assert!(!matches(&b, &stored));
        assert!(!matches("", &stored));
    }
}
