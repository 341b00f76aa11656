//! `pam_sqlite_floor.so`: the benchmark's floor for a module built the way
//! ARCHITECTURE.md fixes pam_mfa (a Rust cdylib, the same bundled SQLite with the same
//! build flags, one store file in WAL mode with `synchronous=FULL`, opened afresh in every
//! login process), doing the least such a login can do: one table of users, one read and
//! one durable write of the last used step, in one `BEGIN IMMEDIATE` transaction (the
//! table is `schema.sql`, which login-bench creates the store from).
//!
//! It exists to answer one question with a measurement instead of an argument: how much of
//! what a pam_mfa login costs comes from the design, and how much from pam_mfa's own code
//! and schema. login-bench runs it beside the others (README, "Performance"). It is a
//! benchmark fixture, never packaged: it has no lock-out, no policy, no audit, no syslog,
//! no safety checks on the store, and it trusts its `db=` argument.
//!
//! What it does keep, because a real module cannot drop it: the code is checked (HMAC-SHA1,
//! steps −1…+1, a step never accepted twice) and the new step is committed before
//! `PAM_SUCCESS`; the WAL file is kept and the directory synced only when the WAL is new
//! (SQLite is built without its own directory sync, `.cargo/config.toml`); the connection
//! closes without a checkpoint and a WAL past 64 KiB is checkpointed and truncated by the
//! login that finds it so, as pam_mfa's store does (`pam_mfa/src/store/`), so neither
//! pays for the other's choices there.

use std::ffi::CStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use pam::constants::{PAM_PROMPT_ECHO_OFF, PamFlag, PamResultCode};
use pam::conv::Conv;
use pam::module::{PamHandle, PamHooks};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

const PERIOD: u64 = 30;
/// pam_mfa's `store::LOGIN_CHECKPOINT_WAL_BYTES`.
const CHECKPOINT_WAL_BYTES: u64 = 64 * 1024;

pub struct Floor;
pam::pam_hooks!(Floor);

impl PamHooks for Floor {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        match login(pamh, &args) {
            Ok(true) => PamResultCode::PAM_SUCCESS,
            Ok(false) => PamResultCode::PAM_AUTH_ERR,
            Err(code) => code,
        }
    }

    fn sm_setcred(_: &mut PamHandle, _: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        PamResultCode::PAM_SUCCESS
    }
}

fn login(pamh: &mut PamHandle, args: &[&CStr]) -> Result<bool, PamResultCode> {
    let db = args
        .iter()
        .find_map(|a| a.to_str().ok()?.strip_prefix("db="))
        .ok_or(PamResultCode::PAM_SERVICE_ERR)?
        .to_owned();
    let user = pamh
        .get_user(None)
        .map_err(|_| PamResultCode::PAM_USER_UNKNOWN)?;
    let conv = pamh
        .get_item::<Conv>()?
        .ok_or(PamResultCode::PAM_CONV_ERR)?;
    let answer = conv
        .send(PAM_PROMPT_ECHO_OFF, "Verification code: ")?
        .ok_or(PamResultCode::PAM_AUTH_ERR)?;
    let Some(code) = parse_code(answer.as_bytes()) else {
        return Ok(false);
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| PamResultCode::PAM_SYSTEM_ERR)?
        .as_secs();
    check_and_commit(&db, &user, code, now / PERIOD).map_err(|_| PamResultCode::PAM_SYSTEM_ERR)
}

fn parse_code(bytes: &[u8]) -> Option<u32> {
    if bytes.len() != 6 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// The whole store side of a login: open, look up, check, record the step, commit, close.
fn check_and_commit(db: &str, user: &str, code: u32, step: u64) -> rusqlite::Result<bool> {
    let mut conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    keep_wal(&conn)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    conn.execute_batch("PRAGMA synchronous = FULL;")?;
    let wal = format!("{db}-wal");
    let wal_before = identity(&wal);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if identity(&wal) != wal_before {
        sync_directory(db).map_err(|e| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
                Some(e.to_string()),
            )
        })?;
    }
    let row: Option<(Vec<u8>, i64)> = tx
        .query_row(
            "SELECT secret, last_step FROM users WHERE name = ?1",
            [user],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((secret, last_step)) = row else {
        return Ok(false);
    };
    let last_step = u64::try_from(last_step).unwrap_or(0);
    let accepted = (step.saturating_sub(1)..=step + 1)
        .filter(|&s| s > last_step)
        .find(|&s| same(totp(&secret, s), code));
    let Some(s) = accepted else {
        return Ok(false);
    };
    tx.execute(
        "UPDATE users SET last_step = ?1 WHERE name = ?2",
        rusqlite::params![i64::try_from(s).unwrap_or(i64::MAX), user],
    )?;
    tx.commit()?;
    fold_wal_if_long(&conn, db);
    Ok(true)
}

/// The same policy as pam_mfa's store: a WAL past 64 KiB is checkpointed and truncated
/// without waiting.
fn fold_wal_if_long(conn: &Connection, db: &str) {
    let len = std::fs::symlink_metadata(format!("{db}-wal")).map_or(0, |m| m.len());
    if len >= CHECKPOINT_WAL_BYTES && conn.busy_timeout(Duration::ZERO).is_ok() {
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
}

/// Keeps the WAL file when the connection closes (`SQLITE_FCNTL_PERSIST_WAL`).
fn keep_wal(conn: &Connection) -> rusqlite::Result<()> {
    let mut on: std::ffi::c_int = 1;
    // SAFETY: the handle is this open connection's, used on this thread; "main" is a
    // NUL-terminated database name; the opcode reads and writes one int through a pointer
    // valid for the call.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&raw mut on).cast(),
        )
    };
    match rc {
        rusqlite::ffi::SQLITE_OK => Ok(()),
        _ => Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rc),
            None,
        )),
    }
}

/// Which file the WAL is (device, inode, birth time), if any, as pam_mfa's store tells.
fn identity(wal: &str) -> Option<(u64, u64, Option<SystemTime>)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(wal)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.created().ok()))
}

/// Syncs the store's directory: the new WAL's name must survive a power cut.
fn sync_directory(db: &str) -> std::io::Result<()> {
    let dir = std::path::Path::new(db)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

/// RFC 6238 with HMAC-SHA1 and 6 digits.
fn totp(secret: &[u8], step: u64) -> u32 {
    let Ok(mut mac) = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret) else {
        return u32::MAX;
    };
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[h.len() - 1] & 0x0f);
    let word = u32::from_be_bytes([h[offset], h[offset + 1], h[offset + 2], h[offset + 3]]);
    (word & 0x7fff_ffff) % 1_000_000
}

/// Compares without a data-dependent branch.
fn same(a: u32, b: u32) -> bool {
    std::hint::black_box(a ^ b) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_vectors() {
        // RFC 6238 Appendix B, truncated to 6 digits.
        let key = b"12345678901234567890";
        assert_eq!(totp(key, 59 / 30), 287_082);
        assert_eq!(totp(key, 1_111_111_109 / 30), 81_804);
        assert_eq!(totp(key, 2_000_000_000 / 30), 279_037);
    }

    #[test]
    fn only_six_digits_parse() {
        assert_eq!(parse_code(b"012345"), Some(12_345));
        assert_eq!(parse_code(b"12345"), None);
        assert_eq!(parse_code(b"1234567"), None);
        assert_eq!(parse_code(b"12a456"), None);
    }
}
