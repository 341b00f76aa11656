//! The device store: one root-owned SQLite file holding every user's devices and
//! authentication state.
//!
//! The store is the library's bottom layer: every table has its module here (its SQL and
//! the types its rows are read into), the rules that decide what to write stay above, and
//! nothing here names a module above it. A number a rule owns is passed in by the caller;
//! a type or bound the store must check is defined here and re-exported above.
//! `scripts/check-layers.py` checks this.
//!
//! Opening always checks who can reach the file first ([`safety`]), refuses files that are
//! not ours or are newer than this code ([`schema`]), and sets the connection up for
//! concurrent, durable use: WAL so readers never block the writer, `synchronous=FULL` so a
//! committed replay step survives a power cut, `secure_delete` so a removed device's secret
//! is overwritten rather than left in a free page, and a busy timeout so that simultaneous
//! logins queue instead of failing.
//!
//! A login opens the store, commits one transaction and closes it, once per process, so
//! what opening and closing cost matters as much as what committing does. By
//! default SQLite's last connection checkpoints the WAL into the database and deletes it on
//! close: two more fsyncs, and the next login re-creates the WAL file and syncs the
//! directory. So the WAL file is never removed ([`wal`]: the directory is synced only when
//! the WAL is new, not by every connection), and a login connection closes without a
//! checkpoint (`SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`), leaving its frames in the WAL, where the
//! commit's fsync already made them durable; once the WAL has grown past
//! [`LOGIN_CHECKPOINT_WAL_BYTES`], the login that finds it so folds it back into the
//! database and truncates it, without waiting for anyone. `mfa` changing devices closes
//! with SQLite's checkpoint and then truncates the WAL, so after `mfa` the database file
//! alone holds everything (and a removed device's secret is in no WAL frame).
//!
//! The daemon, `mfad`, keeps one connection open instead ([`Store::make_resident`]): it
//! folds the WAL into the database between requests, never inside a login's commit, and
//! lets the next commit start the WAL over, so the WAL file keeps its size and every
//! commit writes over blocks it already has ([`RESIDENT_FOLD_FRAMES`] says what that
//! saves). After a change other than a login's it empties the WAL instead
//! ([`Store::empty_wal`]), as `mfa` did, so that a removed secret's old pages are in no file.

pub mod audit;
pub mod auth_state;
pub mod devices;
pub mod export;
pub mod health;
pub mod params;
pub mod policy;
pub mod recovery_codes;
pub mod remembered;
mod safety;
mod schema;
pub mod secret;
pub mod tokens;
mod wal;

pub use wal::RESIDENT_FOLD_FRAMES;

use std::cell::Cell;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::{Error, Result};
use safety::Presence;

/// Where the store lives unless `--db` says otherwise.
pub use pam_mfa_protocol::DEFAULT_STORE as DEFAULT_PATH;
/// The schema version this build writes (and migrates older stores to).
pub const SCHEMA_VERSION: i64 = schema::CURRENT_VERSION;

/// How long a login waits for another process's write before giving up. Commits take
/// milliseconds, so this only runs out if something is badly wrong; it is generous because
/// a spurious refusal of a right code is a failure the user cannot do anything about.
const BUSY_TIMEOUT: Duration = Duration::from_secs(20);

/// How big a login lets the WAL grow before it checkpoints and truncates it: about 16
/// frames of 4 KiB pages (a successful login adds one or two). Every login re-reads the
/// WAL when it opens the store, so a long one makes every login slower; checkpointing
/// costs two fsyncs, and the first commit into a fresh WAL one more, so a short one makes
/// some logins slower more often.
pub const LOGIN_CHECKPOINT_WAL_BYTES: u64 = 64 * 1024;

/// How long [`Store::revalidate`] trusts its last look at the directories above the
/// store's (while the store's directory is the same one): the file and its directory are
/// looked at in every request. Whoever could write to an ancestor could swap the store's
/// directory, but a swap shows up at once as another file at the path (a new identity),
/// which is opened again only after the full check; what this delays is the refusal of a
/// store under an ancestor made writable, by at most this long.
const ANCESTORS_RECHECK: Duration = Duration::from_secs(1);

