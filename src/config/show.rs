//! `vigia config show`: the effective configuration, every key the settings declare on a line of
//! its own, `key = value  # origin`, in declaration order — valid TOML (dotted keys), stable
//! enough to diff and to keep as validation evidence.
//!
//! Secrets never print. A value is redacted when its key names a secret (ends with `secret`,
//! `token`, `password`, `key`, …), or when the settings hold it in a redacting type (its text
//! does not appear in the settings' `Debug` output): so a secret key added later is redacted
//! even if its name gives nothing away. The database and Redis URLs print with their passwords
//! redacted.

use std::fmt::Write;

use config::{Value, ValueKind};
use secrecy::ExposeSecret;

use super::{Environment, Loaded};

/// Keys whose values are URLs that may carry a password: shown with the password redacted
/// (any other secret is redacted whole).
const CREDENTIAL_URLS: &[&str] = &["legacy.database_url", "redis.url"];

/// Words that make a value a secret when its key's last segment (or a URL parameter's name)
/// ends with one, singular or plural: `secret`, `admin_token`, `sslpassword`, `api_key`.
const SECRET_WORDS: &[&str] = &[
    "secret",
    "token",
    "password",
    "passwd",
    "passphrase",
    "credential",
    "key",
];

pub(super) fn render(loaded: &Loaded) -> String {
    // The settings' Debug output, where redacting types print a placeholder instead of the
    // value; lowercased because enums print their variant names capitalised.
    let debug = format!("{:?}", loaded.settings).to_lowercase();
    let mut out = format!(
        "# vigia {}: the effective configuration (defaults, then the file, then VIGIA__ \
         variables); secrets redacted\n",
        env!("CARGO_PKG_VERSION")
    );
    for key in &loaded.keys {
        let (value, note) = describe(loaded, key, &debug);
        let origin = loaded.layers.origin(key);
        writeln!(out, "{key} = {value}  # {origin}{note}")
            .expect("BUG: writing to a String cannot fail");
    }
    out
}

/// A key's value as printed, and a note after its origin for values derived from others.
fn describe(loaded: &Loaded, key: &str, debug: &str) -> (String, &'static str) {
    let settings = &loaded.settings;
    match (key, loaded.layers.value(key)) {
        ("jwt.secret", Some(_)) => {
            // Always counted: how many secrets verify is what a rotation changes.
            let count = settings.jwt.secret.as_ref().map_or(0, |s| s.list().len());
            let plural = if count == 1 { "" } else { "s" };
            (quote(&format!("<redacted: {count} secret{plural}>")), "")
        }
        ("jwt.secret", None) if settings.environment == Environment::Development => {
            let path = settings.data_dir.join("jwt-secret");
            (
                quote(&format!("<generated: {}>", path.display())),
                " (development: generated on first start, kept in that file)",
            )
        }
        ("legacy.database_url", None) => (
            quote(&mask_url(settings.legacy_database_url().expose_secret())),
            " (under data_dir)",
        ),
        (_, None) => (quote("<unset>"), ""),
        (_, Some(value)) => (shown(key, value, debug), ""),
    }
}

/// A set value as printed: redacted, password-masked, or as given.
fn shown(key: &str, value: &Value, debug: &str) -> String {
    if names_a_secret(key.rsplit('.').next().unwrap_or(key)) {
        return quote(&redacted(count(value)));
    }
    if CREDENTIAL_URLS.contains(&key) {
        return match &value.kind {
            ValueKind::String(url) => quote(&mask_url(url)),
            _ => quote(&redacted(count(value))),
        };
    }
    if !scalars(value).iter().all(|text| appears_in(text, debug)) {
        return quote(&redacted(count(value)));
    }
    toml(value)
}

/// Whether a key (its last segment) or a URL parameter is named like a secret.
fn names_a_secret(name: &str) -> bool {
    let name = name.to_lowercase();
    let name = name.trim_end_matches('s');
    SECRET_WORDS.iter().any(|word| name.ends_with(word))
}

/// `<redacted>`, or `<redacted: 2 secrets>` for several.
fn redacted(count: usize) -> String {
    match count {
        1 => "<redacted>".into(),
        n => format!("<redacted: {n} secrets>"),
    }
}

fn count(value: &Value) -> usize {
    match &value.kind {
        ValueKind::Array(items) => items.len(),
        _ => 1,
    }
}

