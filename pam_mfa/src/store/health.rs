//! Read-only questions about a store, for `mfa doctor`.
//!
//! An administrator checks a store before and after enabling the module, so nothing here
//! may change what it holds: the store is judged by the very code a login uses
//! ([`Store::open_existing`], with its safety checks and errors), but only when that
//! cannot migrate it, every query afterwards runs on a `query_only` connection, and it
//! closes without a checkpoint: it leaves the store's files as it found them, and the
//! daemon's WAL at the size the daemon keeps it ([`Store::make_resident`]).

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{Store, safety, schema};
use crate::Result;

/// What [`open_for_inspection`] found.
pub enum Inspection {
    /// No store (or no directory) yet: nobody has registered a device.
    Absent,
    /// A store of an older schema, which the next `mfa` command or login upgrades;
    /// opening it the normal way would upgrade it now, so it is left closed.
    Older { found: i64, known: i64 },
    /// A store a login would accept, opened so that it cannot be written.
    Open(Store),
}

/// Opens the store as a login would, without ever writing to it. Errors are those of
/// [`Store::open_existing`] (unsafe modes or owner, not a pam_mfa database, never
/// initialised, newer schema).
pub fn open_for_inspection(path: &Path) -> Result<Inspection> {
    if let safety::Presence::Absent = safety::check(path)? {
        return Ok(Inspection::Absent);
    }
    if let Some(found) = peek_version(path)
        && (1..schema::CURRENT_VERSION).contains(&found)
    {
        return Ok(Inspection::Older {
            found,
            known: schema::CURRENT_VERSION,
        });
    }
    match Store::open_existing(path)? {
        None => Ok(Inspection::Absent),
        Some(mut store) => {
            store.conn().pragma_update(None, "query_only", true)?;
            store.close_without_writing()?;
            Ok(Inspection::Open(store))
        }
    }
}

/// The schema version, read without running anything that writes; `None` when the file
/// cannot be read, in which case [`Store::open_existing`] says what is wrong with it.
///
/// The connection is read-write like a login's, not `SQLITE_OPEN_READ_ONLY` (a read-only
/// connection to a WAL database has trouble with `-shm` files it did not create), and
/// keeps the WAL file as every connection of pam_mfa's does (`wal.rs`): peeking leaves the
/// store's files as it found them.
fn peek_version(path: &Path) -> Option<i64> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = Connection::open_with_flags(path, flags).ok()?;
    super::wal::keep(&conn).ok()?;
    conn.query_row("PRAGMA user_version", [], |r| r.get(0)).ok()
}

/// How much disk the store takes, in bytes: the database file and its write-ahead log
/// (which holds recent commits until a checkpoint folds them into the file, and fills a
/// disk as much as the file does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    pub file: u64,
    pub wal: u64,
}

impl Footprint {
    pub fn total(&self) -> u64 {
        self.file.saturating_add(self.wal)
    }
}

/// The store's [`Footprint`]; a file that is missing (or not a regular file) counts as 0.
pub fn footprint(path: &Path) -> Footprint {
    let len = |p: &Path| {
        std::fs::symlink_metadata(p)
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map_or(0, |m| m.len())
    };
    Footprint {
        file: len(path),
        wal: len(&super::wal::path_of(path)),
    }
}

/// Bytes still free for ordinary writers on the file system holding the store's
/// directory (`statvfs`'s available blocks). Root may dig into the file system's reserve
/// beyond that, but the other services on the host cannot, and a disk they fill is
/// full for everyone soon after.
pub fn free_space(path: &Path) -> Result<u64> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stat = nix::sys::statvfs::statvfs(dir).map_err(|e| crate::Error::Io {
        path: dir.to_owned(),
        source: std::io::Error::from(e),
    })?;
    Ok(stat.blocks_available().saturating_mul(stat.fragment_size()))
}

/// The store's schema version (`PRAGMA user_version`).
pub fn schema_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// SQLite's own consistency check of every page and index. An empty list means the
/// store is sound; otherwise the problems SQLite reported (at most `max`).
pub fn integrity_problems(conn: &Connection, max: u32) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA integrity_check({})", max.max(1)))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows.into_iter().filter(|r| r != "ok").collect())
}

/// A user and how many active devices they have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveUser {
    pub user: String,
    pub devices: u32,
}

