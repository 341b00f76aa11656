//! What each module needs for N users, built before any timing starts: pam_mfa's store
//! (through the library, as `mfa` builds it), pam_google_authenticator's state file per
//! user, pam_oath's users file, and a PAM service file for each.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pam_mfa::otp::TotpParams;
use pam_mfa::secret::Secret;
use pam_mfa::store::{Store, devices};

use crate::accounts;
use crate::codes::{PERIOD, Secrets};

/// The service name every benchmark service file has (each run has its own directory).
pub const SERVICE: &str = "bench";

pub fn private_dir(path: &Path) -> Result<(), String> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(|e| format!("mkdir {}: {e}", path.display()))
}

pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), String> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(contents)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A pam_wrapper service directory holding one service, `bench`, with `auth_line`.
pub fn service_dir(work: &Path, label: &str, auth_line: &str) -> Result<PathBuf, String> {
    let dir = work.join(format!("pam.d-{label}"));
    private_dir(&dir)?;
    write_private(
        &dir.join(SERVICE),
        format!("auth required {auth_line}\n").as_bytes(),
    )?;
    Ok(dir)
}

/// pam_mfa's stores for users `0..n`, one for each `n` in `sizes`: each user with one
/// active authenticator app "phone", registered through the library's own calls
/// (`insert_pending_totp` + `activate`, what `mfa enroll` does once the two codes are
/// checked), its last used step well in the past.
///
/// One store grows through the sizes in ascending order and a copy is taken at each, so
/// the work is that of the largest size alone. That work grows with the square of the
/// number of users: every `insert_pending_totp` first purges expired registrations with a
/// scan of the whole table (there is no index on `state`), so 100,000 users take minutes.
/// A big page cache for this connection keeps those scans in memory.
pub fn mfa_stores(
    work: &Path,
    secrets: &Secrets,
    sizes: &[usize],
    now: u64,
) -> Result<Vec<(usize, PathBuf, Duration)>, String> {
    let mut sizes = sizes.to_vec();
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.is_empty() {
        return Ok(Vec::new());
    }
    let started = Instant::now();
    let build = work.join("mfa-build");
    private_dir(&build)?;
    let path = build.join("devices.db");
    let err = |e: pam_mfa::Error| format!("{}: {e}", path.display());
    let now = i64::try_from(now).map_err(|e| e.to_string())?;
    let last_step = now / PERIOD as i64 - 10;
    let mut out = Vec::new();
    let mut done = 0;
    for &n in &sizes {
        let mut store = Store::open_or_create(&path).map_err(err)?;
        store
            .conn()
            .pragma_update(None, "cache_size", -262_144i64)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let tx = store.write().map_err(err)?;
        for i in done..n {
            let user = accounts::name(u32::try_from(i).map_err(|e| e.to_string())?);
            let secret = Secret::from_bytes(secrets.get(i).to_vec());
            devices::insert_pending_totp(
                &tx,
                &user,
                "phone",
                &secret,
                TotpParams::DEFAULT,
                now,
                now + 600,
            )
            .map_err(err)?;
            let id = tx.last_insert_rowid();
            if !devices::activate(&tx, &user, id, last_step, now).map_err(err)? {
                return Err(format!(
                    "{}: could not activate {user}'s device",
                    path.display()
                ));
            }
        }
        tx.commit()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // Closing checkpoints the WAL into the file, so the copy is complete.
        drop(store);
        done = n;
        let dir = work.join(format!("mfa-{n}"));
        private_dir(&dir)?;
        let copy = dir.join("devices.db");
        fs::copy(&path, &copy).map_err(|e| format!("copy to {}: {e}", copy.display()))?;
        serving_wal(&copy)?;
        out.push((n, copy, started.elapsed()));
    }
    fs::remove_dir_all(&build).map_err(|e| format!("{}: {e}", build.display()))?;
    Ok(out)
}

