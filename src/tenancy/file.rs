//! The registry on disk: `tenants/<ID>.toml`, one small declarative file per tenant, which
//! `vigia tenant create` writes and the server reads. Paths are only ever built from a parsed
//! [`TenantId`].

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
    time::SystemTime,
};

use serde::{Deserialize, Serialize};

use crate::{
    domain::{RoleDefinitions, TenantId},
    store::files,
};

/// One tenant's entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// Display name (the customer's name).
    pub name: String,
    /// An inactive tenant's logins and tokens are refused.
    #[serde(default = "yes")]
    pub active: bool,
    /// Overrides of the server's `[security]` lockout keys for this tenant.
    #[serde(default, skip_serializing_if = "SecurityOverrides::is_empty")]
    pub security: SecurityOverrides,
    /// Role definitions beyond (or replacing) the built-in ones: `[roles.<name>]` tables of
    /// modules to `{ action = true }`; see `domain::permissions`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: RoleDefinitions,
    /// This registration's identity: random, written once by `vigia tenant create`, and folded
    /// into the tenant's signing key. A tenant removed and registered again under the same ID
    /// gets a new one, so its predecessor's tokens, cached records and open pools never serve
    /// it. Entries written before it existed have none (their keys are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<Incarnation>,
}

/// A tenant registration's identity: 128 random bits, written as 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Incarnation(u128);

impl Incarnation {
    /// A new registration's identity.
    pub fn random() -> Self {
        Self(rand::random())
    }
}

impl TryFrom<String> for Incarnation {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let valid = text.len() == 32
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid
            .then(|| u128::from_str_radix(&text, 16).ok())
            .flatten()
            .map(Self)
            .ok_or_else(|| "incarnation must be 32 lowercase hex digits".to_owned())
    }
}

impl From<Incarnation> for String {
    fn from(incarnation: Incarnation) -> Self {
        incarnation.to_string()
    }
}

impl std::fmt::Display for Incarnation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

fn yes() -> bool {
    true
}

/// The `[security]` keys a tenant may set for itself (the server's are the defaults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lockout_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lockout_window_minutes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lockout_minutes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_min_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_max_age_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_idle_minutes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_max_hours: Option<u32>,
}

impl SecurityOverrides {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Why a tenant file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("no such tenant")]
    Missing,
    #[error("tenant file {path} is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("tenant {0} already exists")]
    Exists(TenantId),
    #[error("reading or writing {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("the registry database: {0}")]
    Database(String),
}

pub fn path_of(dir: &Path, id: &TenantId) -> PathBuf {
    dir.join(format!("{id}.toml"))
}

/// Reads `id`'s entry and its stamp.
pub async fn read(dir: &Path, id: &TenantId) -> Result<(TenantFile, Option<FileStamp>), FileError> {
    let path = path_of(dir, id);
    let text = match tokio::fs::read_to_string(&path).await {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(FileError::Missing),
        Err(source) => return Err(FileError::Io { path, source }),
    };
    let modified = stamp(&path);
    let file = toml::from_str(&text).map_err(|e| FileError::Malformed {
        path: path.clone(),
        reason: e.message().to_owned(),
    })?;
    Ok((file, modified))
}

/// What tells one version of a file from another without reading it: its modification time,
/// and (a file removed and written again may get the same time) its inode and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    modified: SystemTime,
    inode: u64,
    len: u64,
}

/// The file's stamp; `None` when it is gone.
pub fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(FileStamp {
        modified: meta.modified().ok()?,
        inode,
        len: meta.len(),
    })
}

/// Writes a new entry atomically: a temporary file, then a hard link to the final name, which
/// fails if it exists. A concurrent reader sees the whole file or none; a second creator of the
/// same ID gets `Exists`, never an overwrite.
pub fn write_new(dir: &Path, id: &TenantId, file: &TenantFile) -> Result<(), FileError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FileError::Io { path, source }
    };
    files::create_private_dir_all(dir).map_err(io_err(dir))?;
    let text = toml::to_string(file).expect("BUG: a TenantFile always serialises to TOML");
    let tmp = dir.join(format!(".{id}.toml.{}.tmp", std::process::id()));
    write_private(&tmp, &text).map_err(io_err(&tmp))?;
    let path = path_of(dir, id);
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(FileError::Exists(id.clone())),
        Err(source) => Err(FileError::Io { path, source }),
    }
}