/// Every user with at least one active device, by name.
pub fn users_with_active_devices(conn: &Connection) -> Result<Vec<ActiveUser>> {
    let mut stmt = conn.prepare(
        "SELECT user, COUNT(*) FROM devices WHERE state = 'active'
         GROUP BY user ORDER BY user",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(ActiveUser {
                user: r.get(0)?,
                devices: r.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::devices;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn add_active(store: &mut Store, user: &str, name: &str) {
        let secret = crate::store::secret::Secret::from_bytes(vec![7; 20]);
        let tx = store.write().unwrap();
        devices::insert_pending_totp(
            &tx,
            user,
            name,
            &secret,
            crate::store::params::TotpParams::DEFAULT,
            100,
            700,
        )
        .unwrap();
        let id: i64 = tx
            .query_row(
                "SELECT id FROM devices WHERE user = ?1 AND name = ?2",
                [user, name],
                |r| r.get(0),
            )
            .unwrap();
        devices::activate(&tx, user, id, 3, 100).unwrap();
        tx.commit().unwrap();
    }

    #[test]
    fn absent_store() {
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("store");
        fs::create_dir(&store_dir).unwrap();
        fs::set_permissions(&store_dir, fs::Permissions::from_mode(0o700)).unwrap();
        let path = store_dir.join("devices.db");
        assert!(matches!(open_for_inspection(&path), Ok(Inspection::Absent)));
    }

    /// A look leaves the store's files as it found them: a WAL the daemon keeps long is
    /// neither folded nor cut when the look closes.
    #[test]
    fn a_look_leaves_the_wal_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store/devices.db");
        drop(Store::open_or_create(&path).unwrap());
        let mut daemon = Store::open_existing(&path).unwrap().unwrap();
        daemon.make_resident().unwrap();
        for n in 0..40 {
            add_active(&mut daemon, "alice", &format!("phone-{n}"));
            let tx = daemon.write().unwrap();
            tx.execute("DELETE FROM devices", []).unwrap();
            tx.commit().unwrap();
        }
        let wal = path.with_file_name("devices.db-wal");
        let before = fs::read(&wal).unwrap();
        assert!(before.len() as u64 > crate::store::LOGIN_CHECKPOINT_WAL_BYTES);
        match open_for_inspection(&path).unwrap() {
            Inspection::Open(look) => drop(look),
            _ => panic!("not opened"),
        }
        assert!(
            fs::read(&wal).unwrap() == before,
            "the look changed the WAL"
        );
    }

    #[test]
    fn sound_store_is_reported_and_not_writable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store/devices.db");
        let mut store = Store::open_or_create(&path).unwrap();
        add_active(&mut store, "bob", "phone");
        add_active(&mut store, "alice", "phone");
        add_active(&mut store, "alice", "key");
        // A pending device is no active device.
        let tx = store.write().unwrap();
        devices::insert_pending_totp(
            &tx,
            "carol",
            "phone",
            &crate::store::secret::Secret::from_bytes(vec![1; 20]),
            crate::store::params::TotpParams::DEFAULT,
            100,
            700,
        )
        .unwrap();
        tx.commit().unwrap();
        drop(store);
        // The store's files, and the WAL's length.
        let files = |p: &Path| {
            let mut names: Vec<(String, u64)> = std::fs::read_dir(p.parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap())
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let len = if name.ends_with("-wal") {
                        e.metadata().unwrap().len()
                    } else {
                        0
                    };
                    (name, len)
                })
                .collect();
            names.sort();
            names
        };
        let before = files(&path);
        assert!(
            before.contains(&("devices.db-wal".to_owned(), 0)),
            "mfa's close leaves an empty WAL: {before:?}"
        );
        assert_eq!(peek_version(&path), Some(schema::CURRENT_VERSION));
        assert_eq!(files(&path), before, "peeking changed the store's files");

        let Ok(Inspection::Open(store)) = open_for_inspection(&path) else {
            panic!("not opened");
        };
        assert_eq!(
            schema_version(store.conn()).unwrap(),
            schema::CURRENT_VERSION
        );
        assert!(integrity_problems(store.conn(), 10).unwrap().is_empty());
        assert_eq!(
            users_with_active_devices(store.conn()).unwrap(),
            vec![
                ActiveUser {
                    user: "alice".into(),
                    devices: 2
                },
                ActiveUser {
                    user: "bob".into(),
                    devices: 1
                },
            ]
        );
        assert!(
            store.conn().execute("DELETE FROM devices", []).is_err(),
            "an inspection connection must not write"
        );
    }

    #[test]
    fn errors_are_those_of_a_login() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store/devices.db");
        drop(Store::open_or_create(&path).unwrap());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            open_for_inspection(&path),
            Err(crate::Error::UnsafeStore { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, b"").unwrap();
        assert!(matches!(
            open_for_inspection(&path),
            Err(crate::Error::Uninitialised { .. })
        ));
    }

    #[test]
    fn damaged_pages_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store/devices.db");
        let mut store = Store::open_or_create(&path).unwrap();
        for i in 0..8 {
            add_active(&mut store, &format!("user{i}"), "phone");
        }
        drop(store);
        // Page 1 (the header and schema) stays; the pages after it are overwritten.
        let mut bytes = fs::read(&path).unwrap();
        assert!(bytes.len() >= 4096 * 2, "{}", bytes.len());
        for b in &mut bytes[4096..] {
            *b = 0x5a;
        }
        fs::write(&path, &bytes).unwrap();
        let found = match open_for_inspection(&path) {
            Ok(Inspection::Open(store)) => integrity_problems(store.conn(), 10)
                .map(|p| p.join("; "))
                .unwrap_or_else(|e| e.to_string()),
            Ok(_) => "absent or older".to_owned(),
            Err(e) => e.to_string(),
        };
        assert!(!found.is_empty(), "damage went unnoticed");
    }
}
