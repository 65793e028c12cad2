//! `TenantId`: the contract's lowercase DNS label. `X-Tenant` is attacker-controlled; only a
//! parsed `TenantId` may become part of a path, a query or a cache key.

use std::{fmt, sync::Arc};

use super::Invalid;

/// A tenant identifier: `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    pub const MAX_LEN: usize = 63;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let bytes = raw.as_bytes();
        let ok_inner = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
        let ok_edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let valid = !bytes.is_empty()
            && bytes.len() <= Self::MAX_LEN
            && bytes.iter().all(ok_inner)
            && bytes.first().is_some_and(ok_edge)
            && bytes.last().is_some_and(ok_edge);
        if valid {
            Ok(Self(Arc::from(raw)))
        } else {
            Err(Invalid::new(
                "tenant id must be a lowercase DNS label: 1-63 characters of a-z, 0-9 and '-', \
                 starting and ending with a letter or digit",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

/// Whose data a request touches: the legacy shared database, or one tenant's own database.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Legacy,
    Tenant(TenantId),
}

impl Scope {
    /// The tenant, or `None` for legacy mode (the token's `tenant` claim).
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Scope::Legacy => None,
            Scope::Tenant(id) => Some(id),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Legacy => f.write_str("legacy"),
            Scope::Tenant(id) => write!(f, "tenant {id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TenantId;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "0", "acme-pharma", "a1-b2-c3", &"x".repeat(63)] {
            assert_eq!(
                TenantId::parse(ok).map(|t| t.to_string()),
                Ok(ok.to_string())
            );
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "-acme",
            "acme-",
            "Acme",
            "ACME",
            "acme_pharma",
            "acme.pharma",
            "../etc/passwd",
            "..",
            "a/b",
            "a\\b",
            "acme\0",
            "acme\n",
            "acme pharma",
            "acmé",
            &"x".repeat(64),
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
