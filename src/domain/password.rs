//! `Password`: a candidate password within the length bounds; `Debug` never shows it.

use std::fmt;

use super::Invalid;

#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// The API document's minimum.
    pub const MIN_CHARS: usize = 6;
    /// Bounds the work (and memory) an attacker can make one hash cost.
    pub const MAX_BYTES: usize = 1024;

    /// Parses the password of field `field` (named in the error message).
    pub fn parse(raw: String, field: &str) -> Result<Self, Invalid> {
        if raw.chars().count() < Self::MIN_CHARS {
            return Err(Invalid(format!(
                "{field} must be at least {} characters",
                Self::MIN_CHARS
            )));
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(Invalid(format!(
                "{field} must be at most {} bytes",
                Self::MAX_BYTES
            )));
        }
        Ok(Self(raw))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The password policy for a new password of field `field`: at least `min` characters,
    /// and not the account's username or e-mail address.
    pub fn check_new(
        &self,
        min: usize,
        username: &str,
        email: &str,
        field: &str,
    ) -> Result<(), Invalid> {
        let text = self.0.to_lowercase();
        if text.chars().count() < min {
            return Err(Invalid(format!(
                "{field} must be at least {min} characters"
            )));
        }
        if text == username.to_lowercase() || text == email.to_lowercase() {
            return Err(Invalid(format!(
                "{field} must not be the username or e-mail address"
            )));
        }
        Ok(())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::Password;

    #[test]
    fn length_bounds() {
        assert!(Password::parse("12345".into(), "password").is_err());
        assert!(Password::parse("123456".into(), "password").is_ok());
        assert!(Password::parse("ñññññ".into(), "password").is_err());
        assert!(Password::parse("x".repeat(1024), "password").is_ok());
        assert!(Password::parse("x".repeat(1025), "password").is_err());
    }

    #[test]
    fn debug_hides_the_value() {
        let p = Password::parse("SecurePass123".into(), "password").expect("valid");
        assert!(!format!("{p:?}").contains("Secure"));
    }
}
