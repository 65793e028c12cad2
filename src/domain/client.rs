//! Service clients: a client as the services see it ([`ServiceClient`]), and its parts as
//! they arrive (its display name, the permissions it is to hold).

use super::Invalid;

/// A machine account of one scope (the OAuth2 client-credentials grant).
#[derive(Debug, Clone)]
pub struct ServiceClient {
    pub client_id: String,
    pub name: String,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
    /// What its tokens may do: `module.action` names, sorted.
    pub permissions: Vec<String>,
    /// The username of the user who created it, or `operator` (the CLI).
    pub created_by: String,
    /// Unix seconds, as the next two.
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Whether `raw` has the shape of a client ID this server issues (`svc-` and 16 lowercase hex
/// digits): anything else names no client and is never looked up.
pub fn is_client_id(raw: &str) -> bool {
    raw.strip_prefix("svc-").is_some_and(|hex| {
        hex.len() == 16
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// What a service client is called (shown in lists and the audit trail): 1 to 100
/// characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientName(String);

impl ClientName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = raw.trim();
        let chars = name.chars().count();
        if chars == 0 || chars > 100 || name.chars().any(char::is_control) {
            return Err(Invalid::new(
                "name must be 1 to 100 characters without control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The permissions a client is to hold: distinct `module.action` names (lowercase letters,
/// digits and `_`, each part starting with a letter), sorted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PermissionNames(Vec<String>);

impl PermissionNames {
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, Invalid> {
        let mut names = Vec::with_capacity(raw.len());
        for name in raw {
            let name = name.as_ref();
            let well_formed = name.split_once('.').is_some_and(|(module, action)| {
                [module, action].iter().all(|part| {
                    part.len() <= 64
                        && part.starts_with(|c: char| c.is_ascii_lowercase())
                        && part
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                })
            });
            if !well_formed {
                return Err(Invalid::new(format!(
                    "permission {name:?} is not of the form module.action (e.g. icsr.view)"
                )));
            }
            names.push(name.to_owned());
        }
        names.sort();
        names.dedup();
        Ok(Self(names))
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_names_are_module_dot_action_sorted_and_distinct() {
        let parsed = PermissionNames::parse(&["reports.view", "icsr.view", "icsr.view"]);
        assert_eq!(
            parsed.expect("valid").names(),
            ["icsr.view", "reports.view"]
        );
        for bad in [
            "icsr",
            "icsr.",
            ".view",
            "ICSR.view",
            "icsr.view.all",
            "icsr view",
            "1x.view",
        ] {
            assert!(PermissionNames::parse(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_issued_client_id_shapes_are_client_ids() {
        assert!(is_client_id("svc-5b7c8ba8d022075f"));
        for bad in [
            "svc-5B7C8BA8D022075F",
            "svc-5b7c8ba8d022075",
            "5b7c8ba8d022075f",
            "svc-5b7c8ba8d022075f\0",
            "",
        ] {
            assert!(!is_client_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn client_names_are_trimmed_and_bounded() {
        assert_eq!(
            ClientName::parse("  signals ").expect("valid").as_str(),
            "signals"
        );
        for bad in ["", "   ", "a\nb", &"x".repeat(101)] {
            assert!(ClientName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
