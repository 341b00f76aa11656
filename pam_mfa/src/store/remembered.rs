//! The `remembered_logins` table: which user was let in, at which PAM service, from which
//! remote host, until when (the rules are [`crate::remembered`]'s).

use pam_mfa_protocol::UnixTime;
use rusqlite::{Connection, OptionalExtension, params};

use crate::Result;

/// One remembered context, as `mfa list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    pub service: String,
    /// The remote host as the service gave it (`PAM_RHOST`); empty for a local login.
    pub rhost: String,
    pub since: UnixTime,
    pub until: UnixTime,
}

/// Since and until when the context is remembered, if it still is at `now`.
pub fn get(
    conn: &Connection,
    user: &str,
    service: &str,
    rhost: &str,
    now: UnixTime,
) -> Result<Option<(i64, i64)>> {
    Ok(conn
        .prepare_cached(
            "SELECT since, until FROM remembered_logins
             WHERE user = ?1 AND service = ?2 AND rhost = ?3 AND until > ?4",
        )?
        .query_row(params![user, service, rhost, now], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?)
}

/// Remembers the context from `now` until `until` (a later success moves it on), and
/// drops every context that has run out, which bounds the table.
pub fn remember(
    conn: &Connection,
    user: &str,
    service: &str,
    rhost: &str,
    now: UnixTime,
    until: UnixTime,
) -> Result<()> {
    conn.prepare_cached("DELETE FROM remembered_logins WHERE until <= ?1")?
        .execute([now])?;
    conn.prepare_cached(
        "INSERT INTO remembered_logins (user, service, rhost, since, until)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (user, service, rhost) DO UPDATE SET since = excluded.since,
             until = excluded.until",
    )?
    .execute(params![user, service, rhost, now, until])?;
    Ok(())
}

/// Forgets every context of `user`; how many there were (run out or not).
pub fn forget_all(conn: &Connection, user: &str) -> Result<usize> {
    Ok(conn
        .prepare_cached("DELETE FROM remembered_logins WHERE user = ?1")?
        .execute([user])?)
}

/// The contexts of `user` still remembered at `now`, soonest to end first.
pub fn list(conn: &Connection, user: &str, now: UnixTime) -> Result<Vec<Remembered>> {
    let mut stmt = conn.prepare_cached(
        "SELECT service, rhost, since, until FROM remembered_logins
         WHERE user = ?1 AND until > ?2 ORDER BY until, service, rhost",
    )?;
    let rows = stmt
        .query_map(params![user, now], |r| {
            Ok(Remembered {
                service: r.get(0)?,
                rhost: r.get(1)?,
                since: r.get(2)?,
                until: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