/// What a connection is for, which decides how it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Closed without writing anything back: a store found removed, replaced or spoiled
    /// under an open connection, or a look that leaves the files as they are (see
    /// [`Store::close_without_writing`]).
    Abandoned,
    /// A login, or a look that changes nothing: no checkpoint on close (see the module
    /// documentation).
    Login,
    /// `mfa` changing devices: SQLite's default close, which checkpoints when it is the
    /// last connection, and then empties the WAL (`journal_size_limit = 0`).
    Admin,
    /// The daemon's connection, open as long as the daemon runs: the WAL is folded between
    /// requests and written over again rather than emptied ([`Store::make_resident`]).
    Resident,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    usage: Use,
    /// Device and inode of the file when it was opened (see [`Store::revalidate`]).
    identity: (u64, u64),
    /// When [`Store::revalidate`] last found the directories above the store's sound,
    /// and the store's directory (device, inode) then.
    ancestors_sound: Cell<Option<(Instant, (u64, u64))>>,
    /// Frames in the WAL after the last commit, counted for a resident connection.
    wal_frames: Arc<AtomicU32>,
    /// The frame count at which a resident connection folds next: the fold size, or
    /// further on after a fold that a reader kept from completing (so that it is not
    /// tried again after every request while the reader lasts).
    fold_at: Cell<u32>,
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.usage == Use::Login {
            self.fold_wal_if_long();
        }
    }
}

impl Store {
    /// Opens the store for a login. A store that does not exist yet means nobody has
    /// registered a device (`Ok(None)`); one that exists but was never initialised, is
    /// not ours, or is unsafe is an error, so that a truncated file can never look like
    /// "no devices".
    pub fn open_existing(path: &Path) -> Result<Option<Self>> {
        match safety::check(path)? {
            Presence::Absent => Ok(None),
            Presence::Present(_) => Ok(Some(Self::connect(path, Use::Login)?)),
        }
    }

    /// Opens the store for `mfa`, creating the directory (0700) and the store (0600) if
    /// they do not exist. Creation never widens the modes of anything that exists, and
    /// never initialises a file it did not create: an existing empty file is a truncated
    /// store, which only a backup can bring back.
    pub fn open_or_create(path: &Path) -> Result<Self> {
        create_directory(path)?;
        if let Presence::Absent = safety::check(path)? {
            initialise_new(path)?;
            safety::check(path)?;
        }
        Self::connect(path, Use::Admin)
    }

    /// Opens a connection set up as the module documentation says, makes sure its WAL is
    /// durable ([`wal`]) before anything can be written, and checks the schema.
    fn connect(path: &Path, usage: Use) -> Result<Self> {
        Self::connect_noting_wal(path, usage).map(|(store, _)| store)
    }

