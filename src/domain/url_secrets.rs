//! Secrets inside URLs (database or Redis): which query parameters name a secret, and the URL
//! text with the userinfo password and those parameters' values masked, so a URL can be shown
//! in logs, audit records, the operators' API and `vigia config show`.

use std::fmt;

/// Words that mark a query parameter's value as secret, matched case-insensitively within its
/// percent-decoded name: `password`, `sslpassword`, `passwd`, `pass`, `passfile`, `pwd`,
/// `secret`, `token`, `sslkey`, `api_key`, `auth`… `sslkey` is a file path to libpq but may be
/// an inline PEM private key to sqlx, so it is masked too.
const SECRET_WORDS: [&str; 7] = [
    "pass",
    "pwd",
    "secret",
    "token",
    "key",
    "auth",
    "credential",
];

/// Whether the query parameter `name` (as written, percent-encoded or not) names a secret.
pub fn is_secret_parameter(name: &str) -> bool {
    let name = percent_decode(name).to_lowercase();
    SECRET_WORDS.iter().any(|word| name.contains(word))
}

/// `s` with `+` as a space and `%XX` as the byte it encodes (as a query string is read);
/// invalid UTF-8 is replaced.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |i: usize| {
        bytes
            .get(i)
            .and_then(|&b| char::from(b).to_digit(16))
            .and_then(|d| u8::try_from(d).ok())
    };
    while i < bytes.len() {
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'+', _, _) => out.push(b' '),
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi * 16 + lo);
                i += 2;
            }
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `raw` (a database or Redis URL) with its secrets replaced by `mask`, as the store's
/// `DatabaseUrl` shows them (there with `***`).
pub fn masked_url(raw: &str, mask: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    write_masked(&mut out, raw, mask).expect("BUG: writing to a String cannot fail");
    out
}

/// Writes `raw` with its secrets masked: `scheme://user:***@host/db?sslmode=require&password=***`;
/// a fragment (no database URL needs one) is masked whole. The user information ends at the
/// last `@` of the whole text, so a password holding an unencoded `@`, `/`, `?` or `#` is
/// masked whole (a `@` in a query value only makes more of the URL masked, never less).
pub fn write_masked(f: &mut impl fmt::Write, raw: &str, mask: &str) -> fmt::Result {
    let rest = match raw.split_once("://") {
        Some((scheme, rest)) => {
            write!(f, "{scheme}://")?;
            match rest.rsplit_once('@') {
                Some((userinfo, after)) => {
                    match userinfo.split_once(':') {
                        Some((user, _password)) => write!(f, "{user}:{mask}@")?,
                        None => write!(f, "{userinfo}@")?,
                    }
                    after
                }
                None => rest,
            }
        }
        None => raw,
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, _)) => (rest, true),
        None => (rest, false),
    };
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    f.write_str(path)?;
    if let Some(query) = query {
        f.write_char('?')?;
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                f.write_char('&')?;
            }
            match pair.split_once('=') {
                Some((name, _value)) if is_secret_parameter(name) => write!(f, "{name}={mask}")?,
                _ => f.write_str(pair)?,
            }
        }
    }
    if fragment {
        write!(f, "#{mask}")?;
    }
    Ok(())
}
