//! Writing files that hold a secret (a QR code of an `otpauth://` URI) to a path the user
//! named.
//!
//! `mfa` runs setuid root, and the target usually sits in a directory the user controls,
//! so the path must not be able to redirect the write: a symlink or a hard link planted
//! there, a FIFO that blocks us, or a device node. Everything is decided on the open file
//! descriptor, never by looking the path up a second time.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Only the owner may read the file: it carries a TOTP secret.
const MODE: u32 = 0o600;

/// Writes `bytes` to `path` as a private (0600) file and flushes it to disk.
///
/// Without `force` the file must not exist yet (`ErrorKind::AlreadyExists` otherwise, also
/// for a symlink or a directory there), so a typo never destroys anything. With `force` an
/// existing regular file with a single link is replaced and made 0600 again, whatever its
/// mode was; a symlink at `path` fails with `ELOOP`, a directory with `EISDIR`, and any
/// other kind of file or a file with further hard links with `ErrorKind::InvalidInput`,
/// all before anything is changed.
///
/// Only the last component of `path` is protected; the caller decides whose privileges
/// the directories are resolved with (and can wrap this in a uid switch for that).
pub fn write_private(path: &Path, bytes: &[u8], force: bool) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options
        .write(true)
        .mode(MODE)
        // O_NOFOLLOW: a symlink at the target could point anywhere root can write.
        // O_NONBLOCK: opening a FIFO for writing would otherwise hang until a reader
        // comes; it has no effect on the regular files we go on to write.
        // O_NOCTTY: a terminal device at the target must not become our controlling tty.
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY);
    if force {
        // No O_TRUNC: nothing may be cut short before we have checked what we opened.
        options.create(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path)?;
    check_replaceable(&file)?;
    // An existing file keeps its old mode through open(), and a new one gets MODE minus
    // the umask; fchmod makes the result the same in every case. It comes before the
    // truncation so that a file we may write but not chmod (someone else's) is refused
    // intact.
    file.set_permissions(Permissions::from_mode(MODE))?;
    if force {
        file.set_len(0)?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

/// Refuses a path whose directories pass through a symbolic link owned by anyone but
/// `uid` or root.
///
/// The write itself is the caller's own process (mfa is not setuid), so it can only reach
/// what the caller could; this check adds that a link someone else planted (in a shared directory
/// such as /tmp) cannot redirect the caller's QR image, with its secret, to a place that
/// other person chose and can read.
pub fn check_ancestors(path: &Path, uid: u32) -> io::Result<()> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    let mut prefix = std::path::PathBuf::new();
    for component in parent.components() {
        prefix.push(component);
        let meta = match std::fs::symlink_metadata(&prefix) {
            Ok(m) => m,
            // Missing or unreadable: the open that follows reports it.
            Err(_) => return Ok(()),
        };
        if meta.file_type().is_symlink() && meta.uid() != uid && meta.uid() != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is a symbolic link owned by uid {}; refusing to follow it",
                    prefix.display(),
                    meta.uid()
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses what we could have opened through `force` but must not write into.
fn check_replaceable(file: &File) -> io::Result<()> {
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file; refusing to write to it",
        ));
    }
    // Another name for the same inode could be one the user must not be able to
    // overwrite (a link they made to a file they cannot write themselves).
    if meta.nlink() != 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the file has other hard links; refusing to overwrite it",
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, symlink};

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn creates_0600_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qr.png");
        write_private(&path, b"secret bytes", false).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"secret bytes");
        assert_eq!(mode(&path), 0o600);
        assert!(fs::symlink_metadata(&path).unwrap().file_type().is_file());
    }

    #[test]
    fn refuses_existing_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qr.png");
        fs::write(&path, b"keep me").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        let err = write_private(&path, b"new", false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"keep me");
        assert_eq!(mode(&path), 0o644);
    }

    #[test]
    fn force_overwrites_and_resets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qr.png");
        // Longer than the new content, so a missing truncate would leave a tail.
        fs::write(&path, b"old content that is longer").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"new", true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn force_creates_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qr.svg");
        write_private(&path, b"<svg/>", true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"<svg/>");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn refuses_symlink_with_and_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        fs::write(&target, b"precious").unwrap();
        fs::set_permissions(&target, Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join("qr.png");
        symlink(&target, &link).unwrap();

        let err = write_private(&link, b"attack", false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        let err = write_private(&link, b"attack", true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));

        assert_eq!(fs::read(&target).unwrap(), b"precious");
        assert_eq!(mode(&target), 0o644);
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn refuses_dangling_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("would-be-created");
        let link = dir.path().join("qr.png");
        symlink(&target, &link).unwrap();
        assert!(write_private(&link, b"x", false).is_err());
        assert!(write_private(&link, b"x", true).is_err());
        assert!(!target.exists(), "followed a dangling symlink");
    }

    #[test]
    fn refuses_directory() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("qr.png");
        fs::create_dir(&sub).unwrap();
        let err = write_private(&sub, b"x", false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        let err = write_private(&sub, b"x", true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EISDIR));
        assert!(fs::symlink_metadata(&sub).unwrap().is_dir());
    }

    /// Runs `write_private` on a thread so that a blocking open fails the test instead
    /// of hanging it.
    fn write_with_timeout(path: &Path, force: bool) -> io::Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        let path = path.to_owned();
        std::thread::spawn(move || tx.send(write_private(&path, b"x", force)));
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("write_private blocked on a FIFO")
    }

    #[test]
    fn refuses_fifo_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("qr.png");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        fs::set_permissions(&fifo, Permissions::from_mode(0o644)).unwrap();
        // No reader: open(O_WRONLY|O_NONBLOCK) fails with ENXIO.
        let err = write_with_timeout(&fifo, true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENXIO));
        let err = write_with_timeout(&fifo, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);

        // With a reader the open succeeds, and the type check must refuse it.
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let err = write_with_timeout(&fifo, true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        drop(reader);
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        // Refused before anything was done to it.
        assert_eq!(mode(&fifo), 0o644);
    }

    #[test]
    fn ancestors_through_own_or_root_links_pass_others_fail() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        symlink(&real, &link).unwrap();
        // The link is root's (we run as root), so it is fine for root and for uid 4242
        // it is fine too (root-owned links are trusted).
        check_ancestors(&link.join("qr.png"), 4242).unwrap();
        std::os::unix::fs::lchown(&link, Some(4343), None).unwrap();
        let err = check_ancestors(&link.join("qr.png"), 4242).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        check_ancestors(&link.join("qr.png"), 4343).unwrap();
        // Only the directories are checked: the last component is write_private's job.
        check_ancestors(&link, 4242).unwrap();
    }

    #[test]
    fn force_refuses_hard_linked_file() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other-name");
        fs::write(&other, b"precious").unwrap();
        let path = dir.path().join("qr.png");
        fs::hard_link(&other, &path).unwrap();
        let err = write_private(&path, b"attack", true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(fs::read(&other).unwrap(), b"precious");
    }
}