/// Writes `text` to a new file `path`, 0600 (an entry's `database_url` may hold a password); a
/// leftover of an interrupted write under the same name is replaced.
fn write_private(path: &Path, text: &str) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    files::create_private_file(path)?;
    std::fs::write(path, text)
}

/// Replaces an existing entry atomically: a temporary file renamed over it, so a concurrent
/// reader sees the old file or the new one, never a part.
pub fn replace(dir: &Path, id: &TenantId, file: &TenantFile) -> Result<(), FileError> {
    let text = toml::to_string(file).expect("BUG: a TenantFile always serialises to TOML");
    let tmp = dir.join(format!(".{id}.toml.{}.tmp", std::process::id()));
    let path = path_of(dir, id);
    write_private(&tmp, &text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            FileError::Io { path, source }
        })
}

/// Every registered tenant, sorted by ID (for the CLI; the server never lists).
pub async fn list(dir: &Path) -> Result<Vec<(TenantId, Result<TenantFile, FileError>)>, FileError> {
    let mut entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(FileError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    }
    .filter_map(|entry| {
        let name = entry.ok()?.file_name();
        let id = name.to_str()?.strip_suffix(".toml")?;
        TenantId::parse(id).ok()
    })
    .collect::<Vec<_>>();
    entries.sort();
    let mut out = Vec::with_capacity(entries.len());
    for id in entries {
        let file = read(dir, &id).await.map(|(file, _)| file);
        out.push((id, file));
    }
    Ok(out)
}

/// Whether the registry holds no tenant file at all.
pub fn is_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => !entries.any(|e| {
            e.ok()
                .is_some_and(|e| e.file_name().to_string_lossy().ends_with(".toml"))
        }),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_round_trip_and_never_overwrite() {
        let dir = tempfile::tempdir().expect("temp dir");
        let id = TenantId::parse("acme-pharma").expect("valid");
        let file = TenantFile {
            database_url: "sqlite://./data/tenants/acme-pharma.db".into(),
            name: "ACME Pharma".into(),
            active: true,
            security: SecurityOverrides {
                lockout_threshold: Some(3),
                ..Default::default()
            },
            roles: BTreeMap::from([(
                "evaluator".to_owned(),
                BTreeMap::from([(
                    "icsr".to_owned(),
                    BTreeMap::from([("view".to_owned(), true)]),
                )]),
            )]),
            incarnation: Some(Incarnation::random()),
        };
        assert!(is_empty(dir.path()));
        write_new(dir.path(), &id, &file).expect("written");
        assert!(!is_empty(dir.path()));
        assert_eq!(read(dir.path(), &id).await.expect("read").0, file);
        assert!(matches!(
            write_new(dir.path(), &id, &file),
            Err(FileError::Exists(_))
        ));
        let listed = list(dir.path()).await.expect("listed");
        assert_eq!(listed.len(), 1);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn entries_are_private_to_the_service_user() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("tenants");
        let id = TenantId::parse("acme").expect("valid");
        let mut file = TenantFile {
            database_url: "postgres://vigia:s3cret@db/vigia_acme".into(),
            name: "ACME".into(),
            active: true,
            security: SecurityOverrides::default(),
            roles: BTreeMap::new(),
            incarnation: Some(Incarnation::random()),
        };
        write_new(&dir, &id, &file).expect("written");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path_of(&dir, &id)), 0o600);
        file.active = false;
        replace(&dir, &id, &file).expect("replaced");
        assert_eq!(mode(&path_of(&dir, &id)), 0o600, "a replaced entry too");
    }

    #[test]
    fn incarnations_are_32_lowercase_hex_digits() {
        let made = Incarnation::random();
        let text = made.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(Incarnation::try_from(text.clone()), Ok(made));
        assert_ne!(Incarnation::random(), made);
        for bad in [
            "",
            "xyz",
            &text.to_uppercase(),
            &text[1..],
            &format!("{text}0"),
        ] {
            assert!(Incarnation::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let id = TenantId::parse("acme").expect("valid");
        std::fs::write(
            path_of(dir.path(), &id),
            "database_url = 'sqlite://x.db'\nname = 'x'\nactiv = false\n",
        )
        .expect("written");
        assert!(matches!(
            read(dir.path(), &id).await,
            Err(FileError::Malformed { .. })
        ));
    }
}
