//! The store's write-ahead log (`devices.db-wal`): keeping the file, and making a new
//! one's directory entry durable before anything is committed into it.
//!
//! A commit is durable once its frames in the WAL are synced, but only if the WAL file
//! itself is still found after a power cut: a WAL created since the directory was last
//! synced could vanish with everything committed into it. SQLite's answer is to sync the
//! directory at the first commit of every connection, whether the WAL is new or not, which
//! was the second `fdatasync` of every login. pam_mfa's SQLite is built with
//! `SQLITE_DISABLE_DIRSYNC` (`.cargo/config.toml`) and does it here instead, only when the
//! WAL is new:
//!
//! * every connection keeps the WAL file when it closes ([`keep`]), so that once created it
//!   stays, emptied by checkpoints but never removed; and
//! * a connection notes the WAL file's identity before it opens the store and again after
//!   its first read, by when SQLite has opened (or created) the WAL and holds the shared
//!   lock that stops any other connection from removing it. If the WAL was not there
//!   before, or is another file now, the directory is synced ([`sync_directory`]) before
//!   the connection is used. A WAL that another process created and has not synced the
//!   directory for yet is covered by that process, which does so before it commits; the
//!   window in between is the same one SQLite leaves between creating a file and syncing
//!   its directory.
//!
//! Something outside pam_mfa may still remove the WAL (the `sqlite3` shell closing the
//! store, say); the next connection then finds a new one and syncs the directory.

use std::ffi::{c_int, c_void};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

use crate::{Error, Result};

/// The WAL file of the store at `path`.
pub(super) fn path_of(store: &Path) -> PathBuf {
    let mut wal = store.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Which file is at `wal` now, if any: its device, inode and (where the file system
/// records one) birth time, since a WAL removed and created again may get the same inode
/// number. Not the change time, which SQLite's `fchown` of the WAL moves at every open.
pub(super) type Identity = (u64, u64, Option<SystemTime>);

pub(super) fn identity(wal: &Path) -> Option<Identity> {
    std::fs::symlink_metadata(wal)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.created().ok()))
}

/// Tells SQLite to keep the WAL file when this connection closes (`SQLITE_FCNTL_PERSIST_WAL`),
/// even as the last connection after a full checkpoint, which would otherwise remove it.
pub(super) fn keep(conn: &Connection) -> Result<()> {
    let mut on: c_int = 1;
    // SAFETY: the handle is this open connection's, used on this thread only for the call;
    // "main" is a NUL-terminated name of an attached database; SQLITE_FCNTL_PERSIST_WAL
    // reads and writes one int through the pointer, which is valid for the call.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&raw mut on).cast::<c_void>(),
        )
    };
    if rc != rusqlite::ffi::SQLITE_OK {
        return Err(Error::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rc),
            Some("cannot keep the WAL file (SQLITE_FCNTL_PERSIST_WAL)".to_owned()),
        )));
    }
    Ok(())
}

/// Syncs the directory holding the store, so that a file created in it survives a power
/// cut. A file system that cannot sync directories (`EINVAL`) has nothing to sync.
pub(super) fn sync_directory(store: &Path) -> Result<()> {
    let dir = match store.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let io_err = |source: io::Error| Error::Io {
        path: dir.to_owned(),
        source,
    };
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .map_err(io_err)?;
    match handle.sync_all() {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => other.map_err(io_err),
    }
}

/// How many frames the daemon's connection lets into the WAL before it folds them into
/// the database, which it does between requests ([`super::Store::fold_wal_if_due`]): 1 MiB,
/// about 250 code logins (each commits one frame). The first commit after a complete fold
/// starts the WAL again from its beginning, writing over frames already on disk, and a
/// commit that writes over blocks the file has is the cheaper kind of `fdatasync`: one
/// that makes the file longer must also make its new size and blocks durable, the file
/// system's metadata (on the development machine's ext4, 165–318 µs against 85–142 µs
/// for the same frames written over). The
/// folds' own fsyncs come once per this many frames, between requests; 64 frames made the
/// median login as fast but put a fold before one login in sixty (its p99 went up by a
/// fifth).
pub const RESIDENT_FOLD_FRAMES: u32 = 256;

/// Frames past which the commit that reaches them folds the WAL itself, as SQLite's
/// automatic checkpoint does by default, should the daemon find no moment between
/// requests for long (every moment taken by the next request).
pub(super) const RESIDENT_BACKSTOP_FRAMES: c_int = 1000;

/// What the WAL file of the daemon's connection is cut back to when it starts over after
/// growing past it (`journal_size_limit`): a little above what the folds let it reach
/// (a fold waits for the requests that came first), so that in the usual course it keeps
/// its size, while frames a burst or a long reader added beyond it, old pages that a cycle
/// would never write over again, are cut off at the next start.
pub(super) const RESIDENT_WAL_LIMIT: i64 = (RESIDENT_FOLD_FRAMES as i64 + 64) * (4096 + 24) + 32;

/// Counts the WAL's frames after each commit into `frames`, in place of SQLite's automatic
/// checkpoint (a connection has one WAL hook), and folds the WAL at the backstop. A fold's
/// error is left to the next one: the commit that ran the hook has happened, and an error
/// from the hook would make it look as if it had not.
pub(super) fn count_frames(conn: &mut Connection, frames: Arc<AtomicU32>) -> Result<()> {
    conn.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: c_int| {
        frames.store(u32::try_from(pages).unwrap_or(0), Ordering::Relaxed);
        if pages >= RESIDENT_BACKSTOP_FRAMES {
            let _ = wal.checkpoint_v2(CheckpointMode::PASSIVE);
        }
        Ok(())
    }))?;
    Ok(())
}
