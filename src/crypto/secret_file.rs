//! Writing files that hold secrets (private keys, signing keys): the one place that creates them.
//!
//! A secret file is created with `O_CREAT|O_EXCL` and mode `0600` in the same system call, so it
//! never exists with wider permissions, not even for a moment, and an existing file is never
//! overwritten. The mode is then set to exactly `0600` (the umask can only have narrowed it), the
//! bytes are written and synced, and the mode is checked once more. If writing fails, the partial file is removed again.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Mode of every secret file: read and write for the owner only.
pub const SECRET_FILE_MODE: u32 = 0o600;

/// Why a secret file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// Something is already at the path; it was left alone.
    #[error("{} already exists; refusing to overwrite it", path.display())]
    AlreadyExists { path: PathBuf },
    /// The written file is readable by group or others all the same (a filesystem that ignores
    /// the mode); it was removed again.
    #[error("{} has mode {mode:04o} after writing, which gives group/others access", path.display())]
    InsecurePermissions { path: PathBuf, mode: u32 },
    /// Creating, writing or syncing failed (a created file was removed again).
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Opens `path` for writing a file that holds children's data or secrets at length (an export):
/// created with mode `0600` in the same system call; an existing file is refused unless
/// `replace`, and a replaced file is truncated and narrowed to `0600` before anything is written.
pub fn open_private(path: &Path, replace: bool) -> Result<fs::File, SecretFileError> {
    let mut options = OpenOptions::new();
    options.write(true).mode(SECRET_FILE_MODE);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let file = options.open(path).map_err(|source| match source.kind() {
        io::ErrorKind::AlreadyExists => SecretFileError::AlreadyExists {
            path: path.to_owned(),
        },
        _ => SecretFileError::Io {
            action: "create",
            path: path.to_owned(),
            source,
        },
    })?;
    // The umask can only narrow the mode at creation; a replaced file keeps its old one.
    file.set_permissions(fs::Permissions::from_mode(SECRET_FILE_MODE))
        .map_err(|source| SecretFileError::Io {
            action: "set the permissions of",
            path: path.to_owned(),
            source,
        })?;
    Ok(file)
}

/// Creates `path` (which must not exist) with mode `0600`, writes `bytes` and syncs the file.
///
/// Fails with [`SecretFileError::AlreadyExists`] if anything is at `path`. If setting the mode,
/// writing or syncing fails, or the file ends up readable by group or others all the same, the
/// new file is removed (best effort) and the error returned.
pub fn write_new_secret(path: &Path, bytes: &[u8]) -> Result<(), SecretFileError> {
    let io_err = |action: &'static str| {
        move |source: io::Error| SecretFileError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    };
    let mut file = open_private(path, false)?;
    let written = file
        .write_all(bytes)
        .map_err(io_err("write"))
        .and_then(|()| file.sync_all().map_err(io_err("sync")))
        .and_then(|()| {
            let mode = file
                .metadata()
                .map_err(io_err("inspect"))?
                .permissions()
                .mode()
                & 0o7777;
            if mode & 0o077 != 0 {
                return Err(SecretFileError::InsecurePermissions {
                    path: path.to_owned(),
                    mode,
                });
            }
            Ok(())
        });
    drop(file);
    if written.is_err() {
        // Best effort: the write error is the one worth reporting.
        let _ = fs::remove_file(path);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_0600_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        write_new_secret(&path, b"secret").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"secret");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = write_new_secret(&path, b"other").unwrap_err();
        assert!(
            matches!(err, SecretFileError::AlreadyExists { .. }),
            "{err}"
        );
        assert_eq!(fs::read(&path).unwrap(), b"secret");
    }

    #[test]
    fn a_missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_new_secret(&dir.path().join("no/such/dir"), b"x").unwrap_err();
        assert!(
            matches!(
                err,
                SecretFileError::Io {
                    action: "create",
                    ..
                }
            ),
            "{err}"
        );
    }
}