    /// [`Self::connect`], and whether the WAL was new, so that the directory was synced.
    fn connect_noting_wal(path: &Path, usage: Use) -> Result<(Self, bool)> {
        let wal_path = wal::path_of(path);
        let wal_before = wal::identity(&wal_path);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| Error::Io {
            path: path.to_owned(),
            source: io::Error::other(e.to_string()),
        })?;
        wal::keep(&conn)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        if usage == Use::Login {
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        }
        let identity = std::fs::symlink_metadata(path)
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                (m.dev(), m.ino())
            })
            .map_err(|source| Error::Io {
                path: path.to_owned(),
                source,
            })?;
        let mut store = Self {
            conn,
            path: path.to_owned(),
            usage,
            identity,
            ancestors_sound: Cell::new(None),
            wal_frames: Arc::default(),
            fold_at: Cell::new(wal::RESIDENT_FOLD_FRAMES),
        };
        store
            .conn
            .execute_batch(if usage == Use::Admin {
                "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;
                 PRAGMA journal_size_limit = 0;"
            } else {
                "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;"
            })
            .map_err(|e| store.classify(e))?;
        // The first read: SQLite opens (or creates) the WAL and takes the shared lock that
        // keeps any other connection from removing it.
        let header = store.header_values()?;
        let outdated = store.check_schema(header)?;
        // Only on a store known to be ours, and before anything is written to it.
        let synced = store.make_wal_durable(&wal_path, wal_before)?;
        if outdated {
            schema::migrate(&mut store.conn, path)?;
        }
        Ok((store, synced))
    }

    /// The schema version and application id from the database header.
    fn header_values(&self) -> Result<(i64, i64)> {
        let header_value = |name: &str| -> rusqlite::Result<i64> {
            self.conn.pragma_query_value(None, name, |r| r.get(0))
        };
        header_value("user_version")
            .and_then(|v| Ok((v, header_value("application_id")?)))
            .map_err(|e| self.classify(e))
    }

    /// Syncs the store's directory if the WAL was created since `before` was taken (see
    /// [`wal`]). A store without a WAL is not in WAL mode (someone switched it with the
    /// `sqlite3` shell): it is switched back first, since its commits are durable only
    /// in WAL mode with this SQLite. `Ok(true)`: the directory was synced.
    fn make_wal_durable(&self, wal_path: &Path, before: Option<wal::Identity>) -> Result<bool> {
        let mut now = wal::identity(wal_path);
        if now.is_none() {
            let mode: String = self
                .conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(|e| self.classify(e))?;
            // The WAL is opened by the next read.
            self.header_values()?;
            now = wal::identity(wal_path);
            if !mode.eq_ignore_ascii_case("wal") || now.is_none() {
                return Err(Error::Io {
                    path: self.path.clone(),
                    source: io::Error::other(format!(
                        "the store is not in WAL mode (journal mode {mode}) and cannot be \
                         switched back"
                    )),
                });
            }
        }
        if now == before {
            return Ok(false);
        }
        wal::sync_directory(&self.path)?;
        Ok(true)
    }

    /// Turns "file is not a database" from any statement into the error that names it.
    fn classify(&self, e: rusqlite::Error) -> Error {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => Error::NotADatabase {
                path: self.path.clone(),
                detail: "not an SQLite database".to_owned(),
            },
            _ => Error::Sqlite(e),
        }
    }

    /// Refuses files that are empty, foreign or too new; `Ok(true)` for an older schema of
    /// ours, which the caller migrates forward (an upgrade keeps the store and brings it up
    /// to date on first use). `current` is the header's (user_version, application_id).
    fn check_schema(&self, current: (i64, i64)) -> Result<bool> {
        // Every login comes here: the usual answer, a store of ours at the current
        // version, takes two reads of the database header; only anything else gets the
        // full look (which counts the schema's objects).
        if current == (schema::CURRENT_VERSION, schema::APPLICATION_ID) {
            return Ok(false);
        }
        let header = schema::read_header(&self.conn).map_err(|e| self.classify(e))?;
        if header.user_version == 0 {
            return Err(if header.objects == 0 {
                Error::Uninitialised {
                    path: self.path.clone(),
                }
            } else {
                Error::NotADatabase {
                    path: self.path.clone(),
                    detail: "an SQLite database of another program".to_owned(),
                }
            });
        }
        if header.application_id != schema::APPLICATION_ID {
            return Err(Error::NotADatabase {
                path: self.path.clone(),
                detail: "an SQLite database of another program".to_owned(),
            });
        }
        if header.user_version > schema::CURRENT_VERSION {
            return Err(Error::SchemaTooNew {
                path: self.path.clone(),
                found: header.user_version,
                known: schema::CURRENT_VERSION,
            });
        }
        Ok(header.user_version < schema::CURRENT_VERSION)
    }

    /// Checks, for a process that keeps the store open (`mfad`), that the file is still
    /// the one it opened and still safe, as opening it would: `Ok(false)` when it was
    /// removed or replaced (the caller opens it again, or finds there is none), an error
    /// when it became unsafe (readable by others, another owner) or was truncated. Every
    /// request of the daemon starts with this, so that a store spoiled under a running
    /// daemon is refused exactly as it was when every login opened it.
    /// The directories above the store's directory are walked again at most every
    /// [`ANCESTORS_RECHECK`] (or when the directory is another one).
    pub fn revalidate(&self) -> Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let recent = self
            .ancestors_sound
            .get()
            .filter(|(at, _)| at.elapsed() < ANCESTORS_RECHECK)
            .map(|(_, dir)| dir);
        let checked = safety::check_with(&self.path, recent)?;
        if checked.ancestors_checked {
            self.ancestors_sound
                .set(Some((Instant::now(), checked.dir)));
        }
        let Presence::Present(meta) = checked.presence else {
            return Ok(false);
        };
        if (meta.dev(), meta.ino()) != self.identity {
            return Ok(false);
        }
        if meta.len() == 0 {
            return Err(Error::Uninitialised {
                path: self.path.clone(),
            });
        }
        Ok(true)
    }

    /// Closes a store [`Store::revalidate`] found removed, replaced, truncated or unsafe,
    /// writing nothing: no checkpoint may copy the WAL's pages into whatever file is at
    /// the path now (a truncated store would come back half-written).
    pub fn abandon(mut self) {
        // Should SQLite refuse the setting, the usage alone still keeps pam_mfa's own
        // fold from running; the close is then SQLite's, as it always was here.
        let _ = self.close_without_writing();
    }

    /// Makes this connection close writing nothing: no fold of the WAL
    /// ([`Store::fold_wal_if_long`]) and no checkpoint in SQLite's close
    /// (`SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`). For a store given up ([`Store::abandon`]) and
    /// for a look that must leave the store's files as it found them (`mfa doctor`).
    pub(super) fn close_without_writing(&mut self) -> Result<()> {
        self.usage = Use::Abandoned;
        self.conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// For a login connection about to close: checkpoints and truncates the WAL if it has
    /// grown past [`LOGIN_CHECKPOINT_WAL_BYTES`]. Best effort and never waiting: if another
    /// connection is using the WAL this does nothing (one of the next logins will do it),
    /// and an error only means the WAL stays longer; the frames in it are already durable,
    /// and SQLite's own automatic checkpoint still bounds it.
    fn fold_wal_if_long(&self) {
        let wal_len = std::fs::symlink_metadata(wal::path_of(&self.path))
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map_or(0, |m| m.len());
        if wal_len >= LOGIN_CHECKPOINT_WAL_BYTES && self.conn.busy_timeout(Duration::ZERO).is_ok() {
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }

    /// Makes this the connection of a process that keeps the store open and serves one
    /// request after another (`mfad`): no checkpoint when it closes, and none inside a
    /// commit while the WAL is short; instead the owner calls [`Store::fold_wal_if_due`]
    /// when it has answered, so that folding the WAL into the database costs no login
    /// its time, and the WAL file keeps its size, each commit writing over frames already
    /// on disk (see [`wal::RESIDENT_FOLD_FRAMES`] for what that saves).
    pub fn make_resident(&mut self) -> Result<()> {
        if self.usage == Use::Resident {
            return Ok(());
        }
        self.conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        self.conn.execute_batch(&format!(
            "PRAGMA journal_size_limit = {}",
            wal::RESIDENT_WAL_LIMIT
        ))?;
        wal::count_frames(&mut self.conn, self.wal_frames.clone())?;
        self.usage = Use::Resident;
        Ok(())
    }

    /// Whether [`Store::fold_wal_if_due`] has anything to do: the owner checks the store
    /// ([`Store::revalidate`]) before a fold, since a fold writes into the file.
    pub fn fold_due(&self) -> bool {
        self.usage == Use::Resident && self.wal_frames.load(Ordering::Relaxed) >= self.fold_at.get()
    }

    /// For a resident connection between requests: folds the WAL into the database once
    /// it holds [`wal::RESIDENT_FOLD_FRAMES`] frames, without waiting for anyone (a reader
    /// holding an older snapshot, `mfa doctor` say, leaves some frames for a later fold,
    /// tried once a quarter of the fold size more has been written). Nothing is lost if it
    /// fails or is never called: the frames are durable in the WAL, and a commit folds it
    /// itself at a backstop. `true` when the WAL was folded whole.
    pub fn fold_wal_if_due(&self) -> bool {
        if !self.fold_due() {
            return false;
        }
        let folded = self.checkpoint(CheckpointMode::PASSIVE);
        if !folded {
            self.fold_at.set(
                self.wal_frames
                    .load(Ordering::Relaxed)
                    .saturating_add(wal::RESIDENT_FOLD_FRAMES / 4),
            );
        }
        folded
    }

    /// For a resident connection, after a request that may have removed or replaced a
    /// secret: folds the WAL into the database and empties it, without waiting for
    /// anyone, so that the old pages it held (a removed device's secret among them) are in
    /// no file of the store any more, as after `mfa --db` (the database file itself runs
    /// with `secure_delete`). The next commits make the WAL grow again. `false` when a
    /// reader held it; the caller tries again later.
    pub fn empty_wal(&self) -> bool {
        self.usage == Use::Resident && self.checkpoint(CheckpointMode::TRUNCATE)
    }

    /// Runs a checkpoint that never waits for a reader or writer; `true` when every frame
    /// was folded (and, for TRUNCATE, the WAL emptied), which resets the frame count.
    fn checkpoint(&self, mode: CheckpointMode) -> bool {
        if self.conn.busy_timeout(Duration::ZERO).is_err() {
            return false;
        }
        let done = matches!(
            self.conn.wal_checkpoint_v2(Some(rusqlite::MAIN_DB), mode),
            Ok((frames, folded)) if frames == folded
        );
        // Back to queueing behind another process's write. sqlite3_busy_timeout only
        // records the value: it fails for no open connection.
        let _ = self.conn.busy_timeout(BUSY_TIMEOUT);
        if done {
            self.wal_frames.store(0, Ordering::Relaxed);
            self.fold_at.set(wal::RESIDENT_FOLD_FRAMES);
        }
        done
    }

    /// A read-only view for queries that need no transaction.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Runs `f`'s queries in one read transaction: they see one snapshot, and the store's
    /// shared-memory read lock is taken once instead of once per statement (a login's
    /// looks before its prompt went from five lock/unlock rounds to one). Deferred, so it
    /// never waits for a writer and never blocks one.
    pub fn read<T>(&self, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        let result = f(self);
        // Nothing was written: ending the transaction either way loses nothing.
        let end = self
            .conn
            .execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
        let value = result?;
        end?;
        Ok(value)
    }

    /// Starts a write transaction that takes the write lock up front (`BEGIN IMMEDIATE`),
    /// so check-then-update sequences such as the replay check cannot interleave with
    /// another process's.
    pub fn write(&mut self) -> Result<Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }
}

