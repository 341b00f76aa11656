//! Refusing a store that someone other than root could have read or written.
//!
//! The store holds every user's OTP secrets and the replay state that keeps codes single
//! use. If a non-root account can read it, secrets leak; if one can write it (or the
//! directory it lives in, which lets them swap the file), they can enroll themselves or
//! reset replay state. So both the directory and the file must be owned by uid 0 with no
//! group or other permission bits, and the file must be a regular file, not a symlink.

use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::{Error, Result};

/// What was found at the store's path.
pub(crate) enum Presence {
    /// A safe store file, as `lstat` found it.
    Present(Metadata),
    /// The file (or its directory) does not exist.
    Absent,
}

fn unsafe_store(path: &Path, reason: String) -> Error {
    Error::UnsafeStore {
        path: path.to_owned(),
        reason,
    }
}

fn check_owner_and_mode(path: &Path, what: &str, meta: &Metadata) -> Result<()> {
    if meta.uid() != 0 {
        return Err(unsafe_store(
            path,
            format!("{what} is owned by uid {}, not root", meta.uid()),
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(unsafe_store(
            path,
            format!(
                "{what} has mode {mode:04o}; group and others must have no access (chmod go-rwx)"
            ),
        ));
    }
    Ok(())
}

/// Checks every directory above the store's: each must be root-owned and writable by
/// nobody else, unless it is sticky (like /tmp), where others cannot rename or delete
/// root's entries. Otherwise whoever can write there could swap the store's directory
/// between this check and the open.
fn check_ancestors(path: &Path, dir: &Path) -> Result<()> {
    let real = std::fs::canonicalize(dir).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    for ancestor in real.ancestors().skip(1) {
        let meta = std::fs::metadata(ancestor).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let mode = meta.permissions().mode();
        let sticky = mode & 0o1000 != 0;
        if meta.uid() != 0 || (mode & 0o022 != 0 && !sticky) {
            return Err(unsafe_store(
                path,
                format!(
                    "{} (above its directory) is owned by uid {} with mode {:04o}; only root \
                     may be able to change it",
                    ancestor.display(),
                    meta.uid(),
                    mode & 0o7777
                ),
            ));
        }
    }
    Ok(())
}

/// Checks the store's directory and, if present, the file itself. A missing directory is
/// an error (installation creates it, so its absence means a wrong `db=` path or a broken
/// installation); a missing file in a sound directory means nobody has a device yet.
pub(crate) fn check(path: &Path) -> Result<Presence> {
    check_with(path, None).map(|c| c.presence)
}

/// What [`check_with`] found.
pub(crate) struct Checked {
    pub(crate) presence: Presence,
    /// Device and inode of the directory the path's parent resolves to.
    pub(crate) dir: (u64, u64),
    /// Whether the directories above it were checked this time.
    pub(crate) ancestors_checked: bool,
}

/// [`check`], for a process that checks the same store at every request (`mfad`): the
/// file and its directory are looked at every time, the directories above it only when
/// the directory is not `ancestors_sound_for` (the device and inode of a directory whose
/// ancestors the caller found sound a moment ago). The walk up (resolving every symlink
/// of the path, then one `stat` per ancestor) was most of the check's system calls.
pub(crate) fn check_with(path: &Path, ancestors_sound_for: Option<(u64, u64)>) -> Result<Checked> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| unsafe_store(path, "the path has no directory".to_owned()))?;
    let io_err = |source: io::Error| Error::Io {
        path: path.to_owned(),
        source,
    };
    // The directory may be reached through a symlink (e.g. /var/lib on another volume):
    // what matters is who can change the directory it resolves to, and its ancestors.
    let dir_meta = std::fs::metadata(dir).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            unsafe_store(
                path,
                format!("its directory {} does not exist", dir.display()),
            )
        } else {
            io_err(e)
        }
    })?;
    if !dir_meta.is_dir() {
        return Err(unsafe_store(
            path,
            format!("{} is not a directory", dir.display()),
        ));
    }
    check_owner_and_mode(path, "its directory", &dir_meta)?;
    let dir_id = (dir_meta.dev(), dir_meta.ino());
    let ancestors_checked = ancestors_sound_for != Some(dir_id);
    if ancestors_checked {
        check_ancestors(path, dir)?;
    }
    let checked = |presence| Checked {
        presence,
        dir: dir_id,
        ancestors_checked,
    };

    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(checked(Presence::Absent)),
        Err(e) => return Err(io_err(e)),
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Err(unsafe_store(path, "it is a symbolic link".to_owned()));
    }
    if !ft.is_file() || ft.is_fifo() || ft.is_socket() {
        return Err(unsafe_store(path, "it is not a regular file".to_owned()));
    }
    check_owner_and_mode(path, "the file", &meta)?;
    Ok(checked(Presence::Present(meta)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    fn reason(r: Result<Presence>) -> String {
        match r {
            Err(Error::UnsafeStore { reason, .. }) => reason,
            Err(e) => format!("other error: {e}"),
            Ok(_) => "accepted".to_owned(),
        }
    }

    /// Only a store that is not there reads as "no store" (and so "nobody has a device",
    /// which `nullok` lets through): any other failure to look at it is an error.
    #[test]
    fn a_store_that_cannot_be_looked_at_is_an_error_not_absent() {
        assert!(is_root(), "store safety tests must run as root");
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s");
        fs::create_dir(&store).unwrap();
        fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).unwrap();
        // A name longer than NAME_MAX: ENAMETOOLONG, not ENOENT.
        let too_long = store.join("d".repeat(300));
        assert!(check(&too_long).is_err(), "{:?}", reason(check(&too_long)));
        // A file where a directory is expected: ENOTDIR.
        let file = store.join("f");
        fs::write(&file, b"").unwrap();
        assert!(check(&file.join("devices.db")).is_err());
        // And what is missing is still absent.
        assert!(matches!(
            check(&store.join("devices.db")),
            Ok(Presence::Absent)
        ));
    }

    #[test]
    fn modes_and_kinds() {
        // Ownership by root can only be arranged as root; the suite runs as root in CI.
        assert!(is_root(), "store safety tests must run as root");
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s");
        fs::create_dir(&store).unwrap();
        fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).unwrap();
        let db = store.join("devices.db");
        assert!(matches!(check(&db), Ok(Presence::Absent)));
        assert!(reason(check(&dir.path().join("missing/devices.db"))).contains("does not exist"));

        fs::write(&db, b"").unwrap();
        fs::set_permissions(&db, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(check(&db), Ok(Presence::Present(_))));

        fs::set_permissions(&db, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(reason(check(&db)).contains("mode 0640"));
        fs::set_permissions(&db, fs::Permissions::from_mode(0o602)).unwrap();
        assert!(reason(check(&db)).contains("mode 0602"));
        fs::set_permissions(&db, fs::Permissions::from_mode(0o600)).unwrap();

        fs::set_permissions(&store, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(reason(check(&db)).contains("directory has mode 0755"));
        fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).unwrap();

        std::os::unix::fs::chown(&db, Some(65534), None).unwrap();
        assert!(reason(check(&db)).contains("owned by uid 65534"));
        std::os::unix::fs::chown(&db, Some(0), None).unwrap();
        std::os::unix::fs::chown(&store, Some(65534), None).unwrap();
        assert!(reason(check(&db)).contains("directory is owned by uid 65534"));
        std::os::unix::fs::chown(&store, Some(0), None).unwrap();

        let link = store.join("link.db");
        std::os::unix::fs::symlink(&db, &link).unwrap();
        assert!(reason(check(&link)).contains("symbolic link"));

        let sub = store.join("sub.db");
        fs::create_dir(&sub).unwrap();
        assert!(reason(check(&sub)).contains("not a regular file"));

        let file_as_dir = db.join("x.db");
        assert!(reason(check(&file_as_dir)).contains("not a directory"));
    }

    #[test]
    fn ancestors_writable_by_others_are_refused_unless_sticky() {
        assert!(is_root(), "store safety tests must run as root");
        let dir = tempfile::tempdir().unwrap();
        let mid = dir.path().join("mid");
        let store = mid.join("store");
        fs::create_dir_all(&store).unwrap();
        fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(&mid, fs::Permissions::from_mode(0o755)).unwrap();
        let db = store.join("devices.db");
        assert!(matches!(check(&db), Ok(Presence::Absent)));
        fs::set_permissions(&mid, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(reason(check(&db)).contains("above its directory"));
        // Sticky and world-writable, as /tmp is: others cannot move root's directory.
        fs::set_permissions(&mid, fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(matches!(check(&db), Ok(Presence::Absent)));
        fs::set_permissions(&mid, fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&mid, Some(65534), None).unwrap();
        assert!(reason(check(&db)).contains("owned by uid 65534"));
        // Through a symlinked path, what counts is where it leads.
        std::os::unix::fs::chown(&mid, Some(0), None).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&store, &link).unwrap();
        assert!(matches!(
            check(&link.join("devices.db")),
            Ok(Presence::Absent)
        ));
    }
}