/// The texts of a value's scalars.
fn scalars(value: &Value) -> Vec<String> {
    match &value.kind {
        ValueKind::Array(items) => items.iter().flat_map(scalars).collect(),
        ValueKind::Table(map) => map.values().flat_map(scalars).collect(),
        ValueKind::String(s) => vec![s.clone()],
        ValueKind::Nil => Vec::new(),
        other => vec![other.to_string()],
    }
}

/// Whether `text` shows in the (lowercased) Debug output, as itself or as `Debug` escapes it.
fn appears_in(text: &str, debug: &str) -> bool {
    let text = text.to_lowercase();
    let escaped = format!("{text:?}");
    debug.contains(&text) || debug.contains(escaped.trim_matches('"'))
}

/// A URL with the password of its user information, every secret-looking query parameter
/// (percent-decoded, as drivers read them) and any fragment redacted: the masking every other
/// place that shows a database URL uses.
fn mask_url(url: &str) -> String {
    crate::domain::url_secrets::masked_url(url, "<redacted>")
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// A value in TOML syntax.
fn toml(value: &Value) -> String {
    match &value.kind {
        ValueKind::String(s) => quote(s),
        ValueKind::Float(f) => toml::Value::Float(*f).to_string(),
        ValueKind::Array(items) => {
            let items: Vec<String> = items.iter().map(toml).collect();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Table(map) => {
            let mut entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{} = {}", quote(k), toml(v)))
                .collect();
            entries.sort();
            format!("{{ {} }}", entries.join(", "))
        }
        ValueKind::Nil => quote("<unset>"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_the_settings_keep_out_of_debug_is_redacted_whatever_its_key() {
        let debug = "settings { server: serversettings { listen: 127.0.0.1:8000 }, mail: \
                     mailsettings { relay_login: [redacted] } }";
        let given = Value::new(None, "smtp-relay-login-0123456789");
        assert_eq!(shown("mail.relay_login", &given, debug), "\"<redacted>\"");
        let listen = Value::new(None, "127.0.0.1:8000");
        assert_eq!(shown("server.listen", &listen, debug), "\"127.0.0.1:8000\"");
        let several = Value::new(
            None,
            ValueKind::Array(vec![
                Value::new(None, "one-secret"),
                Value::new(None, "two"),
            ]),
        );
        assert_eq!(
            shown("mail.relay_logins", &several, debug),
            "\"<redacted: 2 secrets>\""
        );
    }

    #[test]
    fn secret_names_are_recognised_and_others_are_not() {
        for name in [
            "secret",
            "token",
            "admin_token",
            "password",
            "sslpassword",
            "api_key",
            "secrets",
            "credentials",
        ] {
            assert!(names_a_secret(name), "{name}");
        }
        for name in [
            "password_min_length",
            "password_max_age_days",
            "key_prefix",
            "listen",
            "url",
        ] {
            assert!(!names_a_secret(name), "{name}");
        }
    }

    #[test]
    fn no_spelling_of_a_password_in_a_url_prints() {
        for url in [
            "redis+unix:///run/redis.sock?pass=s3cret",
            "postgres://h/db?pass%77ord=s3cret",
            "postgres://h/db?PassWord=s3cret&sslmode=require",
            "postgres://u:pa#s3cret@host/db",
            "postgres://u:p@ss/w?s3cret@host/db",
            "redis://:s3cret@cache:6379/0",
        ] {
            let shown = mask_url(url);
            assert!(!shown.contains("s3cret"), "{url} -> {shown}");
            assert!(shown.contains("<redacted>"), "{url} -> {shown}");
        }
    }

    #[test]
    fn urls_keep_everything_but_passwords() {
        for (url, masked) in [
            ("sqlite://./data/legacy.db", "sqlite://./data/legacy.db"),
            (
                "postgres://vigia:s3cret@db:5432/vigia",
                "postgres://vigia:<redacted>@db:5432/vigia",
            ),
            (
                "postgres://vigia:p@ss/w?rd@db/vigia?sslmode=require",
                "postgres://vigia:<redacted>@db/vigia?sslmode=require",
            ),
            (
                "postgres://db/vigia?user=vigia&password=s3cret&sslpassword=k3y",
                "postgres://db/vigia?user=vigia&password=<redacted>&sslpassword=<redacted>",
            ),
            (
                "redis://:s3cret@redis:6379/0",
                "redis://:<redacted>@redis:6379/0",
            ),
            ("redis://redis:6379/0", "redis://redis:6379/0"),
        ] {
            assert_eq!(mask_url(url), masked);
        }
    }
}
