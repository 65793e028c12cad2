//! Files at rest: the data directory and every SQLite database Vigia creates are private to the
//! service's user — directories 0700, files 0600 — because they hold password hashes, the
//! audit trail and (in development) the JWT secret. A database file is created here, empty and
//! 0600, before SQLite opens it: SQLite gives its `-wal` and `-shm` files the database file's
//! own mode, so they are 0600 too. Unix only; elsewhere the platform's defaults apply.

use std::{fs, io, path::Path};

/// Creates `dir` and its missing parents, each new one 0700; existing ones are left as they are.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates the empty file `path`, 0600; `AlreadyExists` if there is one.
pub fn create_private_file(path: &Path) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

/// What [`ensure_private_dir`] found.
#[derive(Debug)]
pub enum DirAccess {
    /// Only its owner may enter it (or it was just created so).
    Private,
    /// Group or others could enter it (its mode was `was`); now it is 0700.
    Tightened { was: u32 },
    /// Group or others can enter it (`mode`), and changing that was refused (another user owns
    /// it, as with a container volume whose mount point belongs to root).
    Open { mode: u32, error: io::Error },
}

/// Makes sure `dir` exists and only its owner may enter it: created 0700 when missing; an
/// existing directory open to group or others is tightened to 0700, or reported as open when
/// that is refused. Files inside are not changed: a private directory keeps everyone else out
/// of them, including files an older version created 0644.
pub fn ensure_private_dir(dir: &Path) -> io::Result<DirAccess> {
    create_private_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir)?.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Ok(
                match fs::set_permissions(dir, fs::Permissions::from_mode(0o700)) {
                    Ok(()) => DirAccess::Tightened { was: mode },
                    Err(error) => DirAccess::Open { mode, error },
                },
            );
        }
    }
    Ok(DirAccess::Private)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn new_directories_and_files_are_private_and_open_directories_are_tightened() {
        let root = tempfile::tempdir().expect("temp dir");
        let deep = root.path().join("a").join("b");
        create_private_dir_all(&deep).expect("created");
        assert_eq!(mode(&root.path().join("a")), 0o700);
        assert_eq!(mode(&deep), 0o700);

        let file = deep.join("x.db");
        create_private_file(&file).expect("created");
        assert_eq!(mode(&file), 0o600);
        let again = create_private_file(&file).expect_err("exists");
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);

        assert!(matches!(
            ensure_private_dir(&deep).expect("checked"),
            DirAccess::Private
        ));
        fs::set_permissions(&deep, fs::Permissions::from_mode(0o755)).expect("chmod");
        assert!(matches!(
            ensure_private_dir(&deep).expect("checked"),
            DirAccess::Tightened { was: 0o755 }
        ));
        assert_eq!(mode(&deep), 0o700);
    }
}