/// Gives a new store's WAL the size a serving daemon's has after its first few hundred
/// commits, which it then keeps ([`Store::make_resident`]): a WAL made afresh by `mfa`
/// grows with each of those commits, and a commit that makes the file longer costs
/// about 100 µs more here than one that writes over it. Commits that change one device's
/// `last_used_at` and back (SQLite writes nothing for a row written as it is) until the
/// daemon's connection would fold the WAL, the fold, then commits that start the WAL over
/// from its beginning and leave the value as it was, folded too, so that the database
/// file alone is the whole store (the concurrent run copies it).
pub fn serving_wal(db: &Path) -> Result<(), String> {
    let err = |e: pam_mfa::Error| format!("{}: {e}", db.display());
    let sql_err = |e: rusqlite::Error| format!("{}: {e}", db.display());
    let mut store = Store::open_existing(db)
        .map_err(err)?
        .ok_or_else(|| format!("{}: the store is gone", db.display()))?;
    store.make_resident().map_err(err)?;
    let (id, original): (i64, Option<i64>) = store
        .conn()
        .query_row(
            "SELECT id, last_used_at FROM devices ORDER BY id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(sql_err)?;
    let changed = Some(original.map_or(1, |v| v + 1));
    let set = |store: &mut Store, value: Option<i64>| -> Result<(), String> {
        let tx = store.write().map_err(err)?;
        tx.execute(
            "UPDATE devices SET last_used_at = ?1 WHERE id = ?2",
            rusqlite::params![value, id],
        )
        .map_err(sql_err)?;
        tx.commit().map_err(sql_err)
    };
    for i in 0..=2 * pam_mfa::store::RESIDENT_FOLD_FRAMES {
        let now_changed = i % 2 == 0;
        set(&mut store, if now_changed { changed } else { original })?;
        if store.fold_wal_if_due() {
            if !now_changed {
                set(&mut store, changed)?;
            }
            set(&mut store, original)?;
            let (busy, frames, folded): (i64, i64, i64) = store
                .conn()
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(sql_err)?;
            if busy != 0 || frames != folded {
                return Err(format!(
                    "{}: {folded} of {frames} WAL frames folded",
                    db.display()
                ));
            }
            return Ok(());
        }
    }
    Err(format!("{}: the WAL was never folded", db.display()))
}

/// pam_sqlite_floor's store for users `0..n`: its one table, in WAL mode, each user's
/// last used step well in the past (as in [`mfa_stores`]).
pub fn sqlite_floor_store(
    work: &Path,
    label: &str,
    secrets: &Secrets,
    n: usize,
    now: u64,
) -> Result<(PathBuf, Duration), String> {
    let started = Instant::now();
    let dir = work.join(label);
    private_dir(&dir)?;
    let path = dir.join("floor.db");
    let err = |e: rusqlite::Error| format!("{}: {e}", path.display());
    let mut conn = rusqlite::Connection::open(&path).map_err(err)?;
    conn.execute_batch(concat!(
        "PRAGMA journal_mode = WAL; ",
        include_str!("../sqlite-floor/schema.sql")
    ))
    .map_err(err)?;
    let last_step = i64::try_from(now / PERIOD).map_err(|e| e.to_string())? - 10;
    let tx = conn.transaction().map_err(err)?;
    {
        let mut insert = tx
            .prepare("INSERT INTO users (name, secret, last_step) VALUES (?1, ?2, ?3)")
            .map_err(err)?;
        for i in 0..n {
            let user = accounts::name(u32::try_from(i).map_err(|e| e.to_string())?);
            insert
                .execute(rusqlite::params![user, secrets.get(i), last_step])
                .map_err(err)?;
        }
    }
    tx.commit().map_err(err)?;
    Ok((path, started.elapsed()))
}

/// pam_google_authenticator's state files, one per user, as `google-authenticator -t -d
/// -r 3 -R 30 -w 3` writes them: TOTP, reuse protection (DISALLOW_REUSE) and rate limiting
/// (3 logins per 30 s) on. Owned by root, 0600, which `user=root` makes it require.
pub fn ga_files(
    work: &Path,
    label: &str,
    secrets: &Secrets,
    n: usize,
) -> Result<(PathBuf, Duration), String> {
    let started = Instant::now();
    let dir = work.join(label);
    private_dir(&dir)?;
    for i in 0..n {
        let user = accounts::name(u32::try_from(i).map_err(|e| e.to_string())?);
        let contents = format!(
            "{}\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n",
            secrets.base32(i)
        );
        write_private(&dir.join(&user), contents.as_bytes())?;
    }
    Ok((dir, started.elapsed()))
}

/// pam_oath's users file: one line per user, TOTP with 30 s steps and 6 digits.
pub fn oath_file(
    work: &Path,
    label: &str,
    secrets: &Secrets,
    n: usize,
) -> Result<(PathBuf, Duration), String> {
    let started = Instant::now();
    let dir = work.join(label);
    private_dir(&dir)?;
    let mut contents = String::with_capacity(n * 80);
    for i in 0..n {
        let user = accounts::name(u32::try_from(i).map_err(|e| e.to_string())?);
        contents.push_str(&format!("HOTP/T30/6\t{user}\t-\t{}\n", secrets.hex(i)));
    }
    let path = dir.join("users.oath");
    write_private(&path, contents.as_bytes())?;
    Ok((path, started.elapsed()))
}

/// nss_wrapper's own passwd and group files: root only (GA's `user=root` looks it up); the
/// benchmark's accounts come from the NSS module.
pub fn nss_files(work: &Path) -> Result<(PathBuf, PathBuf), String> {
    let passwd = work.join("passwd");
    let group = work.join("group");
    write_private(&passwd, b"root:x:0:0:root:/root:/bin/sh\n")?;
    write_private(&group, b"root:x:0:\n")?;
    Ok((passwd, group))
}