/// Creates the store's directory (0700) if it is missing; its parent must exist.
fn create_directory(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(Error::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Creates a new, fully initialised store at `path`, atomically: the schema is written to
/// a private temporary file in the same directory, which is then renamed into place
/// without replacing anything. A crash leaves either no store or a complete one, never the
/// empty file that would be indistinguishable from a truncated store.
fn initialise_new(path: &Path) -> Result<()> {
    let io_err = |source: io::Error| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| Error::Random(e.to_string()))?;
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = path.with_file_name(format!(
        ".{file_name}.new-{}",
        data_encoding::HEXLOWER.encode(&nonce)
    ));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&temp)
        .map_err(io_err)?;
    let result = (|| {
        let mut conn = Connection::open_with_flags(
            &temp,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_NOFOLLOW,
        )?;
        // WAL is a property of the file and cannot be switched inside a transaction.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(io_err(io::Error::other(format!(
                "cannot enable WAL (journal mode {mode})"
            ))));
        }
        conn.execute_batch("PRAGMA synchronous = FULL;")?;
        schema::migrate(&mut conn, path)?;
        // Closing checkpoints the WAL into the file and removes it, so the one file
        // renamed below holds everything.
        conn.close().map_err(|(_, e)| Error::Sqlite(e))?;
        rename_noreplace(&temp, path).map_err(io_err)?;
        // The new name must survive a power cut before anything is registered in it.
        wal::sync_directory(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
        for suffix in ["-wal", "-shm"] {
            let mut p = temp.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
    match result {
        // Another `mfa` created the store first: use theirs.
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// `rename` that fails with `AlreadyExists` instead of replacing the target.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let from = std::ffi::CString::new(from.as_os_str().as_bytes())?;
    let to = std::ffi::CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call;
    // renameat2 with AT_FDCWD only reads them.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    pub(crate) fn temp_store() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store/devices.db");
        (dir, path)
    }

    #[test]
    fn creates_private_files_and_reopens() {
        let (_dir, path) = temp_store();
        assert!(matches!(
            Store::open_existing(&path),
            Err(Error::UnsafeStore { .. })
        ));
        fs::create_dir(path.parent().unwrap()).unwrap();
        fs::set_permissions(path.parent().unwrap(), fs::Permissions::from_mode(0o700)).unwrap();
        assert!(Store::open_existing(&path).unwrap().is_none());
        let store = Store::open_or_create(&path).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let jm: String = store
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(jm, "wal");
        drop(store);
        let store = Store::open_existing(&path).unwrap().unwrap();
        let v: i64 = store
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, schema::CURRENT_VERSION);
        // Only the store is left in the directory: no temporary file, no stray WAL.
        let names: Vec<String> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with("-wal") && !n.ends_with("-shm"))
            .collect();
        assert_eq!(names, ["devices.db"]);
    }

    #[test]
    fn refuses_garbage_empty_foreign_and_future_files() {
        let (_dir, path) = temp_store();
        drop(Store::open_or_create(&path).unwrap());

        // A schema from the future.
        {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "user_version", 99).unwrap();
        }
        assert!(matches!(
            Store::open_existing(&path),
            Err(Error::SchemaTooNew { found: 99, .. })
        ));
        assert!(matches!(
            Store::open_or_create(&path),
            Err(Error::SchemaTooNew { .. })
        ));

        // Random bytes.
        for f in ["devices.db-wal", "devices.db-shm"] {
            let _ = fs::remove_file(path.with_file_name(f));
        }
        fs::write(&path, vec![0x5a; 8192]).unwrap();
        assert!(matches!(
            Store::open_existing(&path),
            Err(Error::NotADatabase { .. })
        ));
        assert!(matches!(
            Store::open_or_create(&path),
            Err(Error::NotADatabase { .. })
        ));

        // Truncated to nothing: never "no devices" for a login, and `mfa` does not quietly
        // re-create it either.
        fs::write(&path, b"").unwrap();
        assert!(matches!(
            Store::open_existing(&path),
            Err(Error::Uninitialised { .. })
        ));
        assert!(matches!(
            Store::open_or_create(&path),
            Err(Error::Uninitialised { .. })
        ));
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);

        // Another program's database.
        fs::remove_file(&path).unwrap();
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("CREATE TABLE t (x); PRAGMA user_version = 1;")
                .unwrap();
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            Store::open_existing(&path),
            Err(Error::NotADatabase { .. })
        ));
        fs::remove_file(&path).unwrap();
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("CREATE TABLE t (x);").unwrap();
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            Store::open_or_create(&path),
            Err(Error::NotADatabase { .. })
        ));
    }

    /// A process that keeps the store open (mfad) sees what happened to the file since:
    /// spoiled is an error, removed or replaced means "open it again", and a store it
    /// abandons writes nothing back.
    #[test]
    fn revalidate_sees_the_file_as_it_is_now() {
        let (_dir, path) = temp_store();
        drop(Store::open_or_create(&path).unwrap());
        let store = Store::open_existing(&path).unwrap().unwrap();
        assert!(store.revalidate().unwrap());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(store.revalidate(), Err(Error::UnsafeStore { .. })));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(store.revalidate().unwrap());
        // Replaced by another file (a restore from a backup): not the file it opened.
        let copy = path.with_extension("copy");
        fs::copy(&path, &copy).unwrap();
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o600)).unwrap();
        fs::rename(&copy, &path).unwrap();
        assert!(!store.revalidate().unwrap());
        // Removed: nothing to serve from it.
        fs::remove_file(&path).unwrap();
        assert!(!store.revalidate().unwrap());
        store.abandon();
        assert!(!path.exists(), "abandoning wrote a store back");
        // Truncated under an open store: an error, and the empty file stays empty.
        drop(Store::open_or_create(&path).unwrap());
        let store = Store::open_existing(&path).unwrap().unwrap();
        fs::write(&path, b"").unwrap();
        assert!(matches!(
            store.revalidate(),
            Err(Error::Uninitialised { .. })
        ));
        store.abandon();
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    }

    /// The store's directory is looked at in every request; the directories above it,
    /// at most [`ANCESTORS_RECHECK`] later.
    #[test]
    fn revalidate_sees_the_directories_above_the_store() {
        let (dir, path) = temp_store();
        drop(Store::open_or_create(&path).unwrap());
        let store = Store::open_existing(&path).unwrap().unwrap();
        assert!(store.revalidate().unwrap());
        let store_dir = path.parent().unwrap();
        fs::set_permissions(store_dir, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(store.revalidate(), Err(Error::UnsafeStore { .. })));
        fs::set_permissions(store_dir, fs::Permissions::from_mode(0o700)).unwrap();
        assert!(store.revalidate().unwrap());
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        std::thread::sleep(ANCESTORS_RECHECK);
        assert!(matches!(
            store.revalidate(),
            Err(Error::UnsafeStore { reason, .. }) if reason.contains("above its directory")
        ));
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        assert!(store.revalidate().unwrap());
    }

    #[test]
    fn refuses_unsafe_modes() {
        let (_dir, path) = temp_store();
        drop(Store::open_or_create(&path).unwrap());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Store::open_existing(&path),
            Err(Error::UnsafeStore { .. })
        ));
        assert!(matches!(
            Store::open_or_create(&path),
            Err(Error::UnsafeStore { .. })
        ));
        // Creation never widened it back nor narrowed it silently.
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }

    /// A new store holding one (pending) device, written by `mfa`'s kind of connection.
    fn store_with_a_device() -> (tempfile::TempDir, PathBuf) {
        let (dir, path) = temp_store();
        let mut store = Store::open_or_create(&path).unwrap();
        let tx = store.write().unwrap();
        devices::insert_pending_totp(
            &tx,
            "alice",
            "phone",
            &crate::store::secret::Secret::from_bytes(vec![7; 20]),
            crate::store::params::TotpParams::DEFAULT,
            100,
            700,
        )
        .unwrap();
        tx.commit().unwrap();
        (dir, path)
    }

    #[test]
    fn logins_leave_their_commits_in_the_wal_until_it_is_long() {
        let (_dir, path) = store_with_a_device();
        let wal = path.with_file_name("devices.db-wal");
        let wal_len = || fs::metadata(&wal).unwrap().len();
        assert_eq!(wal_len(), 0, "mfa's close checkpoints and empties the WAL");

        // A look that changes nothing writes nothing.
        drop(Store::open_existing(&path).unwrap().unwrap());
        assert_eq!(wal_len(), 0);

        // A login's commit stays in the WAL, where its fsync made it durable, rather than
        // being copied into the database by a checkpoint when the connection closes.
        let login = |n: i64| {
            let mut store = Store::open_existing(&path).unwrap().unwrap();
            let tx = store.write().unwrap();
            tx.execute("UPDATE devices SET last_used_at = ?1", [n])
                .unwrap();
            tx.commit().unwrap();
        };
        login(1);
        assert!(wal_len() > 0);
        let used = |store: &Store| -> i64 {
            store
                .conn()
                .query_row("SELECT last_used_at FROM devices", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(used(&Store::open_existing(&path).unwrap().unwrap()), 1);

        // Once it is long, the login that finds it so folds it into the database and
        // empties it.
        let mut n = 1;
        while wal_len() > 0 {
            n += 1;
            assert!(n < 1000, "the WAL never got folded");
            login(n);
        }
        let frames = LOGIN_CHECKPOINT_WAL_BYTES / 4096;
        assert!(
            n >= 2 && n <= 2 * i64::try_from(frames).unwrap(),
            "folded after {n}"
        );
        let store = Store::open_existing(&path).unwrap().unwrap();
        assert_eq!(used(&store), n);
        drop(store);

        // Another connection using the WAL makes the fold wait for a later login, never
        // this one: it does not block, and nothing is lost.
        let reader = Store::open_existing(&path).unwrap().unwrap();
        reader.conn().execute_batch("BEGIN").unwrap();
        assert_eq!(used(&reader), n);
        for _ in 0..(2 * frames) {
            n += 1;
            login(n);
        }
        assert!(wal_len() >= LOGIN_CHECKPOINT_WAL_BYTES);
        drop(reader);
        n += 1;
        login(n);
        assert_eq!(wal_len(), 0);
        assert_eq!(used(&Store::open_existing(&path).unwrap().unwrap()), n);
    }

    /// The daemon's connection folds the WAL when it is told to, once it is due, and then
    /// writes over the same file instead of cutting or growing it; a reader holding an old
    /// snapshot delays the fold without losing anything, and the fold is not tried again
    /// at once; emptying the WAL leaves no page of it behind; and a connection never told
    /// to fold still has its WAL bounded, by the commit that reaches the backstop.
    #[test]
    fn a_resident_connection_writes_over_its_wal_instead_of_growing_it() {
        let (_dir, path) = store_with_a_device();
        let wal = path.with_file_name("devices.db-wal");
        let wal_len = || fs::metadata(&wal).unwrap().len();
        let frame = 4096 + 24;
        let commit = |store: &mut Store, n: i64| {
            let tx = store.write().unwrap();
            tx.execute("UPDATE devices SET last_used_at = ?1", [n])
                .unwrap();
            tx.commit().unwrap();
        };
        // Other connections close as the daemon's does (`abandon`: no fold of their own),
        // so that every fold and cut seen here is the resident connection's.
        let other = || Store::open_existing(&path).unwrap().unwrap();
        let used = || -> i64 {
            let look = other();
            let n = look
                .conn()
                .query_row("SELECT last_used_at FROM devices", [], |r| r.get(0))
                .unwrap();
            look.abandon();
            n
        };
        let mut store = Store::open_existing(&path).unwrap().unwrap();
        assert!(
            !store.fold_wal_if_due(),
            "not resident yet: nothing to fold"
        );
        assert!(!store.empty_wal(), "not resident yet: not emptied");
        store.make_resident().unwrap();
        store.make_resident().unwrap();

        // Not before it is due, and then at once.
        let mut n = 0;
        loop {
            n += 1;
            commit(&mut store, n);
            if store.fold_wal_if_due() {
                break;
            }
            assert!(n <= i64::from(RESIDENT_FOLD_FRAMES), "never folded");
        }
        assert!(wal_len() >= u64::from(RESIDENT_FOLD_FRAMES) * frame);
        let size = wal_len();
        assert!(!store.fold_due(), "due again with nothing new");

        // Three more rounds: the file keeps its size, written over from its start (cut,
        // it would be shorter after the first commit; grown, four times as long), and
        // nothing is lost.
        for _ in 0..3 {
            n += 1;
            commit(&mut store, n);
            assert!(
                wal_len() >= size,
                "the WAL was cut: {} after {size}",
                wal_len()
            );
            while !store.fold_wal_if_due() {
                n += 1;
                commit(&mut store, n);
            }
            assert!(wal_len() <= size + 2 * frame, "{} after {size}", wal_len());
            assert_eq!(used(), n);
        }

        // A reader on an old snapshot: the fold leaves what it still reads, is not due
        // again until more has been written, and completes once the reader is done.
        let reader = other();
        reader.conn().execute_batch("BEGIN").unwrap();
        let seen: i64 = reader
            .conn()
            .query_row("SELECT last_used_at FROM devices", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seen, n);
        for _ in 0..RESIDENT_FOLD_FRAMES {
            n += 1;
            commit(&mut store, n);
        }
        assert!(
            !store.fold_wal_if_due(),
            "folded frames a reader may still need"
        );
        n += 1;
        commit(&mut store, n);
        assert!(!store.fold_due(), "tried again after one more commit");
        reader.conn().execute_batch("COMMIT").unwrap();
        reader.abandon();
        while !store.fold_wal_if_due() {
            n += 1;
            commit(&mut store, n);
        }
        assert_eq!(used(), n);

        // Emptied: no frame left in the file, waiting for no one, and nothing lost.
        n += 1;
        commit(&mut store, n);
        let reader = other();
        reader.conn().execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .conn()
            .query_row("SELECT last_used_at FROM devices", [], |r| r.get(0))
            .unwrap();
        assert!(!store.empty_wal(), "emptied under a reader");
        reader.conn().execute_batch("COMMIT").unwrap();
        reader.abandon();
        assert!(store.empty_wal());
        assert_eq!(wal_len(), 0);
        assert_eq!(used(), n);
        drop(store);

        // Never told to fold: the commit at the backstop folds, and the WAL starts over
        // (and is cut back to its limit).
        let mut store = Store::open_existing(&path).unwrap().unwrap();
        store.make_resident().unwrap();
        let backstop = u64::try_from(wal::RESIDENT_BACKSTOP_FRAMES).unwrap();
        for _ in 0..backstop + 100 {
            n += 1;
            commit(&mut store, n);
        }
        assert!(
            wal_len() <= u64::try_from(wal::RESIDENT_WAL_LIMIT).unwrap(),
            "{} bytes of WAL after {} commits",
            wal_len(),
            backstop + 100
        );
        assert_eq!(used(), n);
    }

    /// The directory is synced when the WAL is new, and only then: not by every login.
    #[test]
    fn the_directory_is_synced_only_for_a_new_wal() {
        let (_dir, path) = temp_store();
        drop(Store::open_or_create(&path).unwrap());
        let wal = path.with_file_name("devices.db-wal");
        assert!(wal.exists(), "the WAL is kept");
        let login = || {
            let (mut store, synced) = Store::connect_noting_wal(&path, Use::Login).unwrap();
            let tx = store.write().unwrap();
            tx.execute("UPDATE auth_state SET failures = 0", [])
                .unwrap();
            tx.commit().unwrap();
            synced
        };
        for _ in 0..40 {
            assert!(
                !login(),
                "a login synced the directory of a WAL it did not create"
            );
        }
        // Something else removes the WAL (a plain SQLite connection, as the sqlite3 shell
        // makes, is the last to close): the next connection finds a new one.
        {
            let c = Connection::open(&path).unwrap();
            c.query_row("PRAGMA user_version", [], |_| Ok(())).unwrap();
        }
        assert!(!wal.exists());
        assert!(login());
        assert!(!login());
        assert!(!Store::connect_noting_wal(&path, Use::Admin).unwrap().1);
        // A store someone switched out of WAL mode is switched back (and synced).
        {
            let c = Connection::open(&path).unwrap();
            let mode: String = c
                .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "delete");
        }
        assert!(!wal.exists());
        assert!(login());
        let store = Store::open_existing(&path).unwrap().unwrap();
        let mode: String = store
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn removed_secrets_do_not_linger_in_the_file() {
        let (_dir, path) = temp_store();
        let mut store = Store::open_or_create(&path).unwrap();
        let marker = b"SECRET-MARKER-0123456789".to_vec();
        let secret = crate::store::secret::Secret::from_bytes(marker.clone());
        let tx = store.write().unwrap();
        devices::insert_pending_totp(
            &tx,
            "alice",
            "phone",
            &secret,
            crate::store::params::TotpParams::DEFAULT,
            100,
            700,
        )
        .unwrap();
        tx.commit().unwrap();
        let checkpoint = |s: &Store| {
            s.conn()
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .unwrap();
        };
        let contains = |hay: &[u8]| hay.windows(marker.len()).any(|w| w == marker.as_slice());
        checkpoint(&store);
        assert!(
            contains(&fs::read(&path).unwrap()),
            "the test cannot see the secret at all"
        );
        let tx = store.write().unwrap();
        devices::remove(&tx, "alice", "phone", 100).unwrap();
        tx.commit().unwrap();
        checkpoint(&store);
        assert!(!contains(&fs::read(&path).unwrap()));
    }
}
