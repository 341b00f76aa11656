//! Per-user failure counters in the store (the rules live in [`crate::lockout`]).

use pam_mfa_protocol::UnixTime;
use rusqlite::{Connection, OptionalExtension, params};

use crate::Result;

/// One user's recent failures, as stored. What a failure does to them, and when they
/// lock the user out, is the library's `lockout` module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureState {
    pub failures: u32,
    pub window_start: UnixTime,
    pub locked_until: Option<UnixTime>,
}

/// Rows for users who have not failed for a day and are not locked carry no information;
/// deleting them bounds the table even when attackers try endless made-up user names.
const FORGET_AFTER_SECS: i64 = 86_400;

pub fn load(conn: &Connection, user: &str) -> Result<FailureState> {
    let row = conn
        .prepare_cached(
            "SELECT failures, window_start, locked_until FROM auth_state WHERE user = ?1",
        )?
        .query_row([user], |r| {
            Ok(FailureState {
                failures: r.get(0)?,
                window_start: r.get(1)?,
                locked_until: r.get(2)?,
            })
        })
        .optional()?;
    Ok(row.unwrap_or_default())
}

pub fn save(conn: &Connection, user: &str, state: &FailureState, now: UnixTime) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO auth_state (user, failures, window_start, locked_until)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (user) DO UPDATE SET failures = excluded.failures,
             window_start = excluded.window_start, locked_until = excluded.locked_until",
    )?
    .execute(params![
        user,
        state.failures,
        state.window_start,
        state.locked_until
    ])?;
    conn.prepare_cached(
        "DELETE FROM auth_state WHERE window_start < ?1
           AND (locked_until IS NULL OR locked_until < ?2)",
    )?
    .execute(params![now.saturating_sub(FORGET_AFTER_SECS), now])?;
    Ok(())
}

/// Forgets a user's failures (after a successful login, or an administrator's unlock).
pub fn clear(conn: &Connection, user: &str) -> Result<()> {
    conn.prepare_cached("DELETE FROM auth_state WHERE user = ?1")?
        .execute([user])?;
    Ok(())
}
